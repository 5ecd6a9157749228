// The client: one session at a time over one WebSocket, opened again with backoff whenever
// it drops. Every leased log leases itself again on each new session and resumes its work
// there; this class only carries frames between the socket and the logs.
import { unpack } from 'msgpackr';
import { ENTRY_BYTES_MAX_DEFAULT } from '../constants.js';
import {
  CLOSE_NORMAL,
  CLOSE_PROTOCOL,
  ENTRIES_READ_REPLY,
  OP_ACKED,
  OP_CONNECTED,
  OP_ENTRIES,
  OP_ERROR,
  OP_LEASED,
  OP_NACKED,
} from '../net/protocol.js';
import { backoffDelay } from './backoff.js';
import { connectFrame, decodeFrames, type Frame } from './codec.js';
import { errorFromPayload, TailgroveError } from './errors.js';
import type { Link, Reply } from './link.js';
import { Log } from './log.js';
import { CONNECT_TIMEOUT_MS, openSocket, type FrameSocket } from './socket.js';
import type { Client, ConnectOptions, LeasedLog, Session } from './types.js';

// Token refusals: a new session cannot succeed unless the app hands out a new token.
const TOKEN_ERRORS = new Set(['BAD_TOKEN', 'TOKEN_EXPIRED']);
// A session that lasted this long was healthy: the next reconnect starts the backoff afresh.
// Shorter ones keep backing off, so a fault that kills every session cannot spin.
const STABLE_SESSION_MS = 10_000;
const RID_MAX = 0xffffffff;

interface Handshake {
  rid: number;
  resolve(session: Session): void;
  reject(error: TailgroveError): void;
}

export class TailgroveClient implements Client, Link {
  readonly #url: string;
  readonly #options: ConnectOptions;
  #socket: FrameSocket | undefined;
  #session: Session | undefined;
  #sessionStartedAt = 0;
  #entryBytesMax = ENTRY_BYTES_MAX_DEFAULT;
  #handshake: Handshake | undefined;
  #lastRid = 0;
  readonly #requests = new Map<number, Reply>();
  readonly #handles = new Map<number, Log>();
  readonly #logs = new Map<string, Log>();
  // Outlives a log's release, so leasing it again continues the same writer.
  readonly #writerEpochs = new Map<string, number>();
  #attempt = 0;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #closed: TailgroveError | undefined;

  constructor(url: string, options: ConnectOptions) {
    this.#url = url;
    this.#options = options;
  }

  get session(): Session | undefined {
    return this.#session;
  }

  get entryBytesMax(): number {
    return this.#entryBytesMax;
  }

  /** The first session. Its failure is the caller's, without retries: a wrong URL or token fails fast. */
  async open(): Promise<void> {
    try {
      await this.#openSession();
    } catch (error) {
      this.#shutdown(new TailgroveError('CLOSED', 'the first connection failed'));
      throw error;
    }
  }

