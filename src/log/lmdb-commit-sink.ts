// The LMDB engine's side of a group commit: staged records become puts and removes inside
// the disk thread's write transaction (src/log/lmdb-engine.ts).
import type { CommitSink } from './commit.js';
import { COMPLETION_KEY_BYTES, ENTRY_HEADER_BYTES, ENTRY_KEY_BYTES, completionKeyLsn, writeCompletionKey, writeEntryHeader, writeEntryKey } from './keys.js';
import type { Store } from './lmdb-store.js';

interface CompletionRun {
  writerId: number;
  firstLsn: number;
  length: number;
  outcomes: Float64Array;
}

export class LmdbCommitSink implements CommitSink {
  private readonly store: Store;
  private readonly entryKey = Buffer.alloc(ENTRY_KEY_BYTES);
  private readonly completionKey = Buffer.alloc(COMPLETION_KEY_BYTES);
  // lmdb-js misreads values backed by a SharedArrayBuffer, so an entry is first copied to
  // this ordinary buffer; put() copies it into the transaction before returning.
  private value = Buffer.alloc(1 << 20);

  constructor(store: Store) {
    this.store = store;
  }

  entry(logId: number, position: number, data: Buffer, bytesBefore: number, appendedAt: number): void {
    const length = ENTRY_HEADER_BYTES + data.length;
    if (length > this.value.length) this.value = Buffer.alloc(length);
    writeEntryHeader(this.value, bytesBefore, appendedAt);
    data.copy(this.value, ENTRY_HEADER_BYTES);
    this.store.entries.put(writeEntryKey(this.entryKey, logId, position), this.value.subarray(0, length));
  }

  /** Retention: the entries are dense positions, so each key is known without a scan. */
  trimEntries(logId: number, from: number, to: number, bytes: number): void {
    for (let position = from; position < to; position++) this.store.entries.remove(writeEntryKey(this.entryKey, logId, position));
    this.store.trims.put(logId, [to, bytes]);
  }

  // Completion records are written as runs: one LMDB record per writer per run of
  // consecutive lsns in a commit, keyed by the run's first lsn, holding float64 outcomes.
  // Runs are kept per writer for the whole commit, so a device that interleaves writes to
  // several logs (several writers) still gets one record per writer, not one per write.
  private readonly runs = new Map<number, CompletionRun>();
  /** This commit's runs, in first-seen order; and runs to reuse in the next commit. */
  private readonly pending: CompletionRun[] = [];
  private readonly spare: CompletionRun[] = [];

  completion(writerId: number, lsn: number, outcome: number): void {
    let run = this.runs.get(writerId);
    if (run === undefined) {
      run = this.spare.pop() ?? { writerId, firstLsn: lsn, length: 0, outcomes: new Float64Array(64) };
      run.writerId = writerId;
      run.firstLsn = lsn;
      run.length = 0;
      this.runs.set(writerId, run);
      this.pending.push(run);
    }
    if (run.length > 0 && lsn !== run.firstLsn + run.length) {
      this.writeRun(run);
      run.firstLsn = lsn;
    }
    if (run.length === run.outcomes.length) {
      const grown = new Float64Array(run.outcomes.length * 2);
      grown.set(run.outcomes);
      run.outcomes = grown;
    }
    run.outcomes[run.length++] = outcome;
  }

  /** Write every pending run (before a trim, and at the end of a commit). */
  flushRun(): void {
    for (const run of this.pending) {
      if (run.length > 0) this.writeRun(run);
      this.spare.push(run);
    }
    this.pending.length = 0;
    this.runs.clear();
  }

  private writeRun(run: CompletionRun): void {
    const bytes = Buffer.from(run.outcomes.buffer, 0, run.length * 8);
    this.store.completions.put(writeCompletionKey(this.completionKey, run.writerId, run.firstLsn), bytes);
    run.length = 0;
  }

  writer(writerId: number, logId: number, device: string, epoch: number, lastLsn: number, ackedLsn: number): void {
    this.store.writers.put([logId, device], [writerId, epoch, lastLsn, ackedLsn]);
  }

  log(logId: number, epoch: number, name: string): void {
    this.store.logs.put(name, [logId, epoch]);
  }

  /** Drop the runs of `writerId` that end at or before `toLsn` (a run partly acknowledged stays). */
  trimCompletions(writerId: number, _fromLsn: number, toLsn: number): void {
    this.flushRun();
    const start = Buffer.alloc(COMPLETION_KEY_BYTES);
    const end = Buffer.alloc(COMPLETION_KEY_BYTES);
    writeCompletionKey(start, writerId, 0);
    writeCompletionKey(end, writerId, toLsn + 1);
    const dropped: Buffer[] = [];
    for (const { key, value } of this.store.completions.getRange({ start, end })) {
      if (completionKeyLsn(key) + value.length / 8 - 1 <= toLsn) dropped.push(Buffer.from(key));
    }
    for (const key of dropped) this.store.completions.remove(key);
  }
}
