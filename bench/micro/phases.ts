// Micro-benchmarks of the phases (src/phases/), each as the pipeline runs it, over one
// partition's real rings and tables and a MemoryStorage (pipeline-fixture.ts): client input
// (ordering + staging writes), io contributions (releasing a commit: acks and pushes to live
// tailers), catch-up (tailers reading a backlog from storage), io deletions (trims), and a
// whole runBatch. Throughput is per write, entry or trim: one call handles many.
// Run: node --expose-gc --import=tsx bench/micro/phases.ts [--quick]
import { STAT_APPENDS, STAT_DELIVERED, STAT_TRIMMED } from '../../src/metrics/pipeline-metrics.js';
import { DELETION_LOG_ID, DELETION_RECORD_BYTES, DELETION_TRIM_TO } from '../../src/net/records.js';
import { runBatch } from '../../src/phases/batch.js';
import { catchUpTailers, queueCatchUp } from '../../src/phases/catch-up.js';
import { processClientInput } from '../../src/phases/client-input.js';
import { releaseCommitted } from '../../src/phases/io-contributions.js';
import { applyDeletions } from '../../src/phases/io-deletions.js';
import { TAIL_CATCHING_UP, TAIL_LIVE } from '../../src/phases/state.js';
import { frames } from '../../src/testing/wire.js';
import { isMain, runStandalone, type MicroCase } from './harness.js';
import { freeAll, InputReplay, PipelineFixture, rewindConsumer, type Lease } from './pipeline-fixture.js';

const ENTRY_BYTES = 100;
const PAYLOAD = new Uint8Array(ENTRY_BYTES).fill(0x61);
const WRITER = 1;

/** Run `fn` a few times and check what it did, so a case cannot silently measure an error path. */
function verify(name: string, fixture: PipelineFixture, fn: () => void, check: () => string | undefined): void {
  const errors = fixture.errorCount();
  for (let i = 0; i < 3; i++) {
    fn();
    const problem = check();
    if (problem !== undefined) throw new Error(`${name}: ${problem}`);
  }
  if (fixture.errorCount() !== errors) throw new Error(`${name}: the phase sent errors`);
}

/** Tailer sessions that lease `log` and tail it from `from` (live when `from` is the committed tail). */
function tailers(fixture: PipelineFixture, log: string, count: number, firstSession: number, from: number): Lease[] {
  const leases: Lease[] = [];
  for (let i = 0; i < count; i++) {
    const session = firstSession + i;
    fixture.openSession(session);
    const lease = fixture.lease(session, log);
    fixture.send(session, frames.tail(lease.shard, lease.handle, from, 1));
    fixture.settle();
    leases.push(lease);
  }
  return leases;
}

/**
 * Client input: one input record of `writes` writes and an ack, ordered and staged. With 100 B
 * entries, frames are 132 B, so every second payload sits 4 bytes off its staging slot's
 * alignment (mod 8); with 96 B entries every payload keeps the same alignment in both rings.
 */
function clientInputCase(writes: number, entryBytes = ENTRY_BYTES): MicroCase {
  const fixture = new PipelineFixture();
  const partition = fixture.partition;
  fixture.openSession(WRITER);
  const lease = fixture.lease(WRITER, 'client-input');
  const log = partition.leases.columns.logSlot[lease.slot]!;
  const replay = new InputReplay(fixture, [lease], writes, new Uint8Array(entryBytes).fill(0x61));
  fixture.startBench();
  const fn = (): void => {
    replay.replay();
    processClientInput(partition);
    // The disk thread and the release would free staging: done at once here.
    freeAll(fixture.staging);
  };
  let tail = partition.logs.columns.tail[log]!;
  verify('client input', fixture, fn, () => {
    const now = partition.logs.columns.tail[log]!;
    const ordered = now - tail;
    tail = now;
    return ordered === writes ? undefined : `ordered ${ordered} writes, expected ${writes}`;
  });
  return { name: `client input: ${writes} writes (${entryBytes} B) + ack per record`, unit: 'write', units: writes, fn };
}