  async lease(site: string, name: string): Promise<LeasedLog> {
    if (this.#closed) throw this.#closed;
    const key = logKey(site, name);
    let log = this.#logs.get(key);
    if (log === undefined) {
      log = new Log(this, site, name, this.#writerEpochs.get(key) ?? this.#options.writerEpochs?.get(site, name));
      this.#logs.set(key, log);
      if (this.#session) log.lease();
    }
    return log.ready;
  }

  async close(): Promise<void> {
    const socket = this.#socket;
    this.#shutdown(new TailgroveError('CLOSED', 'the client was closed'));
    await socket?.closed;
  }

  // Link, for the logs.

  send(frame: Uint8Array): void {
    this.#socket?.send(frame);
  }

  request(reply: Reply): number {
    const rid = this.#nextRid();
    this.#requests.set(rid, reply);
    return rid;
  }

  forget(rid: number): void {
    this.#requests.delete(rid);
  }

  bind(handle: number, log: Log): void {
    this.#handles.set(handle, log);
  }

  drop(log: Log): void {
    const key = logKey(log.site, log.name);
    if (this.#logs.get(key) === log) this.#logs.delete(key);
    if (this.#handles.get(log.handle) === log) this.#handles.delete(log.handle);
  }

  leased(log: Log, writerEpoch: number): void {
    this.#writerEpochs.set(logKey(log.site, log.name), writerEpoch);
    this.#options.writerEpochs?.set(log.site, log.name, writerEpoch);
  }

  // Sessions.

  async #openSession(): Promise<void> {
    const { token } = this.#options;
    const tokenNow = typeof token === 'function' ? await token() : token;
    const socket: FrameSocket = await openSocket(this.#url, this.#options.WebSocket, {
      message: (bytes) => this.#onMessage(socket, bytes),
      close: (code, reason) => this.#onClose(socket, code, reason),
    });
    if (this.#closed) {
      socket.close(CLOSE_NORMAL, 'client closed');
      throw this.#closed;
    }
    this.#socket = socket;
    let session: Session;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      session = await new Promise<Session>((resolve, reject) => {
        const rid = this.#nextRid();
        this.#handshake = { rid, resolve, reject };
        socket.send(connectFrame(rid, tokenNow));
        timer = setTimeout(() => reject(new TailgroveError('DISCONNECTED', 'the server did not answer connect')), CONNECT_TIMEOUT_MS);
      });
    } catch (error) {
      this.#handshake = undefined;
      if (this.#socket === socket) this.#socket = undefined; // its close event is then ignored
      socket.close(CLOSE_NORMAL, 'connect failed');
      throw error;
    } finally {
      clearTimeout(timer);
    }
    this.#session = session;
    this.#sessionStartedAt = Date.now();
    this.#entryBytesMax = session.entryBytesMax ?? ENTRY_BYTES_MAX_DEFAULT;
    for (const log of [...this.#logs.values()]) log.lease();
  }

  #nextRid(): number {
    this.#lastRid = (this.#lastRid % RID_MAX) + 1; // a u32 on the wire, never 0
    return this.#lastRid;
  }

  #onClose(socket: FrameSocket, code: number, reason: string): void {
    if (socket !== this.#socket) return;
    this.#socket = undefined;
    const wasOpen = this.#session !== undefined;
    this.#session = undefined;
    this.#requests.clear();
    this.#handles.clear();
    for (const log of this.#logs.values()) log.suspend();
    const error = new TailgroveError('DISCONNECTED', `the connection closed (${code}${reason ? `: ${reason}` : ''})`);
    this.#handshake?.reject(error);
    this.#handshake = undefined;
    // A handshake that failed is retried by whoever awaited it; an open session is retried here.
    if (wasOpen && !this.#closed) {
      if (Date.now() - this.#sessionStartedAt >= STABLE_SESSION_MS) this.#attempt = 0;
      this.#scheduleReconnect();
    }
  }

  #scheduleReconnect(): void {
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      this.#openSession().catch((error: unknown) => this.#onReconnectFailed(error));
    }, backoffDelay(this.#attempt++));
  }

  #onReconnectFailed(error: unknown): void {
    if (this.#closed) return;
    const code = error instanceof TailgroveError ? error.code : '';
    const hopeless = code === 'BAD_VERSION' || (TOKEN_ERRORS.has(code) && typeof this.#options.token === 'string');
    if (hopeless) this.#shutdown(error as TailgroveError);
    else this.#scheduleReconnect();
  }

  /** End the session now, without waiting for the close handshake; the next one rebuilds all state. */
  #resync(socket: FrameSocket, code: number, reason: string): void {
    socket.close(code, reason);
    this.#onClose(socket, code, reason);
  }

  #shutdown(error: TailgroveError): void {
    if (this.#closed) return;
    this.#closed = error;
    clearTimeout(this.#reconnectTimer);
    this.#handshake?.reject(error);
    this.#handshake = undefined;
    for (const log of [...this.#logs.values()]) log.fail(error);
    const socket = this.#socket;
    this.#socket = undefined;
    this.#session = undefined;
    socket?.close(CLOSE_NORMAL, 'client closed');
  }

  // Frames from the server.

  #onMessage(socket: FrameSocket, bytes: Uint8Array): void {
    if (socket !== this.#socket) return;
    try {
      for (const frame of decodeFrames(bytes)) {
        this.#dispatch(socket, frame);
        if (socket !== this.#socket) return; // the frame ended the session
      }
    } catch (error) {
      this.#resync(socket, CLOSE_PROTOCOL, `malformed frame: ${(error as Error).message}`.slice(0, 120));
    }
  }

  #dispatch(socket: FrameSocket, frame: Frame): void {
    switch (frame.op) {
      case OP_CONNECTED:
        this.#onConnected(frame);
        break;
      case OP_LEASED:
        this.#requests.get(frame.a)?.frame(frame);
        break;
      case OP_ACKED:
        this.#handles.get(frame.a)?.onAck(frame.b, frame.position);
        break;
      case OP_NACKED:
        this.#handles.get(frame.a)?.onNack(frame.flags, frame.b, frame.c, frame.position);
        break;
      case OP_ENTRIES:
        if ((frame.flags & ENTRIES_READ_REPLY) !== 0) this.#requests.get(frame.b)?.frame(frame);
        else this.#handles.get(frame.a)?.onTailFrame(frame);
        break;
      case OP_ERROR:
        this.#onError(socket, frame);
        break;
      // Ops newer than this client are skipped (docs/PROTOCOL.md, "Versioning").
    }
  }

  #onConnected(frame: Frame): void {
    const handshake = this.#handshake;
    if (handshake === undefined || frame.a !== handshake.rid) return;
    this.#handshake = undefined;
    handshake.resolve(unpack(frame.payload) as Session);
  }

  #onError(socket: FrameSocket, frame: Frame): void {
    const error = errorFromPayload(frame.word, frame.payload);
    const handshake = this.#handshake;
    if (handshake !== undefined && frame.a === handshake.rid) {
      this.#handshake = undefined;
      handshake.reject(error);
      return;
    }
    // The server dropped a frame without saying which: resend everything on a new session
    // (every resend is idempotent: appends by lsn, tails and reads by position).
    if (error.code === 'OVERLOADED') return this.#resync(socket, CLOSE_NORMAL, 'resync after OVERLOADED');
    if (frame.a !== 0) {
      // The answer to a request; none waiting means the request was abandoned.
      this.#requests.get(frame.a)?.error(error);
      return;
    }
    if (this.#handles.get(frame.b)?.onError(error)) return;
    // Not about any one request: this client's picture of the session may be wrong.
    this.#resync(socket, CLOSE_NORMAL, `resync after ${error.code}`);
  }
}

function logKey(site: string, name: string): string {
  return `${site}\0${name}`;
}
