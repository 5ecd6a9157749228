// Tokens: HS256 JWTs minted by the application's backend (or the CLI) with a shared secret,
// checked with symmetric operations only (fast-jwt, with its verification cache).
import { createSigner, createVerifier, TokenError } from 'fast-jwt';

export type Right = 'r' | 'w';
export interface Grant {
  site: string;
  rights: string;
}
export interface Claims {
  sub: string;
  device: string;
  exp?: number;
  grants: Grant[];
}
export interface MintOptions {
  /** Lifetime in seconds (default one day). */
  expiresInSeconds?: number;
}

const DEVICE_BYTES_MAX = 128;
const NAME_BYTES_MAX = 256;

/** Mint a token for `claims` with `secret`. */
export function mintToken(claims: Omit<Claims, 'exp'> & { exp?: number }, secret: string, options: MintOptions = {}): string {
  const sign = createSigner({ key: secret, algorithm: 'HS256' });
  const exp = claims.exp ?? Math.floor(Date.now() / 1000) + (options.expiresInSeconds ?? 86400);
  return sign({ ...claims, exp });
}

export class TokenRejected extends Error {
  readonly expired: boolean;
  constructor(message: string, expired: boolean) {
    super(message);
    this.expired = expired;
  }
}

export type TokenVerifier = (token: string) => Claims;

/** A verifier for `secret`: returns the claims or throws TokenRejected with a clear message. */
export function createTokenVerifier(secret: string): TokenVerifier {
  const verify = createVerifier({ key: secret, algorithms: ['HS256'], cache: 10000, requiredClaims: ['exp'] });
  return (token: string): Claims => {
    let payload: Record<string, unknown>;
    try {
      payload = verify(token) as Record<string, unknown>;
    } catch (error) {
      const code = error instanceof TokenError ? error.code : '';
      throw new TokenRejected(`token refused: ${(error as Error).message}`, code === TokenError.codes.expired);
    }
    return checkClaims(payload);
  };
}

function checkClaims(payload: Record<string, unknown>): Claims {
  const { sub, device, exp, grants } = payload;
  if (typeof sub !== 'string' || sub.length === 0 || sub.length > NAME_BYTES_MAX) {
    throw new TokenRejected('token refused: claim "sub" must be a non-empty string', false);
  }
  if (typeof device !== 'string' || device.length === 0 || Buffer.byteLength(device) > DEVICE_BYTES_MAX) {
    throw new TokenRejected(`token refused: claim "device" must be a string of 1..${DEVICE_BYTES_MAX} bytes`, false);
  }
  if (!Array.isArray(grants)) throw new TokenRejected('token refused: claim "grants" must be an array', false);
  for (const grant of grants) {
    if (typeof grant !== 'object' || grant === null || typeof grant.site !== 'string' || typeof grant.rights !== 'string') {
      throw new TokenRejected('token refused: each grant is { site: string, rights: string }', false);
    }
  }
  return { sub, device, exp: exp as number, grants: grants as Grant[] };
}

/** Whether `grants` give `right` on `site`. */
export function allows(grants: readonly Grant[], site: string, right: Right): boolean {
  for (const grant of grants) {
    if ((grant.site === site || grant.site === '*') && grant.rights.includes(right)) return true;
  }
  return false;
}
