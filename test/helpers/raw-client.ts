// A deliberately plain protocol client for server tests: builds device frames byte by byte
// and decodes server frames into objects, over the `ws` package. Independent of src/client,
// so the server is tested against the protocol document, not against our own SDK.
import WebSocket from 'ws';
import { SHARD_COUNT } from '../../src/constants.js';
import {
  ENTRIES_CAUGHT_UP,
  ENTRIES_READ_REPLY,
  ENTRIES_READ_END,
  OP_ACKED,
  OP_CONNECTED,
  OP_ENTRIES,
  OP_ERROR,
  OP_LEASED,
  OP_NACKED,
  ERROR_NAMES,
  shardOf,
} from '../../src/net/protocol.js';
import { decodeFrames, frames, type ServerFrame } from '../../src/testing/wire.js';

export { frames, decodeFrames, type ServerFrame };

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
  outcome(handle: number, lsn: number, timeoutMs?: number): Promise<ServerFrame> {
    return this.next((f) => ((f.op === OP_ACKED || f.op === OP_NACKED) && f.a === handle && f.b === lsn) || (f.op === OP_ERROR && f.b === handle), timeoutMs);
  }

  /** Read [from, from+limit): resolves with the entries of every reply frame of rid. */
  async read(shard: number, handle: number, rid: number, from: number, limit: number): Promise<Buffer[]> {
    this.send(frames.read(shard, handle, rid, from, limit));
    const entries: Buffer[] = [];
    for (;;) {
      const reply = await this.next((f) => (f.op === OP_ENTRIES && (f.flags & ENTRIES_READ_REPLY) !== 0 && f.b === rid) || (f.op === OP_ERROR && f.a === rid));
      if (reply.op === OP_ERROR) throw Object.assign(new Error(`read refused: ${JSON.stringify(reply.body)}`), { code: reply.body?.name });
      entries.push(...reply.entries!);
      if ((reply.flags & ENTRIES_READ_END) !== 0) return entries;
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
