// A deliberately plain protocol client for server tests: builds device frames byte by byte
// and decodes server frames into objects, over the `ws` package. Independent of src/client,
// so the server is tested against the protocol document, not against our own SDK.
import WebSocket from 'ws';
import { pack, unpack } from 'msgpackr';
import { SHARD_COUNT } from '../../src/constants.js';
import {
  ENTRIES_CAUGHT_UP,
  ENTRIES_READ_REPLY,
  LEASE_NEW_WRITER,
  OP_ACK,
  OP_ACKED,
  OP_CONNECT,
  OP_CONNECTED,
  OP_ENTRIES,
  OP_ERROR,
  OP_LEASE,
  OP_LEASED,
  OP_NACKED,
  OP_READ,
  OP_RELEASE,
  OP_TAIL,
  OP_UNTAIL,
  OP_WRITE,
  WRITE_HAS_AT,
  ERROR_NAMES,
  shardOf,
} from '../../src/net/protocol.js';

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
  tail: (shard: number, handle: number, from: number) => frame(OP_TAIL, 24, shard, { a: handle, position: from }),
  untail: (shard: number, handle: number) => frame(OP_UNTAIL, 8, shard, { a: handle }),
  release: (shard: number, handle: number) => frame(OP_RELEASE, 8, shard, { a: handle }),
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
    } else if (payloadLength > 0) {
      decoded.body = unpack(payload) as Record<string, unknown>;
    }
    out.push(decoded);
    offset = header + headerLength + payloadLength;
  }
  return out;
}

export class RawClient {
  readonly socket: WebSocket;
  readonly received: ServerFrame[] = [];
  closeCode: number | undefined;
  private waiters: { match: (frame: ServerFrame) => boolean; resolve: (frame: ServerFrame) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }[] = [];
  private cursor = 0;

  private constructor(socket: WebSocket) {
    this.socket = socket;
    socket.on('message', (data: Buffer) => {
      for (const decoded of decodeFrames(data)) {
        this.received.push(decoded);
        this.waiters = this.waiters.filter((waiter) => {
          if (!waiter.match(decoded)) return true;
          clearTimeout(waiter.timer);
          waiter.resolve(decoded);
          return false;
        });
      }
    });
    socket.on('close', (code) => {
      this.closeCode = code;
    });
  }

  static async open(url: string): Promise<RawClient> {
    const socket = new WebSocket(url);
    socket.binaryType = 'nodebuffer';
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    return new RawClient(socket);
  }

  /** Open and connect with `token`; resolves with the _connected frame. */
  static async connected(url: string, token: string): Promise<RawClient> {
    const client = await RawClient.open(url);
    client.send(frames.connect(token));
    const reply = await client.next((f) => f.op === OP_CONNECTED || f.op === OP_ERROR);
    if (reply.op !== OP_CONNECTED) throw new Error(`connect refused: ${JSON.stringify(reply.body)}`);
    return client;
  }

  send(...parts: Buffer[]): void {
    this.socket.send(Buffer.concat(parts));
  }

  /** The next frame (in arrival order, not consumed before) matching `match`. */
  next(match: (frame: ServerFrame) => boolean, timeoutMs = 10000): Promise<ServerFrame> {
    for (let i = this.cursor; i < this.received.length; i++) {
      if (match(this.received[i]!)) {
        const found = this.received[i]!;
        this.received.splice(i, 1);
        return Promise.resolve(found);
      }
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for a frame; received ops ${this.received.map((f) => f.op.toString(16)).join(',')}`)), timeoutMs);
      this.waiters.push({
        match,
        resolve: (found) => {
          this.received.splice(this.received.indexOf(found), 1);
          resolve(found);
        },
        reject,
        timer,
      });
    });
  }

  async lease(site: string, log: string, rid: number, options: { newWriter?: boolean; writerEpoch?: number } = {}): Promise<{ handle: number; shard: number; tail: number; writerEpoch: number; nextLsn: number; body: Record<string, unknown> }> {
    this.send(frames.lease(site, log, rid, options));
    const reply = await this.next((f) => (f.op === OP_LEASED || f.op === OP_ERROR) && f.a === rid);
    if (reply.op !== OP_LEASED) throw Object.assign(new Error(`lease refused: ${JSON.stringify(reply.body)}`), { code: reply.body?.name });
    return { handle: reply.b, shard: shardOf(site, log, SHARD_COUNT), tail: reply.position, writerEpoch: reply.c, nextLsn: reply.d, body: reply.body! };
  }

  /** Wait for the outcome of write (handle, lsn): _ack, _nack or _error. */
  outcome(handle: number, lsn: number): Promise<ServerFrame> {
    return this.next((f) => ((f.op === OP_ACKED || f.op === OP_NACKED) && f.a === handle && f.b === lsn) || (f.op === OP_ERROR && f.b === handle));
  }

  /** Read [from, from+limit): resolves with the entries of every reply frame of rid. */
  async read(shard: number, handle: number, rid: number, from: number, limit: number): Promise<Buffer[]> {
    this.send(frames.read(shard, handle, rid, from, limit));
    const entries: Buffer[] = [];
    for (;;) {
      const reply = await this.next((f) => (f.op === OP_ENTRIES && (f.flags & ENTRIES_READ_REPLY) !== 0 && f.b === rid) || (f.op === OP_ERROR && f.a === rid));
      if (reply.op === OP_ERROR) throw Object.assign(new Error(`read refused: ${JSON.stringify(reply.body)}`), { code: reply.body?.name });
      entries.push(...reply.entries!);
      if ((reply.flags & ENTRIES_CAUGHT_UP) !== 0 || entries.length >= limit) return entries;
    }
  }

  async close(): Promise<void> {
    if (this.socket.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.close();
    });
  }
}

export function errorName(frame: ServerFrame): string | undefined {
  return ERROR_NAMES[frame.word];
}

export { OP_ACKED, OP_NACKED, OP_ENTRIES, OP_ERROR, OP_LEASED, OP_CONNECTED, ENTRIES_CAUGHT_UP };
