// The native-free storage engine (src/native-free/storage/): a model check against the
// in-memory storage after every commit and after reopening, readers in another thread,
// SIGKILLed writers and torn tails, compaction keeping the directory bounded, the metadata
// tables, a process where native addons cannot load, and a throughput figure.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { appendFileSync, closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import type { CommitSink } from '../src/log/commit.js';
import type { DurableWriter, StorageReader } from '../src/log/storage.js';
import { MemoryStorage } from '../src/testing/memory-storage.js';
import { Prng } from '../src/testing/prng.js';
import { BlockIndex } from '../src/native-free/storage/block-index.js';
import { CorruptStoreError, DEFAULT_COMMIT_STORE_OPTIONS, SegmentCommitStore, type CommitStoreOptions } from '../src/native-free/storage/commit-store.js';
import { crc32, crc32Table } from '../src/native-free/storage/crc32.js';
import { nativeFreeEngine } from '../src/native-free/storage/engine.js';
import { FrameScanner } from '../src/native-free/storage/frame-scanner.js';
import {
  META_KIND,
  META_LENGTH,
  META_TRIM_COMPLETIONS,
  NO_BOUND,
  PUBLISHED_FILE,
  SEGMENT_HEADER_BYTES,
  STORE_DIRECTORY,
  TABLES_DIRECTORY,
  TRIM_COMPLETIONS_BOUND,
} from '../src/native-free/storage/format.js';
import { FileKvTable } from '../src/native-free/storage/kv-table.js';
import { SegmentReader } from '../src/native-free/storage/reader.js';
import { SegmentRetentionView } from '../src/native-free/storage/retention-view.js';
import { listSegments, openSegment, segmentPath, segmentsDirectory } from '../src/native-free/storage/segment-files.js';
import { COUNTER_LOG_ID, NOWHERE, newPlan, planCommit, planLogId, PLAN_LOGS } from './fixtures/native-free-batches.js';
import { roundEntry, type ReaderThreadData } from './fixtures/native-free-rounds.js';
import { tsWorker } from './fixtures/ts-worker.js';

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

function temporaryDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'tailgrove-native-free-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function segmentsDir(dataDir: string): string {
  return segmentsDirectory(dataDir);
}

function directoryBytes(directory: string): number {
  return readdirSync(directory).reduce((sum, name) => sum + statSync(join(directory, name)).size, 0);
}

/** Every entry fed for [from, to), copied. */
function readAll(reader: StorageReader, logId: number, from: number, to: number, bytesMax = Infinity): [number, Buffer][] {
  const entries: [number, Buffer][] = [];
  reader.readEntries(logId, from, to, bytesMax, { entry: (position, data) => entries.push([position, Buffer.from(data)]) });
  return entries;
}

/** A child's environment without the msgpackr switch this test process set by loading the engine. */
function childEnvironment(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.MSGPACKR_NATIVE_ACCELERATION_DISABLED;
  return env;
}

// ---------------------------------------------------------------------------------------------
// The model check: random commits shaped like the server's (writes at a log's tail with their
// completions, refused conditional writes, acks and new writer epochs trimming completions,
// new logs, retention trims), fed to the engine and to MemoryStorage.

type ModelWriter = DurableWriter;

interface ModelLog {
  logId: number;
  name: string;
  epoch: number;
  first: number;
  tail: number;
  bytes: number;
  bytesBefore: number[];
  appendedAt: number[];
}

type Operation = (sink: CommitSink) => void;

class Scenario {
  readonly model = new MemoryStorage();
  readonly logs: ModelLog[] = [];
  readonly writers: ModelWriter[] = [];
  private readonly prng: Prng;
  private now = 1_700_000_000;
  private nextSequence = 1;

  constructor(prng: Prng) {
    this.prng = prng;
  }

  /** The next commit's operations (already applied to the scenario's bookkeeping). */
  nextCommit(): Operation[] {
    const prng = this.prng;
    const operations: Operation[] = [];
    this.now += prng.below(3);
    const count = prng.chance(0.05) ? 0 : 1 + prng.below(25);
    for (let index = 0; index < count; index++) {
      const roll = prng.next();
      if (this.logs.length === 0 || roll < 0.04) operations.push(this.newLog());
      else if (roll < 0.06) operations.push(this.relog());
      else if (roll < 0.1 || this.writers.length === 0) operations.push(this.newWriter());
      else if (roll < 0.75) operations.push(...this.write());
      else if (roll < 0.87) operations.push(...this.ack());
      else if (roll < 0.91) operations.push(...this.newEpoch());
      else operations.push(this.trim());
    }
    return operations;
  }

  /** The completion records recovery would restore (LMDB keeps a run straddling an ack whole). */
  ackedLsn(writerId: number): number {
    return this.writers.find((writer) => writer.writerId === writerId)?.ackedLsn ?? 0;
  }

  private newLog(): Operation {
    const sequence = this.nextSequence++;
    const log: ModelLog = { logId: sequence * 1024 + this.prng.below(1024), name: `site\u0000log-${sequence}`, epoch: 1, first: 0, tail: 0, bytes: 0, bytesBefore: [], appendedAt: [] };
    this.logs.push(log);
    return (sink) => sink.log(log.logId, log.epoch, log.name);
  }

  private relog(): Operation {
    const log = this.prng.pick(this.logs);
    const epoch = ++log.epoch;
    return (sink) => sink.log(log.logId, epoch, log.name);
  }

  private newWriter(): Operation {
    const log = this.prng.pick(this.logs);
    const writer: ModelWriter = { writerId: this.nextSequence++ * 1024 + (log.logId % 1024), logId: log.logId, device: `device-${this.writers.length}`, epoch: 1, lastLsn: 0, ackedLsn: 0 };
    this.writers.push(writer);
    return (sink) => sink.writer(writer.writerId, writer.logId, writer.device, 1, 0, 0);
  }

