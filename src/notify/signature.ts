// The webhook signature, Stripe-style: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
// Signing the timestamp with the body lets a receiver refuse old requests (replays) as well as
// forged ones. The verifier is public: receivers import it (see docs/WEBHOOKS.md).
import { createHmac, timingSafeEqual } from 'node:crypto';

const DIGEST_HEX = /^[0-9a-f]{64}$/;

function digest(secret: string, body: string | Uint8Array, timestamp: number): Buffer {
  return createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest();
}

/** The `tailgrove-signature` header value for `body` (the exact bytes sent) at `nowSeconds`. */
export function signPayload(secret: string, body: string | Uint8Array, nowSeconds = Math.floor(Date.now() / 1000)): string {
  return `t=${nowSeconds},v1=${digest(secret, body, nowSeconds).toString('hex')}`;
}

/**
 * Whether `header` (the `tailgrove-signature` request header) signs `body` with `secret` and
 * its timestamp is within `toleranceSeconds` of `nowSeconds`.
 *
 * Pass the raw request body, byte for byte as received: parsing and re-serialising the JSON
 * changes the bytes and fails the check. The digest comparison is constant-time. A header may
 * carry several `v1=` digests (e.g. while a secret is rotated); any one matching is enough.
 * Never throws: a missing or malformed header is just `false`.
 */
export function verifySignature(
  secret: string,
  body: string | Uint8Array,
  header: string | undefined,
  toleranceSeconds: number,
  nowSeconds = Math.floor(Date.now() / 1000),
): boolean {
  if (header === undefined) return false;
  let timestamp: number | undefined;
  const candidates: string[] = [];
  for (const part of header.split(',')) {
    const equals = part.indexOf('=');
    if (equals < 0) continue;
    const key = part.slice(0, equals).trim();
    const value = part.slice(equals + 1).trim();
    if (key === 't' && /^\d{1,15}$/.test(value)) timestamp = Number(value);
    else if (key === 'v1' && DIGEST_HEX.test(value)) candidates.push(value);
  }
  if (timestamp === undefined || candidates.length === 0) return false;
  if (Math.abs(nowSeconds - timestamp) > toleranceSeconds) return false;
  const expected = digest(secret, body, timestamp);
  let matched = false;
  // Compare against every candidate, so the time taken does not tell which one matched.
  for (const candidate of candidates) matched = timingSafeEqual(expected, Buffer.from(candidate, 'hex')) || matched;
  return matched;
}
