// Each phase on its own, through the sequential twin (src/testing/simulated-server.ts):
// the test decides exactly when batches run, when the fake disk commits and when output is
// delivered, and looks at what each phase did.
import t from 'tap';
import { CATCH_UP_BYTES_PER_BATCH, COMPLETION_TRIM_LSNS } from '../src/constants.js';
import { ENTRIES_CAUGHT_UP, OP_ACKED, OP_ENTRIES, OP_ERROR, OP_LEASED, OP_NACKED, NACK_LSN_GAP } from '../src/net/protocol.js';
import { MemoryStorage } from '../src/testing/memory-storage.js';
import { SimulatedServer } from '../src/testing/simulated-server.js';
import { frames, type ServerFrame } from '../src/testing/wire.js';

const SESSION = 7;

function server(storage = new MemoryStorage(), workerCount = 2): SimulatedServer {
  return new SimulatedServer(storage, {
    workerCount,
    incarnation: 99,
    entryBytesMax: 1 << 20,
    inputRingBytes: 1 << 22,
    outputRingBytes: 1 << 22,
    stagingRingBytes: 1 << 24,
  });
}

function inbox(sim: SimulatedServer, session = SESSION): ServerFrame[] {
  sim.deliverAll();
  const frames = sim.inbox.get(session)!.splice(0);
  return frames;
}

/** Connect a session and lease `log` through a full batch → commit → batch cycle. */
function leased(sim: SimulatedServer, log = 'doc', session = SESSION): { handle: number; shard: number } {
  sim.openSession(session, 'user', `device-${session}`, [{ site: 'site', rights: 'rw' }]);
  sim.send(session, frames.lease('site', log, 1, { newWriter: true }));
  sim.runBatch();
  sim.commit();
  sim.runBatch();
  const reply = inbox(sim, session).find((f) => f.op === OP_LEASED)!;
  return { handle: reply.b, shard: frames.lease('site', log, 1).readUInt16LE(6) };
}

t.test('client input orders writes; io contributions acknowledge only after the commit', async (t) => {
  const sim = server();
  const { handle, shard } = leased(sim);
  sim.send(SESSION, Buffer.concat([1, 2, 3].map((lsn) => frames.write(shard, handle, lsn, Buffer.from(`w${lsn}`)))));
  sim.runBatch();
  t.same(inbox(sim), [], 'nothing is acknowledged before the commit');
  const partition = sim.partitions.find((p) => p.ownsShard(shard))!;
  const log = partition.logSlotByName.get('site\0doc')!;
  t.equal(partition.logs.columns.tail[log], 3, 'client input assigned positions 0..2');
  t.equal(partition.logs.columns.committed[log], 0, 'none is committed yet');
  sim.commit();
  t.same(inbox(sim), [], 'the commit alone sends nothing: the next batch releases it');
  sim.runBatch();
  const acks = inbox(sim);
  t.same(acks.map((f) => [f.op, f.b, f.position]), [[OP_ACKED, 1, 0], [OP_ACKED, 2, 1], [OP_ACKED, 3, 2]], 'acks in lsn order with positions');
  t.equal(partition.logs.columns.committed[log], 3, 'io contributions advanced the committed tail');
});

t.test('a gap is answered at once, a duplicate after the commit of its original', async (t) => {
  const sim = server();
  const { handle, shard } = leased(sim);
  sim.send(SESSION, Buffer.concat([frames.write(shard, handle, 1, Buffer.from('a')), frames.write(shard, handle, 3, Buffer.from('c')), frames.write(shard, handle, 1, Buffer.from('a'))]));
  sim.runBatch();
  const immediate = inbox(sim);
  t.equal(immediate.length, 1, 'only the gap is answered before the commit');
  t.same([immediate[0]!.op, immediate[0]!.flags, immediate[0]!.c], [OP_NACKED, NACK_LSN_GAP, 2], 'expected lsn 2');
  sim.commit();
  sim.runBatch();
  t.same(inbox(sim).map((f) => [f.op, f.b, f.position]), [[OP_ACKED, 1, 0], [OP_ACKED, 1, 0]], 'the original and the duplicate, same position');
  t.equal(sim.storage.entries.values().next().value!.length, 1, 'stored once');
});