  private write(): Operation[] {
    const writer = this.prng.pick(this.writers);
    const log = this.logs.find((candidate) => candidate.logId === writer.logId)!;
    const lsn = ++writer.lastLsn;
    if (this.prng.chance(0.08)) {
      const refused = -(log.tail + 1);
      return [(sink) => sink.completion(writer.writerId, lsn, refused)];
    }
    const data = this.entryData();
    const position = log.tail++;
    const bytesBefore = log.bytes;
    const appendedAt = this.now;
    log.bytes += data.length;
    log.bytesBefore[position] = bytesBefore;
    log.appendedAt[position] = appendedAt;
    return [(sink) => sink.entry(log.logId, position, data, bytesBefore, appendedAt), (sink) => sink.completion(writer.writerId, lsn, position)];
  }

  private entryData(): Buffer {
    const roll = this.prng.next();
    // Mostly small; some larger than a block; rarely larger than the scanner's read chunk.
    const length = roll < 0.002 ? 1_200_000 + this.prng.below(1000) : roll < 0.02 ? 60_000 + this.prng.below(20_000) : roll < 0.1 ? 1000 + this.prng.below(4000) : this.prng.below(200);
    const data = Buffer.alloc(length);
    for (let index = 0; index < Math.min(length, 64); index++) data[index] = this.prng.below(256);
    data.fill(this.prng.below(256), Math.min(length, 64));
    return data;
  }

  private ack(): Operation[] {
    const writer = this.prng.pick(this.writers);
    if (writer.lastLsn <= writer.ackedLsn) return [];
    const from = writer.ackedLsn + 1;
    const to = from + this.prng.below(writer.lastLsn - writer.ackedLsn);
    writer.ackedLsn = to;
    const { writerId, logId, device, epoch, lastLsn } = writer;
    return [(sink) => sink.trimCompletions(writerId, from, to), (sink) => sink.writer(writerId, logId, device, epoch, lastLsn, to)];
  }

  private newEpoch(): Operation[] {
    const writer = this.prng.pick(this.writers);
    const operations: Operation[] = [];
    const { writerId, logId, device, lastLsn, ackedLsn } = writer;
    if (lastLsn > ackedLsn) operations.push((sink) => sink.trimCompletions(writerId, ackedLsn + 1, lastLsn));
    const epoch = ++writer.epoch;
    writer.lastLsn = 0;
    writer.ackedLsn = 0;
    operations.push((sink) => sink.writer(writerId, logId, device, epoch, 0, 0));
    return operations;
  }

  private trim(): Operation {
    const log = this.prng.pick(this.logs);
    if (log.tail === log.first) return () => {};
    const from = log.first;
    const to = this.prng.chance(0.2) ? log.tail : from + 1 + this.prng.below(log.tail - from);
    log.first = to;
    const bytes = log.bytes;
    return (sink) => sink.trimEntries(log.logId, from, to, bytes);
  }
}

/** The first difference between what `reader` holds and the model, or undefined. */
function difference(reader: SegmentReader, scenario: Scenario, prng: Prng): string | undefined {
  const byName = (a: { name: string }, b: { name: string }): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  const logs = JSON.stringify([...reader.logs()].sort(byName));
  const expectedLogs = JSON.stringify([...scenario.model.logs()].sort(byName));
  if (logs !== expectedLogs) return `logs ${logs} expected ${expectedLogs}`;
  const writerOrder = (a: { writerId: number }, b: { writerId: number }): number => a.writerId - b.writerId;
  const writers = JSON.stringify([...reader.writers()].sort(writerOrder));
  const expectedWriters = JSON.stringify([...scenario.model.writers()].sort(writerOrder));
  if (writers !== expectedWriters) return `writers ${writers} expected ${expectedWriters}`;
  const completionOrder = (a: { writerId: number; lsn: number }, b: { writerId: number; lsn: number }): number => a.writerId - b.writerId || a.lsn - b.lsn;
  const completions = JSON.stringify([...reader.completions()].filter((record) => record.lsn > scenario.ackedLsn(record.writerId)).sort(completionOrder));
  const expectedCompletions = JSON.stringify([...scenario.model.completions()].sort(completionOrder));
  if (completions !== expectedCompletions) return `completions ${completions} expected ${expectedCompletions}`;
  for (const log of scenario.logs) {
    for (let attempt = 0; attempt < 3; attempt++) {
      const from = log.first + prng.below(log.tail - log.first + 1);
      const to = from + prng.below(log.tail - from + 3);
      const bytesMax = prng.chance(0.5) ? Infinity : 1 + prng.below(3000);
      const got = readAll(reader, log.logId, from, to, bytesMax);
      const expected = readAll(scenario.model, log.logId, from, to, bytesMax);
      if (got.length !== expected.length || got.some(([position, data], index) => position !== expected[index]![0] || !data.equals(expected[index]![1]))) {
        return `log ${log.logId} read [${from}, ${to}) max ${bytesMax}: ${got.map(([position, data]) => `${position}/${data.length}`)} expected ${expected.map(([position, data]) => `${position}/${data.length}`)}`;
      }
    }
    if (log.first > 0) {
      const below = readAll(reader, log.logId, 0, log.first + 1);
      if (below.length !== (log.tail > log.first ? 1 : 0) || (below.length === 1 && below[0]![0] !== log.first)) return `log ${log.logId} read below its first ${log.first}: ${below.map(([position]) => position)}`;
    }
  }
  return undefined;
}

