// What the IO thread keeps per WebSocket: the session and its credentials, timers, and the
// counters behind the per-connection limits. Objects per connection, never per message.
import type { Claims, GrantClaims } from '../auth/token.js';

export const NOT_CONNECTED = -1;

export interface Connection {
  /** The session id once connected, else NOT_CONNECTED. */
  session: number;
  address: string;
  handshakeTimer: NodeJS.Timeout | undefined;
  /** Closes the socket when the token expires without a refresh. */
  expiryTimer: NodeJS.Timeout | undefined;
  claims: Claims | undefined;
  /** Grant tokens attested on this session, each until its expiry. */
  attested: GrantClaims[];
  attestTimers: NodeJS.Timeout[];
  /** The token was revoked: only a refresh with a valid token brings the session back. */
  revoked: boolean;
  /** Its socket is backed up: the workers stopped pushing its tails. */
  paused: boolean;
  /** Malformed frames so far. */
  violations: number;
  /** Token bucket of frames (RATE_LIMITED when empty). */
  frameTokens: number;
  refilledAtTick: number;
}

export function newConnection(address: string, frameTokens: number, tick: number): Connection {
  return {
    session: NOT_CONNECTED,
    address,
    handshakeTimer: undefined,
    expiryTimer: undefined,
    claims: undefined,
    attested: [],
    attestTimers: [],
    revoked: false,
    paused: false,
    violations: 0,
    frameTokens,
    refilledAtTick: tick,
  };
}

/** Every grant the session holds now: its token's and the attested ones'. */
export function sessionGrants(connection: Connection): Claims['grants'] {
  return [...(connection.claims?.grants ?? []), ...connection.attested.flatMap((grant) => grant.grants)];
}

export function clearConnectionTimers(connection: Connection): void {
  clearTimeout(connection.handshakeTimer);
  clearTimeout(connection.expiryTimer);
  for (const timer of connection.attestTimers) clearTimeout(timer);
  connection.handshakeTimer = undefined;
  connection.expiryTimer = undefined;
  connection.attestTimers = [];
}

// setTimeout holds at most 2^31 - 1 ms (~24.8 days); longer waits are re-armed.
const TIMER_MS_MAX = 2 ** 31 - 1;

/** Call `fire` at `epochSeconds` (wall clock). */
export function timerAt(epochSeconds: number, fire: () => void): NodeJS.Timeout {
  const delay = epochSeconds * 1000 - Date.now();
  if (delay > TIMER_MS_MAX) return setTimeout(() => timerAt(epochSeconds, fire), TIMER_MS_MAX);
  return setTimeout(fire, Math.max(0, delay));
}
