// The LMDB environment: one file, nine databases. Opened by the disk thread (the only
// writer) and by every worker (readers: history reads, tail catch-up, recovery).
import { open, type Database, type RootDatabase } from 'lmdb';
import { join } from 'node:path';
import { ChunkCursor, ENTRY_KEY_BYTES, completionKeyLsn, completionKeyWriter, entryKeyPosition, writeEntryKey, writeLogPrefixKey } from './keys.js';
import type { Revocation } from '../auth/revocations.js';
import type { MembershipRecord, PushSubscriptionStored } from '../notify/preferences.js';
import type { DurableCompletion, DurableLog, DurableWriter, EntrySink, StorageReader } from './storage.js';

export interface Store {
  root: RootDatabase;
  entries: Database<Buffer, Buffer>;
  completions: Database<Buffer, Buffer>;
  writers: Database<[number, number, number, number], [number, string]>;
  logs: Database<[number, number], string>;
  /** logId → [first position held, bytes of the log] after retention trimmed it. */
  trims: Database<[number, number], number>;
  /** Written by the IO thread only (admin revocations); src/auth/revocations.ts. */
  revocations: Database<Revocation, string>;
  /** Notification preferences, written by the IO thread only (src/notify/preferences.ts). */
  memberships: Database<MembershipRecord, [string, string]>;
  mutes: Database<number, [string, string]>;
  pushSubscriptions: Database<PushSubscriptionStored, [string, string]>;
}

// LMDB reserves the address space up front; 64 GiB of it costs nothing until used.
const MAP_SIZE = 64 * 2 ** 30;

export function openStore(dataDir: string): Store {
  const root = open({
    path: join(dataDir, 'tailgrove.lmdb'),
    maxDbs: 16,
    mapSize: MAP_SIZE,
    // A commit returns only once it is on disk: acks follow commits, so they follow fsync.
    overlappingSync: false,
    noMemInit: true,
  });
  return {
    root,
    entries: root.openDB<Buffer, Buffer>({ name: 'entries', keyEncoding: 'binary', encoding: 'binary' }),
    completions: root.openDB<Buffer, Buffer>({ name: 'completions', keyEncoding: 'binary', encoding: 'binary' }),
    writers: root.openDB<[number, number, number, number], [number, string]>({ name: 'writers', encoding: 'msgpack' }),
    logs: root.openDB<[number, number], string>({ name: 'logs', encoding: 'msgpack' }),
    trims: root.openDB<[number, number], number>({ name: 'trims', encoding: 'msgpack' }),
    revocations: root.openDB<Revocation, string>({ name: 'revocations', encoding: 'msgpack' }),
    memberships: root.openDB<MembershipRecord, [string, string]>({ name: 'memberships', encoding: 'msgpack' }),
    mutes: root.openDB<number, [string, string]>({ name: 'mutes', encoding: 'msgpack' }),
    pushSubscriptions: root.openDB<PushSubscriptionStored, [string, string]>({ name: 'push-subscriptions', encoding: 'msgpack' }),
  };
}

/**
 * Point `cursor` at the chunk of `logId` holding `position` or, when there is none, the last
 * chunk below it (`position` undefined: the log's last chunk). False when the log has no chunk
 * at or below it.
 */
export function seekChunk(entries: Database<Buffer, Buffer>, cursor: ChunkCursor, keys: EntryKeys, logId: number, position = Number.MAX_SAFE_INTEGER): boolean {
  writeEntryKey(keys.start, logId, position);
  for (const { key, value } of entries.getRange({ start: keys.start, end: writeLogPrefixKey(keys.prefix, logId), reverse: true, limit: 1 })) {
    cursor.reset(value, entryKeyPosition(key));
    return true;
  }
  return false;
}

/** The end of a log's stored entries: its length and bytes, from the last record of its last chunk. */
export function storedEnd(entries: Database<Buffer, Buffer>, cursor: ChunkCursor, keys: EntryKeys, logId: number): { length: number; bytes: number } | undefined {
  if (!seekChunk(entries, cursor, keys, logId)) return undefined;
  let length = 0;
  let bytes = 0;
  while (cursor.next()) {
    length = cursor.position + 1;
    bytes = cursor.bytesBefore + cursor.dataLength;
  }
  return { length, bytes };
}

/** Scratch keys for the entry lookups (reused: no allocation per lookup). */
export class EntryKeys {
  readonly start = Buffer.alloc(ENTRY_KEY_BYTES);
  readonly end = Buffer.alloc(ENTRY_KEY_BYTES);
  readonly prefix = Buffer.alloc(4);
}

export class LmdbStorageReader implements StorageReader {
  private readonly store: Store;
  private readonly keys = new EntryKeys();
  private readonly cursor = new ChunkCursor();

  constructor(store: Store) {
    this.store = store;
  }

  readEntries(logId: number, from: number, to: number, bytesMax: number, sink: EntrySink): number {
    if (from >= to) return 0;
    // Start at the chunk holding `from` (it may begin below it).
    const start = seekChunk(this.store.entries, this.cursor, this.keys, logId, from) ? this.cursor.position + 1 : from;
    writeEntryKey(this.keys.start, logId, start);
    writeEntryKey(this.keys.end, logId, to);
    let count = 0;
    let bytes = 0;
    for (const { key, value } of this.store.entries.getRange({ start: this.keys.start, end: this.keys.end })) {
      this.cursor.reset(value, entryKeyPosition(key));
      while (this.cursor.next()) {
        if (this.cursor.position < from) continue;
        if (this.cursor.position >= to) return count;
        sink.entry(this.cursor.position, this.cursor.data());
        count++;
        bytes += this.cursor.dataLength;
        if (bytes >= bytesMax) return count;
      }
    }
    return count;
  }

  // lmdb-js renews read snapshots on a timer of the event loop, which worker threads never
  // yield to: they renew and let go explicitly.
  private snapshotHeld = true;

  refresh(): void {
    this.store.root.resetReadTxn();
    this.snapshotHeld = true;
  }

  release(): void {
    if (!this.snapshotHeld) return;
    this.store.root.resetReadTxn();
    this.snapshotHeld = false;
  }

  *logs(): Iterable<DurableLog> {
    for (const { key, value } of this.store.logs.getRange({})) {
      const [logId, epoch] = value;
      const [trimmedTo, trimmedBytes] = this.store.trims.get(logId) ?? [0, 0];
      const end = storedEnd(this.store.entries, this.cursor, this.keys, logId);
      yield { name: key, logId, epoch, tail: end?.length ?? trimmedTo, first: trimmedTo, bytes: end?.bytes ?? trimmedBytes };
    }
  }

  *writers(): Iterable<DurableWriter> {
    for (const { key, value } of this.store.writers.getRange({})) {
      const [writerId, epoch, lastLsn, ackedLsn] = value;
      yield { writerId, logId: key[0], device: key[1], epoch, lastLsn, ackedLsn };
    }
  }

  *completions(): Iterable<DurableCompletion> {
    for (const { key, value } of this.store.completions.getRange({})) {
      const writerId = completionKeyWriter(key);
      const first = completionKeyLsn(key);
      const outcomes = new DataView(value.buffer, value.byteOffset, value.byteLength);
      for (let index = 0; index < value.byteLength / 8; index++) {
        yield { writerId, lsn: first + index, outcome: outcomes.getFloat64(index * 8, true) };
      }
    }
  }
}
