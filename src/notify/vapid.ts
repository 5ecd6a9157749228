// The server's VAPID key pair (RFC 8292): generated once, at the first start, into
// <dataDir>/vapid.json and loaded on every later start. Browsers bind each push subscription
// to the public key, so a file that cannot be read is an error and is never replaced:
// new keys would silently orphan every existing subscription.
import { createECDH } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import webpush from 'web-push';

export interface VapidKeys {
  /** Base64url of the uncompressed P-256 point (65 bytes): the browsers' applicationServerKey. */
  publicKey: string;
  /** Base64url of the 32-byte P-256 private key. */
  privateKey: string;
  /** When the keys were generated (ISO 8601). */
  createdAt: string;
}

export const VAPID_KEYS_FILE = 'vapid.json';

/** Why `keys` is not a valid key pair, or undefined when it is. */
function problemWith(keys: Partial<Record<keyof VapidKeys, unknown>>): string | undefined {
  const { publicKey, privateKey, createdAt } = keys;
  if (typeof publicKey !== 'string' || typeof privateKey !== 'string' || typeof createdAt !== 'string') {
    return 'expected string fields publicKey, privateKey and createdAt';
  }
  const privateBytes = Buffer.from(privateKey, 'base64url');
  if (privateBytes.length !== 32) return 'privateKey is not 32 bytes of base64url';
  const ecdh = createECDH('prime256v1');
  try {
    ecdh.setPrivateKey(privateBytes);
  } catch {
    return 'privateKey is not a P-256 private key';
  }
  if (!ecdh.getPublicKey().equals(Buffer.from(publicKey, 'base64url'))) return 'publicKey does not belong to privateKey';
  return undefined;
}

function create(file: string): VapidKeys {
  const keys: VapidKeys = { ...webpush.generateVAPIDKeys(), createdAt: new Date().toISOString() };
  // Written aside and renamed into place: a crash mid-write must not leave a partial file,
  // which the next start would (rightly) refuse.
  const temporary = `${file}.tmp`;
  rmSync(temporary, { force: true });
  const fd = openSync(temporary, 'wx', 0o600);
  try {
    writeSync(fd, `${JSON.stringify(keys, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, file);
  return keys;
}

/** Load the VAPID keys of `dataDir`, generating them if it has none yet. */
export function loadOrCreateVapidKeys(dataDir: string): { keys: VapidKeys; created: boolean } {
  const file = join(dataDir, VAPID_KEYS_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    return { keys: create(file), created: true };
  }
  let parsed: unknown;
  let problem: string | undefined;
  try {
    parsed = JSON.parse(text);
    problem = typeof parsed === 'object' && parsed !== null ? problemWith(parsed) : 'not a JSON object';
  } catch (error) {
    problem = `not JSON (${(error as Error).message})`;
  }
  if (problem !== undefined) {
    throw new Error(
      `VAPID keys file ${file} is corrupt: ${problem}. Push subscriptions are bound to its public key, so it is not regenerated: ` +
        'restore it from a backup, or delete it to generate new keys (every browser must then subscribe again).',
    );
  }
  const { publicKey, privateKey, createdAt } = parsed as VapidKeys;
  return { keys: { publicKey, privateKey, createdAt }, created: false };
}
