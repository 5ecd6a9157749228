// Each phase on its own, through the sequential twin (src/testing/simulated-server.ts):
// the test decides exactly when batches run, when the fake disk commits and when output is
// delivered, and looks at what each phase did.
import t from 'tap';
import { CATCH_UP_BYTES_PER_BATCH } from '../src/constants.js';
import { ENTRIES_CAUGHT_UP, OP_ACKED, OP_ENTRIES, OP_LEASED, OP_NACKED, NACK_LSN_GAP } from '../src/net/protocol.js';
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
