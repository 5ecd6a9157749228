// Phase: io deletions. Retention (src/retention/) decided to trim logs; each record moves a
// log's first position up. Entries below it are no longer read or pushed from this batch on,
// and the deletion itself is staged for the disk thread (one commit, with everything else).
// Only committed entries are trimmed, and a log's first position never moves down.
import { DELETION_LOG_ID, DELETION_TRIM_TO } from '../net/records.js';
import { ENTRIES_TRIMMED } from '../net/protocol.js';
import { ENTRIES_HEADER_BYTES, writeEntriesHeader } from '../net/server-frames.js';
import { STAT_TRIMMED } from '../metrics/pipeline-metrics.js';
import { reserveOutput } from './output.js';
import { stageTrimEntries } from './stage.js';
import { NO_SLOT, type Partition } from './state.js';

/** Apply the trims the IO thread sent. Returns the number of records processed. */
export function applyDeletions(partition: Partition): number {
  const ring = partition.rings.deletions;
  if (ring.refresh() === 0) return 0;
  const logs = partition.logs;
  let records = 0;
  for (let offset = ring.peek(); offset >= 0; offset = ring.peek()) {
    const logId = ring.view.getUint32(offset + DELETION_LOG_ID, true);
    const log = logs.find(logId, 0);
    if (log !== NO_SLOT) {
      const from = logs.columns.first[log]!;
      const to = Math.min(ring.view.getFloat64(offset + DELETION_TRIM_TO, true), logs.columns.committed[log]!);
      if (to > from) {
        logs.columns.first[log] = to;
        stageTrimEntries(partition, logId, from, to, logs.columns.bytes[log]!);
        partition.stats[STAT_TRIMMED]! += to - from;
      }
    }
    ring.advance();
    records++;
  }
  ring.release();
  return records;
}

/**
 * A tail that would start below the log's first position starts at it: the device is told
 * with an empty `_entries` frame flagged TRIMMED at the first position. Returns where to start.
 */
export function skipTrimmed(partition: Partition, session: number, handle: number, tailId: number, log: number, from: number): number {
  const first = partition.logs.columns.first[log]!;
  if (from >= first) return from;
  writeEntriesHeader(partition.rings.output.view, reserveOutput(partition, session, ENTRIES_HEADER_BYTES), ENTRIES_TRIMMED, handle, tailId, 0, first, 0);
  return first;
}