/** The retention view's answers against the scenario. */
function retentionDifference(view: SegmentRetentionView, scenario: Scenario, prng: Prng): string | undefined {
  const logs = new Map([...view.logs()].map((log) => [log.logId, log]));
  for (const log of scenario.logs) {
    const seen = logs.get(log.logId);
    if (seen === undefined || seen.first !== log.first || seen.length !== log.tail || seen.endBytes !== log.bytes) return `retention log ${log.logId}: ${JSON.stringify(seen)}, expected first ${log.first} length ${log.tail} bytes ${log.bytes}`;
    if (log.tail === log.first) continue;
    const position = log.first + prng.below(log.tail - log.first);
    if (view.bytesBefore(log.logId, position) !== log.bytesBefore[position] || view.appendedAt(log.logId, position) !== log.appendedAt[position]) {
      return `retention log ${log.logId} at ${position}: ${view.bytesBefore(log.logId, position)} bytes before, appended at ${view.appendedAt(log.logId, position)}`;
    }
  }
  return undefined;
}

/** Completion trims carried forward by compaction (bounded by the segment they came from). */
function carriedCompletionTrims(dataDir: string): number {
  const directory = segmentsDir(dataDir);
  const scanner = new FrameScanner();
  let carried = 0;
  for (const id of listSegments(directory)) {
    const fd = openSegment(directory, id, false)!;
    scanner.scan(fd, id, SEGMENT_HEADER_BYTES, statSync(segmentPath(directory, id)).size, Infinity, (frame) => {
      for (let at = frame.metaAt; at < frame.metaEnd; at += frame.view.getUint32(at + META_LENGTH, true)) {
        if (frame.view.getUint32(at + META_KIND, true) === META_TRIM_COMPLETIONS && frame.view.getUint32(at + TRIM_COMPLETIONS_BOUND, true) !== NO_BOUND) carried++;
      }
    });
    closeSync(fd);
  }
  return carried;
}

// Small segments and a small carry budget: rolls and compaction (spread over commits) all the time.
const SMALL_SEGMENTS: CommitStoreOptions = { segmentBytes: 24 * 1024, liveRatioMax: 0.5, carryBytesPerCommit: 6 * 1024, quietMs: 0 };

t.test('model check: every commit and every reopen match MemoryStorage', async (t) => {
  const seeds = [1, 2, 3, 4];
  let carriedTrims = 0;
  for (const seed of seeds) {
    const dataDir = temporaryDir(t);
    const prng = new Prng(seed);
    const scenario = new Scenario(prng.fork());
    const checks = prng.fork();
    let store = new SegmentCommitStore(dataDir, SMALL_SEGMENTS);
    const eager = new SegmentReader(dataDir);
    // Refreshed now and then only: it falls behind while compaction deletes segments under it.
    const lagging = new SegmentReader(dataDir);
    const view = new SegmentRetentionView(dataDir);
    let failure: string | undefined;
    for (let commit = 1; commit <= 300 && failure === undefined; commit++) {
      const operations = scenario.nextCommit();
      for (const operation of operations) operation(scenario.model);
      store.commit((sink) => {
        for (const operation of operations) operation(sink);
      });
      eager.refresh();
      failure = difference(eager, scenario, checks);
      if (failure === undefined && checks.chance(0.25)) {
        lagging.refresh();
        failure = difference(lagging, scenario, checks);
      }
      if (failure === undefined && checks.chance(0.1)) {
        view.refresh();
        failure = retentionDifference(view, scenario, checks);
      }
      if (checks.chance(0.3)) lagging.release();
      if (failure === undefined && commit % 50 === 0) {
        // Reopen: the disk thread's recovery, and a new reader replaying every segment.
        await store.close();
        store = new SegmentCommitStore(dataDir, SMALL_SEGMENTS);
        const reopened = new SegmentReader(dataDir);
        failure = difference(reopened, scenario, checks);
        await reopened.close();
        if (failure !== undefined) failure = `after reopening at commit ${commit}: ${failure}`;
      } else if (failure !== undefined) {
        failure = `after commit ${commit}: ${failure}`;
      }
    }
    t.equal(failure, undefined, `seed ${seed}: the engine matches the model after every commit and reopen`);
    for (const [id, usage] of store.state.segments) {
      if (usage.liveBytes < 0 || usage.liveBlocks < 0 || usage.liveBytes > usage.bytes) t.fail(`seed ${seed}: segment ${id} accounts ${usage.liveBytes} live bytes of ${usage.bytes}`);
    }
    const segments = listSegments(segmentsDir(dataDir));
    t.ok(segments[0]! > 1, `seed ${seed}: compaction deleted old segments (lowest left: ${segments[0]}, highest: ${segments[segments.length - 1]})`);
    carriedTrims += carriedCompletionTrims(dataDir);
    await Promise.all([store.close(), eager.close(), lagging.close(), view.close()]);
  }
  t.ok(carriedTrims > 0, `completion trims were carried forward by compaction (${carriedTrims} left in the segments)`);
});

