// Tokens: HS256 JWTs minted by the application's backend (or the CLI) with a shared secret,
// checked with symmetric operations only (fast-jwt, with its verification cache). Several
// secrets can be live at once, chosen by the token's `kid` header, so secrets rotate without
// a flag day. Grant tokens (`typ: "grant"`) carry extra rights a session can `attest`.
import { createDecoder, createSigner, createVerifier, TokenError } from 'fast-jwt';

/** r: lease, read, tail · w: create logs, write · s: signal · a: administration. */
export type Right = 'r' | 'w' | 's' | 'a';

/**
 * A grant: rights on sites and, optionally, on logs whose names start with one of `logs`.
 * `site` is a site name, a prefix ending in `*` ("acme-*"), or `*` for every site.
 */
export interface Grant {
  site: string;
  rights: string;
  logs?: string[];
}

export interface Claims {
  sub: string;
  device: string;
  exp?: number;
  iat?: number;
  nbf?: number;
  jti?: string;
  grants: Grant[];
}

/** A grant token: rights delegated by a site admin, attested on a live session. */
export interface GrantClaims {
  typ: 'grant';
  grants: Grant[];
  exp?: number;
  iat?: number;
  jti?: string;
  /** When present, only this user's / device's sessions may attest it. */
  sub?: string;
  device?: string;
}

export interface MintOptions {
  /** Lifetime in seconds (default one day). */
  expiresInSeconds?: number;
  /** The key id of `secret`, for servers that hold several secrets. */
  kid?: string;
  /** A token id, to revoke this one token. */
  jti?: string;
}

/** Secrets by key id; a token without `kid` is checked with `defaultKid`'s secret. */
export interface TokenKeys {
  secrets: Record<string, string>;
  defaultKid: string;
}

export const DEFAULT_KID = 'default';
const DEVICE_BYTES_MAX = 128;
const NAME_BYTES_MAX = 256;
const GRANTS_MAX = 64;
const RIGHT_LETTERS = /^[rwsa]+$/;

/** Mint a token for `claims` with `secret`. */
export function mintToken(claims: Omit<Claims, 'exp'> & { exp?: number }, secret: string, options: MintOptions = {}): string {
  return sign(claims, secret, options);
}

/** Mint a grant token (for `attest`) with `secret`. */
export function mintGrant(claims: Omit<GrantClaims, 'typ' | 'exp'> & { exp?: number }, secret: string, options: MintOptions = {}): string {
  return sign({ ...claims, typ: 'grant' }, secret, options);
}

function sign(claims: { exp?: number } & Record<string, unknown>, secret: string, options: MintOptions): string {
  const signer = createSigner({ key: secret, algorithm: 'HS256', ...(options.kid === undefined ? {} : { kid: options.kid }), ...(options.jti === undefined ? {} : { jti: options.jti }) });
  const exp = claims.exp ?? Math.floor(Date.now() / 1000) + (options.expiresInSeconds ?? 86400);
  return signer({ ...claims, exp });
}

/** Why a token was refused; `reason` maps to a protocol error code. */
export type RejectReason = 'bad' | 'expired' | 'not-yet-valid';

export class TokenRejected extends Error {
  readonly reason: RejectReason;
  constructor(message: string, reason: RejectReason = 'bad') {
    super(message);
    this.reason = reason;
  }
}

export interface VerifierOptions {
  /** Tolerance for exp, nbf and iat against this server's clock. */
  clockSkewSeconds: number;
}

export interface TokenVerifier {
  /** A session token's claims, or TokenRejected. */
  session(token: string): Claims;
  /** A grant token's claims, or TokenRejected. */
  grant(token: string): GrantClaims;
}

