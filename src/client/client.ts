// The client: one session at a time over one WebSocket, opened again with backoff whenever
// it drops. Every leased log leases itself again on each new session and resumes its work
// there; this class carries frames between the socket and the logs, and keeps the session's
// credentials alive (token refresh, attested grants) and its frames flowing (resends after
// the server drops a message).
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
  OP_OK,
  OP_REVOKED,
  OP_PRESENCE,
  OP_SIGNALED,
  OP_JOIN,
  OP_LEAVE,
  OP_MUTE,
  OP_UNMUTE,
  OP_PUSH_SUBSCRIBE,
  OP_PUSH_UNSUBSCRIBE,
} from '../net/protocol.js';
import { backoffDelay } from './backoff.js';
import { attestFrame, connectFrame, decodeFrames, preferenceFrame, refreshFrame, type Frame } from './codec.js';
import { errorFromPayload, TailgroveError } from './errors.js';
import type { Link, Reply } from './link.js';
import { Log } from './log.js';
import { CONNECT_TIMEOUT_MS, openSocket, type FrameSocket } from './socket.js';
import type { Client, ConnectOptions, LeasedLog, PushSubscriptionJSON, Session } from './types.js';

// Token refusals: a new session cannot succeed unless the app hands out a new token.
const TOKEN_ERRORS = new Set(['BAD_TOKEN', 'TOKEN_EXPIRED', 'REVOKED']);
// A session token is refreshed when this share of its remaining lifetime has passed: early
// enough that a slow getToken() or round trip still beats the server's expiry close (4003).
const REFRESH_AT = 0.8;
// ... but never sooner than this, so a token that is (nearly) expired cannot make a loop.
const REFRESH_DELAY_MIN_MS = 500;
// Resends after RATE_LIMITED back off from 50 to 500 ms, from 50 again once answers flow.
const RATE_LIMIT_BASE_MS = 50;
const RATE_LIMIT_CAP_MS = 500;
// A session that lasted this long was healthy: the next reconnect starts the backoff afresh.
// Shorter ones keep backing off, so a fault that kills every session cannot spin.
const STABLE_SESSION_MS = 10_000;
const RID_MAX = 0xffffffff;

interface Request {
  reply: Reply;
  /** A control request's frame, sent alone (FrameSocket.sendAlone) and again if that message was rate limited. */
  frame?: Uint8Array;
  /** An attest or refresh: a REVOKED answer is about the token it carries, not about the session. */
  credential?: boolean;
}

/** A notification preference (join, leave, mute, …) waiting for the server's `_ok`. */
interface Preference {
  op: number;
  value: Record<string, unknown>;
  resolve(): void;
  reject(error: TailgroveError): void;
}

