// One leased log: it leases itself on every session the client opens, and on each new lease
// resumes its work there (unanswered appends, its tail, unfinished reads), so callers never
// see a reconnect.
import { unpack } from 'msgpackr';
import { READ_LIMIT_MAX, SHARD_COUNT } from '../constants.js';
import { ENTRIES_CAUGHT_UP, ENTRIES_READ_END, shardOf } from '../net/protocol.js';
import { decodeEntries, decodeSignal, leaseFrame, readFrame, releaseFrame, signalFrame, untailFrame, type Frame } from './codec.js';
import { callSafely } from './call-safely.js';
import { TailgroveError } from './errors.js';
import type { Attachment, Link } from './link.js';
import { TailStream } from './tail.js';
import type { AppendOptions, Attached, Entry, LeasedLog, Signal, Tail, TailOptions } from './types.js';
import { Writer } from './writer.js';

interface LeaseInfo {
  epoch: number;
  leader: Attached | null;
  presence: Attached[];
}

interface PendingRead {
  from: number;
  limit: number;
  entries: Entry[];
  /** The request in flight: its id and how many entries it asked for. */
  rid: number;
  chunk: number;
  chunkStart: number;
  resolve(entries: Entry[]): void;
  reject(error: Error): void;
}

// Error codes about a handle's writes, and about its tail; any other error on a handle
// leaves the session's state unknown, and the client starts a new session.
const WRITE_ERRORS = new Set(['FENCED', 'FORBIDDEN', 'STALE_LSN', 'TOO_LARGE']);
const TAIL_ERRORS = new Set(['GONE', 'TAIL_LIMIT']);

export class Log implements LeasedLog, Attachment {
  readonly site: string;
  readonly name: string;
  readonly shard: number;
  readonly link: Link;
  handle = 0;
  position = 0;
  epoch = 0;
  leader: Attached | null = null;
  presence: readonly Attached[] = [];
  attached = false;
  /** Settles with the first lease. */
  readonly ready: Promise<Log>;
  readonly #writer: Writer;
  readonly #reads = new Set<PendingRead>();
  #tail: TailStream | undefined;
  #leasedOnce = false;
  #failed: TailgroveError | undefined;
  #settleReady!: (error?: TailgroveError) => void;
  readonly #presenceListeners = new Set<(presence: readonly Attached[], leader: Attached | null) => void>();
  readonly #signalListeners = new Set<(signal: Signal) => void>();

  constructor(link: Link, site: string, name: string, writerEpoch: number | undefined) {
    this.link = link;
    this.site = site;
    this.name = name;
    this.shard = shardOf(site, name, SHARD_COUNT);
    this.#writer = new Writer(this, writerEpoch);
    this.ready = new Promise((resolve, reject) => {
      this.#settleReady = (error) => (error ? reject(error) : resolve(this));
    });
  }

