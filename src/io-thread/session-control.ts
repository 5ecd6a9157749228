// The session ops the IO thread answers itself — connect, refresh, attest — and what follows
// from credentials over a session's life: expiry, revocation, grants that change. Workers
// learn the outcome as session records (open, grants, revoke) through the router.
import { pack, unpack } from 'msgpackr';
import { PREFIX_BYTES, PROTOCOL_VERSION, SHARD_COUNT } from '../constants.js';
import type { Revocations } from '../auth/revocations.js';
import { TokenRejected, type Claims, type GrantClaims, type TokenVerifier } from '../auth/token.js';
import { readUint16, readUint32 } from '../net/frame.js';
import {
  CLOSE_AUTH,
  CLOSE_GOING_AWAY,
  CLOSE_TOKEN_EXPIRED,
  ERROR,
  HEADER_A,
  HEADER_WORD,
  OP_ATTEST,
  OP_CONNECT,
  OP_REFRESH,
  PREFIX_HEADER_LENGTH,
  PREFIX_PAYLOAD_LENGTH,
} from '../net/protocol.js';
import { INPUT_SESSION_GRANTS, INPUT_SESSION_REVOKE } from '../net/records.js';
import { clearConnectionTimers, NOT_CONNECTED, sessionGrants, timerAt, type Connection } from './connection.js';
import { connectedFrame, errorFrame, okFrame } from './control-frames.js';
import type { PreferenceOps } from './preference-ops.js';
import type { InputRouter } from './router.js';
import type { SessionRegistry } from './sessions.js';

export interface ControlledSocket {
  send(message: Uint8Array, isBinary: boolean): number;
  end(code?: number, reason?: string): void;
  getUserData(): Connection;
}

export interface SessionControlOptions {
  router: InputRouter;
  /** Make routed records visible to the workers. */
  publish: () => void;
  verify: TokenVerifier;
  revocations: Revocations;
  entryBytesMax: number;
  clockSkewSeconds: number;
  /** Notification preferences (join, leave, mute, unmute, push subscriptions). */
  preferenceOps: PreferenceOps<ControlledSocket>;
  /** The VAPID public key devices subscribe with; undefined when Web Push is off. */
  pushPublicKey: string | undefined;
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** The rid and the msgpack `{ token }` of a connect, attest or refresh frame. */
function tokenRequest(bytes: Uint8Array, offset: number): { rid: number; token: string } {
  const header = offset + PREFIX_BYTES;
  const rid = readUint32(bytes, header + HEADER_A);
  const payload = header + readUint16(bytes, offset + PREFIX_HEADER_LENGTH);
  let request: unknown;
  try {
    request = unpack(bytes.subarray(payload, payload + readUint32(bytes, offset + PREFIX_PAYLOAD_LENGTH)));
  } catch {
    throw Object.assign(new TokenRejected('the payload must be msgpack { token: string }'), { rid });
  }
  const token = (request as { token?: unknown } | null)?.token;
  if (typeof token !== 'string') throw Object.assign(new TokenRejected('the payload must be msgpack { token: string }'), { rid });
  return { rid, token };
}

function tokenErrorCode(error: TokenRejected): number {
  if (error.reason === 'expired') return ERROR.TOKEN_EXPIRED;
  if (error.reason === 'not-yet-valid') return ERROR.TOKEN_NOT_YET_VALID;
  return ERROR.BAD_TOKEN;
}

export class SessionControl<Socket extends ControlledSocket> {
  private readonly options: SessionControlOptions;
  private readonly registry: SessionRegistry<Socket>;
  /** Connected sessions per user: a user with none is offline (notifications). */
  private readonly sessionsByUser = new Map<string, number>();

  constructor(registry: SessionRegistry<Socket>, options: SessionControlOptions) {
    this.registry = registry;
    this.options = options;
  }

