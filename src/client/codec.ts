// Frame codec (docs/PROTOCOL.md, "Frame layout"): build device → server frames and split a
// WebSocket message into frames. Pure functions over bytes, so they run unchanged in Node
// and in browsers.
import { pack } from 'msgpackr';
import { PREFIX_BYTES, PROTOCOL_VERSION } from '../constants.js';
import {
  HEADER_A,
  HEADER_B,
  HEADER_BYTES,
  HEADER_C,
  HEADER_D,
  HEADER_FLAGS,
  HEADER_OP,
  HEADER_POSITION,
  HEADER_WORD,
  LEASE_NEW_WRITER,
  OP_ACK,
  OP_ATTEST,
  OP_CONNECT,
  OP_LEASE,
  OP_READ,
  OP_REFRESH,
  OP_RELEASE,
  OP_TAIL,
  OP_UNTAIL,
  OP_WRITE,
  OP_SIGNAL,
  PREFIX_HEADER_LENGTH,
  PREFIX_PAYLOAD_LENGTH,
  PREFIX_SHARD,
  WRITE_HAS_AT,
} from '../net/protocol.js';

/** One frame with every header field; a field beyond the op's header length reads as 0. */
export interface Frame {
  shard: number;
  op: number;
  flags: number;
  word: number;
  a: number;
  b: number;
  c: number;
  position: number;
  d: number;
  payload: Uint8Array;
}

export type FrameFields = Partial<Pick<Frame, 'flags' | 'word' | 'a' | 'b' | 'c' | 'position' | 'd'>>;

const NO_PAYLOAD = new Uint8Array(0);
const ENTRY_LENGTH_BYTES = 4;
// The op, flags and word every op header starts with.
const HEADER_START_BYTES = HEADER_A;

/** Encode one frame of a known op; fields the op's header does not have are left out. */
export function encodeFrame(op: number, shard: number, fields: FrameFields, payload: Uint8Array = NO_PAYLOAD): Uint8Array {
  const headerLength = HEADER_BYTES[op];
  if (headerLength === undefined) throw new RangeError(`unknown op 0x${op.toString(16)}`);
  const bytes = new Uint8Array(PREFIX_BYTES + headerLength + payload.byteLength);
  const view = new DataView(bytes.buffer);
  view.setUint16(PREFIX_HEADER_LENGTH, headerLength, true);
  view.setUint32(PREFIX_PAYLOAD_LENGTH, payload.byteLength, true);
  view.setUint16(PREFIX_SHARD, shard, true);
  const header = PREFIX_BYTES;
  view.setUint8(header + HEADER_OP, op);
  view.setUint8(header + HEADER_FLAGS, fields.flags ?? 0);
  view.setUint16(header + HEADER_WORD, fields.word ?? 0, true);
  const has = (offset: number, size: number): boolean => offset + size <= headerLength;
  if (has(HEADER_A, 4)) view.setUint32(header + HEADER_A, fields.a ?? 0, true);
  if (has(HEADER_B, 4)) view.setUint32(header + HEADER_B, fields.b ?? 0, true);
  if (has(HEADER_C, 4)) view.setUint32(header + HEADER_C, fields.c ?? 0, true);
  if (has(HEADER_POSITION, 8)) view.setFloat64(header + HEADER_POSITION, fields.position ?? 0, true);
  if (has(HEADER_D, 4)) view.setUint32(header + HEADER_D, fields.d ?? 0, true);
  bytes.set(payload, header + headerLength);
  return bytes;
}

/**
 * Split a message into its frames. Payloads are views into `message`, not copies. Throws on
 * a truncated frame or a known op with the wrong header length; frames of ops this client
 * does not know are returned as they are, so the caller can skip them (newer servers).
 */
export function decodeFrames(message: Uint8Array): Frame[] {
  const view = new DataView(message.buffer, message.byteOffset, message.byteLength);
  const frames: Frame[] = [];
  let offset = 0;
  while (offset < message.byteLength) {
    if (message.byteLength - offset < PREFIX_BYTES + HEADER_START_BYTES) throw new RangeError(`truncated frame at byte ${offset}`);
    const headerLength = view.getUint16(offset + PREFIX_HEADER_LENGTH, true);
    const payloadLength = view.getUint32(offset + PREFIX_PAYLOAD_LENGTH, true);
    const header = offset + PREFIX_BYTES;
    const end = header + headerLength + payloadLength;
    if (headerLength < HEADER_START_BYTES || end > message.byteLength) throw new RangeError(`truncated frame at byte ${offset}`);
    const op = view.getUint8(header + HEADER_OP);
    const expected = HEADER_BYTES[op];
    if (expected !== undefined && expected !== headerLength) {
      throw new RangeError(`op 0x${op.toString(16)} has a ${headerLength}-byte header, expected ${expected}`);
    }
    const u32 = (field: number): number => (field + 4 <= headerLength ? view.getUint32(header + field, true) : 0);
    frames.push({
      shard: view.getUint16(offset + PREFIX_SHARD, true),
      op,
      flags: view.getUint8(header + HEADER_FLAGS),
      word: view.getUint16(header + HEADER_WORD, true),
      a: u32(HEADER_A),
      b: u32(HEADER_B),
      c: u32(HEADER_C),
      position: HEADER_POSITION + 8 <= headerLength ? view.getFloat64(header + HEADER_POSITION, true) : 0,
      d: u32(HEADER_D),
      payload: message.subarray(header + headerLength, end),
    });
    offset = end;
  }
  return frames;
}

