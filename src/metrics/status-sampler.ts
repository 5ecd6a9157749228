// Samples the metrics once a second into a StatusSnapshot (the status page, GET /stats,
// `tailgrove stats`): rates and means are differences between two samples. It also reports
// the workers' slow batches, for the log.
import type { IoMetrics } from './io-metrics.js';
import type { LogNames } from './log-names.js';
import type { PipelineMetricsReader } from './pipeline-reader.js';
import {
  BATCH_SIZE_BUCKETS,
  DISK_COMMIT_HISTOGRAM,
  DURATION_BUCKETS_MS,
  ERROR_CODE_SLOTS,
  PHASE_CATCH_UP,
  PHASE_CLIENT_INPUT,
  PHASE_IO_CONTRIBUTIONS,
  PHASE_IO_DELETIONS,
  TOP_LOGS,
  WORKER_APPENDS,
  WORKER_BATCHES,
  WORKER_BATCH_SIZE_HISTOGRAM,
  WORKER_DELIVERED,
  WORKER_ERRORS,
  WORKER_LAST_SLOW_BATCH_MS,
  WORKER_LEASES,
  WORKER_SLOW_BATCHES,
  WORKER_TAILS,
  WORKER_TRIMMED,
  phaseHistogram,
} from './pipeline-metrics.js';
import type { StatusSnapshot } from './status.js';

export interface StatusSources {
  pipeline: PipelineMetricsReader;
  io: IoMetrics;
  names: LogNames;
  connections: () => number;
  sessions: () => number;
  ready: () => boolean;
  /** Slow batches seen by a worker since the last sample: how many, and the last one's ms. */
  onSlowBatches: (worker: number, count: number, lastMs: number) => void;
}

interface Totals {
  at: number;
  batches: number;
  appends: number;
  delivered: number;
  /** [sum, count] of each phase's histogram, then the commit and batch-size histograms. */
  histograms: number[];
}

const PHASES = [PHASE_IO_CONTRIBUTIONS, PHASE_IO_DELETIONS, PHASE_CLIENT_INPUT, PHASE_CATCH_UP] as const;

export class StatusSampler {
  private readonly sources: StatusSources;
  private readonly startedAt = Date.now();
  private previous: Totals;
  private readonly slowBatchesSeen: number[];
  private latest: StatusSnapshot;

  constructor(sources: StatusSources) {
    this.sources = sources;
    this.previous = this.totals();
    this.slowBatchesSeen = sources.pipeline.workers.map(() => 0);
    this.latest = this.snapshot(this.previous, this.previous);
  }

  /** The last sample (a new one every `sample()`). */
  current(): StatusSnapshot {
    return this.latest;
  }

  sample(): void {
    const totals = this.totals();
    this.latest = this.snapshot(this.previous, totals);
    this.previous = totals;
    this.sources.pipeline.workers.forEach((block, worker) => {
      const slow = block[WORKER_SLOW_BATCHES]!;
      if (slow > this.slowBatchesSeen[worker]!) this.sources.onSlowBatches(worker, slow - this.slowBatchesSeen[worker]!, block[WORKER_LAST_SLOW_BATCH_MS]!);
      this.slowBatchesSeen[worker] = slow;
    });
  }

  private totals(): Totals {
    const { pipeline } = this.sources;
    const histograms: number[] = [];
    const push = (blocks: readonly Float64Array[], at: number, buckets: readonly number[]): void => {
      const sample = pipeline.histogram(blocks, at, buckets);
      histograms.push(sample.sum, sample.count);
    };
    for (const phase of PHASES) push(pipeline.workers, phaseHistogram(phase), DURATION_BUCKETS_MS);
    push([pipeline.disk], DISK_COMMIT_HISTOGRAM, DURATION_BUCKETS_MS);
    push([pipeline.workers[0]!], WORKER_BATCH_SIZE_HISTOGRAM, BATCH_SIZE_BUCKETS);
    return {
      at: Date.now(),
      batches: pipeline.workers[0]![WORKER_BATCHES]!,
      appends: pipeline.sum(WORKER_APPENDS),
      delivered: pipeline.sum(WORKER_DELIVERED),
      histograms,
    };
  }

  private snapshot(before: Totals, after: Totals): StatusSnapshot {
    const { pipeline, io } = this.sources;
    const seconds = Math.max(after.at - before.at, 1) / 1000;
    const mean = (histogram: number): number => {
      const count = after.histograms[histogram * 2 + 1]! - before.histograms[histogram * 2 + 1]!;
      return count === 0 ? 0 : (after.histograms[histogram * 2]! - before.histograms[histogram * 2]!) / count;
    };
    let errors = 0;
    for (let code = 1; code < ERROR_CODE_SLOTS; code++) errors += pipeline.sum(WORKER_ERRORS + code) + io.errors[code]!;
    const topLogs = pipeline.busiestLogs(TOP_LOGS).map((busy) => {
      const name = this.sources.names.get(busy.logId);
      return { site: name?.site ?? '?', log: name?.log ?? `#${busy.logId}`, appendsPerSecond: Math.round(busy.appendsPerSecond), length: busy.length };
    });
    return {
      at: after.at,
      uptimeSeconds: Math.round((after.at - this.startedAt) / 1000),
      ready: this.sources.ready(),
      workers: pipeline.workers.length,
      connections: this.sources.connections(),
      sessions: this.sources.sessions(),
      leases: pipeline.sum(WORKER_LEASES),
      tails: pipeline.sum(WORKER_TAILS),
      appendsPerSecond: Math.round((after.appends - before.appends) / seconds),
      entriesDeliveredPerSecond: Math.round((after.delivered - before.delivered) / seconds),
      batchesPerSecond: Math.round((after.batches - before.batches) / seconds),
      batchSize: mean(5),
      phaseMs: { ioContributions: mean(0), ioDeletions: mean(1), clientInput: mean(2), catchUp: mean(3), commit: mean(4) },
      topLogs,
      totals: { appends: after.appends, entriesDelivered: after.delivered, errors, trimmedEntries: pipeline.sum(WORKER_TRIMMED) },
    };
  }
}
