// A worker thread: owns the partition of the shards with shard % workerCount === its index,
// recovers it from storage, then runs batches in lockstep with the other workers. Worker 0
// leads: it decides when a batch starts (there is work, or a doorbell rang) and rings the
// disk thread after the join. The loop never yields to the event loop: all traffic is in
// shared memory, signalled with Atomics.
import { parentPort, workerData } from 'node:worker_threads';
import type { EngineName } from '../log/engine.js';
import { loadEngine } from '../log/engines.js';
import { COMMITTED_POSITION } from '../log/staging.js';
import { Doorbell } from '../ring/doorbell.js';
import { runBatch } from '../phases/batch.js';
import { releaseCommitted } from '../phases/io-contributions.js';
import { recoverPartition } from '../phases/recovery.js';
import { Partition, type PartitionLimits } from '../phases/state.js';
import {
  BATCH_SIZE_BUCKETS,
  WORKER_BATCH_SIZE_HISTOGRAM,
  WORKER_LAST_SLOW_BATCH_MS,
  WORKER_LEASES,
  WORKER_LOGS,
  WORKER_SLOW_BATCHES,
  WORKER_TAILS,
  flushBatchStats,
  observe,
} from '../metrics/pipeline-metrics.js';
import { sampleTopLogs } from '../metrics/top-logs.js';
import { Barrier } from './barrier.js';
import { SessionCounters } from './session-counters.js';
import {
  BATCH_BARRIER,
  BATCH_PENDING_TOTAL,
  BATCH_STAGED_TOTAL,
  BATCH_WORK_TOTAL,
  DISK_DOORBELL,
  OUTPUT_DOORBELL,
  SHUTDOWN_REQUESTED,
  STOP_BATCHES,
  THREADS_STOPPED,
  WORK_DOORBELL,
  openWorkerRings,
  type WorkerBuffers,
} from './layout.js';

export interface WorkerData {
  workerIndex: number;
  workerCount: number;
  incarnation: number;
  limits: PartitionLimits;
  dataDir: string;
  control: SharedArrayBuffer;
  sessionCounters: SharedArrayBuffer;
  buffers: WorkerBuffers;
  /** This worker's metrics block (src/metrics/pipeline-metrics.ts). */
  metrics: SharedArrayBuffer;
  /** Batches slower than this are counted for the slow-batch log. */
  slowBatchMs: number;
  /** Report logs that advanced (offline notifications are on). */
  reportAdvances: boolean;
  engine: EngineName;
}

const IDLE_WAIT_MS = 100;
const FULL_WAIT_MS = 1;
const TOP_LOGS_SAMPLE_MS = 1000;

const data = workerData as WorkerData;
const control = new Int32Array(data.control);
const workDoorbell = new Doorbell(control, WORK_DOORBELL);
const diskDoorbell = new Doorbell(control, DISK_DOORBELL);
const outputDoorbell = new Doorbell(control, OUTPUT_DOORBELL);
const barrier = new Barrier(control, BATCH_BARRIER, data.workerCount);
const { input, peerInput, deletions, advances, output, staging } = openWorkerRings(data.buffers);
const stagingControl = new Int32Array(data.buffers.stagingControl);
const reader = (await loadEngine(data.engine)).openReader(data.dataDir);
const metrics = new Float64Array(data.metrics);

const partition: Partition = new Partition(
  { workerIndex: data.workerIndex, workerCount: data.workerCount, incarnation: data.incarnation, limits: data.limits, reportAdvances: data.reportAdvances },
  {
    input,
    peerInput,
    deletions,
    advances,
    output,
    staging,
    stagingControl,
    sessionCounters: new SessionCounters(data.sessionCounters),
    outputFull() {
      output.publish();
      outputDoorbell.ring();
      output.waitForRoom(FULL_WAIT_MS);
    },
    advancesFull() {
      advances.publish();
      outputDoorbell.ring();
      advances.waitForRoom(FULL_WAIT_MS);
    },
    stagingFull() {
      // Hand what is staged to the disk thread, wait for its commit, and release it.
      const committed = Atomics.load(stagingControl, COMMITTED_POSITION);
      staging.publish();
      diskDoorbell.ring();
      Atomics.wait(stagingControl, COMMITTED_POSITION, committed, FULL_WAIT_MS);
      releaseCommitted(partition);
      output.publish();
      outputDoorbell.ring();
    },
  },
  reader,
);

const summary = recoverPartition(partition);
partition.storage.release();
parentPort!.postMessage({ type: 'ready', workerIndex: data.workerIndex, summary });

const leader = data.workerIndex === 0;
let seen = workDoorbell.sequence();
let idleSinceShutdown = false;
let topLogsSampledAt = 0;
for (;;) {
  // Stop only after a batch that began after the stop was requested, found nothing to do and
  // left nothing staged: every frame routed before the request (the last frames of closing
  // sockets) is processed, committed and its acks released before the workers go.
  if (leader && idleSinceShutdown) Atomics.store(control, STOP_BATCHES, 1);
  const shutdownBeforeBatch = leader && Atomics.load(control, SHUTDOWN_REQUESTED) === 1;
  barrier.arrive();
  if (Atomics.load(control, STOP_BATCHES) === 1) break;
  partition.nowSeconds = Math.floor(Date.now() / 1000);
  const started = performance.now();
  const result = runBatch(partition);
  partition.storage.release();
  const ended = performance.now();
  if (ended - started > data.slowBatchMs) {
    metrics[WORKER_SLOW_BATCHES]!++;
    metrics[WORKER_LAST_SLOW_BATCH_MS] = ended - started;
  }
  flushBatchStats(partition.stats, metrics, result.work);
  metrics[WORKER_LOGS] = partition.logs.count;
  metrics[WORKER_LEASES] = partition.leases.count;
  metrics[WORKER_TAILS] = partition.tails;
  if (ended - topLogsSampledAt >= TOP_LOGS_SAMPLE_MS) {
    sampleTopLogs(partition, metrics, ended);
    topLogsSampledAt = ended;
  }
  Atomics.add(control, BATCH_WORK_TOTAL, result.work);
  if (staging.occupancy() > 0) Atomics.add(control, BATCH_PENDING_TOTAL, 1);
  Atomics.add(control, BATCH_STAGED_TOTAL, result.staged);
  if (result.output > 0) outputDoorbell.ring();
  barrier.arrive();
  if (leader) {
    if (Atomics.exchange(control, BATCH_STAGED_TOTAL, 0) > 0) diskDoorbell.ring();
    const work = Atomics.exchange(control, BATCH_WORK_TOTAL, 0);
    const pending = Atomics.exchange(control, BATCH_PENDING_TOTAL, 0);
    if (work > 0) observe(metrics, WORKER_BATCH_SIZE_HISTOGRAM, BATCH_SIZE_BUCKETS, work);
    idleSinceShutdown = shutdownBeforeBatch && work === 0 && pending === 0;
    if (work === 0 && Atomics.load(control, SHUTDOWN_REQUESTED) === 0) workDoorbell.wait(seen, IDLE_WAIT_MS);
    seen = workDoorbell.sequence();
  }
}
Atomics.add(control, THREADS_STOPPED, 1);
reader.close().then(
  () => process.exit(0),
  () => process.exit(0),
);
