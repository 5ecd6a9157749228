// The disk thread: the only LMDB writer. Whenever workers have staged records it commits
// everything staged by every worker in one write transaction (group commit; the commit
// returns after fsync), then publishes per worker how far it committed and rings the
// workers, whose io-contributions phase releases acks and pushes.
import { workerData } from 'node:worker_threads';
import { Doorbell } from '../ring/doorbell.js';
import { Ring } from '../ring/ring.js';
import { DISK_DOORBELL, STOP_BATCHES, THREADS_STOPPED, WORK_DOORBELL, type WorkerBuffers } from '../workers/layout.js';
import { applyStaged, type CommitSink } from './commit.js';
import { COMPLETION_KEY_BYTES, ENTRY_HEADER_BYTES, ENTRY_KEY_BYTES, completionKeyLsn, writeCompletionKey, writeEntryHeader, writeEntryKey } from './keys.js';
import { openStore, type Store } from './lmdb-store.js';
import { COMMITTED_POSITION } from './staging.js';
import { DISK_COMMIT_HISTOGRAM, DISK_COMMITS, DURATION_BUCKETS_MS, observe } from '../metrics/pipeline-metrics.js';

export interface DiskThreadData {
  dataDir: string;
  control: SharedArrayBuffer;
  workers: WorkerBuffers[];
  /** The disk thread's metrics block (src/metrics/pipeline-metrics.ts). */
  metrics: SharedArrayBuffer;
}

const IDLE_WAIT_MS = 100;

class LmdbCommitSink implements CommitSink {
  private readonly store: Store;
  private readonly entryKey = Buffer.alloc(ENTRY_KEY_BYTES);
  private readonly completionKey = Buffer.alloc(COMPLETION_KEY_BYTES);
  // lmdb-js misreads values backed by a SharedArrayBuffer, so an entry is first copied to
  // this ordinary buffer; put() copies it into the transaction before returning.
  private value = Buffer.alloc(1 << 20);

  constructor(store: Store) {
    this.store = store;
  }

  entry(logId: number, position: number, data: Buffer, bytesBefore: number, appendedAt: number): void {
    const length = ENTRY_HEADER_BYTES + data.length;
    if (length > this.value.length) this.value = Buffer.alloc(length);
    writeEntryHeader(this.value, bytesBefore, appendedAt);
    data.copy(this.value, ENTRY_HEADER_BYTES);
    this.store.entries.put(writeEntryKey(this.entryKey, logId, position), this.value.subarray(0, length));
  }

  /** Retention: the entries are dense positions, so each key is known without a scan. */
  trimEntries(logId: number, from: number, to: number, bytes: number): void {
    for (let position = from; position < to; position++) this.store.entries.remove(writeEntryKey(this.entryKey, logId, position));
    this.store.trims.put(logId, [to, bytes]);
  }

  // Completion records are written as runs: one LMDB record per writer per run of
  // consecutive lsns in a commit, keyed by the run's first lsn, holding float64 outcomes.
  // A pipelining device's burst is one record instead of one per write.
  private runWriterId = -1;
  private runFirstLsn = 0;
  private runLength = 0;
  private runOutcomes = new Float64Array(1024);

  completion(writerId: number, lsn: number, outcome: number): void {
    if (writerId !== this.runWriterId || lsn !== this.runFirstLsn + this.runLength) {
      this.flushRun();
      this.runWriterId = writerId;
      this.runFirstLsn = lsn;
    }
    if (this.runLength === this.runOutcomes.length) {
      const grown = new Float64Array(this.runOutcomes.length * 2);
      grown.set(this.runOutcomes);
      this.runOutcomes = grown;
    }
    this.runOutcomes[this.runLength++] = outcome;
  }

  /** Write the pending run of completion records (before a trim, and at the end of a commit). */
  flushRun(): void {
    if (this.runLength === 0) return;
    const bytes = Buffer.from(this.runOutcomes.buffer, 0, this.runLength * 8);
    this.store.completions.put(writeCompletionKey(this.completionKey, this.runWriterId, this.runFirstLsn), bytes);
    this.runLength = 0;
    this.runWriterId = -1;
  }

  writer(writerId: number, logId: number, device: string, epoch: number, lastLsn: number, ackedLsn: number): void {
    this.store.writers.put([logId, device], [writerId, epoch, lastLsn, ackedLsn]);
  }

  log(logId: number, epoch: number, name: string): void {
    this.store.logs.put(name, [logId, epoch]);
  }

  /** Drop the runs of `writerId` that end at or before `toLsn` (a run partly acknowledged stays). */
  trimCompletions(writerId: number, _fromLsn: number, toLsn: number): void {
    this.flushRun();
    const start = Buffer.alloc(COMPLETION_KEY_BYTES);
    const end = Buffer.alloc(COMPLETION_KEY_BYTES);
    writeCompletionKey(start, writerId, 0);
    writeCompletionKey(end, writerId, toLsn + 1);
    const dropped: Buffer[] = [];
    for (const { key, value } of this.store.completions.getRange({ start, end })) {
      if (completionKeyLsn(key) + value.length / 8 - 1 <= toLsn) dropped.push(Buffer.from(key));
    }
    for (const key of dropped) this.store.completions.remove(key);
  }
}

const data = workerData as DiskThreadData;
const control = new Int32Array(data.control);
const diskDoorbell = new Doorbell(control, DISK_DOORBELL);
const workDoorbell = new Doorbell(control, WORK_DOORBELL);
const rings = data.workers.map((buffers) => new Ring(buffers.arena, buffers.staging));
const committed = data.workers.map((buffers) => new Int32Array(buffers.stagingControl));
const store = openStore(data.dataDir);
const sink = new LmdbCommitSink(store);
const workerCount = data.workers.length;
const metrics = new Float64Array(data.metrics);

function commitStaged(): void {
  store.root.transactionSync(() => {
    for (const ring of rings) applyStaged(ring, sink);
    sink.flushRun();
  });
}

let seen = diskDoorbell.sequence();
for (;;) {
  let pending = 0;
  for (const ring of rings) pending += ring.refresh();
  if (pending === 0) {
    // Stop once every worker has stopped and nothing is left to commit.
    if (Atomics.load(control, STOP_BATCHES) === 1 && Atomics.load(control, THREADS_STOPPED) >= workerCount) break;
    diskDoorbell.wait(seen, IDLE_WAIT_MS);
    seen = diskDoorbell.sequence();
    continue;
  }
  const started = performance.now();
  commitStaged();
  metrics[DISK_COMMITS]!++;
  observe(metrics, DISK_COMMIT_HISTOGRAM, DURATION_BUCKETS_MS, performance.now() - started);
  for (let index = 0; index < rings.length; index++) Atomics.store(committed[index]!, COMMITTED_POSITION, rings[index]!.readPosition | 0);
  for (const words of committed) Atomics.notify(words, COMMITTED_POSITION);
  workDoorbell.ring();
}
Atomics.add(control, THREADS_STOPPED, 1);
await store.root.close();
process.exit(0);