t.test('a completion trim carried forward spares the newer runs of its writer', async (t) => {
  // segmentBytes 1: every commit starts a new segment, so which segment holds what is known.
  const dataDir = temporaryDir(t);
  const options: CommitStoreOptions = { segmentBytes: 1, liveRatioMax: 0.5, carryBytesPerCommit: 2 ** 20, quietMs: 0 };
  const store = new SegmentCommitStore(dataDir, options);
  const big = Buffer.alloc(1000, 1);
  const writerId = 5 * 1024 + 1;
  // Segment 1: a run of lsns 1..3, next to a block that keeps the segment live.
  store.commit((sink) => {
    sink.log(1024, 1, 'site\u0000a');
    sink.writer(writerId, 1024, 'device', 1, 0, 0);
    sink.entry(1024, 0, big, 0, 1);
    for (let lsn = 1; lsn <= 3; lsn++) sink.completion(writerId, lsn, lsn === 1 ? 0 : -1);
  });
  // Segment 2: the ack trims the run; a block of another log keeps this segment live for now.
  store.commit((sink) => {
    sink.trimCompletions(writerId, 1, 3);
    sink.writer(writerId, 1024, 'device', 1, 3, 3);
    sink.log(2048, 1, 'site\u0000b');
    sink.entry(2048, 0, big, 0, 2);
  });
  // Segment 3: a new epoch writes a new run 1..2; retention empties log b (segment 2 dies).
  store.commit((sink) => {
    sink.writer(writerId, 1024, 'device', 2, 0, 0);
    sink.completion(writerId, 1, -1);
    sink.completion(writerId, 2, -1);
    sink.trimEntries(2048, 0, 1, 1000);
  });
  // Segment 4: compaction carries segment 2's trim (segment 1 still holds the run it dropped).
  store.commit((sink) => sink.entry(1024, 1, big, 1000, 3));
  t.same(listSegments(segmentsDir(dataDir)), [1, 3, 4], 'segment 2 was compacted away');
  t.ok(carriedCompletionTrims(dataDir) > 0, 'its completion trim was carried forward, bounded');
  await store.close();
  const reader = new SegmentReader(dataDir);
  t.same(
    [...reader.completions()].map(({ lsn }) => lsn),
    [1, 2],
    "the new epoch's run survives replaying the carried trim after it",
  );
  await reader.close();
});

t.test('readers in another thread see whole commits only', async (t) => {
  const dataDir = temporaryDir(t);
  const logIds = [1024, 2048, 3072, 4096, 5120];
  const data: ReaderThreadData = { dataDir, logIds, perCommit: 7, keep: 50, commits: 400, progress: new SharedArrayBuffer(8) };
  const progress = new Int32Array(data.progress);
  const store = new SegmentCommitStore(dataDir, { segmentBytes: 64 * 1024, liveRatioMax: 0.5, carryBytesPerCommit: 16 * 1024, quietMs: 0 });
  const worker = tsWorker(new URL('./fixtures/native-free-reader-thread.ts', import.meta.url), data);
  const report = new Promise<{ rounds: number; states: number; refreshes: number; violations: string[] }>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  while (Atomics.load(progress, 1) === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  const bytes = new Map<number, number>(logIds.map((logId) => [logId, 0]));
  for (let round = 1; round <= data.commits; round++) {
    Atomics.store(progress, 0, round);
    store.commit((sink) => {
      for (const logId of logIds) {
        if (round === 1) sink.log(logId, 1, `site\u0000${logId}`);
        for (let index = 0; index < data.perCommit; index++) {
          const position = (round - 1) * data.perCommit + index;
          const entry = roundEntry(logId, position);
          sink.entry(logId, position, entry, bytes.get(logId)!, round);
          bytes.set(logId, bytes.get(logId)! + entry.length);
        }
        const tail = round * data.perCommit;
        if (tail > data.keep) sink.trimEntries(logId, Math.max(0, tail - data.perCommit - data.keep), tail - data.keep, bytes.get(logId)!);
      }
      sink.writer(1, 1024, 'progress', 1, round, 0);
    });
    if (round % 20 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  const result = await report;
  await store.close();
  t.same(result.violations, [], 'no partial commit, no torn read, nothing before it was committed');
  t.equal(result.rounds, data.commits, 'the reader followed to the last commit');
  t.ok(result.states >= 10, `the reader saw many intermediate states (${result.states} over ${result.refreshes} refreshes)`);
  t.ok(listSegments(segmentsDir(dataDir))[0]! > 1, 'segments were compacted away while it read');
});

// ---------------------------------------------------------------------------------------------
// Crashes.

/** What a reader holds against the plan's first `commits` commits; undefined when equal. */
function planDifference(reader: SegmentReader, commits: number): string | undefined {
  const model = new MemoryStorage();
  const plan = newPlan();
  for (let k = 1; k <= commits; k++) planCommit(k, plan, model);
  const logs = JSON.stringify([...reader.logs()].sort((a, b) => a.logId - b.logId));
  const expectedLogs = JSON.stringify([...model.logs()].sort((a, b) => a.logId - b.logId));
  if (logs !== expectedLogs) return `logs ${logs} expected ${expectedLogs}`;
  const writers = JSON.stringify([...reader.writers()].sort((a, b) => a.writerId - b.writerId));
  const expectedWriters = JSON.stringify([...model.writers()].sort((a, b) => a.writerId - b.writerId));
  if (writers !== expectedWriters) return `writers ${writers} expected ${expectedWriters}`;
  const lsns = [...reader.completions()].filter((record) => record.lsn > plan.ackedLsn).map((record) => `${record.lsn}:${record.outcome}`).sort();
  const expectedLsns = [...model.completions()].map((record) => `${record.lsn}:${record.outcome}`).sort();
  if (JSON.stringify(lsns) !== JSON.stringify(expectedLsns)) return `completions ${lsns} expected ${expectedLsns}`;
  for (let index = 0; index < PLAN_LOGS; index++) {
    const logId = planLogId(index);
    const got = readAll(reader, logId, 0, Infinity);
    const expected = readAll(model, logId, plan.firsts[index]!, plan.tails[index]!);
    if (got.length !== expected.length || got.some(([position, data], at) => position !== expected[at]![0] || !data.equals(expected[at]![1]))) return `log ${logId} entries differ`;
  }
  return undefined;
}

interface ChildRun {
  recovered: number;
  lastDurable: number;
}

/** Run the crash child until `killAfterMs` after it recovered, SIGKILL it, report what it printed. */
function runCrashChild(dataDir: string, killAfterMs: number): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', fixture('native-free-crash-child.ts'), dataDir], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnvironment() });
    let recovered = -1;
    let lastDurable = -1;
    let pending = '';
    let errors = '';
    child.stdout.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        if (line.startsWith('recovered ')) {
          recovered = Number(line.slice('recovered '.length));
          setTimeout(() => child.kill('SIGKILL'), killAfterMs);
        } else {
          lastDurable = Number(line);
        }
      }
    });
    child.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
    child.on('error', reject);
    // 'close', not 'exit': every line the child printed has been read by then.
    child.on('close', (_code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`the crash child exited by itself: ${errors}`));
      else resolve({ recovered, lastDurable });
    });
  });
}