/** io contributions: one commit of 64 writes released: 64 acks, and one push to each of K live tailers. */
function ioContributionsCase(tailerCount: number): MicroCase {
  const WRITES = 64;
  const fixture = new PipelineFixture();
  const partition = fixture.partition;
  fixture.openSession(WRITER);
  const writer = fixture.lease(WRITER, 'contributions');
  const log = partition.leases.columns.logSlot[writer.slot]!;
  const tailing = tailers(fixture, 'contributions', tailerCount, 100, 0);
  // Stage 64 writes (client input), commit them, and keep them in staging to release again.
  const parts: Buffer[] = [];
  for (let i = 0; i < WRITES; i++) parts.push(frames.write(writer.shard, writer.handle, i + 1, PAYLOAD));
  fixture.send(WRITER, Buffer.concat(parts));
  runBatch(partition);
  fixture.commit();
  const start = fixture.staging.readPosition;
  const first = partition.logs.columns.committed[log]!;
  fixture.startBench();
  const leases = partition.leases.columns;
  const fn = (): void => {
    // Back to before the release: the log's committed tail, each tailer's next position.
    partition.logs.columns.committed[log] = first;
    for (let i = 0; i < tailing.length; i++) leases.tailNext[tailing[i]!.slot] = first;
    rewindConsumer(fixture.staging, start);
    partition.batch++;
    releaseCommitted(partition);
    freeAll(fixture.output);
    freeAll(fixture.advances);
  };
  let appends = partition.stats[STAT_APPENDS]!;
  let delivered = partition.stats[STAT_DELIVERED]!;
  verify('io contributions', fixture, fn, () => {
    const acked = partition.stats[STAT_APPENDS]! - appends;
    const pushed = partition.stats[STAT_DELIVERED]! - delivered;
    appends += acked;
    delivered += pushed;
    if (acked !== WRITES) return `acknowledged ${acked}, expected ${WRITES}`;
    if (pushed !== WRITES * tailerCount) return `pushed ${pushed}, expected ${WRITES * tailerCount}`;
    return undefined;
  });
  return {
    name: `io contributions: 64 committed writes, acks + ${tailerCount} live tailer${tailerCount === 1 ? '' : 's'}`,
    unit: 'entry',
    units: WRITES,
    fn,
  };
}

/** Catch-up: K tailers read a backlog of `backlog` entries (100 B) from the MemoryStorage, from 0. */
function catchUpCase(tailerCount: number, backlog: number): MicroCase {
  const fixture = new PipelineFixture({ storeCommits: true });
  const partition = fixture.partition;
  fixture.openSession(WRITER);
  const writer = fixture.lease(WRITER, 'catch-up');
  const log = partition.leases.columns.logSlot[writer.slot]!;
  for (let lsn = 1; lsn <= backlog; lsn += 64) {
    const parts: Buffer[] = [];
    for (let i = lsn; i < lsn + 64 && i <= backlog; i++) parts.push(frames.write(writer.shard, writer.handle, i, PAYLOAD));
    parts.push(frames.ack(writer.shard, writer.handle, Math.min(lsn + 63, backlog)));
    fixture.send(WRITER, Buffer.concat(parts));
    fixture.settle();
  }
  if (partition.logs.columns.committed[log] !== backlog) throw new Error(`catch-up setup committed ${partition.logs.columns.committed[log]} entries`);
  const tailing = tailers(fixture, 'catch-up', tailerCount, 100, 0);
  fixture.startBench();
  const leases = partition.leases.columns;
  const fn = (): void => {
    // Each tailer starts over from position 0, as a tail request would set it.
    for (let i = 0; i < tailing.length; i++) {
      const slot = tailing[i]!.slot;
      leases.tailState[slot] = TAIL_CATCHING_UP;
      leases.tailNext[slot] = 0;
      leases.catchUpQueued[slot] = 0;
      queueCatchUp(partition, slot);
    }
    catchUpTailers(partition);
    freeAll(fixture.output);
  };
  verify('catch-up', fixture, fn, () => {
    for (const lease of tailing) {
      if (leases.tailState[lease.slot] !== TAIL_LIVE || leases.tailNext[lease.slot] !== backlog) return `a tailer stopped at ${leases.tailNext[lease.slot]}`;
    }
    return undefined;
  });
  return {
    name: `catch-up: ${tailerCount} tailers x backlog of ${backlog} (MemoryStorage)`,
    unit: 'entry',
    units: tailerCount * backlog,
    fn,
  };
}