  /** The first frame of a socket. Returns whether the session is now connected. */
  connect(ws: Socket, bytes: Uint8Array, offset: number): boolean {
    const connection = ws.getUserData();
    const version = readUint16(bytes, offset + PREFIX_BYTES + HEADER_WORD);
    const rid = readUint32(bytes, offset + PREFIX_BYTES + HEADER_A);
    if (version !== PROTOCOL_VERSION) {
      this.refuse(ws, ERROR.BAD_VERSION, rid, `protocol version ${version} is not supported; this server speaks ${PROTOCOL_VERSION}`, CLOSE_AUTH);
      return false;
    }
    const claims = this.checkedSessionToken(ws, bytes, offset);
    if (claims === undefined) return false;
    const session = this.registry.open(ws);
    if (session < 0) {
      this.refuse(ws, ERROR.CONNECTION_LIMIT, rid, 'the server has no free session slots', CLOSE_GOING_AWAY);
      return false;
    }
    connection.session = session;
    connection.claims = claims;
    clearTimeout(connection.handshakeTimer);
    connection.handshakeTimer = undefined;
    this.armExpiry(ws, claims);
    this.options.router.openSession(session, pack([claims.sub, claims.device, sessionGrants(connection)]));
    this.options.publish();
    this.sessionsByUser.set(claims.sub, (this.sessionsByUser.get(claims.sub) ?? 0) + 1);
    const { pushPublicKey } = this.options;
    ws.send(
      connectedFrame(rid, {
        session,
        user: claims.sub,
        device: claims.device,
        expiresAt: claims.exp,
        entryBytesMax: this.options.entryBytesMax,
        shardCount: SHARD_COUNT,
        ...(pushPublicKey === undefined ? {} : { pushPublicKey }),
      }),
      true,
    );
    return true;
  }

  /** Whether any device of `user` is connected. */
  isOnline(user: string): boolean {
    return this.sessionsByUser.has(user);
  }

  /** A session op on a connected socket (connect again, attest, refresh, the user's notification preferences). */
  sessionOp(ws: Socket, bytes: Uint8Array, offset: number, op: number): void {
    const rid = readUint32(bytes, offset + PREFIX_BYTES + HEADER_A);
    if (op === OP_CONNECT) {
      ws.send(errorFrame(ERROR.ALREADY_CONNECTED, rid, 0, 'this session is already connected'), true);
    } else if (op === OP_REFRESH) {
      this.refresh(ws, bytes, offset, rid);
    } else if (op === OP_ATTEST) {
      this.attest(ws, bytes, offset, rid);
    } else {
      this.options.preferenceOps.handle(ws, bytes, offset, op);
    }
  }

  /** Apply the revocation list to the live sessions; returns how many sessions it hit. */
  applyRevocations(sockets: Iterable<Socket>): number {
    let hit = 0;
    const now = nowSeconds();
    for (const ws of sockets) {
      const connection = ws.getUserData();
      if (connection.session === NOT_CONNECTED || connection.claims === undefined) continue;
      const attested = connection.attested.filter((grant) => grant.jti === undefined || this.options.revocations.refuses({ jti: grant.jti }, now) === undefined);
      if (attested.length !== connection.attested.length) {
        connection.attested = attested;
        this.broadcastGrants(connection);
        hit++;
      }
      if (!connection.revoked && this.options.revocations.refuses(connection.claims, now) !== undefined) {
        connection.revoked = true;
        this.options.router.broadcast(INPUT_SESSION_REVOKE, connection.session);
        this.options.publish();
        hit++;
      }
    }
    return hit;
  }

  private refresh(ws: Socket, bytes: Uint8Array, offset: number, rid: number): void {
    const connection = ws.getUserData();
    const claims = this.checkedSessionToken(ws, bytes, offset, false);
    if (claims === undefined) return;
    if (claims.sub !== connection.claims!.sub || claims.device !== connection.claims!.device) {
      ws.send(errorFrame(ERROR.FORBIDDEN, rid, 0, 'a refresh token must name the same user and device as the session'), true);
      return;
    }
    connection.claims = claims;
    connection.revoked = false;
    this.armExpiry(ws, claims);
    this.broadcastGrants(connection);
    ws.send(okFrame(rid, { expiresAt: claims.exp }), true);
  }