t.test('SIGKILL at random moments: reopening recovers exactly a prefix holding every durable commit', async (t) => {
  const dataDir = temporaryDir(t);
  const seed = Date.now() >>> 0;
  t.comment(`kill delays from seed ${seed}`);
  const prng = new Prng(seed);
  let expectedRecovered = 0;
  for (let round = 1; round <= 5; round++) {
    const { recovered, lastDurable } = await runCrashChild(dataDir, 60 + prng.below(300));
    t.equal(recovered, expectedRecovered, `round ${round}: the child recovered the ${expectedRecovered} commits found after the last kill`);
    const reader = new SegmentReader(dataDir);
    const counter = [...reader.writers()].find((writer) => writer.logId === COUNTER_LOG_ID && writer.device === 'counter')?.lastLsn ?? 0;
    t.ok(counter >= lastDurable, `round ${round}: every commit reported durable is there (${counter} ≥ ${lastDurable})`);
    t.ok(counter <= lastDurable + 1, `round ${round}: at most the commit in flight besides (${counter})`);
    t.equal(planDifference(reader, counter), undefined, `round ${round}: the store holds exactly commits 1..${counter}, nothing half applied`);
    await reader.close();
    expectedRecovered = counter;
  }
  t.ok(listSegments(segmentsDir(dataDir))[0]! > 1, 'compaction ran (and was killed) along the way');
});

/** A store holding the plan's first `commits` commits; returns the head segment's length before the last one. */
async function planStore(dataDir: string, commits: number): Promise<{ head: string; before: number; after: number }> {
  const store = new SegmentCommitStore(dataDir);
  const plan = newPlan();
  let before = 0;
  const head = segmentPath(segmentsDir(dataDir), listSegments(segmentsDir(dataDir)).pop()!);
  for (let k = 1; k <= commits; k++) {
    before = statSync(head).size;
    store.commit((sink) => planCommit(k, plan, sink));
  }
  await store.close();
  return { head, before, after: statSync(head).size };
}

function counterOf(reader: SegmentReader): number {
  return [...reader.writers()].find((writer) => writer.logId === COUNTER_LOG_ID && writer.device === 'counter')?.lastLsn ?? 0;
}

t.test('torn tails are cut off, earlier commits survive', async (t) => {
  const published = (dataDir: string): string => join(dataDir, STORE_DIRECTORY, PUBLISHED_FILE);

  t.test('garbage after the last commit', async (t) => {
    const dataDir = temporaryDir(t);
    const { head, after } = await planStore(dataDir, 40);
    appendFileSync(head, Buffer.from('a torn write: not a frame at all, just bytes'));
    const reader = new SegmentReader(dataDir);
    t.equal(counterOf(reader), 40, 'a reader opened before recovery stops at the last whole commit');
    t.equal(planDifference(reader, 40), undefined, 'and holds commits 1..40');
    const store = new SegmentCommitStore(dataDir);
    t.equal(statSync(head).size, after, 'recovery truncated the segment to the last whole commit');
    await store.close();
    await reader.close();
  });

  t.test('the last commit cut in the middle, never published (a power cut before its fsync ended)', async (t) => {
    const dataDir = temporaryDir(t);
    const { head, before, after } = await planStore(dataDir, 40);
    truncateSync(head, before + Math.floor((after - before) / 2));
    unlinkSync(published(dataDir));
    const store = new SegmentCommitStore(dataDir);
    t.equal(statSync(head).size, before, 'recovery cut the partial commit off');
    const plan = newPlan();
    for (let k = 1; k < 40; k++) planCommit(k, plan, NOWHERE);
    store.commit((sink) => planCommit(40, plan, sink));
    await store.close();
    const reader = new SegmentReader(dataDir);
    t.equal(planDifference(reader, 40), undefined, 'commit 40 again, after recovery, lands where the torn one was');
    await reader.close();
  });

  t.test('a bad checksum in the last commit', async (t) => {
    const dataDir = temporaryDir(t);
    const { head, before } = await planStore(dataDir, 40);
    unlinkSync(published(dataDir));
    const fd = openSync(head, 'r+');
    writeSync(fd, Buffer.from([0xff, 0x00, 0xff]), 0, 3, before + 60);
    closeSync(fd);
    const reader = new SegmentReader(dataDir);
    t.equal(planDifference(reader, 39), undefined, 'a reader holds commits 1..39 exactly');
    await reader.close();
    const store = new SegmentCommitStore(dataDir);
    t.equal(statSync(head).size, before, 'recovery cut the bad commit off');
    await store.close();
  });

  t.test('the last bytes of the segment overwritten (its end magic), not published', async (t) => {
    const dataDir = temporaryDir(t);
    const { head, before, after } = await planStore(dataDir, 40);
    unlinkSync(published(dataDir));
    const fd = openSync(head, 'r+');
    writeSync(fd, Buffer.from([0, 0, 0, 0]), 0, 4, after - 4);
    closeSync(fd);
    const store = new SegmentCommitStore(dataDir);
    t.equal(statSync(head).size, before, 'recovery cut the last commit off');
    await store.close();
    const reader = new SegmentReader(dataDir);
    t.equal(planDifference(reader, 39), undefined, 'commits 1..39 survive, whole');
    await reader.close();
  });

  t.test('a bad commit below the published end is corruption, not a torn write', async (t) => {
    const dataDir = temporaryDir(t);
    const { head, before } = await planStore(dataDir, 40);
    const fd = openSync(head, 'r+');
    writeSync(fd, Buffer.from([0xff, 0x00, 0xff]), 0, 3, before + 60);
    closeSync(fd);
    t.throws(() => new SegmentCommitStore(dataDir), CorruptStoreError, 'the disk thread refuses to open it');
    t.throws(() => new SegmentReader(dataDir), /below its durable length/, 'so do readers');
    unlinkSync(published(dataDir));
    const store = new SegmentCommitStore(dataDir);
    t.equal(statSync(head).size, before, 'without the published end, the damage is cut off as a torn tail');
    await store.close();
  });
});

