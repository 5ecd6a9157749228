// Encoders for server → device frames, writing into a DataView at an offset the caller has
// reserved (an output ring record or a staging record). Each returns the frame's length.
import { pack } from 'msgpackr';
import { PREFIX_BYTES } from '../constants.js';
import { writePrefix } from './frame.js';
import {
  ERROR_NAMES,
  HEADER_A,
  HEADER_B,
  HEADER_BYTES,
  HEADER_C,
  HEADER_D,
  HEADER_FLAGS,
  HEADER_OP,
  HEADER_POSITION,
  HEADER_WORD,
  OP_ACKED,
  OP_ENTRIES,
  OP_ERROR,
  OP_LEASED,
  OP_NACKED,
  OP_REVOKED,
  OP_OK,
  OP_PRESENCE,
  OP_SIGNALED,
} from './protocol.js';

export const ACKED_BYTES = PREFIX_BYTES + HEADER_BYTES[OP_ACKED]!;
export const NACKED_BYTES = PREFIX_BYTES + HEADER_BYTES[OP_NACKED]!;
export const ENTRIES_HEADER_BYTES = PREFIX_BYTES + HEADER_BYTES[OP_ENTRIES]!;
export const ENTRY_LENGTH_BYTES = 4;

function writeHeaderStart(view: DataView, offset: number, op: number, flags: number, word: number, payloadLength: number): number {
  const headerLength = HEADER_BYTES[op]!;
  writePrefix(view, offset, headerLength, payloadLength, 0);
  const header = offset + PREFIX_BYTES;
  view.setUint8(header + HEADER_OP, op);
  view.setUint8(header + HEADER_FLAGS, flags);
  view.setUint16(header + HEADER_WORD, word, true);
  return header;
}

export function writeAcked(view: DataView, offset: number, handle: number, lsn: number, position: number): number {
  const header = writeHeaderStart(view, offset, OP_ACKED, 0, 0, 0);
  view.setUint32(header + HEADER_A, handle, true);
  view.setUint32(header + HEADER_B, lsn, true);
  view.setUint32(header + HEADER_C, 0, true);
  view.setFloat64(header + HEADER_POSITION, position, true);
  return ACKED_BYTES;
}

export function writeNacked(view: DataView, offset: number, reason: number, handle: number, lsn: number, expectedLsn: number, tail: number): number {
  const header = writeHeaderStart(view, offset, OP_NACKED, reason, 0, 0);
  view.setUint32(header + HEADER_A, handle, true);
  view.setUint32(header + HEADER_B, lsn, true);
  view.setUint32(header + HEADER_C, expectedLsn, true);
  view.setFloat64(header + HEADER_POSITION, tail, true);
  return NACKED_BYTES;
}

/** The header of an _entries frame whose `payloadLength` bytes of entries the caller writes after it. */
export function writeEntriesHeader(view: DataView, offset: number, flags: number, handle: number, rid: number, count: number, from: number, payloadLength: number): number {
  const header = writeHeaderStart(view, offset, OP_ENTRIES, flags, 0, payloadLength);
  view.setUint32(header + HEADER_A, handle, true);
  view.setUint32(header + HEADER_B, rid, true);
  view.setUint32(header + HEADER_C, count, true);
  view.setFloat64(header + HEADER_POSITION, from, true);
  return ENTRIES_HEADER_BYTES;
}

/** A msgpack payload for a control frame (off the hot path: connect, lease, errors). */
export function controlPayload(value: unknown): Buffer {
  return pack(value);
}

export function leasedBytes(payload: Uint8Array): number {
  return PREFIX_BYTES + HEADER_BYTES[OP_LEASED]! + payload.length;
}