t.test('live tailers get committed entries coalesced in one frame per batch', async (t) => {
  const sim = server();
  const { handle, shard } = leased(sim);
  sim.send(SESSION, frames.tail(shard, handle, 0, 5));
  sim.runBatch();
  const caughtUp = inbox(sim);
  t.same(caughtUp.map((f) => [f.op, f.flags & ENTRIES_CAUGHT_UP, f.c, f.b]), [[OP_ENTRIES, ENTRIES_CAUGHT_UP, 0, 5]], 'an empty log is caught up at once');
  sim.send(SESSION, Buffer.concat([1, 2, 3, 4].map((lsn) => frames.write(shard, handle, lsn, Buffer.from(`e${lsn}`)))));
  sim.runBatch();
  sim.commit();
  sim.runBatch();
  const pushes = inbox(sim).filter((f) => f.op === OP_ENTRIES);
  t.equal(pushes.length, 1, 'one push frame for the batch');
  t.same(pushes[0]!.entries!.map(String), ['e1', 'e2', 'e3', 'e4'], 'with every entry in order');
  t.equal(pushes[0]!.b, 5, 'carrying the tail id');
});

t.test('tailers of one log share each push frame, also when the output ring fills mid-push', async (t) => {
  // 12 tailers × ~700 KB of pushes against a 2 MiB output ring: the worker waits for the
  // IO side several times while it copies the shared frames from tailer to tailer.
  const sim = new SimulatedServer(new MemoryStorage(), { workerCount: 1, incarnation: 99, entryBytesMax: 1 << 20, inputRingBytes: 1 << 22, outputRingBytes: 1 << 21, stagingRingBytes: 1 << 24 });
  const { handle, shard } = leased(sim);
  const tailers = Array.from({ length: 12 }, (_, index) => 100 + index);
  for (const session of tailers) {
    const lease = leased(sim, 'doc', session);
    sim.send(session, frames.tail(shard, lease.handle, 0, session));
  }
  sim.runBatch();
  for (const session of tailers) inbox(sim, session);
  const count = 1000;
  const entry = (lsn: number): Buffer => Buffer.alloc(700, lsn % 251);
  for (let lsn = 1; lsn <= count; lsn++) sim.send(SESSION, frames.write(shard, handle, lsn, entry(lsn)));
  sim.runBatch();
  sim.commit();
  sim.runBatch();
  let exact = 0;
  for (const session of tailers) {
    const pushes = inbox(sim, session).filter((f) => f.op === OP_ENTRIES);
    let position = 0;
    let intact = true;
    for (const push of pushes) {
      intact &&= push.b === session && push.position === position;
      for (const data of push.entries!) intact &&= data.equals(entry(++position));
    }
    if (intact && position === count && pushes.length >= 2) exact++;
  }
  t.equal(exact, tailers.length, 'every tailer got every entry once, in order, intact, with its tail id, in frames of at most 256 KiB');
});

t.test('catch-up reads a deep backlog in bounded steps, then marks caught up', async (t) => {
  const sim = server();
  const { handle, shard } = leased(sim);
  const entry = Buffer.alloc(64 * 1024, 1);
  const count = (3 * CATCH_UP_BYTES_PER_BATCH) / entry.length + 5;
  for (let lsn = 1; lsn <= count; lsn++) sim.send(SESSION, frames.write(shard, handle, lsn, entry));
  sim.runBatch();
  sim.commit();
  sim.runBatch();
  inbox(sim);
  sim.send(SESSION, frames.tail(shard, handle, 0, 9));
  let received = 0;
  let batches = 0;
  let caughtUp = false;
  while (!caughtUp && batches < 20) {
    sim.runBatch();
    batches++;
    for (const frame of inbox(sim)) {
      t.equal(frame.position, received, 'the backlog arrives in order without gaps');
      received += frame.c;
      caughtUp ||= (frame.flags & ENTRIES_CAUGHT_UP) !== 0;
    }
  }
  t.equal(received, count, 'every entry of the backlog arrived');
  t.ok(batches >= 3, `the backlog took ${batches} batches: bounded per batch`);
  t.ok(caughtUp, 'then the caught-up mark');
});

t.test('recovery rebuilds tails, writers and completion records from storage', async (t) => {
  const storage = new MemoryStorage();
  const before = server(storage);
  const { handle, shard } = leased(before);
  before.send(SESSION, Buffer.concat([1, 2, 3].map((lsn) => frames.write(shard, handle, lsn, Buffer.from(`r${lsn}`)))));
  before.runBatch();
  before.commit();
  before.send(SESSION, frames.write(shard, handle, 4, Buffer.from('staged only')));
  before.runBatch();
  const after = server(storage);
  const partition = after.partitions.find((p) => p.ownsShard(shard))!;
  const log = partition.logSlotByName.get('site\0doc')!;
  t.equal(partition.logs.columns.tail[log], 3, 'the tail is what was committed, not what was staged');
  const writer = partition.writers.columns;
  t.equal(writer.lastLsn[0], 3, 'the writer resumes after its last committed lsn');
  t.equal(partition.completions.count, 3, 'unacknowledged completion records are back');
});

