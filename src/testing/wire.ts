// The wire format from the device's side, written plainly from docs/PROTOCOL.md: device
// frames built byte by byte, server frames decoded into objects. Used by the simulation and
// the server tests, independent of src/client so the server is checked against the document.
import { pack, unpack } from 'msgpackr';
import { SHARD_COUNT } from '../constants.js';
import {
  LEASE_NEW_WRITER,
  OP_ACK,
  OP_CONNECT,
  OP_ENTRIES,
  OP_LEASE,
  OP_READ,
  OP_RELEASE,
  OP_TAIL,
  OP_UNTAIL,
  OP_WRITE,
  OP_SIGNAL,
  OP_SIGNALED,
  OP_JOIN,
  OP_LEAVE,
  OP_MUTE,
  OP_UNMUTE,
  OP_PUSH_SUBSCRIBE,
  OP_PUSH_UNSUBSCRIBE,
  WRITE_HAS_AT,
  shardOf,
} from '../net/protocol.js';

export interface ServerFrame {
  op: number;
  flags: number;
  word: number;
  a: number;
  b: number;
  c: number;
  position: number;
  d: number;
  payload: Buffer;
  /** Decoded: entries of _entries, msgpack body of control frames. */
  entries?: Buffer[];
  body?: Record<string, unknown>;
  /** Decoded _signal: the sender's device and the signal's bytes. */
  device?: string;
  data?: Buffer;
}

export function frame(op: number, headerLength: number, shard: number, fields: { flags?: number; word?: number; a?: number; b?: number; c?: number; position?: number }, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const bytes = Buffer.alloc(8 + headerLength + payload.length);
  bytes.writeUInt16LE(headerLength, 0);
  bytes.writeUInt32LE(payload.length, 2);
  bytes.writeUInt16LE(shard, 6);
  bytes.writeUInt8(op, 8);
  bytes.writeUInt8(fields.flags ?? 0, 9);
  bytes.writeUInt16LE(fields.word ?? 0, 10);
  if (headerLength >= 8) bytes.writeUInt32LE(fields.a ?? 0, 12);
  if (headerLength >= 12) bytes.writeUInt32LE(fields.b ?? 0, 16);
  if (headerLength >= 16) bytes.writeUInt32LE(fields.c ?? 0, 20);
  if (headerLength >= 24) bytes.writeDoubleLE(fields.position ?? 0, 24);
  Buffer.from(payload).copy(bytes, 8 + headerLength);
  return bytes;
}

export const frames = {
  connect: (token: string, rid = 1, version = 1) => frame(OP_CONNECT, 8, 0, { word: version, a: rid }, pack({ token })),
  lease: (site: string, log: string, rid: number, options: { newWriter?: boolean; writerEpoch?: number } = {}) =>
    frame(OP_LEASE, 12, shardOf(site, log, SHARD_COUNT), { flags: options.newWriter ? LEASE_NEW_WRITER : 0, a: rid, b: options.writerEpoch ?? 0 }, pack([site, log])),
  write: (shard: number, handle: number, lsn: number, data: Uint8Array, at?: number) =>
    frame(OP_WRITE, 24, shard, { flags: at === undefined ? 0 : WRITE_HAS_AT, a: handle, b: lsn, position: at ?? 0 }, data),
  ack: (shard: number, handle: number, lsn: number) => frame(OP_ACK, 12, shard, { a: handle, b: lsn }),
  read: (shard: number, handle: number, rid: number, from: number, limit: number) => frame(OP_READ, 24, shard, { a: handle, b: rid, c: limit, position: from }),
  tail: (shard: number, handle: number, from: number, tailId = 0) => frame(OP_TAIL, 24, shard, { a: handle, b: tailId, position: from }),
  untail: (shard: number, handle: number) => frame(OP_UNTAIL, 8, shard, { a: handle }),
  release: (shard: number, handle: number) => frame(OP_RELEASE, 8, shard, { a: handle }),
  signal: (shard: number, handle: number, toHandle: number, rid: number, data: Uint8Array) => frame(OP_SIGNAL, 16, shard, { a: handle, b: toHandle, c: rid }, data),
  join: (site: string, rid: number) => frame(OP_JOIN, 8, 0, { a: rid }, pack({ site })),
  leave: (site: string, rid: number) => frame(OP_LEAVE, 8, 0, { a: rid }, pack({ site })),
  mute: (site: string, seconds: number, rid: number) => frame(OP_MUTE, 8, 0, { a: rid }, pack({ site, seconds })),
  unmute: (site: string, rid: number) => frame(OP_UNMUTE, 8, 0, { a: rid }, pack({ site })),
  pushSubscribe: (subscription: { endpoint: string; keys: { p256dh: string; auth: string } }, rid: number) => frame(OP_PUSH_SUBSCRIBE, 8, 0, { a: rid }, pack(subscription)),
  pushUnsubscribe: (endpoint: string, rid: number) => frame(OP_PUSH_UNSUBSCRIBE, 8, 0, { a: rid }, pack({ endpoint })),
};

export function decodeFrames(message: Buffer): ServerFrame[] {
  const out: ServerFrame[] = [];
  let offset = 0;
  while (offset < message.length) {
    const headerLength = message.readUInt16LE(offset);
    const payloadLength = message.readUInt32LE(offset + 2);
    const header = offset + 8;
    const field = (at: number, size: number): number => (at + size <= headerLength ? (size === 4 ? message.readUInt32LE(header + at) : message.readDoubleLE(header + at)) : 0);
    const payload = message.subarray(header + headerLength, header + headerLength + payloadLength);
    const decoded: ServerFrame = {
      op: message.readUInt8(header),
      flags: message.readUInt8(header + 1),
      word: message.readUInt16LE(header + 2),
      a: field(4, 4),
      b: field(8, 4),
      c: field(12, 4),
      position: field(16, 8),
      d: field(24, 4),
      payload,
    };
    if (decoded.op === OP_ENTRIES) {
      decoded.entries = [];
      let at = 0;
      for (let i = 0; i < decoded.c; i++) {
        const length = payload.readUInt32LE(at);
        decoded.entries.push(Buffer.from(payload.subarray(at + 4, at + 4 + length)));
        at += 4 + length;
      }
    } else if (decoded.op === OP_SIGNALED) {
      decoded.device = payload.subarray(0, decoded.c).toString('utf8');
      decoded.data = Buffer.from(payload.subarray(decoded.c));
    } else if (payloadLength > 0) {
      decoded.body = unpack(payload) as Record<string, unknown>;
    }
    out.push(decoded);
    offset = header + headerLength + payloadLength;
  }
  return out;
}