// ---------------------------------------------------------------------------------------------
// Retention and compaction.

t.test('retention trims while appending: space is reused, the directory stays bounded', async (t) => {
  const dataDir = temporaryDir(t);
  const options: CommitStoreOptions = { segmentBytes: 256 * 1024, liveRatioMax: 0.5, carryBytesPerCommit: 64 * 1024, quietMs: 0 };
  let store = new SegmentCommitStore(dataDir, options);
  const model = new MemoryStorage();
  const reader = new SegmentReader(dataDir);
  const logIds = [1024, 2048, 3072, 4096];
  const kept = 2048 * 5; // never trimmed: its old entries must be carried forward
  const logs = new Map([...logIds, kept].map((logId) => [logId, { first: 0, tail: 0, bytes: 0 }]));
  const directory = segmentsDir(dataDir);
  let written = 0;
  let largest = 0;
  /** Build the commit's operations once (they advance the logs' bookkeeping), feed them to both. */
  const commitBoth = (build: (operations: ((sink: CommitSink) => void)[]) => void): void => {
    const operations: ((sink: CommitSink) => void)[] = [];
    build(operations);
    for (const operation of operations) operation(model);
    store.commit((sink) => {
      for (const operation of operations) operation(sink);
    });
  };
  commitBoth((operations) => {
    for (const logId of logs.keys()) operations.push((sink) => sink.log(logId, 1, `site\u0000${logId}`));
  });
  for (let commit = 1; commit <= 2500; commit++) {
    commitBoth((operations) => {
      for (const [logId, log] of logs) {
        const count = logId === kept ? (commit % 10 === 0 ? 1 : 0) : 20;
        for (let index = 0; index < count; index++) {
          const data = Buffer.alloc(200, (commit + index) & 0xff);
          data.writeUInt32LE(log.tail, 0);
          const position = log.tail++;
          const bytesBefore = log.bytes;
          operations.push((sink) => sink.entry(logId, position, data, bytesBefore, commit));
          log.bytes += data.length;
          written += data.length;
        }
        if (logId !== kept && log.tail - log.first > 100) {
          const [from, to, bytes] = [log.first, log.tail - 100, log.bytes];
          operations.push((sink) => sink.trimEntries(logId, from, to, bytes));
          log.first = to;
        }
      }
    });
    if (commit % 50 === 0) {
      largest = Math.max(largest, directoryBytes(directory));
      reader.refresh();
    }
    if (commit === 1250) {
      await store.close();
      store = new SegmentCommitStore(dataDir, options);
    }
  }
  const live = [...logs.values()].reduce((sum, log) => sum + (log.tail - log.first) * 208, 0);
  t.ok(written > 40e6, `${(written / 1e6).toFixed(0)} MB of entries written`);
  t.ok(largest < 6 * options.segmentBytes, `the segments never took more than ${(largest / 1024).toFixed(0)} KiB (live data ~${(live / 1024).toFixed(0)} KiB)`);
  t.ok(listSegments(directory)[0]! > 1, 'the first segments (with the kept log\'s first entries) were deleted');
  reader.refresh();
  for (const [logId, log] of logs) {
    const got = readAll(reader, logId, 0, Infinity);
    const expected = readAll(model, logId, log.first, log.tail);
    t.ok(got.length === expected.length && got.every(([position, data], index) => position === expected[index]![0] && data.equals(expected[index]![1])), `log ${logId}: every held entry reads back (${got.length})`);
  }
  await store.close();
  const reopened = new SegmentReader(dataDir);
  t.same(
    [...reopened.logs()].map(({ logId, first, tail, bytes }) => ({ logId, first, tail, bytes })),
    [...logs].map(([logId, log]) => ({ logId, first: log.first, tail: log.tail, bytes: log.bytes })),
    'after reopening: the same logs, firsts, tails and byte counts',
  );
  t.same(readAll(reopened, kept, 0, Infinity).length, logs.get(kept)!.tail, 'and every entry of the kept log');
  await Promise.all([reader.close(), reopened.close()]);
});

// ---------------------------------------------------------------------------------------------
// The metadata tables and log names.