/** A verifier for `keys`: one fast-jwt verifier (with its cache) per key id. */
export function createTokenVerifier(keys: TokenKeys | string, options: VerifierOptions = { clockSkewSeconds: 30 }): TokenVerifier {
  const { secrets, defaultKid } = typeof keys === 'string' ? { secrets: { [DEFAULT_KID]: keys }, defaultKid: DEFAULT_KID } : keys;
  const clockTolerance = options.clockSkewSeconds * 1000;
  const verifiers = new Map<string, (token: string) => Record<string, unknown>>();
  for (const [kid, secret] of Object.entries(secrets)) {
    verifiers.set(kid, createVerifier({ key: secret, algorithms: ['HS256'], cache: 10000, requiredClaims: ['exp'], clockTolerance }));
  }
  const decodeHeader = createDecoder({ complete: true });
  const verify = (token: string): Record<string, unknown> => {
    let kid: unknown;
    try {
      kid = (decodeHeader(token) as { header: { kid?: unknown } }).header.kid ?? defaultKid;
    } catch (error) {
      throw new TokenRejected(`token refused: ${(error as Error).message}`);
    }
    const verifier = typeof kid === 'string' ? verifiers.get(kid) : undefined;
    if (verifier === undefined) throw new TokenRejected(`token refused: unknown key id ${JSON.stringify(kid)}`);
    let payload: Record<string, unknown>;
    try {
      payload = verifier(token);
    } catch (error) {
      const code = error instanceof TokenError ? error.code : '';
      const reason: RejectReason = code === TokenError.codes.expired ? 'expired' : code === TokenError.codes.inactive ? 'not-yet-valid' : 'bad';
      throw new TokenRejected(`token refused: ${(error as Error).message}`, reason);
    }
    if (typeof payload.iat === 'number' && payload.iat * 1000 > Date.now() + clockTolerance) {
      throw new TokenRejected('token refused: it was issued in the future (iat), beyond the allowed clock skew', 'not-yet-valid');
    }
    return payload;
  };
  return {
    session(token: string): Claims {
      const payload = verify(token);
      if (payload.typ === 'grant') throw new TokenRejected('token refused: a grant token cannot open a session (attest it instead)');
      return checkSessionClaims(payload);
    },
    grant(token: string): GrantClaims {
      const payload = verify(token);
      if (payload.typ !== 'grant') throw new TokenRejected('grant refused: not a grant token (claim "typ" must be "grant")');
      const grants = checkGrants(payload.grants);
      const { sub, device } = payload;
      if (sub !== undefined && typeof sub !== 'string') throw new TokenRejected('grant refused: claim "sub" must be a string');
      if (device !== undefined && typeof device !== 'string') throw new TokenRejected('grant refused: claim "device" must be a string');
      return { typ: 'grant', grants, exp: payload.exp as number, iat: payload.iat as number | undefined, jti: payload.jti as string | undefined, sub, device };
    },
  };
}

function checkSessionClaims(payload: Record<string, unknown>): Claims {
  const { sub, device, exp, iat, nbf, jti } = payload;
  if (typeof sub !== 'string' || sub.length === 0 || Buffer.byteLength(sub) > NAME_BYTES_MAX) {
    throw new TokenRejected(`token refused: claim "sub" must be a string of 1..${NAME_BYTES_MAX} bytes`);
  }
  if (typeof device !== 'string' || device.length === 0 || Buffer.byteLength(device) > DEVICE_BYTES_MAX) {
    throw new TokenRejected(`token refused: claim "device" must be a string of 1..${DEVICE_BYTES_MAX} bytes`);
  }
  if (jti !== undefined && typeof jti !== 'string') throw new TokenRejected('token refused: claim "jti" must be a string');
  return { sub, device, exp: exp as number, iat: iat as number | undefined, nbf: nbf as number | undefined, jti, grants: checkGrants(payload.grants) };
}

function checkGrants(grants: unknown): Grant[] {
  if (!Array.isArray(grants) || grants.length > GRANTS_MAX) throw new TokenRejected(`token refused: claim "grants" must be an array of at most ${GRANTS_MAX}`);
  for (const grant of grants) {
    const valid =
      typeof grant === 'object' &&
      grant !== null &&
      typeof grant.site === 'string' &&
      grant.site.length > 0 &&
      typeof grant.rights === 'string' &&
      RIGHT_LETTERS.test(grant.rights) &&
      (grant.logs === undefined || (Array.isArray(grant.logs) && grant.logs.every((prefix: unknown) => typeof prefix === 'string')));
    if (!valid) throw new TokenRejected('token refused: each grant is { site: string, rights: letters of "rwsa", logs?: string[] }');
  }
  return grants as Grant[];
}

function siteMatches(pattern: string, site: string): boolean {
  if (pattern === '*') return true;
  if (pattern.endsWith('*')) return site.startsWith(pattern.slice(0, -1));
  return pattern === site;
}

/**
 * The log-name prefixes `grants` give `right` on within `site`: null when some grant covers
 * every log of the site, undefined when none gives the right there at all.
 */
export function logPrefixesWith(grants: readonly Grant[], site: string, right: Right): string[] | null | undefined {
  let prefixes: string[] | undefined;
  for (const grant of grants) {
    if (!grant.rights.includes(right) || !siteMatches(grant.site, site)) continue;
    if (grant.logs === undefined) return null;
    prefixes = [...(prefixes ?? []), ...grant.logs];
  }
  return prefixes;
}

/** Whether `grants` give `right` on log `log` of `site`. */
export function allows(grants: readonly Grant[], site: string, log: string, right: Right): boolean {
  for (const grant of grants) {
    if (!grant.rights.includes(right) || !siteMatches(grant.site, site)) continue;
    if (grant.logs === undefined || grant.logs.some((prefix) => log.startsWith(prefix))) return true;
  }
  return false;
}