  append(data: Uint8Array, options: AppendOptions = {}): Promise<number> {
    if (this.#failed) return Promise.reject(this.#failed);
    return this.#writer.append(data, options.at);
  }

  read(from: number, limit: number): Promise<Entry[]> {
    if (this.#failed) return Promise.reject(this.#failed);
    if (!isCount(from) || !isCount(limit)) return Promise.reject(new RangeError('read(from, limit) takes non-negative integers'));
    if (limit === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      const read: PendingRead = { from, limit, entries: [], rid: 0, chunk: 0, chunkStart: 0, resolve, reject };
      this.#reads.add(read);
      if (this.attached) this.#issue(read);
    });
  }

  tail(from: number, onEntries: (entries: Entry[]) => void, options: TailOptions = {}): Tail {
    if (this.#failed) throw this.#failed;
    if (!isCount(from)) throw new RangeError('tail(from) takes a non-negative integer');
    // The server keeps one tail per handle; a second one would restart the first.
    if (this.#tail) throw new Error(`${this.site}/${this.name} is already tailed; close that tail first`);
    const tail = new TailStream(this, from, onEntries, options, () => {
      if (this.#tail === tail) this.#tail = undefined;
      if (this.attached) this.link.send(untailFrame(this.shard, this.handle));
    });
    this.#tail = tail;
    tail.start();
    return tail;
  }

  get isLeader(): boolean {
    return this.attached && this.leader?.handle === this.handle;
  }

  onPresence(callback: (presence: readonly Attached[], leader: Attached | null) => void): () => void {
    this.#presenceListeners.add(callback);
    return () => this.#presenceListeners.delete(callback);
  }

  onSignal(callback: (signal: Signal) => void): () => void {
    this.#signalListeners.add(callback);
    return () => this.#signalListeners.delete(callback);
  }

  signal(toHandle: number, data: Uint8Array): Promise<void> {
    if (this.#failed) return Promise.reject(this.#failed);
    if (!this.attached) return Promise.reject(new TailgroveError('DISCONNECTED', `${this.site}/${this.name} is not leased right now (reconnecting): handles change with the session`));
    if (!Number.isInteger(toHandle) || toHandle < 0 || toHandle > 0xffffffff) return Promise.reject(new RangeError('signal(toHandle) takes a handle from the presence'));
    return new Promise((resolve, reject) => {
      const rid = this.link.request({
        frame: () => {
          this.link.forget(rid);
          resolve();
        },
        error: (error) => {
          this.link.forget(rid);
          reject(error);
        },
      });
      this.link.send(signalFrame(this.shard, this.handle, toHandle, rid, data));
    });
  }

  onPresenceFrame(frame: Frame): void {
    const info = unpack(frame.payload) as { presence: Attached[]; leader: Attached | null };
    this.#setPresence(info.presence, info.leader);
  }

  onSignalFrame(frame: Frame): void {
    const { device, data } = decodeSignal(frame);
    const signal: Signal = { from: frame.b, device, data };
    for (const listener of this.#signalListeners) callSafely(() => listener(signal));
  }

  #setPresence(presence: Attached[], leader: Attached | null): void {
    this.presence = presence;
    this.leader = leader;
    for (const listener of this.#presenceListeners) callSafely(() => listener(presence, leader));
  }

  release(): void {
    if (this.#failed) return;
    if (this.attached) this.link.send(releaseFrame(this.shard, this.handle));
    this.fail(new TailgroveError('RELEASED', `${this.site}/${this.name} was released`));
  }

  /** Lease on the current session (the client calls this for every new session). */
  lease(): void {
    if (this.#failed) return;
    const rid = this.link.control(
      {
        frame: (frame) => {
          this.link.forget(rid);
          this.#onLeased(frame);
        },
        error: (error) => {
          this.link.forget(rid);
          this.fail(error);
        },
      },
      (rid) => leaseFrame(this.shard, rid, this.#writer.writerEpoch, this.site, this.name),
    );
  }

  /** Frames sent on this session may have been dropped (RATE_LIMITED): send again what is unanswered. */
  replay(): void {
    if (!this.attached) return;
    this.#writer.replay();
    this.#tail?.replay();
    for (const read of this.#reads) {
      this.link.forget(read.rid); // a late answer to the first request is then ignored
      this.#issue(read);
    }
  }

  /** The session ended: handles and request ids died with it. */
  suspend(): void {
    this.attached = false;
  }

  /** Stop for good: reject everything pending and everything later with `error`. */
  fail(error: TailgroveError): void {
    if (this.#failed) return;
    this.#failed = error;
    this.attached = false;
    this.#settleReady(error);
    this.#writer.fail(error);
    this.#tail?.fail(error);
    for (const read of this.#reads) read.reject(error);
    this.#reads.clear();
    this.link.drop(this);
  }

  onAck(lsn: number, position: number): void {
    this.#writer.onAck(lsn, position);
  }

  onNack(reason: number, lsn: number, expectedLsn: number, tail: number): void {
    this.#writer.onNack(reason, lsn, expectedLsn, tail);
  }

  onTailFrame(frame: Frame): void {
    this.#tail?.onFrame(frame);
  }

  /** An `_error` about this handle without a request id (`lsn` for a write's); false when it is not about one op of this log. */
  onError(error: TailgroveError, lsn: number): boolean {
    if (error.code === 'UNACKED_LIMIT') {
      this.#writer.onUnackedLimit(lsn);
      return true;
    }
    if (WRITE_ERRORS.has(error.code)) {
      this.#writer.fail(error);
      return true;
    }
    if (TAIL_ERRORS.has(error.code)) {
      this.#tail?.fail(error);
      return true;
    }
    return false;
  }

  #onLeased(frame: Frame): void {
    const handle = frame.b;
    if (this.#failed) {
      // Released or failed while the lease was in flight: give the handle back.
      this.link.send(releaseFrame(this.shard, handle));
      return;
    }
    const info = unpack(frame.payload) as LeaseInfo;
    if (this.#leasedOnce && info.epoch !== this.epoch) {
      this.link.send(releaseFrame(this.shard, handle));
      this.fail(new TailgroveError('LOG_RECREATED', `${this.site}/${this.name} was lost and recreated (epoch ${this.epoch} → ${info.epoch})`));
      return;
    }
    this.handle = handle;
    this.position = frame.position;
    this.epoch = info.epoch;
    this.attached = true;
    this.link.bind(handle, this);
    this.#setPresence(info.presence, info.leader);
    this.link.leased(this, frame.c);
    if (this.#leasedOnce) {
      this.#writer.resume();
    } else {
      this.#leasedOnce = true;
      this.#writer.begin(frame.c, frame.d);
      this.#settleReady();
    }
    this.#tail?.start();
    for (const read of this.#reads) this.#issue(read);
  }

  // A read goes out in requests of at most READ_LIMIT_MAX entries; after a reconnect the
  // rest of it is asked for again from the first position not yet received.
  #issue(read: PendingRead): void {
    read.chunkStart = read.entries.length;
    read.chunk = Math.min(read.limit - read.entries.length, READ_LIMIT_MAX);
    read.rid = this.link.request({ frame: (frame) => this.#onReadFrame(read, frame), error: (error) => this.#finishRead(read, error) });
    this.link.send(readFrame(this.shard, this.handle, read.rid, read.from + read.entries.length, read.chunk));
  }

  #onReadFrame(read: PendingRead, frame: Frame): void {
    const entries = decodeEntries(frame.payload, frame.c);
    const next = read.from + read.entries.length;
    if (frame.position > next) throw new RangeError(`read answer skips from ${next} to ${frame.position}`);
    for (let i = Math.max(0, next - frame.position); i < entries.length; i++) read.entries.push({ position: frame.position + i, data: entries[i]! });
    if ((frame.flags & ENTRIES_READ_END) === 0) return;
    // The answer is complete: it reached the log's tail, or the limit, or the server's byte
    // cap per answer (then ask again from the next position).
    if ((frame.flags & ENTRIES_CAUGHT_UP) !== 0 || read.entries.length >= read.limit) {
      this.#finishRead(read);
    } else {
      this.link.forget(read.rid);
      this.#issue(read);
    }
  }

  #finishRead(read: PendingRead, error?: TailgroveError): void {
    this.link.forget(read.rid);
    this.#reads.delete(read);
    if (error) read.reject(error);
    else read.resolve(read.entries);
  }
}

function isCount(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0;
}