t.test('completion records of acknowledged writes are deleted in steps; a new epoch leaves none behind', async (t) => {
  const storage = new MemoryStorage();
  const sim = server(storage);
  const { handle, shard } = leased(sim);
  const writerId = (): number => [...storage.writerRecords.values()][0]!.writerId;
  const stored = (): number[] => [...(storage.completionRecords.get(writerId())?.keys() ?? [])].sort((a, b) => a - b);
  const writeAndAck = (from: number, to: number, ackTo: number): void => {
    for (let lsn = from; lsn <= to; lsn++) sim.send(SESSION, frames.write(shard, handle, lsn, Buffer.from(`w${lsn}`)));
    sim.runBatch();
    sim.commit();
    sim.runBatch();
    inbox(sim);
    sim.send(SESSION, frames.ack(shard, handle, ackTo));
    sim.runBatch();
    sim.commit();
  };
  writeAndAck(1, COMPLETION_TRIM_LSNS - 1, COMPLETION_TRIM_LSNS - 1);
  t.equal(stored().length, COMPLETION_TRIM_LSNS - 1, `acks below ${COMPLETION_TRIM_LSNS} lsns past the last deletion delete nothing yet`);
  t.equal([...storage.writerRecords.values()][0]!.ackedLsn, COMPLETION_TRIM_LSNS - 1, 'but the acked lsn is durable at once');
  writeAndAck(COMPLETION_TRIM_LSNS, COMPLETION_TRIM_LSNS + 9, COMPLETION_TRIM_LSNS + 4);
  t.same(stored(), [5, 6, 7, 8, 9].map((n) => COMPLETION_TRIM_LSNS + n), 'the step deletes every record at or below the acked lsn');

  // After a restart, an acknowledged lsn is still stale even though its record may remain.
  writeAndAck(COMPLETION_TRIM_LSNS + 10, COMPLETION_TRIM_LSNS + 20, COMPLETION_TRIM_LSNS + 15);
  const restarted = server(storage);
  restarted.openSession(SESSION, 'user', `device-${SESSION}`, [{ site: 'site', rights: 'rw' }]);
  restarted.send(SESSION, frames.lease('site', 'doc', 1, { writerEpoch: [...storage.writerRecords.values()][0]!.epoch }));
  restarted.runBatch();
  restarted.commit();
  restarted.runBatch();
  const again = { shard, handle: inbox(restarted, SESSION).find((f) => f.op === OP_LEASED)!.b };
  restarted.send(SESSION, frames.write(again.shard, again.handle, COMPLETION_TRIM_LSNS + 12, Buffer.from('again')));
  restarted.runBatch();
  const stale = inbox(restarted, SESSION);
  t.ok(stale.some((f) => f.op === OP_ERROR && f.body?.name === 'STALE_LSN'), 'an lsn acknowledged before the restart is stale after it');
  restarted.send(SESSION, frames.write(again.shard, again.handle, COMPLETION_TRIM_LSNS + 18, Buffer.from('resent')));
  restarted.runBatch();
  restarted.commit();
  restarted.runBatch();
  const resent = inbox(restarted, SESSION).find((f) => f.op === OP_ACKED && f.b === COMPLETION_TRIM_LSNS + 18);
  t.equal(resent?.position, COMPLETION_TRIM_LSNS + 17, 'an unacknowledged lsn answers its original position');

  // A new epoch numbers writes from 1: nothing of the old epoch may answer for them.
  restarted.send(SESSION, frames.lease('site', 'doc', 9, { newWriter: true }));
  restarted.runBatch();
  restarted.commit();
  restarted.runBatch();
  const fresh = inbox(restarted, SESSION).find((f) => f.op === OP_LEASED)!;
  t.same(stored(), [], 'the new epoch deleted every record of the old one');
  restarted.send(SESSION, frames.write(shard, fresh.b, 1, Buffer.from('new epoch')));
  restarted.runBatch();
  restarted.commit();
  restarted.runBatch();
  const first = inbox(restarted, SESSION).find((f) => f.op === OP_ACKED && f.b === 1);
  t.equal(first?.position, COMPLETION_TRIM_LSNS + 20, 'lsn 1 of the new epoch is a new entry at the tail');
});

