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
  OP_LEASE,
  OP_READ,
  OP_RELEASE,
  OP_TAIL,
  OP_UNTAIL,
  OP_WRITE,
  OP_SIGNAL,
  HEADER_C,
  IO_THREAD_OPS,
} from './protocol.js';

// Header length by op for inbound ops (0 = not a device op), as a flat table for the hot path.
const INBOUND_HEADER_BYTES = new Uint8Array(256);
for (const op of [...IO_THREAD_OPS, OP_LEASE, OP_WRITE, OP_ACK, OP_READ, OP_TAIL, OP_UNTAIL, OP_RELEASE, OP_SIGNAL]) {
  INBOUND_HEADER_BYTES[op] = HEADER_BYTES[op]!;
}
// Ops the IO thread answers itself, as a flat table for the router's hot path.
const IO_THREAD_OP = new Uint8Array(256);
for (const op of IO_THREAD_OPS) IO_THREAD_OP[op] = 1;

export function isIoThreadOp(op: number): boolean {
  return IO_THREAD_OP[op] === 1;
}

// Where each op keeps its request id (byte offset in the header; 0xff: none).
const RID_FIELD = new Uint8Array(256).fill(0xff);
for (const op of [...IO_THREAD_OPS, OP_LEASE]) RID_FIELD[op] = HEADER_A;
RID_FIELD[OP_READ] = HEADER_B;
RID_FIELD[OP_SIGNAL] = HEADER_C;

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
  signalBytesMax: number;
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
  const payloadMax = op === OP_WRITE ? limits.entryBytesMax : op === OP_SIGNAL ? limits.signalBytesMax : limits.controlBytesMax;
  if (payloadLength > payloadMax) return -ERROR.TOO_LARGE;
  const total = PREFIX_BYTES + headerLength + payloadLength;
  if (total > available) return -ERROR.BAD_FRAME;
  return total;
}

/**
 * The request id a device put in a frame (IO-thread ops and lease: A; read: B; signal: C;
 * other ops have none), or 0 when the message ends before it.
 */
export function frameRid(bytes: Uint8Array, offset: number): number {
  const header = offset + PREFIX_BYTES;
  if (bytes.length <= header) return 0;
  const field = RID_FIELD[frameOp(bytes, offset)]!;
  if (field === 0xff || bytes.length < header + field + 4) return 0;
  return readUint32(bytes, header + field);
}