t.test('metadata tables: put, remove, get, getRange; durable; rewritten compactly', async (t) => {
  const dataDir = temporaryDir(t);
  let metadata = nativeFreeEngine.openMetadata(dataDir);
  const revocation = { kind: 'jti' as const, value: 'token-1', revokedAt: 10, expiresAt: 20 };
  t.equal(await metadata.revocations.put('jti:token-1', revocation), true, 'put resolves true');
  t.same(metadata.revocations.get('jti:token-1'), revocation, 'get sees it');
  await Promise.all([
    metadata.memberships.put(['site-b', 'ann'], { logs: null, joinedAt: 1 }),
    metadata.memberships.put(['site-a', 'bob'], { logs: ['x', 'y'], joinedAt: 2 }),
    metadata.memberships.put(['site-a', 'ann'], { logs: ['z'], joinedAt: 3 }),
    metadata.mutes.put(['ann', 'site-a'], 1234),
    metadata.pushSubscriptions.put(['ann', 'https://push/1'], { device: 'd1', keys: { p256dh: 'p', auth: 'a' } }),
  ]);
  t.same(
    [...metadata.memberships.getRange({})].map(({ key }) => key),
    [
      ['site-a', 'ann'],
      ['site-a', 'bob'],
      ['site-b', 'ann'],
    ],
    'getRange yields in key order',
  );
  t.equal(await metadata.mutes.remove(['ann', 'site-a']), true, 'remove of a present key resolves true');
  t.equal(await metadata.mutes.remove(['ann', 'site-a']), false, 'remove of an absent key resolves false');
  t.equal(metadata.mutes.get(['ann', 'site-a']), undefined, 'a removed key is gone');
  await metadata.close();

  metadata = nativeFreeEngine.openMetadata(dataDir);
  t.same(metadata.revocations.get('jti:token-1'), revocation, 'after reopening: the revocation');
  t.same(metadata.memberships.get(['site-a', 'bob']), { logs: ['x', 'y'], joinedAt: 2 }, 'the memberships');
  t.equal(metadata.mutes.get(['ann', 'site-a']), undefined, 'the removal');
  t.same(metadata.pushSubscriptions.get(['ann', 'https://push/1']), { device: 'd1', keys: { p256dh: 'p', auth: 'a' } }, 'the push subscription');
  await metadata.close();

  const tables = join(dataDir, STORE_DIRECTORY, TABLES_DIRECTORY);
  const table = new FileKvTable<number, [string, string]>(tables, 'churn');
  for (let round = 0; round < 40; round++) {
    await Promise.all(Array.from({ length: 200 }, (_, index) => table.put([`user-${index % 20}`, 'site'], round * 1000 + index)));
  }
  await table.remove(['user-0', 'site']);
  const { fileBytes, liveBytes } = table.sizes;
  t.ok(fileBytes <= Math.max(2 * liveBytes, 64 * 1024) + 200 * 40, `8000 puts over 20 keys leave a ${fileBytes}-byte file (${liveBytes} live): it was rewritten`);
  t.equal(statSync(join(tables, 'churn.tbl')).size, fileBytes, 'the file on disk is that size');
  await table.close();
  appendFileSync(join(tables, 'churn.tbl'), Buffer.from([40, 0, 0, 0, 1, 2, 3]));
  const reopened = new FileKvTable<number, [string, string]>(tables, 'churn');
  t.equal([...reopened.getRange()].length, 19, 'after the rewrite and a torn append: 19 keys');
  t.equal(reopened.get(['user-7', 'site']), 39 * 1000 + 187, 'each with its last value');
  t.equal(reopened.get(['user-0', 'site']), undefined, 'and the removal');
  await reopened.close();
});

t.test('logNames() follows the log records the disk thread commits', async (t) => {
  const dataDir = temporaryDir(t);
  const store = nativeFreeEngine.openCommitStore(dataDir);
  store.commit((sink) => sink.log(1024, 1, 'site\u0000first'));
  const metadata = nativeFreeEngine.openMetadata(dataDir);
  t.same([...metadata.logNames()], [{ name: 'site\u0000first', logId: 1024 }], 'the names committed before opening');
  store.commit((sink) => sink.log(2048, 1, 'site\u0000second'));
  t.same(
    [...metadata.logNames()].map(({ name }) => name),
    ['site\u0000first', 'site\u0000second'],
    'and those committed since, on the next call',
  );
  await Promise.all([store.close(), metadata.close()]);
});

t.test('readers keep following between reads, in steps', async (t) => {
  const dataDir = temporaryDir(t);
  const store = new SegmentCommitStore(dataDir, DEFAULT_COMMIT_STORE_OPTIONS);
  store.commit((sink) => sink.log(1024, 1, 'site\u0000steps'));
  const reader = new SegmentReader(dataDir);
  const metadata = nativeFreeEngine.openMetadata(dataDir);
  const tail = (): number => [...reader.logs()].find((log) => log.logId === 1024)?.tail ?? -1;
  const entry = Buffer.alloc(1000, 3);
  let position = 0;
  const commitEntries = (count: number): void =>
    store.commit((sink) => {
      for (let index = 0; index < count; index++, position++) sink.entry(1024, position, entry, position * entry.length, 1_700_000_000);
    });
  commitEntries(10);
  reader.release();
  t.equal(tail(), 0, 'a little published data waits for the next read');
  commitEntries(400);
  reader.release();
  t.equal(tail(), 410, 'once a step of data is published, release() replays it: no whole-segment replay later');
  store.commit((sink) => sink.log(2048, 1, 'site\u0000later'));
  await new Promise((resolve) => setTimeout(resolve, 400));
  t.ok(
    [...(metadata as unknown as { logRecords: { state: { names: Map<string, number> } } }).logRecords.state.names.keys()].includes('site\u0000later'),
    'the IO thread\'s log names follow on their own, before anyone asks',
  );
  await Promise.all([store.close(), reader.close(), metadata.close()]);
});

// ---------------------------------------------------------------------------------------------
// No native code.