export function writeLeased(view: DataView, bytes: Uint8Array, offset: number, rid: number, handle: number, writerEpoch: number, tail: number, nextLsn: number, payload: Uint8Array): number {
  const header = writeHeaderStart(view, offset, OP_LEASED, 0, 0, payload.length);
  view.setUint32(header + HEADER_A, rid, true);
  view.setUint32(header + HEADER_B, handle, true);
  view.setUint32(header + HEADER_C, writerEpoch, true);
  view.setFloat64(header + HEADER_POSITION, tail, true);
  view.setUint32(header + HEADER_D, nextLsn, true);
  bytes.set(payload, header + HEADER_BYTES[OP_LEASED]!);
  return leasedBytes(payload);
}

export function errorPayload(code: number, message: string, details?: Record<string, unknown>): Buffer {
  return pack({ code, name: ERROR_NAMES[code], message, ...details });
}

export function errorBytes(payload: Uint8Array): number {
  return PREFIX_BYTES + HEADER_BYTES[OP_ERROR]! + payload.length;
}

export function writeError(view: DataView, bytes: Uint8Array, offset: number, code: number, rid: number, handle: number, lsn: number, payload: Uint8Array): number {
  const header = writeHeaderStart(view, offset, OP_ERROR, 0, code, payload.length);
  view.setUint32(header + HEADER_A, rid, true);
  view.setUint32(header + HEADER_B, handle, true);
  view.setUint32(header + HEADER_C, lsn, true);
  bytes.set(payload, header + HEADER_BYTES[OP_ERROR]!);
  return errorBytes(payload);
}

/** A frame of header A = handle and a msgpack payload (`_revoke`, `_presence`). */
function handleFrameBytes(op: number, payload: Uint8Array): number {
  return PREFIX_BYTES + HEADER_BYTES[op]! + payload.length;
}

function writeHandleFrame(op: number, view: DataView, bytes: Uint8Array, offset: number, handle: number, payload: Uint8Array): number {
  const header = writeHeaderStart(view, offset, op, 0, 0, payload.length);
  view.setUint32(header + HEADER_A, handle, true);
  bytes.set(payload, header + HEADER_BYTES[op]!);
  return handleFrameBytes(op, payload);
}

export function revokedBytes(payload: Uint8Array): number {
  return handleFrameBytes(OP_REVOKED, payload);
}

export function writeRevoked(view: DataView, bytes: Uint8Array, offset: number, handle: number, payload: Uint8Array): number {
  return writeHandleFrame(OP_REVOKED, view, bytes, offset, handle, payload);
}

export function presenceBytes(payload: Uint8Array): number {
  return handleFrameBytes(OP_PRESENCE, payload);
}

export function writePresence(view: DataView, bytes: Uint8Array, offset: number, handle: number, payload: Uint8Array): number {
  return writeHandleFrame(OP_PRESENCE, view, bytes, offset, handle, payload);
}

export const SIGNALED_HEADER_BYTES = PREFIX_BYTES + HEADER_BYTES[OP_SIGNALED]!;

/** The header of a _signal frame; the caller writes the sender's device and the data after it. */
export function writeSignaledHeader(view: DataView, offset: number, handle: number, fromHandle: number, deviceLength: number, dataLength: number): number {
  const header = writeHeaderStart(view, offset, OP_SIGNALED, 0, 0, deviceLength + dataLength);
  view.setUint32(header + HEADER_A, handle, true);
  view.setUint32(header + HEADER_B, fromHandle, true);
  view.setUint32(header + HEADER_C, deviceLength, true);
  return SIGNALED_HEADER_BYTES;
}

// An `_ok` with an empty msgpack map: the answer to an op that has nothing to report.
const EMPTY_MAP = 0x80;
export const EMPTY_OK_BYTES = PREFIX_BYTES + HEADER_BYTES[OP_OK]! + 1;

export function writeEmptyOk(view: DataView, offset: number, rid: number): number {
  const header = writeHeaderStart(view, offset, OP_OK, 0, 0, 1);
  view.setUint32(header + HEADER_A, rid, true);
  view.setUint8(header + HEADER_BYTES[OP_OK]!, EMPTY_MAP);
  return EMPTY_OK_BYTES;
}
