// The LMDB engine's storage layout on its own (the server suites run it end to end): entry
// chunks read back at any position, and completion runs keyed by commit, deleted through the
// disk thread's index of them — also after the store is reopened.
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lmdbEngine } from '../src/log/lmdb-engine.js';
import type { CommitSink } from '../src/log/commit.js';
import type { ClosableReader } from '../src/log/engine.js';

function dataDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'tailgrove-lmdb-engine-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function completions(reader: ClosableReader): string[] {
  reader.refresh();
  return [...reader.completions()].map(({ writerId, lsn, outcome }) => `${writerId}:${lsn}=${outcome}`).sort();
}

const run = (writerId: number, from: number, to: number) => (sink: CommitSink) => {
  for (let lsn = from; lsn <= to; lsn++) sink.completion(writerId, lsn, lsn * 10);
};

t.test('completion runs: written per commit, deleted by writer up to an lsn, across a reopen', async (t) => {
  const dir = dataDir(t);
  let store = lmdbEngine.openCommitStore(dir, {});
  store.commit((sink) => {
    run(7, 1, 10)(sink);
    run(9, 1, 5)(sink);
  });
  store.commit(run(7, 11, 20));
  const reader = lmdbEngine.openReader(dir);
  t.equal(completions(reader).length, 25, 'every outcome is stored');
  store.commit((sink) => sink.trimCompletions(7, 1, 15));
  t.same(
    completions(reader).filter((c) => c.startsWith('7:')),
    Array.from({ length: 10 }, (_, i) => `7:${i + 11}=${(i + 11) * 10}`).sort(),
    'the run ending below the acked lsn is gone; the one holding it stays whole',
  );
  await store.close();
  store = lmdbEngine.openCommitStore(dir, {});
  store.commit((sink) => {
    run(9, 6, 8)(sink);
    sink.trimCompletions(7, 16, 20);
  });
  t.same(completions(reader), ['9:1=10', '9:2=20', '9:3=30', '9:4=40', '9:5=50', '9:6=60', '9:7=70', '9:8=80'], 'after a reopen the index knows the older runs');
  store.commit((sink) => sink.trimCompletions(9, 1, 8));
  t.same(completions(reader), [], 'every run deleted: the space is free');
  await Promise.all([store.close(), reader.close()]);
});

t.test('entry chunks: reads from any position, in bounds, across commits', async (t) => {
  const dir = dataDir(t);
  const store = lmdbEngine.openCommitStore(dir, {});
  const entry = (position: number): Buffer => Buffer.from(`entry-${position}`);
  let bytes = 0;
  for (let commit = 0; commit < 5; commit++) {
    store.commit((sink) => {
      sink.log(1024, 1, 'site\u0000log');
      for (let position = commit * 7; position < commit * 7 + 7; position++) {
        sink.entry(1024, position, entry(position), bytes, 1_700_000_000);
        bytes += entry(position).length;
      }
    });
  }
  const reader = lmdbEngine.openReader(dir);
  reader.refresh();
  const read = (from: number, to: number, bytesMax = Infinity): string[] => {
    const out: string[] = [];
    reader.readEntries(1024, from, to, bytesMax, { entry: (position, data) => out.push(`${position}:${data}`) });
    return out;
  };
  t.same(read(0, 35), Array.from({ length: 35 }, (_, p) => `${p}:entry-${p}`), 'the whole log in order');
  t.same(read(10, 16), Array.from({ length: 6 }, (_, i) => `${i + 10}:entry-${i + 10}`), 'a range starting and ending inside chunks');
  t.same(read(33, 100), ['33:entry-33', '34:entry-34'], 'a range past the tail stops at it');
  t.same(read(3, 35, 1), ['3:entry-3'], 'the byte bound stops after the entry that reaches it');
  const [log] = [...reader.logs()];
  t.same([log?.tail, log?.bytes], [35, bytes], 'the tail and byte count come from the last chunk');
  await Promise.all([store.close(), reader.close()]);
});
