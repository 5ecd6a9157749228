// Staging: durable effects of a batch (entries, RIFL records, new logs) and the replies that
// must wait for them, in order, in this worker's staging ring. The disk thread commits them
// as one transaction; the io-contributions phase releases them after the commit.
import {
  FRAME_BYTES,
  FRAME_LENGTH,
  FRAME_SESSION,
  LOG_EPOCH,
  LOG_ID,
  LOG_NAME,
  LOG_NAME_LENGTH,
  STAGE_FRAME,
  STAGE_KIND,
  STAGE_LOG,
  STAGE_TRIM_COMPLETIONS,
  STAGE_TRIM_ENTRIES,
  TRIM_ENTRIES_BYTES,
  TRIM_ENTRIES_FROM,
  TRIM_ENTRIES_LOG_ID,
  TRIM_ENTRIES_RECORD_BYTES,
  TRIM_ENTRIES_TO,
  STAGE_WRITER,
  TRIM_BYTES,
  TRIM_FROM_LSN,
  TRIM_TO_LSN,
  TRIM_WRITER_ID,
  WRITER_ACKED_LSN,
  WRITER_DEVICE,
  WRITER_DEVICE_LENGTH,
  WRITER_EPOCH,
  WRITER_ID,
  WRITER_LAST_LSN,
  WRITER_LOG_ID,
} from '../log/staging.js';
import type { Partition } from './state.js';

/** Reserve a staging record of `length` bytes of kind `kind`; returns its offset. */
export function reserveStage(partition: Partition, kind: number, length: number): number {
  const ring = partition.rings.staging;
  let offset = ring.reserve(length);
  while (offset < 0) {
    partition.rings.stagingFull();
    offset = ring.reserve(length);
  }
  ring.view.setUint32(offset + STAGE_KIND, kind, true);
  return offset;
}

/** Reserve room for a frame to `session` sent after the commit; returns the frame offset. */
export function reserveStagedFrame(partition: Partition, session: number, frameLength: number): number {
  const offset = reserveStage(partition, STAGE_FRAME, FRAME_BYTES + frameLength);
  const view = partition.rings.staging.view;
  view.setUint32(offset + FRAME_SESSION, session, true);
  view.setUint32(offset + FRAME_LENGTH, frameLength, true);
  return offset + FRAME_BYTES;
}

export function stageWriter(partition: Partition, writer: number, logId: number, device: number): void {
  const deviceBytes = partition.deviceBytes[device]!;
  const offset = reserveStage(partition, STAGE_WRITER, WRITER_DEVICE + deviceBytes.length);
  const view = partition.rings.staging.view;
  const columns = partition.writers.columns;
  view.setUint32(offset + WRITER_ID, columns.writerId[writer]!, true);
  view.setUint32(offset + WRITER_LOG_ID, logId, true);
  view.setUint32(offset + WRITER_EPOCH, columns.epoch[writer]!, true);
  view.setUint32(offset + WRITER_LAST_LSN, columns.lastLsn[writer]!, true);
  view.setUint32(offset + WRITER_ACKED_LSN, columns.ackedLsn[writer]!, true);
  view.setUint32(offset + WRITER_DEVICE_LENGTH, deviceBytes.length, true);
  // A byte loop: device ids are short, and Buffer#copy would allocate a view.
  const target = partition.rings.staging.bytes;
  for (let i = 0; i < deviceBytes.length; i++) target[offset + WRITER_DEVICE + i] = deviceBytes[i]!;
}

export function stageLog(partition: Partition, logId: number, epoch: number, name: string): void {
  const nameBytes = Buffer.from(name, 'utf8');
  const offset = reserveStage(partition, STAGE_LOG, LOG_NAME + nameBytes.length);
  const view = partition.rings.staging.view;
  view.setUint32(offset + LOG_ID, logId, true);
  view.setUint32(offset + LOG_EPOCH, epoch, true);
  view.setUint32(offset + LOG_NAME_LENGTH, nameBytes.length, true);
  nameBytes.copy(partition.rings.staging.bytes, offset + LOG_NAME);
}

export function stageTrimCompletions(partition: Partition, writerId: number, fromLsn: number, toLsn: number): void {
  const offset = reserveStage(partition, STAGE_TRIM_COMPLETIONS, TRIM_BYTES);
  const view = partition.rings.staging.view;
  view.setUint32(offset + TRIM_WRITER_ID, writerId, true);
  view.setUint32(offset + TRIM_FROM_LSN, fromLsn, true);
  view.setUint32(offset + TRIM_TO_LSN, toLsn, true);
}

export function stageTrimEntries(partition: Partition, logId: number, from: number, to: number, bytes: number): void {
  const offset = reserveStage(partition, STAGE_TRIM_ENTRIES, TRIM_ENTRIES_RECORD_BYTES);
  const view = partition.rings.staging.view;
  view.setUint32(offset + TRIM_ENTRIES_LOG_ID, logId, true);
  view.setFloat64(offset + TRIM_ENTRIES_FROM, from, true);
  view.setFloat64(offset + TRIM_ENTRIES_TO, to, true);
  view.setFloat64(offset + TRIM_ENTRIES_BYTES, bytes, true);
}