function runEngineChild(dataDir: string, mode: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--import', fixture('native-free-no-dlopen.ts'), fixture('native-free-engine-child.ts'), dataDir, mode], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: childEnvironment(),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

t.test('the engine runs where native addons cannot load', async (t) => {
  const run = await runEngineChild(temporaryDir(t), 'engine');
  t.equal(run.code, 0, `the child exits 0 ${run.stderr}`);
  const report = JSON.parse(run.stdout) as { read: string[]; names: string[]; mute: number; appendedAt: number; attempts: string[] };
  t.same(report.read, ['hello', 'world'], 'it committed and read entries back');
  t.same(report.names, ['site\u0000log'], 'log names');
  t.equal(report.mute, 42, 'a metadata table');
  t.equal(report.appendedAt, 1_700_000_001, 'retention');
  t.same(report.attempts, [], 'and never tried to load a native addon — msgpackr included, even imported after');

  const control = await runEngineChild(temporaryDir(t), 'control');
  const controlReport = JSON.parse(control.stdout) as { attempts: string[] };
  t.ok(controlReport.attempts.length > 0, `control: msgpackr imported first does try (${controlReport.attempts.join(', ')}), so the hook would have seen it`);
});

// ---------------------------------------------------------------------------------------------
// Pieces.

t.test('CRC-32: the table-driven twin agrees with zlib', (t) => {
  const prng = new Prng(7);
  for (const length of [0, 1, 9, 100, 4099]) {
    const bytes = Buffer.alloc(length);
    for (let index = 0; index < length; index++) bytes[index] = prng.below(256);
    t.equal(crc32Table(bytes), zlib.crc32(bytes), `${length} bytes`);
    t.equal(crc32Table(bytes.subarray(length >> 1), crc32Table(bytes.subarray(0, length >> 1))), crc32(bytes), `${length} bytes in two parts`);
  }
  t.equal(crc32Table(Buffer.from('123456789')).toString(16), 'cbf43926', 'the check value');
  t.end();
});

t.test('the block index: appends, replaces overlapped blocks, drops trimmed ones', (t) => {
  const index = new BlockIndex();
  const removed: number[] = [];
  const removal = { blockRemoved: (place: number) => removed.push(place) };
  for (let block = 0; block < 10; block++) index.put(block * 10, 10, block * 100, block, 100, removal);
  t.equal(index.find(0), 0, 'position 0 in the first block');
  t.equal(index.find(55), 5, 'position 55 in the sixth');
  t.equal(index.find(100), -1, 'nothing past the end');
  index.put(20, 30, 200, 99, 300, removal);
  t.same(removed, [2, 3, 4], 'a copy of positions 20..49 replaces the three blocks it covers');
  t.equal(index.find(35), index.find(20), 'one block now holds 20..49');
  t.equal(index.place(index.find(49)), 99, 'the copy');
  index.dropBelow(25, removal);
  t.same(removed, [2, 3, 4, 0, 1], 'dropping below 25 drops the blocks entirely below it');
  t.equal(index.find(22), index.start, 'the block straddling 25 stays (its front is skipped by readers)');
  index.put(0, 5, 0, 77, 50, removal);
  t.equal(index.firstPosition(index.start), 0, 'a block older than all (a copy replayed late) is inserted in order');
  t.end();
});

t.test(`throughput (reported, not asserted)`, async (t) => {
  const dataDir = temporaryDir(t);
  const store = new SegmentCommitStore(dataDir, DEFAULT_COMMIT_STORE_OPTIONS);
  const logCount = 16;
  const perCommit = 1000;
  const commits = 200;
  const entry = Buffer.alloc(100, 7);
  const tails = new Array<number>(logCount).fill(0);
  store.commit((sink) => {
    for (let log = 0; log < logCount; log++) sink.log((log + 1) * 1024, 1, `bench\u0000${log}`);
  });
  const started = performance.now();
  for (let commit = 0; commit < commits; commit++) {
    store.commit((sink) => {
      for (let index = 0; index < perCommit; index++) {
        const log = index % logCount;
        const position = tails[log]!++;
        sink.entry((log + 1) * 1024, position, entry, position * 100, 1_700_000_000);
        sink.completion(log + 7, commit * (perCommit / logCount) + Math.floor(index / logCount) + 1, position);
      }
    });
  }
  const seconds = (performance.now() - started) / 1000;
  const reader = new SegmentReader(dataDir);
  const readStarted = performance.now();
  let read = 0;
  for (let log = 0; log < logCount; log++) read += reader.readEntries((log + 1) * 1024, 0, Infinity, Infinity, { entry() {} });
  const readSeconds = (performance.now() - readStarted) / 1000;
  const refreshStarted = performance.now();
  for (let refresh = 0; refresh < 10_000; refresh++) reader.refresh();
  const refreshMicros = ((performance.now() - refreshStarted) * 1000) / 10_000;
  t.comment(
    `native-free commits (1000 × 100 B entries + their completions over 16 logs, fdatasync each): ${(commits / seconds).toFixed(0)} commits/s, ` +
      `${((commits * perCommit) / seconds / 1000).toFixed(0)} k entries/s; reading them back: ${(read / readSeconds / 1e6).toFixed(2)} M entries/s; ` +
      `an idle refresh: ${refreshMicros.toFixed(1)} µs; on disk: ${(directoryBytes(segmentsDir(dataDir)) / (commits * perCommit)).toFixed(1)} B per entry`,
  );
  t.equal(read, commits * perCommit, 'every entry read back');
  await Promise.all([store.close(), reader.close()]);
});

// Keep the published file's name and the table layout honest for the doc's tables.
t.test('the data directory layout', async (t) => {
  const dataDir = temporaryDir(t);
  const store = nativeFreeEngine.openCommitStore(dataDir);
  const metadata = nativeFreeEngine.openMetadata(dataDir);
  await metadata.revocations.put('k', { kind: 'jti', value: 'k', revokedAt: 0, expiresAt: 1 });
  await Promise.all([store.close(), metadata.close()]);
  const root = join(dataDir, STORE_DIRECTORY);
  t.same(readdirSync(root).sort(), [PUBLISHED_FILE, 'segments', TABLES_DIRECTORY].sort(), 'native-free/: published, segments/, tables/');
  t.same(readdirSync(join(root, 'segments')), ['00000001.seg'], 'segments/ holds 00000001.seg');
  t.equal(readFileSync(join(root, PUBLISHED_FILE)).length, 32, 'published is 32 bytes');
  writeFileSync(join(root, 'segments', 'notes.txt'), 'ignored');
  t.same(listSegments(join(root, 'segments')), [1], 'other files are not segments');
});
