// One batch of one partition: the phases in their global order. The server runs it on every
// worker at once between two barriers (src/workers/worker-main.ts); the simulation runs it
// over the partitions one after another, its sequential twin (test/simulation.test.ts).
import { invariant } from '../invariant.js';
import { PHASE_CATCH_UP, PHASE_CLIENT_INPUT, PHASE_IO_CONTRIBUTIONS, PHASE_IO_DELETIONS, STAT_PHASE_MS } from '../metrics/pipeline-metrics.js';
import { catchUpTailers } from './catch-up.js';
import { processClientInput } from './client-input.js';
import { releaseCommitted } from './io-contributions.js';
import { applyDeletions } from './io-deletions.js';
import type { Partition } from './state.js';

export interface BatchResult {
  /** Records and tailers processed: 0 means the batch found nothing to do. */
  work: number;
  /** Bytes handed to the disk thread. */
  staged: number;
  /** Bytes handed to the IO thread. */
  output: number;
}

/** The result object is reused across batches (read it before the next runBatch). */
const result: BatchResult = { work: 0, staged: 0, output: 0 };

export function runBatch(partition: Partition): BatchResult {
  partition.batch++;
  const stats = partition.stats;
  // Inputs in order: io contributions (commits completed), io deletions (retention's trims),
  // peer input (reserved for replication, SPEC §8: its ring stays empty), then client input;
  // tail catch-up reads storage last, after this batch's releases and trims.
  let started = performance.now();
  let work = releaseCommitted(partition);
  let ended = performance.now();
  stats[STAT_PHASE_MS + PHASE_IO_CONTRIBUTIONS] = ended - started;
  started = ended;
  work += applyDeletions(partition);
  ended = performance.now();
  stats[STAT_PHASE_MS + PHASE_IO_DELETIONS] = ended - started;
  invariant(partition.rings.peerInput.refresh() === 0, 'no peer input before replication exists');
  started = ended;
  work += processClientInput(partition);
  ended = performance.now();
  stats[STAT_PHASE_MS + PHASE_CLIENT_INPUT] = ended - started;
  started = ended;
  catchUpTailers(partition);
  work += partition.catchUp.length;
  stats[STAT_PHASE_MS + PHASE_CATCH_UP] = performance.now() - started;
  result.work = work;
  result.staged = partition.rings.staging.unpublishedBytes;
  result.output = partition.rings.output.unpublishedBytes;
  partition.rings.staging.publish();
  partition.rings.output.publish();
  partition.rings.advances.publish();
  return result;
}
