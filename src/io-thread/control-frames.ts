// Control frames the IO thread answers itself (connect, refresh, attest, refusals).
// Off the hot path: each builds a fresh Buffer.
import { PREFIX_BYTES, PROTOCOL_VERSION } from '../constants.js';
import { writePrefix } from '../net/frame.js';
import { HEADER_A, HEADER_BYTES, HEADER_OP, HEADER_WORD, OP_CONNECTED, OP_OK } from '../net/protocol.js';
import { ioMetrics } from '../metrics/io-metrics.js';
import { controlPayload, errorBytes, errorPayload, writeError } from '../net/server-frames.js';

export function errorFrame(code: number, rid: number, handle: number, message: string, lsn = 0): Buffer {
  ioMetrics.errors[code]!++;
  const payload = errorPayload(code, message);
  const frame = Buffer.alloc(errorBytes(payload));
  writeError(new DataView(frame.buffer, frame.byteOffset, frame.length), frame, 0, code, rid, handle, lsn, payload);
  return frame;
}

/** A control answer: op, header word, A = rid, and a msgpack payload of `details`. */
function ridFrame(op: number, word: number, rid: number, details: Record<string, unknown>): Buffer {
  const payload = controlPayload(details);
  const headerLength = HEADER_BYTES[op]!;
  const frame = Buffer.alloc(PREFIX_BYTES + headerLength + payload.length);
  const view = new DataView(frame.buffer, frame.byteOffset, frame.length);
  writePrefix(view, 0, headerLength, payload.length, 0);
  view.setUint8(PREFIX_BYTES + HEADER_OP, op);
  view.setUint16(PREFIX_BYTES + HEADER_WORD, word, true);
  view.setUint32(PREFIX_BYTES + HEADER_A, rid, true);
  payload.copy(frame, PREFIX_BYTES + headerLength);
  return frame;
}

export function connectedFrame(rid: number, details: Record<string, unknown>): Buffer {
  return ridFrame(OP_CONNECTED, PROTOCOL_VERSION, rid, details);
}

export function okFrame(rid: number, details: Record<string, unknown>): Buffer {
  return ridFrame(OP_OK, 0, rid, details);
}
