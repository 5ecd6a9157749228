// The client's public surface. The classes behind it keep their protocol plumbing off these
// interfaces.
import type { WebSocketConstructor } from './socket.js';

export interface Entry {
  position: number;
  /** A view into the received message (no copy): keeping it keeps that message's buffer. */
  data: Uint8Array;
}

/**
 * Where a client keeps each log's RIFL writer epoch (docs/PROTOCOL.md, "Writer epochs").
 * By default it is memory: a new client object opens a new writer epoch on first lease.
 * An app that persists it (e.g. in localStorage) continues its writer across restarts
 * instead of opening a new one. The next lsn always comes from the server, so the epoch is
 * all there is to keep; exactly-once across an app restart additionally needs the app to
 * keep its unacknowledged entries. Never let two live clients of one device share a stored
 * epoch: their lsns would collide, and one's append would be taken for the other's.
 */
export interface WriterEpochStore {
  get(site: string, log: string): number | undefined;
  set(site: string, log: string, writerEpoch: number): void;
}

export interface ConnectOptions {
  /**
   * The HS256 token, or a function asked for one on every (re)connect and before the
   * session's token expires: the client then refreshes the token on the live connection
   * (leases and tails go on), and reconnects with a new one only if the refresh is refused.
   * A string token is never refreshed: the server closes the session when it expires.
   */
  token: string | (() => string | Promise<string>);
  /** A WebSocket implementation; defaults to the global one, else the `ws` package. */
  WebSocket?: WebSocketConstructor;
  writerEpochs?: WriterEpochStore;
}

/** The `_connected` payload of the current session. */
export interface Session {
  session: number;
  user: string;
  device: string;
  expiresAt: number;
  entryBytesMax: number;
  shardCount: number;
  /** The server's VAPID public key (base64url): `applicationServerKey` for `pushManager.subscribe`. Absent when Web Push is off. */
  pushPublicKey?: string;
}

/** A Web Push subscription as browsers give it (`PushSubscription.toJSON()`). */
export interface PushSubscriptionJSON {
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

export interface Client {
  /** The current session, or undefined while reconnecting. */
  readonly session: Session | undefined;
  /** Attach to a log (created if missing); leasing a log this client already holds returns the same object. */
  lease(site: string, log: string): Promise<LeasedLog>;
  /**
   * Add the grants of a grant token (minted by the app's backend) to the session; they also
   * hold on every later session until the grant expires. Rejects with the server's code
   * (BAD_TOKEN, TOKEN_EXPIRED, REVOKED, FORBIDDEN when bound to another user or device).
   */
  attest(grantToken: string): Promise<{ expiresAt: number }>;
  /**
   * Offline notifications for the user (every device of it): while none of the user's devices
   * is connected, changes to the site's logs are notified through Web Push and the webhook.
   * Needs a read grant on the site. Persisted by the server; resent after a reconnect.
   */
  join(site: string): Promise<void>;
  leave(site: string): Promise<void>;
  /** No notifications for the site for `seconds` (the membership stays). */
  mute(site: string, seconds: number): Promise<void>;
  unmute(site: string): Promise<void>;
  /** Register this device's Web Push subscription (`session.pushPublicKey` is the key to subscribe with). */
  subscribePush(subscription: PushSubscriptionJSON): Promise<void>;
  unsubscribePush(endpoint: string): Promise<void>;
  /** Close the connection; pending appends, reads and leases reject with code CLOSED. */
  close(): Promise<void>;
}

/** A lease attached to a log, as other devices see it: `handle` is where signals go. */
export interface Attached {
  handle: number;
  device: string;
}

export interface Signal {
  /** The sender's handle (answer to it with `signal(from, …)`). */
  from: number;
  device: string;
  data: Uint8Array;
}

export interface AppendOptions {
  /** Append only if the log's tail is `at`; otherwise reject with code AT_MISMATCH and `tail`. */
  at?: number;
}

export interface TailOptions {
  /** The backlog has been delivered and live entries follow (again after each reconnect). */
  onCaughtUp?: () => void;
  /** The tail stopped for good (log lost, lease revoked, client closed); no entries follow. */
  onError?: (error: Error) => void;
  /**
   * Retention removed entries this tail had not delivered yet: those from `skippedFrom` up
   * to `first` are gone, and the tail goes on from `first`.
   */
  onTrimmed?: (first: number, skippedFrom: number) => void;
}

export interface Tail {
  /** The position of the next entry this tail will deliver. */
  readonly next: number;
  close(): void;
}

/**
 * A leased log. When the server revokes the lease (its token or grant was revoked, or an
 * attested grant expired), the log fails for good with code REVOKED: pending and later
 * appends and reads reject, its tail's onError fires; lease the log again for a new object.
 */
export interface LeasedLog {
  readonly site: string;
  readonly name: string;
  /** As of the latest lease; refreshed when the client re-leases after a reconnect. */
  readonly handle: number;
  /** The log's tail (its entry count) when it was leased. */
  readonly position: number;
  /** Fixed at the log's creation; a change means the log was lost and recreated. */
  readonly epoch: number;
  /** The first attached lease (attach order): when it leaves, the next one leads. */
  readonly leader: Attached | null;
  /** Whether this lease leads. */
  readonly isLeader: boolean;
  /** Who is attached, in attach order (this lease included), as of the latest `_presence`. */
  readonly presence: readonly Attached[];
  /**
   * Called with the new presence and leader whenever leases attach or leave (coalesced per
   * server batch), and on each re-lease after a reconnect; read `presence` for the list at
   * subscription time. Returns an unsubscribe function.
   */
  onPresence(callback: (presence: readonly Attached[], leader: Attached | null) => void): () => void;
  /**
   * Send bytes to another lease attached to this log (e.g. a WebRTC offer). Resolves once
   * the server relayed it; rejects with NOT_ATTACHED when `toHandle` is not attached, FORBIDDEN
   * without the signal right, TOO_LARGE over the server's signalBytesMax, DISCONNECTED while
   * reconnecting (handles change with the session: take them from the next presence).
   */
  signal(toHandle: number, data: Uint8Array): Promise<void>;
  /** Signals sent to this lease. Returns an unsubscribe function. */
  onSignal(callback: (signal: Signal) => void): () => void;
  /** Resolves with the entry's position once it is durable; exactly once across reconnects. */
  append(data: Uint8Array, options?: AppendOptions): Promise<number>;
  /** Up to `limit` committed entries from `from`; fewer when the log ends first. */
  read(from: number, limit: number): Promise<Entry[]>;
  /** Deliver every entry from `from` in order, without gaps or duplicates, across reconnects. One tail per log at a time. */
  tail(from: number, onEntries: (entries: Entry[]) => void, options?: TailOptions): Tail;
  /** Detach from the log; pending appends and reads reject with code RELEASED. */
  release(): void;
}
