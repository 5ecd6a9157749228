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
  /** Close the connection; pending appends, reads and leases reject with code CLOSED. */
  close(): Promise<void>;
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
  readonly leader: string | null;
  readonly presence: readonly string[];
  /** Resolves with the entry's position once it is durable; exactly once across reconnects. */
  append(data: Uint8Array, options?: AppendOptions): Promise<number>;
  /** Up to `limit` committed entries from `from`; fewer when the log ends first. */
  read(from: number, limit: number): Promise<Entry[]>;
  /** Deliver every entry from `from` in order, without gaps or duplicates, across reconnects. One tail per log at a time. */
  tail(from: number, onEntries: (entries: Entry[]) => void, options?: TailOptions): Tail;
  /** Detach from the log; pending appends and reads reject with code RELEASED. */
  release(): void;
}
