// Per-deployment limits: one place, with defaults, each enforced with its own error code or
// close code (docs/SECURITY.md). Fixed capacities of the pipeline stay in constants.ts.
import { ENTRY_BYTES_MAX_DEFAULT, LEASES_PER_SESSION_MAX } from './constants.js';

export interface Limits {
  /** Largest entry (TOO_LARGE). */
  entryBytesMax: number;
  /** Largest WebSocket message; uWS drops a connection that sends a larger one. */
  messageBytesMax: number;
  /** Leases one session may hold (LEASE_LIMIT). */
  leasesPerSession: number;
  /** Tails one session may run at once (TAIL_LIMIT). */
  tailsPerSession: number;
  /** Writes of one writer without an `ack` (UNACKED_LIMIT): bounds completion records. */
  unackedWritesPerWriter: number;
  /** Connections in all (CONNECTION_LIMIT at the HTTP upgrade). */
  connectionsMax: number;
  /** Connections from one IP address (CONNECTION_LIMIT). */
  connectionsPerAddressMax: number;
  /** Sustained frames per second per session, token bucket (RATE_LIMITED). */
  framesPerSecond: number;
  /** Burst of frames per session above the sustained rate. */
  framesBurst: number;
  /** Malformed frames a session may send before it is closed with 4004. */
  violationsMax: number;
  /** Time to send connect after the socket opens (close 4002). */
  handshakeTimeoutMs: number;
  /** A socket silent this long is closed; the server pings before that. */
  idleTimeoutSeconds: number;
  /** Bytes buffered on one socket before its tails pause (they resume from the log when drained). */
  socketBufferedBytesMax: number;
  /** Tolerance for token exp / nbf / iat against this server's clock. */
  clockSkewSeconds: number;
  /** Largest signal payload (TOO_LARGE). */
  signalBytesMax: number;
}

export const DEFAULT_LIMITS: Readonly<Limits> = {
  entryBytesMax: ENTRY_BYTES_MAX_DEFAULT,
  messageBytesMax: 8 << 20,
  leasesPerSession: LEASES_PER_SESSION_MAX,
  tailsPerSession: 256,
  unackedWritesPerWriter: 1 << 16,
  connectionsMax: 60_000,
  connectionsPerAddressMax: 1_000,
  framesPerSecond: 200_000,
  framesBurst: 400_000,
  violationsMax: 16,
  handshakeTimeoutMs: 10_000,
  idleTimeoutSeconds: 120,
  socketBufferedBytesMax: 8 << 20,
  clockSkewSeconds: 30,
  signalBytesMax: 64 << 10,
};
