// The seams between the client's parts: what a leased log needs from the session that
// carries it, and what the log's writer, tail and reads need from the log.
import type { Frame } from './codec.js';
import type { TailgroveError } from './errors.js';
import type { Log } from './log.js';

/** Answers to a request id: one or more frames, or an `_error`. */
export interface Reply {
  frame(frame: Frame): void;
  error(error: TailgroveError): void;
}

/** A log's view of the session. */
export interface Link {
  /** The largest entry the server accepts (from `_connected`). */
  readonly entryBytesMax: number;
  send(frame: Uint8Array): void;
  /** A request id whose answers go to `reply` until forgotten or the session ends. */
  request(reply: Reply): number;
  /**
   * A request id as `request` gives, and its frame (`build(rid)`) sent in a message of its
   * own; sent again if that message is refused as RATE_LIMITED. For requests that must not
   * be sent twice (a lease may open a writer epoch), so only a refusal that names them
   * may resend them.
   */
  control(reply: Reply, build: (rid: number) => Uint8Array): number;
  forget(rid: number): void;
  /** Route the frames about `handle` on the current session to `log`. */
  bind(handle: number, log: Log): void;
  /** The log was released or failed: forget it, so a later lease of its name starts afresh. */
  drop(log: Log): void;
  /** Remember the writer epoch a lease returned, for later leases of the same log. */
  leased(log: Log, writerEpoch: number): void;
}

/** The log's lease on the current session, as its writer, tail and reads see it. */
export interface Attachment {
  readonly shard: number;
  /** Valid only while `attached`. */
  readonly handle: number;
  /** Leased on the current session; when false, work waits for the next lease. */
  readonly attached: boolean;
  readonly link: Link;
}
