// The native storage engine: LMDB through lmdb-js (a native addon). One environment file in
// the data directory; each thread opens it (src/log/lmdb-store.ts for the layout).
import type { ClosableReader, CommitStore, MetadataStore, RetainedLog, RetentionView, StorageEngine } from './engine.js';
import { ChunkCursor } from './keys.js';
import { LmdbCommitSink } from './lmdb-commit-sink.js';
import { EntryKeys, LmdbStorageReader, openStore, seekChunk, storedEnd, type Store } from './lmdb-store.js';

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
        sink.finishCommit();
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
  private readonly keys = new EntryKeys();
  private readonly cursor = new ChunkCursor();

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
      const end = storedEnd(this.store.entries, this.cursor, this.keys, logId);
      yield { name, logId, first, length: end?.length ?? first, endBytes: end?.bytes ?? 0 };
    }
  }

  /** The cursor at the record of `position` (below the log's length). */
  private entryAt(logId: number, position: number): ChunkCursor {
    if (!seekChunk(this.store.entries, this.cursor, this.keys, logId, position) || !this.cursor.seek(position)) {
      throw new Error(`retention: log ${logId} has no entry at ${position} below its length`);
    }
    return this.cursor;
  }

  bytesBefore(logId: number, position: number): number {
    return this.entryAt(logId, position).bytesBefore;
  }

  appendedAt(logId: number, position: number): number {
    return this.entryAt(logId, position).appendedAt;
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
