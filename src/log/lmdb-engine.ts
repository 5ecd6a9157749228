// The native storage engine: LMDB through lmdb-js (a native addon). One environment file in
// the data directory; each thread opens it (src/log/lmdb-store.ts for the layout).
import type { ClosableReader, CommitStore, MetadataStore, RetainedLog, RetentionView, StorageEngine } from './engine.js';
import { ENTRY_HEADER_BYTES, ENTRY_KEY_BYTES, entryAppendedAt, entryBytesBefore, entryKeyPosition, writeEntryKey } from './keys.js';
import { LmdbCommitSink } from './lmdb-commit-sink.js';
import { LmdbStorageReader, openStore, type Store } from './lmdb-store.js';

class LmdbReader extends LmdbStorageReader implements ClosableReader {
  private readonly opened: Store;

  constructor(store: Store) {
    super(store);
    this.opened = store;
  }

  close(): Promise<void> {
    return this.opened.root.close();
  }
}

function openCommitStore(dataDir: string): CommitStore {
  const store = openStore(dataDir);
  const sink = new LmdbCommitSink(store);
  return {
    commit(apply) {
      // One write transaction; it returns after fsync (overlappingSync is off).
      store.root.transactionSync(() => {
        apply(sink);
        sink.flushRun();
      });
    },
    close: () => store.root.close(),
  };
}

function openMetadata(dataDir: string): MetadataStore {
  const store = openStore(dataDir);
  return {
    revocations: store.revocations,
    memberships: store.memberships,
    mutes: store.mutes,
    pushSubscriptions: store.pushSubscriptions,
    *logNames() {
      for (const { key, value } of store.logs.getRange({})) yield { name: key, logId: value[0] };
    },
    close: () => store.root.close(),
  };
}

class LmdbRetentionView implements RetentionView {
  private readonly store: Store;
  private readonly key = Buffer.alloc(ENTRY_KEY_BYTES);
  private readonly lastKey = Buffer.alloc(ENTRY_KEY_BYTES);

  constructor(store: Store) {
    this.store = store;
  }

  refresh(): void {
    this.store.root.resetReadTxn();
  }

  *logs(): Iterable<RetainedLog> {
    for (const { key: name, value } of this.store.logs.getRange({})) {
      const logId = value[0];
      const first = this.store.trims.get(logId)?.[0] ?? 0;
      let length = first;
      let endBytes = 0;
      writeEntryKey(this.lastKey, logId, Number.MAX_SAFE_INTEGER);
      for (const entry of this.store.entries.getRange({ start: this.lastKey, end: writeEntryKey(this.key, logId, 0), reverse: true, limit: 1 })) {
        length = entryKeyPosition(entry.key) + 1;
        endBytes = entryBytesBefore(entry.value) + entry.value.length - ENTRY_HEADER_BYTES;
      }
      yield { name, logId, first, length, endBytes };
    }
  }

  private entryAt(logId: number, position: number): Buffer {
    const value = this.store.entries.get(writeEntryKey(this.key, logId, position));
    if (value === undefined) throw new Error(`retention: log ${logId} has no entry at ${position} below its length`);
    return value;
  }

  bytesBefore(logId: number, position: number): number {
    return entryBytesBefore(this.entryAt(logId, position));
  }

  appendedAt(logId: number, position: number): number {
    return entryAppendedAt(this.entryAt(logId, position));
  }

  close(): Promise<void> {
    return this.store.root.close();
  }
}

export const lmdbEngine: StorageEngine = {
  name: 'native',
  openReader: (dataDir) => new LmdbReader(openStore(dataDir)),
  openCommitStore,
  openMetadata,
  openRetentionView: (dataDir) => new LmdbRetentionView(openStore(dataDir)),
};
