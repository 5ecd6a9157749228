// Client operations: frames for the IO thread to send, written into this worker's output
// ring as records [session][frames]. When the ring is full the worker hands control to
// `rings.outputFull` (the server waits for the IO thread to drain; the simulation drains).
import { OUTPUT_FRAMES, OUTPUT_SESSION } from '../net/records.js';
import {
  ACKED_BYTES,
  NACKED_BYTES,
  controlPayload,
  errorBytes,
  errorPayload,
  revokedBytes,
  writeRevoked,
  writeAcked,
  writeError,
  writeNacked,
} from '../net/server-frames.js';
import { copyRingBytes, type Ring } from '../ring/ring.js';
import { STAT_ERRORS } from '../metrics/pipeline-metrics.js';
import type { Partition } from './state.js';
import { reserveStagedFrame } from './stage.js';

/** Reserve an output record for `frameLength` bytes to `session`; returns the frame offset. */
export function reserveOutput(partition: Partition, session: number, frameLength: number): number {
  const ring = partition.rings.output;
  let offset = ring.reserve(OUTPUT_FRAMES + frameLength);
  while (offset < 0) {
    partition.outputStalls++;
    partition.rings.outputFull();
    offset = ring.reserve(OUTPUT_FRAMES + frameLength);
  }
  ring.view.setUint32(offset + OUTPUT_SESSION, session, true);
  return offset + OUTPUT_FRAMES;
}

export function sendAcked(partition: Partition, session: number, handle: number, lsn: number, position: number): void {
  const offset = reserveOutput(partition, session, ACKED_BYTES);
  writeAcked(partition.rings.output.view, offset, handle, lsn, position);
}

export function sendNacked(partition: Partition, session: number, reason: number, handle: number, lsn: number, expectedLsn: number, tail: number): void {
  const offset = reserveOutput(partition, session, NACKED_BYTES);
  writeNacked(partition.rings.output.view, offset, reason, handle, lsn, expectedLsn, tail);
}

/** An _error (rare: the msgpack payload is built per call). */
export function sendError(partition: Partition, session: number, rid: number, handle: number, lsn: number, code: number, message: string, details?: Record<string, unknown>): void {
  partition.stats[STAT_ERRORS + code]!++;
  const payload = errorPayload(code, message, details);
  const offset = reserveOutput(partition, session, errorBytes(payload));
  writeError(partition.rings.output.view, partition.rings.output.bytes, offset, code, rid, handle, lsn, payload);
}

/**
 * `_revoke(handle)`: the lease is gone (rare: the payload is built per call). It is staged, so
 * it reaches the device after any reply staged before it (the lease's own `_leased` above all).
 */
export function sendRevoked(partition: Partition, session: number, handle: number, reason: string): void {
  const payload = controlPayload({ reason });
  const staging = partition.rings.staging;
  writeRevoked(staging.view, staging.bytes, reserveStagedFrame(partition, session, revokedBytes(payload)), handle, payload);
}

/** Copy a complete frame (from staging) to `session`. */
export function sendFrame(partition: Partition, session: number, source: Ring, sourceOffset: number, length: number): void {
  const offset = reserveOutput(partition, session, length);
  copyRingBytes(source, sourceOffset, partition.rings.output, offset, length);
}
