// Frame codec: validate the fixed prefix and op header of an inbound frame, and write the
// prefix and header of an outbound one. Allocation-free: everything works on a DataView
// and offsets the caller owns.
import { PREFIX_BYTES, SHARD_COUNT } from '../constants.js';
import {
  ERROR,
  HEADER_A,
  HEADER_B,
  HEADER_BYTES,
  HEADER_OP,
  PREFIX_HEADER_LENGTH,
  PREFIX_PAYLOAD_LENGTH,
  PREFIX_SHARD,
  OP_ACK,
  OP_ATTEST,
  OP_CONNECT,
  OP_REFRESH,
  OP_LEASE,
  OP_READ,
  OP_RELEASE,
  OP_TAIL,
  OP_UNTAIL,
  OP_WRITE,
} from './protocol.js';

// Header length by op for inbound ops (0 = not a device op), as a flat table for the hot path.
const INBOUND_HEADER_BYTES = new Uint8Array(256);
for (const op of [OP_CONNECT, OP_LEASE, OP_WRITE, OP_ACK, OP_READ, OP_TAIL, OP_UNTAIL, OP_RELEASE, OP_ATTEST, OP_REFRESH]) {
  INBOUND_HEADER_BYTES[op] = HEADER_BYTES[op]!;
}

export function frameBytes(headerLength: number, payloadLength: number): number {
  return PREFIX_BYTES + headerLength + payloadLength;
}

export function writePrefix(view: DataView, offset: number, headerLength: number, payloadLength: number, shard: number): void {
  view.setUint16(offset + PREFIX_HEADER_LENGTH, headerLength, true);
  view.setUint32(offset + PREFIX_PAYLOAD_LENGTH, payloadLength, true);
  view.setUint16(offset + PREFIX_SHARD, shard, true);
}

/** Limits the validator enforces, fixed at startup. */
export interface FrameLimits {
  entryBytesMax: number;
  controlBytesMax: number;
}

export function readUint16(bytes: Uint8Array, offset: number): number {
  return bytes[offset]! | (bytes[offset + 1]! << 8);
}

export function readUint32(bytes: Uint8Array, offset: number): number {
  return (bytes[offset]! | (bytes[offset + 1]! << 8) | (bytes[offset + 2]! << 16) | (bytes[offset + 3]! << 24)) >>> 0;
}

export function frameOp(bytes: Uint8Array, offset: number): number {
  return bytes[offset + PREFIX_BYTES + HEADER_OP]!;
}

export function frameShard(bytes: Uint8Array, offset: number): number {
  return readUint16(bytes, offset + PREFIX_SHARD);
}

/**
 * Validate the frame starting at `offset` with `available` bytes left in the message.
 * Returns the frame's total length (> 0), or the negated error code. Reads only the prefix
 * and the op byte, never the payload; works on the message's bytes without a DataView.
 */
export function checkFrame(bytes: Uint8Array, offset: number, available: number, limits: FrameLimits): number {
  if (available < PREFIX_BYTES + 4) return -ERROR.BAD_FRAME;
  const headerLength = readUint16(bytes, offset + PREFIX_HEADER_LENGTH);
  const payloadLength = readUint32(bytes, offset + PREFIX_PAYLOAD_LENGTH);
  const shard = readUint16(bytes, offset + PREFIX_SHARD);
  const op = bytes[offset + PREFIX_BYTES + HEADER_OP]!;
  const expected = INBOUND_HEADER_BYTES[op]!;
  if (expected === 0) return -ERROR.UNKNOWN_OP;
  if (headerLength !== expected) return -ERROR.BAD_FRAME;
  if (shard >= SHARD_COUNT) return -ERROR.WRONG_SHARD;
  const payloadMax = op === OP_WRITE ? limits.entryBytesMax : limits.controlBytesMax;
  if (payloadLength > payloadMax) return -ERROR.TOO_LARGE;
  const total = PREFIX_BYTES + headerLength + payloadLength;
  if (total > available) return -ERROR.BAD_FRAME;
  return total;
}

/**
 * The request id a device put in a frame (connect, lease, attest, refresh: A; read: B; other
 * ops have none), or 0 when the message ends before it.
 */
export function frameRid(bytes: Uint8Array, offset: number): number {
  const header = offset + PREFIX_BYTES;
  if (bytes.length <= header) return 0;
  const op = frameOp(bytes, offset);
  const field = op === OP_CONNECT || op === OP_LEASE || op === OP_ATTEST || op === OP_REFRESH ? HEADER_A : op === OP_READ ? HEADER_B : -1;
  if (field < 0 || bytes.length < header + field + 4) return 0;
  return readUint32(bytes, header + field);
}
