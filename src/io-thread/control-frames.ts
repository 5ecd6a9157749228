// Control frames the IO thread answers itself (connect, refusals before a session exists).
// Off the hot path: each builds a fresh Buffer.
import { PREFIX_BYTES, PROTOCOL_VERSION } from '../constants.js';
import { writePrefix } from '../net/frame.js';
import { HEADER_A, HEADER_BYTES, HEADER_OP, HEADER_WORD, OP_CONNECTED, OP_OK } from '../net/protocol.js';
import { controlPayload, errorBytes, errorPayload, writeError } from '../net/server-frames.js';

export function errorFrame(code: number, rid: number, handle: number, message: string, lsn = 0): Buffer {
  const payload = errorPayload(code, message);
  const frame = Buffer.alloc(errorBytes(payload));
  writeError(new DataView(frame.buffer, frame.byteOffset, frame.length), frame, 0, code, rid, handle, lsn, payload);
  return frame;
}

export function connectedFrame(rid: number, details: Record<string, unknown>): Buffer {
  const payload = controlPayload(details);
  const headerLength = HEADER_BYTES[OP_CONNECTED]!;
  const frame = Buffer.alloc(PREFIX_BYTES + headerLength + payload.length);
  const view = new DataView(frame.buffer, frame.byteOffset, frame.length);
  writePrefix(view, 0, headerLength, payload.length, 0);
  view.setUint8(PREFIX_BYTES + HEADER_OP, OP_CONNECTED);
  view.setUint16(PREFIX_BYTES + HEADER_WORD, PROTOCOL_VERSION, true);
  view.setUint32(PREFIX_BYTES + HEADER_A, rid, true);
  payload.copy(frame, PREFIX_BYTES + headerLength);
  return frame;
}

export function okFrame(rid: number, details: Record<string, unknown>): Buffer {
  const payload = controlPayload(details);
  const headerLength = HEADER_BYTES[OP_OK]!;
  const frame = Buffer.alloc(PREFIX_BYTES + headerLength + payload.length);
  const view = new DataView(frame.buffer, frame.byteOffset, frame.length);
  writePrefix(view, 0, headerLength, payload.length, 0);
  view.setUint8(PREFIX_BYTES + HEADER_OP, OP_OK);
  view.setUint32(PREFIX_BYTES + HEADER_A, rid, true);
  payload.copy(frame, PREFIX_BYTES + headerLength);
  return frame;
}
