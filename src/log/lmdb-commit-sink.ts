// The LMDB engine's side of a group commit: staged records become puts and removes inside
// the disk thread's write transaction (src/log/lmdb-engine.ts).
import type { CommitSink } from './commit.js';
import { CHUNK_BYTES_TARGET, CHUNK_RECORD_HEADER_BYTES, COMPLETION_KEY_BYTES, ChunkCursor, ENTRY_KEY_BYTES, completionKeyCommit, completionKeyLsn, completionKeyWriter, entryKeyPosition, writeChunkRecord, writeCompletionKey, writeEntryKey, writeLogPrefixKey } from './keys.js';
import type { Store } from './lmdb-store.js';
import { CommitEntries, NO_ENTRY } from './commit-entries.js';
import { CompletionRuns, type CompletionRun } from './completion-runs.js';

/** A completion run in storage: its key, and the last lsn it holds. */
interface StoredRun {
  key: Buffer;
  lastLsn: number;
}

export class LmdbCommitSink implements CommitSink {
  private readonly store: Store;
  private readonly entryKey = Buffer.alloc(ENTRY_KEY_BYTES);
  private readonly completionKey = Buffer.alloc(COMPLETION_KEY_BYTES);

  constructor(store: Store) {
    this.store = store;
    // Index the stored runs by writer (they are few: deleted in steps as acks come).
    for (const { key, value } of store.completions.getRange({})) {
      this.commit = completionKeyCommit(key) + 1;
      this.storedRuns(completionKeyWriter(key)).push({ key: Buffer.from(key), lastLsn: completionKeyLsn(key) + value.length / 8 - 1 });
    }
  }

  /** This commit's number: the key prefix of the completion runs it writes. */
  private commit = 0;
  /** Each writer's runs in storage, oldest first (lsns grow within an epoch; a new epoch deletes them all). */
  private readonly stored = new Map<number, StoredRun[]>();

  private storedRuns(writerId: number): StoredRun[] {
    let runs = this.stored.get(writerId);
    if (runs === undefined) this.stored.set(writerId, (runs = []));
    return runs;
  }

  /** The end of a commit: what is still gathered goes into the transaction. */
  finishCommit(): void {
    this.flushEntries();
    this.runs.flushAll();
    this.commit++;
  }

  // A commit's entries, gathered per log, become one chunk per log at the end of the commit.
  private readonly entries = new CommitEntries();
  // lmdb-js misreads values backed by a SharedArrayBuffer, so a chunk is built in this
  // ordinary buffer; put() copies it into the transaction before returning.
  private chunk = Buffer.alloc(2 * CHUNK_BYTES_TARGET);

  entry(logId: number, position: number, data: Buffer, bytesBefore: number, appendedAt: number): void {
    this.entries.add(logId, position, data, bytesBefore, appendedAt);
  }

  /** Put this commit's entries, one chunk per log (more when a log's entries pass CHUNK_BYTES_TARGET). */
  private flushEntries(): void {
    const entries = this.entries;
    for (const log of entries.logs) {
      let first = log.first;
      let position = log.first;
      let at = 0;
      for (let index = log.head; index !== NO_ENTRY; index = entries.next[index]!, position++) {
        const data = entries.data[index]!;
        if (at > 0 && at + CHUNK_RECORD_HEADER_BYTES + data.length > CHUNK_BYTES_TARGET) {
          this.putChunk(log.logId, first, at);
          at = 0;
        }
        if (at === 0) first = position;
        if (at + CHUNK_RECORD_HEADER_BYTES + data.length > this.chunk.length) this.growChunk(at, CHUNK_RECORD_HEADER_BYTES + data.length);
        at = writeChunkRecord(this.chunk, at, data, entries.bytesBefore[index]!, entries.appendedAt[index]!);
      }
      this.putChunk(log.logId, first, at);
    }
    entries.clear();
  }

  private putChunk(logId: number, first: number, length: number): void {
    this.store.entries.put(writeEntryKey(this.entryKey, logId, first), this.chunk.subarray(0, length));
  }

  private growChunk(used: number, needed: number): void {
    const grown = Buffer.alloc(Math.max(this.chunk.length * 2, used + needed));
    this.chunk.copy(grown, 0, 0, used);
    this.chunk = grown;
  }

  /**
   * Retention: drop the chunks of `logId` that end at or below `to`, which becomes its first
   * position. A chunk holding `to` stays whole (readers start at the first position).
   */
  trimEntries(logId: number, _from: number, to: number, bytes: number): void {
    this.flushEntries();
    const cursor = new ChunkCursor();
    const dropped: Buffer[] = [];
    for (const { key, value } of this.store.entries.getRange({ start: writeLogPrefixKey(Buffer.alloc(4), logId), end: writeEntryKey(Buffer.alloc(ENTRY_KEY_BYTES), logId, to) })) {
      cursor.reset(value, entryKeyPosition(key));
      while (cursor.next());
      if (cursor.position < to) dropped.push(Buffer.from(key));
    }
    for (const key of dropped) this.store.entries.remove(key);
    this.store.trims.put(logId, [to, bytes]);
  }

  // One record per writer per run of consecutive lsns in a commit (src/log/completion-runs.ts).
  private readonly runs = new CompletionRuns((run) => this.writeRun(run));

  completion(writerId: number, lsn: number, outcome: number): void {
    this.runs.add(writerId, lsn, outcome);
  }

  private writeRun(run: CompletionRun): void {
    writeCompletionKey(this.completionKey, this.commit, run.writerId, run.firstLsn);
    this.store.completions.put(this.completionKey, Buffer.from(run.outcomes.buffer, 0, run.length * 8));
    this.storedRuns(run.writerId).push({ key: Buffer.from(this.completionKey), lastLsn: run.firstLsn + run.length - 1 });
  }

  writer(writerId: number, logId: number, device: string, epoch: number, lastLsn: number, ackedLsn: number): void {
    this.store.writers.put([logId, device], [writerId, epoch, lastLsn, ackedLsn]);
  }

  log(logId: number, epoch: number, name: string): void {
    this.store.logs.put(name, [logId, epoch]);
  }

  /** Drop the runs of `writerId` that end at or before `toLsn` (a run partly acknowledged stays). */
  trimCompletions(writerId: number, _fromLsn: number, toLsn: number): void {
    this.runs.flushWriter(writerId);
    const runs = this.stored.get(writerId);
    if (runs === undefined) return;
    let dropped = 0;
    while (dropped < runs.length && runs[dropped]!.lastLsn <= toLsn) this.store.completions.remove(runs[dropped++]!.key);
    runs.splice(0, dropped);
    if (runs.length === 0) this.stored.delete(writerId);
  }
}