/** An attest() call waiting for the server's answer. */
interface Attest {
  token: string;
  resolve(answer: { expiresAt: number }): void;
  reject(error: TailgroveError): void;
}

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
  readonly #requests = new Map<number, Request>();
  readonly #handles = new Map<number, Log>();
  // Handles the server revoked on this session: errors about ops still in flight on them are expected.
  readonly #revokedHandles = new Set<number>();
  readonly #logs = new Map<string, Log>();
  // Outlives a log's release, so leasing it again continues the same writer.
  readonly #writerEpochs = new Map<string, number>();
  #attempt = 0;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #closed: TailgroveError | undefined;
  #refreshTimer: ReturnType<typeof setTimeout> | undefined;
  // The socket a refresh is in flight on (one at a time; a stale value means none).
  #refreshingOn: FrameSocket | undefined;
  // Grant tokens by token, with their expiry (seconds), once the server accepted them.
  readonly #grants = new Map<string, number>();
  // attest() calls not yet answered: sent on the current session, or the next one.
  readonly #attests = new Set<Attest>();
  // Preferences not yet answered: sent on the current session, again on the next one (each is idempotent).
  readonly #preferences = new Set<Preference>();
  // RATE_LIMITED: request ids its refusals named, and the timer that sends everything again.
  readonly #rateLimitedRids = new Set<number>();
  #replayTimer: ReturnType<typeof setTimeout> | undefined;
  // Resends since the server last answered anything but an error.
  #rateLimitStreak = 0;

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

  /** Add a grant token's grants to the session, and to every later session until it expires. */
  attest(grantToken: string): Promise<{ expiresAt: number }> {
    if (this.#closed) return Promise.reject(this.#closed);
    if (typeof grantToken !== 'string' || grantToken.length === 0) return Promise.reject(new TypeError('attest(grantToken): a non-empty string'));
    return new Promise((resolve, reject) => {
      const attest: Attest = { token: grantToken, resolve, reject };
      this.#attests.add(attest);
      if (this.#session) this.#sendAttest(attest);
    });
  }

  join(site: string): Promise<void> {
    return this.#preference(OP_JOIN, { site });
  }

  leave(site: string): Promise<void> {
    return this.#preference(OP_LEAVE, { site });
  }

  mute(site: string, seconds: number): Promise<void> {
    if (!Number.isInteger(seconds) || seconds <= 0) return Promise.reject(new RangeError('mute(site, seconds): a positive integer number of seconds'));
    return this.#preference(OP_MUTE, { site, seconds });
  }

  unmute(site: string): Promise<void> {
    return this.#preference(OP_UNMUTE, { site });
  }

  subscribePush(subscription: PushSubscriptionJSON): Promise<void> {
    const { endpoint, keys } = subscription;
    return this.#preference(OP_PUSH_SUBSCRIBE, { endpoint, keys: { p256dh: keys.p256dh, auth: keys.auth } });
  }

  unsubscribePush(endpoint: string): Promise<void> {
    return this.#preference(OP_PUSH_UNSUBSCRIBE, { endpoint });
  }

  #preference(op: number, value: Record<string, unknown>): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closed);
    return new Promise((resolve, reject) => {
      const preference: Preference = { op, value, resolve, reject };
      this.#preferences.add(preference);
      if (this.#session) this.#sendPreference(preference);
    });
  }

  #sendPreference(preference: Preference): void {
    const rid = this.#control(
      {
        frame: () => {
          this.forget(rid);
          this.#preferences.delete(preference);
          preference.resolve();
        },
        error: (error) => {
          this.forget(rid);
          this.#preferences.delete(preference);
          preference.reject(error);
        },
      },
      (rid) => preferenceFrame(preference.op, rid, preference.value),
      false,
    );
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
    this.#requests.set(rid, { reply });
    return rid;
  }

  control(reply: Reply, build: (rid: number) => Uint8Array): number {
    return this.#control(reply, build, false);
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
    this.#scheduleRefresh(session.expiresAt);
    // Grants first: the server applies an attest before the frames that follow it, so the
    // leases below may rely on them.
    const now = Date.now() / 1000;
    for (const [grant, expiresAt] of this.#grants) {
      if (expiresAt > now) this.#reattest(grant);
      else this.#grants.delete(grant);
    }
    for (const attest of this.#attests) this.#sendAttest(attest);
    for (const preference of this.#preferences) this.#sendPreference(preference);
    for (const log of [...this.#logs.values()]) log.lease();
  }

  #control(reply: Reply, build: (rid: number) => Uint8Array, credential: boolean): number {
    const rid = this.#nextRid();
    const frame = build(rid);
    this.#requests.set(rid, { reply, frame, credential });
    this.#socket?.sendAlone(frame);
    return rid;
  }

  // Credentials: refresh and attest.

  /** With a getToken function, refresh the session token on this socket before it expires. */
  #scheduleRefresh(expiresAt: number): void {
    clearTimeout(this.#refreshTimer);
    const remaining = expiresAt * 1000 - Date.now();
    // Without an expiry there is nothing to schedule; the reconnect path still gets a new token.
    if (typeof this.#options.token !== 'function' || !Number.isFinite(remaining)) return;
    this.#refreshTimer = setTimeout(() => void this.#refresh(), Math.max(REFRESH_DELAY_MIN_MS, remaining * REFRESH_AT));
  }

  /** Swap the session's token for a fresh one; when that fails, a new session with a fresh token. */
  async #refresh(): Promise<void> {
    const socket = this.#socket;
    const getToken = this.#options.token;
    if (socket === undefined || this.#session === undefined || this.#refreshingOn === socket || typeof getToken !== 'function') return;
    clearTimeout(this.#refreshTimer);
    this.#refreshingOn = socket;
    let token: string;
    try {
      token = await getToken();
    } catch {
      // Keep the session and try again later; at expiry the server closes it (4003) and
      // reconnecting takes over.
      this.#refreshingOn = undefined;
      if (socket === this.#socket && this.#session) this.#scheduleRefresh(this.#session.expiresAt);
      return;
    }
    if (socket !== this.#socket) return;
    const rid = this.#control(
      {
        frame: (frame) => {
          this.forget(rid);
          this.#refreshingOn = undefined;
          const { expiresAt } = unpack(frame.payload) as { expiresAt: number };
          if (this.#session) this.#session = { ...this.#session, expiresAt };
          this.#scheduleRefresh(expiresAt);
        },
        error: () => {
          this.forget(rid);
          if (socket === this.#socket) this.#resync(socket, CLOSE_NORMAL, 'refresh refused: reconnecting with a new token');
        },
      },
      (rid) => refreshFrame(rid, token),
      true,
    );
  }

  #sendAttest(attest: Attest): void {
    const rid = this.#control(
      {
        frame: (frame) => {
          this.forget(rid);
          this.#attests.delete(attest);
          const { expiresAt } = unpack(frame.payload) as { expiresAt: number };
          this.#grants.set(attest.token, expiresAt);
          attest.resolve({ expiresAt });
        },
        error: (error) => {
          this.forget(rid);
          this.#attests.delete(attest);
          attest.reject(error);
        },
      },
      (rid) => attestFrame(rid, attest.token),
      true,
    );
  }

  /** A grant attested on an earlier session; one the server now refuses (revoked) is forgotten. */
  #reattest(grant: string): void {
    const rid = this.#control(
      {
        frame: () => this.forget(rid),
        error: () => {
          this.forget(rid);
          this.#grants.delete(grant);
        },
      },
      (rid) => attestFrame(rid, grant),
      true,
    );
  }

  // Refusals of whole messages.

  /**
   * A message was dropped (RATE_LIMITED), naming its first frame's request id if it had one.
   * After a pause, send again that request and every other thing that may have gone with it.
   */
  #onRateLimited(rid: number): void {
    if (rid !== 0) this.#rateLimitedRids.add(rid);
    if (this.#replayTimer !== undefined) return; // that resend covers this message too
    const delay = backoffDelay(this.#rateLimitStreak++, Math.random, RATE_LIMIT_BASE_MS, RATE_LIMIT_CAP_MS);
    this.#replayTimer = setTimeout(() => this.#replay(), delay);
  }

  #replay(): void {
    this.#replayTimer = undefined;
    const socket = this.#socket;
    if (socket === undefined || this.#session === undefined) return;
    // Control requests are resent only when named: a lease sent twice could open two writer epochs.
    for (const rid of this.#rateLimitedRids) {
      const frame = this.#requests.get(rid)?.frame;
      if (frame !== undefined) socket.sendAlone(frame);
    }
    this.#rateLimitedRids.clear();
    for (const log of [...this.#logs.values()]) log.replay();
  }

  /** The session's token was revoked: every op but refresh is refused until a refresh succeeds. */
  #onSessionRevoked(): void {
    if (typeof this.#options.token === 'function') void this.#refresh();
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
    this.#revokedHandles.clear();
    this.#clearSessionTimers();
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

  #clearSessionTimers(): void {
    clearTimeout(this.#refreshTimer);
    clearTimeout(this.#replayTimer);
    this.#replayTimer = undefined;
    this.#rateLimitedRids.clear();
  }

  #shutdown(error: TailgroveError): void {
    if (this.#closed) return;
    this.#closed = error;
    clearTimeout(this.#reconnectTimer);
    this.#clearSessionTimers();
    this.#handshake?.reject(error);
    this.#handshake = undefined;
    for (const attest of this.#attests) attest.reject(error);
    this.#attests.clear();
    for (const preference of this.#preferences) preference.reject(error);
    this.#preferences.clear();
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
    if (frame.op !== OP_ERROR) this.#rateLimitStreak = 0; // the session makes progress
    switch (frame.op) {
      case OP_CONNECTED:
        this.#onConnected(frame);
        break;
      case OP_LEASED:
      case OP_OK:
        this.#requests.get(frame.a)?.reply.frame(frame);
        break;
      case OP_ACKED:
        this.#handles.get(frame.a)?.onAck(frame.b, frame.position);
        break;
      case OP_NACKED:
        this.#handles.get(frame.a)?.onNack(frame.flags, frame.b, frame.c, frame.position);
        break;
      case OP_ENTRIES:
        if ((frame.flags & ENTRIES_READ_REPLY) !== 0) this.#requests.get(frame.b)?.reply.frame(frame);
        else this.#handles.get(frame.a)?.onTailFrame(frame);
        break;
      case OP_ERROR:
        this.#onError(socket, frame);
        break;
      case OP_REVOKED:
        this.#onRevoked(frame);
        break;
      case OP_PRESENCE:
        this.#handles.get(frame.a)?.onPresenceFrame(frame);
        break;
      case OP_SIGNALED:
        this.#handles.get(frame.a)?.onSignalFrame(frame);
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

  /** `_revoke(handle)`: the lease is gone for good (its token or grant was revoked, or a grant expired). */
  #onRevoked(frame: Frame): void {
    this.#revokedHandles.add(frame.a);
    const log = this.#handles.get(frame.a);
    if (log === undefined) return;
    let reason = 'the lease was revoked';
    try {
      reason = (unpack(frame.payload) as { reason?: string }).reason ?? reason;
    } catch {
      // the code says enough
    }
    // fail() also forgets the log, so no later session leases it again.
    log.fail(new TailgroveError('REVOKED', `${log.site}/${log.name}: ${reason}`));
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
    if (error.code === 'RATE_LIMITED') return this.#onRateLimited(frame.a);
    if (frame.a !== 0) {
      // The answer to a request; none waiting means the request was abandoned.
      const request = this.#requests.get(frame.a);
      request?.reply.error(error);
      if (error.code === 'REVOKED' && !request?.credential) this.#onSessionRevoked();
      return;
    }
    // A refused message whose first frame has no request id (a write, an ack, a tail, …).
    if (error.code === 'REVOKED') return this.#onSessionRevoked();
    // An op sent on a handle before its `_revoke` arrived.
    if (this.#revokedHandles.has(frame.b)) return;
    if (this.#handles.get(frame.b)?.onError(error, frame.c)) return;
    // Not about any one request: this client's picture of the session may be wrong.
    this.#resync(socket, CLOSE_NORMAL, `resync after ${error.code}`);
  }
}

function logKey(site: string, name: string): string {
  return `${site}\0${name}`;
}