  private attest(ws: Socket, bytes: Uint8Array, offset: number, rid: number): void {
    const connection = ws.getUserData();
    let grant: GrantClaims;
    try {
      grant = this.options.verify.grant(tokenRequest(bytes, offset).token);
    } catch (error) {
      if (!(error instanceof TokenRejected)) throw error;
      ws.send(errorFrame(tokenErrorCode(error), rid, 0, error.message), true);
      return;
    }
    const claims = connection.claims!;
    if ((grant.sub !== undefined && grant.sub !== claims.sub) || (grant.device !== undefined && grant.device !== claims.device)) {
      ws.send(errorFrame(ERROR.FORBIDDEN, rid, 0, 'this grant is bound to another user or device'), true);
      return;
    }
    if (grant.jti !== undefined && this.options.revocations.refuses({ jti: grant.jti }, nowSeconds()) !== undefined) {
      ws.send(errorFrame(ERROR.REVOKED, rid, 0, 'this grant was revoked'), true);
      return;
    }
    connection.attested.push(grant);
    connection.attestTimers.push(
      timerAt(grant.exp!, () => {
        if (connection.session === NOT_CONNECTED) return;
        connection.attested = connection.attested.filter((held) => held !== grant);
        this.broadcastGrants(connection);
      }),
    );
    this.broadcastGrants(connection);
    ws.send(okFrame(rid, { expiresAt: grant.exp }), true);
  }

  /** Verify the token of a connect or refresh; on refusal answers (and closes on connect). */
  private checkedSessionToken(ws: Socket, bytes: Uint8Array, offset: number, closeOnRefusal = true): Claims | undefined {
    let rid = 0;
    try {
      const request = tokenRequest(bytes, offset);
      rid = request.rid;
      const claims = this.options.verify.session(request.token);
      if (this.options.revocations.refuses(claims, nowSeconds()) !== undefined) {
        this.refuse(ws, ERROR.REVOKED, rid, 'this token was revoked', closeOnRefusal ? CLOSE_AUTH : undefined);
        return undefined;
      }
      return claims;
    } catch (error) {
      if (!(error instanceof TokenRejected)) throw error;
      this.refuse(ws, tokenErrorCode(error), (error as TokenRejected & { rid?: number }).rid ?? rid, error.message, closeOnRefusal ? CLOSE_AUTH : undefined);
      return undefined;
    }
  }

  private armExpiry(ws: Socket, claims: Claims): void {
    const connection = ws.getUserData();
    clearTimeout(connection.expiryTimer);
    // The same clock skew the verifier allows: a token it accepted is not cut off sooner.
    connection.expiryTimer = timerAt(claims.exp! + this.options.clockSkewSeconds, () => {
      if (connection.session === NOT_CONNECTED || connection.claims !== claims) return;
      ws.end(CLOSE_TOKEN_EXPIRED, 'the token expired: reconnect or refresh with a new one');
    });
  }

  private broadcastGrants(connection: Connection): void {
    this.options.router.broadcast(INPUT_SESSION_GRANTS, connection.session, pack(sessionGrants(connection)));
    this.options.publish();
  }

  private refuse(ws: Socket, code: number, rid: number, message: string, closeCode: number | undefined): void {
    ws.send(errorFrame(code, rid, 0, message), true);
    if (closeCode !== undefined) ws.end(closeCode, message.slice(0, 120));
  }

  /** The socket closed: timers go, the workers forget the session. */
  closed(connection: Connection): void {
    clearConnectionTimers(connection);
    if (connection.session === NOT_CONNECTED) return;
    const user = connection.claims!.sub;
    const sessions = (this.sessionsByUser.get(user) ?? 1) - 1;
    if (sessions === 0) this.sessionsByUser.delete(user);
    else this.sessionsByUser.set(user, sessions);
    this.registry.close(connection.session);
    this.options.router.closeSession(connection.session);
    this.options.publish();
    connection.session = NOT_CONNECTED;
  }
}