/** io deletions: 64 trims (one per log), each moving a log's first position from 0 to 4 and staging the deletion. */
function ioDeletionsCase(): MicroCase {
  const LOGS = 64;
  const TRIM_TO = 4;
  const fixture = new PipelineFixture();
  const partition = fixture.partition;
  fixture.openSession(WRITER);
  const logSlots = new Int32Array(LOGS);
  const logIds = new Uint32Array(LOGS);
  for (let i = 0; i < LOGS; i++) {
    const lease = fixture.lease(WRITER, `trim-${i}`);
    const parts: Buffer[] = [];
    for (let lsn = 1; lsn <= 8; lsn++) parts.push(frames.write(lease.shard, lease.handle, lsn, PAYLOAD));
    parts.push(frames.ack(lease.shard, lease.handle, 8));
    fixture.send(WRITER, Buffer.concat(parts));
    logSlots[i] = partition.leases.columns.logSlot[lease.slot]!;
    logIds[i] = partition.logs.key0[logSlots[i]!]!;
  }
  fixture.settle();
  // The IO thread's trim records, published once and replayed.
  const deletions = fixture.deletions;
  deletions.refresh();
  const start = deletions.readPosition;
  for (let i = 0; i < LOGS; i++) {
    const offset = deletions.reserve(DELETION_RECORD_BYTES);
    deletions.view.setUint32(offset + DELETION_LOG_ID, logIds[i]!, true);
    deletions.view.setFloat64(offset + DELETION_TRIM_TO, TRIM_TO, true);
  }
  deletions.publish();
  fixture.startBench();
  const first = partition.logs.columns.first;
  const fn = (): void => {
    for (let i = 0; i < LOGS; i++) first[logSlots[i]!] = 0;
    rewindConsumer(deletions, start);
    applyDeletions(partition);
    freeAll(fixture.staging);
  };
  let trimmed = partition.stats[STAT_TRIMMED]!;
  verify('io deletions', fixture, fn, () => {
    const now = partition.stats[STAT_TRIMMED]!;
    const entries = now - trimmed;
    trimmed = now;
    return entries === LOGS * TRIM_TO ? undefined : `trimmed ${entries} entries, expected ${LOGS * TRIM_TO}`;
  });
  return { name: 'io deletions: 64 trims (one per log)', unit: 'trim', units: LOGS, fn };
}

/**
 * A whole batch in steady state: `records` input records of 64 writes + ack (one log each, each
 * log with one live tailer); the batch also releases the previous batch's commit (acks, pushes).
 */
function runBatchCase(records: number): MicroCase {
  const WRITES = 64;
  const fixture = new PipelineFixture();
  const partition = fixture.partition;
  fixture.openSession(WRITER);
  const writers: Lease[] = [];
  for (let i = 0; i < records; i++) {
    writers.push(fixture.lease(WRITER, `batch-${i}`));
    tailers(fixture, `batch-${i}`, 1, 100 + i, 0);
  }
  const replay = new InputReplay(fixture, writers, WRITES, PAYLOAD);
  fixture.startBench();
  const fn = (): void => {
    replay.replay();
    runBatch(partition);
    fixture.commit();
    freeAll(fixture.output);
    freeAll(fixture.advances);
  };
  let appends = partition.stats[STAT_APPENDS]!;
  let delivered = partition.stats[STAT_DELIVERED]!;
  let calls = 0;
  verify('runBatch', fixture, fn, () => {
    calls++;
    const acked = partition.stats[STAT_APPENDS]! - appends;
    const pushed = partition.stats[STAT_DELIVERED]! - delivered;
    appends += acked;
    delivered += pushed;
    // The first batch has nothing committed to release yet.
    const expected = calls === 1 ? 0 : WRITES * records;
    if (acked !== expected || pushed !== expected) return `acknowledged ${acked} and pushed ${pushed}, expected ${expected}`;
    return undefined;
  });
  return {
    name: `runBatch: ${records} x (64 writes + ack), 1 live tailer per log`,
    unit: 'write',
    units: WRITES * records,
    fn,
  };
}

/** A batch with nothing to do: the fixed cost of runBatch (phase timing, ring checks, publishes). */
function emptyBatchCase(): MicroCase {
  const fixture = new PipelineFixture();
  fixture.openSession(WRITER);
  fixture.lease(WRITER, 'idle');
  fixture.startBench();
  const partition = fixture.partition;
  const fn = (): void => {
    if (runBatch(partition).work !== 0) throw new Error('the idle batch found work');
  };
  verify('empty runBatch', fixture, fn, () => undefined);
  return { name: 'runBatch: empty batch', unit: 'batch', fn };
}

export function phaseCases(): MicroCase[] {
  return [
    clientInputCase(8),
    clientInputCase(64),
    clientInputCase(64, 96),
    ioContributionsCase(0),
    ioContributionsCase(1),
    ioContributionsCase(8),
    catchUpCase(4, 1024),
    ioDeletionsCase(),
    runBatchCase(1),
    runBatchCase(8),
    emptyBatchCase(),
  ];
}

if (isMain(import.meta.url)) await runStandalone('phases', phaseCases);