/** The `count` entries of an _entries payload: each a u32 length and that many bytes (views, not copies). */
export function decodeEntries(payload: Uint8Array, count: number): Uint8Array[] {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const entries: Uint8Array[] = [];
  let offset = 0;
  for (let i = 0; i < count; i++) {
    if (offset + ENTRY_LENGTH_BYTES > payload.byteLength) throw new RangeError(`entries payload ends before entry ${i} of ${count}`);
    const length = view.getUint32(offset, true);
    offset += ENTRY_LENGTH_BYTES;
    if (offset + length > payload.byteLength) throw new RangeError(`entry ${i} of ${count} runs past the payload`);
    entries.push(payload.subarray(offset, offset + length));
    offset += length;
  }
  if (offset !== payload.byteLength) throw new RangeError(`entries payload has ${payload.byteLength - offset} bytes after ${count} entries`);
  return entries;
}

// Device → server ops. `shard` is shardOf(site, log) for every op about a log.

export function connectFrame(rid: number, token: string): Uint8Array {
  return encodeFrame(OP_CONNECT, 0, { word: PROTOCOL_VERSION, a: rid }, pack({ token }));
}

/** A new session token for the same user and device: the session, its leases and tails go on. */
export function refreshFrame(rid: number, token: string): Uint8Array {
  return encodeFrame(OP_REFRESH, 0, { a: rid }, pack({ token }));
}

/** A grant token whose grants the session gets in addition to its token's. */
export function attestFrame(rid: number, token: string): Uint8Array {
  return encodeFrame(OP_ATTEST, 0, { a: rid }, pack({ token }));
}

/** `writerEpoch` undefined: this client has no writer state for the log, so it opens a new epoch. */
export function leaseFrame(shard: number, rid: number, writerEpoch: number | undefined, site: string, log: string): Uint8Array {
  const flags = writerEpoch === undefined ? LEASE_NEW_WRITER : 0;
  return encodeFrame(OP_LEASE, shard, { flags, a: rid, b: writerEpoch ?? 0 }, pack([site, log]));
}

/** `at` defined: the write is conditional on the log's tail being `at`. */
export function writeFrame(shard: number, handle: number, lsn: number, at: number | undefined, data: Uint8Array): Uint8Array {
  const flags = at === undefined ? 0 : WRITE_HAS_AT;
  return encodeFrame(OP_WRITE, shard, { flags, a: handle, b: lsn, position: at ?? 0 }, data);
}

export function ackFrame(shard: number, handle: number, lsn: number): Uint8Array {
  return encodeFrame(OP_ACK, shard, { a: handle, b: lsn });
}

export function readFrame(shard: number, handle: number, rid: number, from: number, limit: number): Uint8Array {
  return encodeFrame(OP_READ, shard, { a: handle, b: rid, c: limit, position: from });
}

export function tailFrame(shard: number, handle: number, from: number): Uint8Array {
  return encodeFrame(OP_TAIL, shard, { a: handle, position: from });
}

export function untailFrame(shard: number, handle: number): Uint8Array {
  return encodeFrame(OP_UNTAIL, shard, { a: handle });
}

export function releaseFrame(shard: number, handle: number): Uint8Array {
  return encodeFrame(OP_RELEASE, shard, { a: handle });
}

/** A signal to the lease `toHandle` attached to the same log; answered by `_ok` or `_error` with `rid`. */
export function signalFrame(shard: number, handle: number, toHandle: number, rid: number, data: Uint8Array): Uint8Array {
  return encodeFrame(OP_SIGNAL, shard, { a: handle, b: toHandle, c: rid }, data);
}

/** A notification preference of the session's user (join, leave, mute, unmute, push subscribe/unsubscribe). */
export function preferenceFrame(op: number, rid: number, value: Record<string, unknown>): Uint8Array {
  return encodeFrame(op, 0, { a: rid }, pack(value));
}

const utf8 = new TextDecoder();

/** A `_signal`'s sender device and bytes. */
export function decodeSignal(frame: Frame): { device: string; data: Uint8Array } {
  if (frame.c > frame.payload.byteLength) throw new RangeError('signal device length runs past the payload');
  return { device: utf8.decode(frame.payload.subarray(0, frame.c)), data: frame.payload.subarray(frame.c) };
}
