// The IO thread's view of the pipeline's metrics blocks: sums over the workers, histograms
// with cumulative buckets, and the busiest logs merged across workers.
import {
  DISK_BLOCK_SLOTS,
  TOP_LOG_SLOTS,
  WORKER_TOP_LOGS,
  WORKER_TOP_LOGS_COUNT,
  WORKER_TOP_LOGS_INTERVAL_MS,
  type MetricsBuffers,
} from './pipeline-metrics.js';

export interface HistogramSample {
  /** Cumulative counts per upper bound, then +Inf last. */
  cumulative: number[];
  sum: number;
  count: number;
}

export interface BusyLog {
  logId: number;
  appendsPerSecond: number;
  length: number;
}

export class PipelineMetricsReader {
  readonly workers: Float64Array[];
  readonly disk: Float64Array;

  constructor(buffers: MetricsBuffers) {
    this.workers = buffers.workers.map((buffer) => new Float64Array(buffer));
    this.disk = new Float64Array(buffers.disk, 0, DISK_BLOCK_SLOTS);
  }

  /** A slot summed over the workers. */
  sum(slot: number): number {
    let total = 0;
    for (const block of this.workers) total += block[slot]!;
    return total;
  }

  /** A histogram at `at`, summed over `blocks`. */
  histogram(blocks: readonly Float64Array[], at: number, buckets: readonly number[]): HistogramSample {
    const cumulative: number[] = [];
    let running = 0;
    for (let bucket = 0; bucket <= buckets.length; bucket++) {
      for (const block of blocks) running += block[at + bucket]!;
      cumulative.push(running);
    }
    let sum = 0;
    let count = 0;
    for (const block of blocks) {
      sum += block[at + buckets.length + 1]!;
      count += block[at + buckets.length + 2]!;
    }
    return { cumulative, sum, count };
  }

  /** The busiest logs of every worker's last sample, busiest first. */
  busiestLogs(limit: number): BusyLog[] {
    const logs: BusyLog[] = [];
    for (const block of this.workers) {
      const intervalMs = block[WORKER_TOP_LOGS_INTERVAL_MS]!;
      if (intervalMs <= 0) continue;
      for (let row = 0; row < block[WORKER_TOP_LOGS_COUNT]!; row++) {
        const at = WORKER_TOP_LOGS + row * TOP_LOG_SLOTS;
        logs.push({ logId: block[at]!, appendsPerSecond: (block[at + 1]! * 1000) / intervalMs, length: block[at + 2]! });
      }
    }
    return logs.sort((a, b) => b.appendsPerSecond - a.appendsPerSecond).slice(0, limit);
  }
}
