// The LMDB environment: one file, nine databases. Opened by the disk thread (the only
// writer) and by every worker (readers: history reads, tail catch-up, recovery).
import { open, type Database, type RootDatabase } from 'lmdb';
import { join } from 'node:path';
import { COMPLETION_KEY_BYTES, ENTRY_HEADER_BYTES, ENTRY_KEY_BYTES, entryBytesBefore, entryKeyPosition, writeEntryKey } from './keys.js';
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

export class LmdbStorageReader implements StorageReader {
  private readonly store: Store;
  private readonly startKey = Buffer.alloc(ENTRY_KEY_BYTES);
  private readonly endKey = Buffer.alloc(ENTRY_KEY_BYTES);

  constructor(store: Store) {
    this.store = store;
  }

  readEntries(logId: number, from: number, to: number, bytesMax: number, sink: EntrySink): number {
    if (from >= to) return 0;
    writeEntryKey(this.startKey, logId, from);
    writeEntryKey(this.endKey, logId, to);
    let count = 0;
    let bytes = 0;
    for (const { key, value } of this.store.entries.getRange({ start: this.startKey, end: this.endKey })) {
      sink.entry(entryKeyPosition(key), value.subarray(ENTRY_HEADER_BYTES));
      count++;
      bytes += value.length - ENTRY_HEADER_BYTES;
      if (bytes >= bytesMax) break;
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
    const last = Buffer.alloc(ENTRY_KEY_BYTES);
    const first = Buffer.alloc(ENTRY_KEY_BYTES);
    for (const { key, value } of this.store.logs.getRange({})) {
      const [logId, epoch] = value;
      writeEntryKey(first, logId, 0);
      writeEntryKey(last, logId, Number.MAX_SAFE_INTEGER);
      const [trimmedTo, trimmedBytes] = this.store.trims.get(logId) ?? [0, 0];
      let tail = trimmedTo;
      let bytes = trimmedBytes;
      for (const entry of this.store.entries.getRange({ start: last, end: first, reverse: true, limit: 1 })) {
        tail = entryKeyPosition(entry.key) + 1;
        bytes = entryBytesBefore(entry.value) + entry.value.length - ENTRY_HEADER_BYTES;
      }
      yield { name: key, logId, epoch, tail, first: trimmedTo, bytes };
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
      const view = new DataView(key.buffer, key.byteOffset, COMPLETION_KEY_BYTES);
      const writerId = view.getUint32(0);
      const first = view.getUint32(4);
      const outcomes = new DataView(value.buffer, value.byteOffset, value.byteLength);
      for (let index = 0; index < value.byteLength / 8; index++) {
        yield { writerId, lsn: first + index, outcome: outcomes.getFloat64(index * 8, true) };
      }
    }
  }
}
