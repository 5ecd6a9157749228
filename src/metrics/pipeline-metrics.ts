// The pipeline's metrics in shared memory. A partition counts into a plain Float64Array
// (BatchStats) while a batch runs; after the batch its worker adds those counts into its own
// block of a SharedArrayBuffer and zeroes them, so the shared slots change once per batch,
// never per message. The disk thread has a block of its own. Each block has one writer; the
// IO thread only reads (an aligned float64 store is not torn on the platforms Node supports,
// and a sample that is one batch stale is fine for monitoring).

// --- Histograms: fixed upper bounds; slots are a count per bucket (the last is +Inf), then
// the sum of observed values, then how many were observed.
export const DURATION_BUCKETS_MS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1000] as const;
export const BATCH_SIZE_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536] as const;

export function histogramSlots(buckets: readonly number[]): number {
  return buckets.length + 3;
}

export function observe(slots: Float64Array, at: number, buckets: readonly number[], value: number): void {
  let bucket = 0;
  while (bucket < buckets.length && value > buckets[bucket]!) bucket++;
  slots[at + bucket]!++;
  slots[at + buckets.length + 1]! += value;
  slots[at + buckets.length + 2]!++;
}

// --- Per-batch stats of one partition (not shared).
export const PHASE_IO_CONTRIBUTIONS = 0;
export const PHASE_IO_DELETIONS = 1;
export const PHASE_CLIENT_INPUT = 2;
export const PHASE_CATCH_UP = 3;
export const PHASE_COUNT = 4;
export const PHASE_NAMES = ['io_contributions', 'io_deletions', 'client_input', 'catch_up'] as const;
export const ERROR_CODE_SLOTS = 32;

export const STAT_APPENDS = 0;
export const STAT_DELIVERED = 1;
export const STAT_TRIMMED = 2;
/** Milliseconds spent in each phase this batch: STAT_PHASE_MS + PHASE_*. */
export const STAT_PHASE_MS = 3;
/** `_error` frames sent this batch, by code: STAT_ERRORS + code. */
export const STAT_ERRORS = STAT_PHASE_MS + PHASE_COUNT;
export const BATCH_STATS_SLOTS = STAT_ERRORS + ERROR_CODE_SLOTS;

export function createBatchStats(): Float64Array {
  return new Float64Array(BATCH_STATS_SLOTS);
}

// --- A worker's shared block.
export const WORKER_BATCHES = 0;
export const WORKER_WORK = 1;
export const WORKER_APPENDS = 2;
export const WORKER_DELIVERED = 3;
export const WORKER_TRIMMED = 4;
// Gauges, set after each batch.
export const WORKER_LOGS = 5;
export const WORKER_LEASES = 6;
export const WORKER_TAILS = 7;
// Batches slower than the configured threshold: how many, and the last one's milliseconds.
export const WORKER_SLOW_BATCHES = 8;
export const WORKER_LAST_SLOW_BATCH_MS = 9;
export const WORKER_ERRORS = 10;
export const WORKER_PHASE_HISTOGRAMS = WORKER_ERRORS + ERROR_CODE_SLOTS;
const PHASE_HISTOGRAM_SLOTS = histogramSlots(DURATION_BUCKETS_MS);
/** Written by worker 0 only: records and tailers processed per batch, all workers together. */
export const WORKER_BATCH_SIZE_HISTOGRAM = WORKER_PHASE_HISTOGRAMS + PHASE_COUNT * PHASE_HISTOGRAM_SLOTS;
// The busiest logs of this worker over its last sampling interval: (logId, appends, length) each.
export const TOP_LOGS = 10;
export const TOP_LOG_SLOTS = 3;
export const WORKER_TOP_LOGS_SAMPLED_AT = WORKER_BATCH_SIZE_HISTOGRAM + histogramSlots(BATCH_SIZE_BUCKETS);
export const WORKER_TOP_LOGS_INTERVAL_MS = WORKER_TOP_LOGS_SAMPLED_AT + 1;
export const WORKER_TOP_LOGS_COUNT = WORKER_TOP_LOGS_INTERVAL_MS + 1;
export const WORKER_TOP_LOGS = WORKER_TOP_LOGS_COUNT + 1;
export const WORKER_BLOCK_SLOTS = WORKER_TOP_LOGS + TOP_LOGS * TOP_LOG_SLOTS;

export function phaseHistogram(phase: number): number {
  return WORKER_PHASE_HISTOGRAMS + phase * PHASE_HISTOGRAM_SLOTS;
}

// --- The disk thread's shared block.
export const DISK_COMMITS = 0;
export const DISK_COMMIT_HISTOGRAM = 1;
export const DISK_BLOCK_SLOTS = DISK_COMMIT_HISTOGRAM + histogramSlots(DURATION_BUCKETS_MS);

export interface MetricsBuffers {
  workers: SharedArrayBuffer[];
  disk: SharedArrayBuffer;
}

export function createMetricsBuffers(workerCount: number): MetricsBuffers {
  const workers: SharedArrayBuffer[] = [];
  for (let index = 0; index < workerCount; index++) workers.push(new SharedArrayBuffer(WORKER_BLOCK_SLOTS * 8));
  return { workers, disk: new SharedArrayBuffer(DISK_BLOCK_SLOTS * 8) };
}

/** Add a batch's stats to the worker's block and zero them. */
export function flushBatchStats(stats: Float64Array, block: Float64Array, work: number): void {
  block[WORKER_BATCHES]!++;
  block[WORKER_WORK]! += work;
  block[WORKER_APPENDS]! += stats[STAT_APPENDS]!;
  block[WORKER_DELIVERED]! += stats[STAT_DELIVERED]!;
  block[WORKER_TRIMMED]! += stats[STAT_TRIMMED]!;
  for (let phase = 0; phase < PHASE_COUNT; phase++) {
    observe(block, phaseHistogram(phase), DURATION_BUCKETS_MS, stats[STAT_PHASE_MS + phase]!);
  }
  for (let code = 0; code < ERROR_CODE_SLOTS; code++) block[WORKER_ERRORS + code]! += stats[STAT_ERRORS + code]!;
  stats.fill(0);
}
