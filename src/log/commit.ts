// Reading staging records for a commit: the one parser of the staging format on the disk
// side, shared by the LMDB disk thread and the simulation's memory storage.
import { invariant } from '../invariant.js';
import type { Ring } from '../ring/ring.js';
import {
  LOG_EPOCH,
  LOG_ID,
  LOG_NAME,
  LOG_NAME_LENGTH,
  STAGE_FRAME,
  STAGE_KIND,
  STAGE_LOG,
  STAGE_TRIM_COMPLETIONS,
  STAGE_WRITE,
  STAGE_WRITER,
  TRIM_FROM_LSN,
  TRIM_TO_LSN,
  TRIM_WRITER_ID,
  STAGE_TRIM_ENTRIES,
  TRIM_ENTRIES_BYTES,
  TRIM_ENTRIES_FROM,
  TRIM_ENTRIES_LOG_ID,
  TRIM_ENTRIES_TO,
  WRITE_APPENDED_AT,
  WRITE_BYTES_BEFORE,
  WRITER_ACKED_LSN,
  WRITER_DEVICE,
  WRITER_DEVICE_LENGTH,
  WRITER_EPOCH,
  WRITER_ID,
  WRITER_LAST_LSN,
  WRITER_LOG_ID,
  WRITE_DATA,
  WRITE_DATA_LENGTH,
  WRITE_LOG_ID,
  WRITE_LSN,
  WRITE_OUTCOME,
  WRITE_WRITER_ID,
} from './staging.js';

export interface CommitSink {
  /** An accepted entry; `data` is a view of the staging ring, valid until the commit returns (workers reuse the space only after it). */
  entry(logId: number, position: number, data: Buffer, bytesBefore: number, appendedAt: number): void;
  completion(writerId: number, lsn: number, outcome: number): void;
  writer(writerId: number, logId: number, device: string, epoch: number, lastLsn: number, ackedLsn: number): void;
  log(logId: number, epoch: number, name: string): void;
  trimCompletions(writerId: number, fromLsn: number, toLsn: number): void;
  /** Retention: drop the log's entries in [from, to); `to` becomes its first position. */
  trimEntries(logId: number, from: number, to: number, bytes: number): void;
}

/**
 * Feed every record readable in `ring` (up to its last refresh) to `sink`. Returns the number
 * of durable records (replies to send after the commit are skipped: they need no storage).
 */
export function applyStaged(ring: Ring, sink: CommitSink): number {
  const view = ring.view;
  let durable = 0;
  for (let offset = ring.peek(); offset >= 0; offset = ring.peek()) {
    const kind = view.getUint32(offset + STAGE_KIND, true);
    switch (kind) {
      case STAGE_WRITE: {
        const writerId = view.getUint32(offset + WRITE_WRITER_ID, true);
        const lsn = view.getUint32(offset + WRITE_LSN, true);
        const outcome = view.getFloat64(offset + WRITE_OUTCOME, true);
        if (outcome >= 0) {
          const start = offset + WRITE_DATA;
          sink.entry(
            view.getUint32(offset + WRITE_LOG_ID, true),
            outcome,
            ring.bytes.subarray(start, start + view.getUint32(offset + WRITE_DATA_LENGTH, true)),
            view.getFloat64(offset + WRITE_BYTES_BEFORE, true),
            view.getUint32(offset + WRITE_APPENDED_AT, true),
          );
        }
        sink.completion(writerId, lsn, outcome);
        break;
      }
      case STAGE_WRITER: {
        const start = offset + WRITER_DEVICE;
        const device = ring.bytes.toString('utf8', start, start + view.getUint32(offset + WRITER_DEVICE_LENGTH, true));
        sink.writer(
          view.getUint32(offset + WRITER_ID, true),
          view.getUint32(offset + WRITER_LOG_ID, true),
          device,
          view.getUint32(offset + WRITER_EPOCH, true),
          view.getUint32(offset + WRITER_LAST_LSN, true),
          view.getUint32(offset + WRITER_ACKED_LSN, true),
        );
        break;
      }
      case STAGE_LOG: {
        const start = offset + LOG_NAME;
        const name = ring.bytes.toString('utf8', start, start + view.getUint32(offset + LOG_NAME_LENGTH, true));
        sink.log(view.getUint32(offset + LOG_ID, true), view.getUint32(offset + LOG_EPOCH, true), name);
        break;
      }
      case STAGE_TRIM_COMPLETIONS:
        sink.trimCompletions(view.getUint32(offset + TRIM_WRITER_ID, true), view.getUint32(offset + TRIM_FROM_LSN, true), view.getUint32(offset + TRIM_TO_LSN, true));
        break;
      case STAGE_TRIM_ENTRIES:
        sink.trimEntries(
          view.getUint32(offset + TRIM_ENTRIES_LOG_ID, true),
          view.getFloat64(offset + TRIM_ENTRIES_FROM, true),
          view.getFloat64(offset + TRIM_ENTRIES_TO, true),
          view.getFloat64(offset + TRIM_ENTRIES_BYTES, true),
        );
        break;
      case STAGE_FRAME:
        ring.advance();
        continue;
      default:
        invariant(false, `unknown staging record kind ${kind}`);
    }
    durable++;
    ring.advance();
  }
  return durable;
}
