// The busiest logs of one partition, sampled by its worker about once a second: a walk over
// the log table comparing each log's committed length with the last sample. O(logs) per
// interval, nothing per message. The top ones go to the worker's metrics block, where the IO
// thread merges them across workers and names them.
import type { Partition } from '../phases/state.js';
import { TOP_LOG_SLOTS, TOP_LOGS, WORKER_TOP_LOGS, WORKER_TOP_LOGS_COUNT, WORKER_TOP_LOGS_INTERVAL_MS, WORKER_TOP_LOGS_SAMPLED_AT } from './pipeline-metrics.js';

const TOP_APPENDS = 1;

export function sampleTopLogs(partition: Partition, block: Float64Array, now: number): void {
  const logs = partition.logs;
  const committed = logs.columns.committed;
  const sampled = logs.columns.sampledCommitted;
  let count = 0;
  for (let slot = 0; slot < logs.capacity; slot++) {
    if (logs.occupied[slot] === 0) continue;
    const appends = committed[slot]! - sampled[slot]!;
    sampled[slot] = committed[slot]!;
    if (appends <= 0) continue;
    // Insertion into the sorted top list, busiest first.
    let at = count < TOP_LOGS ? count++ : TOP_LOGS;
    while (at > 0 && block[WORKER_TOP_LOGS + (at - 1) * TOP_LOG_SLOTS + TOP_APPENDS]! < appends) {
      if (at < TOP_LOGS) copyRow(block, at - 1, at);
      at--;
    }
    if (at < TOP_LOGS) {
      const row = WORKER_TOP_LOGS + at * TOP_LOG_SLOTS;
      block[row] = logs.key0[slot]!;
      block[row + TOP_APPENDS] = appends;
      block[row + 2] = committed[slot]!;
    }
  }
  block[WORKER_TOP_LOGS_COUNT] = count;
  block[WORKER_TOP_LOGS_INTERVAL_MS] = now - block[WORKER_TOP_LOGS_SAMPLED_AT]!;
  block[WORKER_TOP_LOGS_SAMPLED_AT] = now;
}

function copyRow(block: Float64Array, from: number, to: number): void {
  const source = WORKER_TOP_LOGS + from * TOP_LOG_SLOTS;
  const target = WORKER_TOP_LOGS + to * TOP_LOG_SLOTS;
  for (let i = 0; i < TOP_LOG_SLOTS; i++) block[target + i] = block[source + i]!;
}
