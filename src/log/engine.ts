// The storage engine seam: everything the server's threads need from durable storage, so the
// LMDB engine (native addon) and the segment-file engine (pure JavaScript, src/native-free/)
// are interchangeable. Each thread opens its own view of the same data directory:
//   workers        → StorageReader (recovery, history reads, tail catch-up)
//   disk thread    → CommitStore   (the only writer of log data: one group commit per round)
//   IO thread      → MetadataStore (revocations, notification preferences, log names)
//   retention task → RetentionView (how far each log may be trimmed)
import type { Revocation } from '../auth/revocations.js';
import type { MembershipRecord, PushSubscriptionStored } from '../notify/preferences.js';
import type { CommitSink } from './commit.js';
import type { StorageReader } from './storage.js';

export type EngineName = 'native' | 'native-free';

/**
 * A small durable table (the subset of lmdb-js's Database API the IO thread uses). Written by
 * one thread only; `put`/`remove` resolve once durable; reads see every completed write.
 */
export interface KvTable<V, K> {
  get(key: K): V | undefined;
  getRange(options?: Record<string, never>): Iterable<{ key: K; value: V }>;
  put(key: K, value: V): Promise<boolean>;
  remove(key: K): Promise<boolean>;
}

export interface MetadataStore {
  revocations: KvTable<Revocation, string>;
  memberships: KvTable<MembershipRecord, [string, string]>;
  mutes: KvTable<number, [string, string]>;
  pushSubscriptions: KvTable<PushSubscriptionStored, [string, string]>;
  /** Every log the disk thread has committed, by its `site \0 log` key (refreshed on each call). */
  logNames(): Iterable<{ name: string; logId: number }>;
  close(): Promise<void>;
}

export interface CommitStore {
  /**
   * Run `apply`, which feeds staged records to the sink (src/log/commit.ts), and make all of
   * it durable — as one atomic group commit — before returning.
   */
  commit(apply: (sink: CommitSink) => void): void;
  close(): Promise<void>;
}

/** A log as retention sees it: entries [first, length), `endBytes` bytes of entries ever appended. */
export interface RetainedLog {
  name: string;
  logId: number;
  first: number;
  length: number;
  endBytes: number;
}

export interface RetentionView {
  /** See everything committed so far. */
  refresh(): void;
  logs(): Iterable<RetainedLog>;
  /** Bytes of every entry of the log before `position` (first ≤ position < length). */
  bytesBefore(logId: number, position: number): number;
  /** When the entry at `position` was appended, in seconds since the epoch. */
  appendedAt(logId: number, position: number): number;
  close(): Promise<void>;
}

export interface ClosableReader extends StorageReader {
  close(): Promise<void>;
}

/** Tuning of the writer; an engine ignores what does not apply to it. */
export interface CommitStoreTuning {
  /** native-free: a new segment file is started at this size. */
  segmentBytes?: number;
}

export interface StorageEngine {
  readonly name: EngineName;
  openReader(dataDir: string): ClosableReader;
  openCommitStore(dataDir: string, tuning?: CommitStoreTuning): CommitStore;
  openMetadata(dataDir: string): MetadataStore;
  openRetentionView(dataDir: string): RetentionView;
}
