// The revocation list: token ids, devices and users whose tokens are refused until they
// could have expired anyway. Kept in LMDB so it survives restarts, and small: an entry is
// dropped once it expires. A device or user revocation refuses tokens issued (iat) before it.
import type { KvTable } from '../log/engine.js';

export type RevocationKind = 'jti' | 'device' | 'user';

export interface Revocation {
  kind: RevocationKind;
  value: string;
  /** Seconds since the epoch. */
  revokedAt: number;
  /** After this (seconds), every token it could refuse has expired: the entry is dropped. */
  expiresAt: number;
}

export interface RevocableClaims {
  sub?: string;
  device?: string;
  jti?: string;
  iat?: number;
}

function key(kind: RevocationKind, value: string): string {
  return `${kind}:${value}`;
}

export class Revocations {
  private readonly db: KvTable<Revocation, string>;
  private readonly entries = new Map<string, Revocation>();

  constructor(db: KvTable<Revocation, string>) {
    this.db = db;
    for (const { key: entryKey, value } of db.getRange({})) this.entries.set(entryKey, value);
  }

  get size(): number {
    return this.entries.size;
  }

  list(): Revocation[] {
    return [...this.entries.values()];
  }

  /** The revocation that refuses a token with these claims, if any. */
  refuses(claims: RevocableClaims, nowSeconds: number): Revocation | undefined {
    const issuedAt = claims.iat ?? 0;
    const byJti = claims.jti === undefined ? undefined : this.live(key('jti', claims.jti), nowSeconds);
    if (byJti !== undefined) return byJti;
    for (const [kind, value] of [
      ['device', claims.device],
      ['user', claims.sub],
    ] as const) {
      if (value === undefined) continue;
      const revocation = this.live(key(kind, value), nowSeconds);
      if (revocation !== undefined && issuedAt <= revocation.revokedAt) return revocation;
    }
    return undefined;
  }

  /** Add (or extend) a revocation; resolves once it is durable. */
  async add(revocation: Revocation): Promise<void> {
    const entryKey = key(revocation.kind, revocation.value);
    const previous = this.entries.get(entryKey);
    const merged = previous === undefined ? revocation : { ...revocation, expiresAt: Math.max(previous.expiresAt, revocation.expiresAt) };
    this.entries.set(entryKey, merged);
    await this.db.put(entryKey, merged);
  }

  /** Drop the entries that expired; returns how many. */
  async prune(nowSeconds: number): Promise<number> {
    const expired = [...this.entries].filter(([, revocation]) => revocation.expiresAt <= nowSeconds);
    for (const [entryKey] of expired) this.entries.delete(entryKey);
    await Promise.all(expired.map(([entryKey]) => this.db.remove(entryKey)));
    return expired.length;
  }

  private live(entryKey: string, nowSeconds: number): Revocation | undefined {
    const revocation = this.entries.get(entryKey);
    return revocation !== undefined && revocation.expiresAt > nowSeconds ? revocation : undefined;
  }
}
