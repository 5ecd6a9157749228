// Start the pipeline's threads over fresh shared buffers: the disk thread (LMDB writer) and W
// workers, each recovering its partition. Resolves when every worker has recovered. The
// threads run the compiled dist/ modules (the server always runs from dist/; tests start it
// as a process after `npm run build`).
import { randomInt } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import type { DiskThreadData } from '../log/disk-thread.js';
import type { CommitStoreTuning, EngineName } from '../log/engine.js';
import type { RecoverySummary } from '../phases/recovery.js';
import type { PartitionLimits } from '../phases/state.js';
import { createPipelineBuffers, SHUTDOWN_REQUESTED, WORK_DOORBELL, type PipelineBuffers } from './layout.js';
import { Doorbell } from '../ring/doorbell.js';
import { createMetricsBuffers, type MetricsBuffers } from '../metrics/pipeline-metrics.js';
import type { WorkerData } from './worker-main.js';

export interface PipelineOptions {
  dataDir: string;
  workerCount: number;
  limits: PartitionLimits;
  slowBatchMs: number;
  /** Workers report logs that advanced (the advances rings) for offline notifications. */
  reportAdvances: boolean;
  engine: EngineName;
  tuning: CommitStoreTuning;
  /** Called if a pipeline thread fails after startup: the server cannot continue. */
  onFatal: (error: Error) => void;
}

export interface Pipeline {
  buffers: PipelineBuffers;
  metrics: MetricsBuffers;
  control: Int32Array;
  recovered: RecoverySummary;
  /** Stop the workers at a batch boundary and let the disk thread commit what is staged. */
  stop(): Promise<void>;
}

function exited(thread: Worker): Promise<void> {
  return new Promise((resolve) => thread.once('exit', () => resolve()));
}

export async function startPipeline(options: PipelineOptions): Promise<Pipeline> {
  const buffers = createPipelineBuffers(options.workerCount);
  const metrics = createMetricsBuffers(options.workerCount);
  const control = new Int32Array(buffers.control);
  const diskData: DiskThreadData = { dataDir: options.dataDir, control: buffers.control, workers: buffers.workers, metrics: metrics.disk, engine: options.engine, tuning: options.tuning };
  const disk = new Worker(new URL('../log/disk-thread.js', import.meta.url), { workerData: diskData, name: 'tailgrove-disk' });
  let stopping = false;
  const watch = (thread: Worker, name: string): void => {
    thread.on('error', (error) => options.onFatal(new Error(`${name} failed: ${error.stack ?? error.message}`)));
    thread.on('exit', (code) => {
      if (!stopping) options.onFatal(new Error(`${name} exited with code ${code}`));
    });
  };
  watch(disk, 'disk thread');
  const incarnation = randomInt(1, 2 ** 31);
  const workers: Worker[] = [];
  const ready: Promise<RecoverySummary>[] = [];
  for (let workerIndex = 0; workerIndex < options.workerCount; workerIndex++) {
    const workerData: WorkerData = {
      workerIndex,
      workerCount: options.workerCount,
      incarnation,
      limits: options.limits,
      dataDir: options.dataDir,
      control: buffers.control,
      sessionCounters: buffers.sessionCounters,
      buffers: buffers.workers[workerIndex]!,
      metrics: metrics.workers[workerIndex]!,
      slowBatchMs: options.slowBatchMs,
      reportAdvances: options.reportAdvances,
      engine: options.engine,
    };
    const worker = new Worker(new URL('./worker-main.js', import.meta.url), { workerData, name: `tailgrove-worker-${workerIndex}` });
    ready.push(
      new Promise((resolve, reject) => {
        worker.once('message', (message: { summary: RecoverySummary }) => resolve(message.summary));
        worker.once('error', reject);
      }),
    );
    watch(worker, `worker ${workerIndex}`);
    workers.push(worker);
  }
  const summaries = await Promise.all(ready);
  const recovered: RecoverySummary = { logs: 0, writers: 0, completions: 0, entries: 0 };
  for (const summary of summaries) {
    recovered.logs += summary.logs;
    recovered.writers += summary.writers;
    recovered.completions += summary.completions;
    recovered.entries += summary.entries;
  }
  return {
    buffers,
    metrics,
    control,
    recovered,
    async stop() {
      stopping = true;
      Atomics.store(control, SHUTDOWN_REQUESTED, 1);
      new Doorbell(control, WORK_DOORBELL).ring();
      await Promise.all([...workers.map(exited), exited(disk)]);
    },
  };
}
