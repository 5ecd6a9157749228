// The disk thread: the only writer of log data. Whenever workers have staged records it
// commits everything staged by every worker as one group commit of the storage engine (it
// returns after fsync), then publishes per worker how far it committed and rings the
// workers, whose io-contributions phase releases acks and pushes.
import { workerData } from 'node:worker_threads';
import { Doorbell } from '../ring/doorbell.js';
import { Ring } from '../ring/ring.js';
import { DISK_DOORBELL, STOP_BATCHES, THREADS_STOPPED, WORK_DOORBELL, type WorkerBuffers } from '../workers/layout.js';
import { applyStaged, type CommitSink } from './commit.js';
import type { CommitStoreTuning, EngineName } from './engine.js';
import { loadEngine } from './engines.js';
import { COMMITTED_POSITION } from './staging.js';
import { DISK_COMMIT_HISTOGRAM, DISK_COMMITS, DURATION_BUCKETS_MS, observe } from '../metrics/pipeline-metrics.js';

export interface DiskThreadData {
  dataDir: string;
  control: SharedArrayBuffer;
  workers: WorkerBuffers[];
  /** The disk thread's metrics block (src/metrics/pipeline-metrics.ts). */
  metrics: SharedArrayBuffer;
  engine: EngineName;
  tuning: CommitStoreTuning;
}

const IDLE_WAIT_MS = 100;

const data = workerData as DiskThreadData;
const control = new Int32Array(data.control);
const diskDoorbell = new Doorbell(control, DISK_DOORBELL);
const workDoorbell = new Doorbell(control, WORK_DOORBELL);
const rings = data.workers.map((buffers) => new Ring(buffers.arena, buffers.staging));
const committed = data.workers.map((buffers) => new Int32Array(buffers.stagingControl));
const engine = await loadEngine(data.engine);
const commitStore = engine.openCommitStore(data.dataDir, data.tuning);
const workerCount = data.workers.length;
const metrics = new Float64Array(data.metrics);

// Bound once: the commit store calls it with the transaction's sink.
const applyAllStaged = (sink: CommitSink): void => {
  for (const ring of rings) applyStaged(ring, sink);
};

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
  commitStore.commit(applyAllStaged);
  metrics[DISK_COMMITS]!++;
  observe(metrics, DISK_COMMIT_HISTOGRAM, DURATION_BUCKETS_MS, performance.now() - started);
  for (let index = 0; index < rings.length; index++) Atomics.store(committed[index]!, COMMITTED_POSITION, rings[index]!.readPosition | 0);
  for (const words of committed) Atomics.notify(words, COMMITTED_POSITION);
  workDoorbell.ring();
}
Atomics.add(control, THREADS_STOPPED, 1);
await commitStore.close();
process.exit(0);
