// The disk thread's CommitSink: what a group commit's apply feeds becomes one commit frame.
// Entries are copied once into a side buffer as they come (interleaved across logs), then
// laid down grouped by log as blocks when the frame closes, so a log's entries of one commit
// are one contiguous read and one index item. Completion outcomes are coalesced into runs of
// consecutive lsns per writer across the whole commit (LMDB's sink cuts a run whenever the
// writer changes, so interleaved devices make a record per write; here a writer's lsns of one
// commit are one record). A run ends at an lsn gap, at a completion trim of its writer
// (written before the trim, as LMDB does), or at the end of the commit. The recovered state
// is the same: a run straddling an ack stays whole either way, and recovery skips the
// acknowledged lsns in it.
import { invariant } from '../../invariant.js';
import type { CommitSink } from '../../log/commit.js';
import type { FrameBuilder } from './frame-builder.js';
import {
  BLOCK_BYTES_MAX,
  COMPLETIONS_COUNT,
  COMPLETIONS_FIRST_LSN,
  COMPLETIONS_OUTCOMES,
  COMPLETIONS_WRITER_ID,
  ENTRY_APPENDED_AT,
  ENTRY_HEADER_BYTES,
  ENTRY_LENGTH,
  LOG_EPOCH,
  LOG_LOG_ID,
  LOG_NAME,
  META_COMPLETIONS,
  META_LOG,
  META_TRIM_COMPLETIONS,
  META_TRIM_ENTRIES,
  META_WRITER,
  NO_BOUND,
  TRIM_COMPLETIONS_BOUND,
  TRIM_COMPLETIONS_BYTES,
  TRIM_COMPLETIONS_FROM_LSN,
  TRIM_COMPLETIONS_TO_LSN,
  TRIM_COMPLETIONS_WRITER_ID,
  TRIM_ENTRIES_BYTES,
  TRIM_ENTRIES_FROM,
  TRIM_ENTRIES_LOG_BYTES,
  TRIM_ENTRIES_LOG_ID,
  TRIM_ENTRIES_TO,
  WRITER_ACKED_LSN,
  WRITER_DEVICE,
  WRITER_EPOCH,
  WRITER_LAST_LSN,
  WRITER_LOG_ID,
  WRITER_WRITER_ID,
} from './format.js';
import type { StoreState } from './store-state.js';
import { CommitEntries, NO_ENTRY, type LogEntries } from '../../log/commit-entries.js';
import { CompletionRuns, type CompletionRun } from '../../log/completion-runs.js';

export class SegmentCommitSink implements CommitSink {
  private readonly state: StoreState;
  private readonly builder: FrameBuilder;
  // The commit's entries, gathered per log (src/log/commit-entries.ts).
  private readonly entries = new CommitEntries();
  /** Logs trimmed in this commit: their new first position. */
  private readonly trimmedTo = new Map<number, number>();
  // The completion runs being coalesced (src/log/completion-runs.ts).
  private readonly runs = new CompletionRuns((run) => this.writeRun(run));

  constructor(state: StoreState, builder: FrameBuilder) {
    this.state = state;
    this.builder = builder;
  }

  entry(logId: number, position: number, data: Buffer, bytesBefore: number, appendedAt: number): void {
    const log = this.entries.add(logId, position, data, bytesBefore, appendedAt);
    if (log.head === log.last) invariant(position === (this.state.logs.get(logId)?.tail ?? 0), "entries are stored at their log's tail");
  }

  completion(writerId: number, lsn: number, outcome: number): void {
    this.runs.add(writerId, lsn, outcome);
  }

  writer(writerId: number, logId: number, device: string, epoch: number, lastLsn: number, ackedLsn: number): void {
    const deviceBytes = Buffer.byteLength(device, 'utf8');
    const at = this.builder.metaRecord(META_WRITER, WRITER_DEVICE + deviceBytes);
    const meta = this.builder.meta;
    meta.view.setUint32(at + WRITER_WRITER_ID, writerId, true);
    meta.view.setUint32(at + WRITER_LOG_ID, logId, true);
    meta.view.setUint32(at + WRITER_EPOCH, epoch, true);
    meta.view.setUint32(at + WRITER_LAST_LSN, lastLsn, true);
    meta.view.setUint32(at + WRITER_ACKED_LSN, ackedLsn, true);
    meta.bytes.write(device, at + WRITER_DEVICE, deviceBytes, 'utf8');
  }

  log(logId: number, epoch: number, name: string): void {
    const nameBytes = Buffer.byteLength(name, 'utf8');
    const at = this.builder.metaRecord(META_LOG, LOG_NAME + nameBytes);
    const meta = this.builder.meta;
    meta.view.setUint32(at + LOG_LOG_ID, logId, true);
    meta.view.setUint32(at + LOG_EPOCH, epoch, true);
    meta.bytes.write(name, at + LOG_NAME, nameBytes, 'utf8');
  }

  trimCompletions(writerId: number, fromLsn: number, toLsn: number): void {
    this.runs.flushWriter(writerId);
    const at = this.builder.metaRecord(META_TRIM_COMPLETIONS, TRIM_COMPLETIONS_BYTES);
    const view = this.builder.meta.view;
    view.setUint32(at + TRIM_COMPLETIONS_WRITER_ID, writerId, true);
    view.setUint32(at + TRIM_COMPLETIONS_FROM_LSN, fromLsn, true);
    view.setUint32(at + TRIM_COMPLETIONS_TO_LSN, toLsn, true);
    view.setUint32(at + TRIM_COMPLETIONS_BOUND, NO_BOUND, true);
  }

  trimEntries(logId: number, from: number, to: number, bytes: number): void {
    // Checked here, before the frame is durable: replaying it must not fail.
    invariant(to >= (this.trimmedTo.get(logId) ?? this.state.logs.get(logId)?.first ?? 0), "a log's first position never moves down");
    this.trimmedTo.set(logId, to);
    const at = this.builder.metaRecord(META_TRIM_ENTRIES, TRIM_ENTRIES_BYTES);
    const view = this.builder.meta.view;
    view.setUint32(at + TRIM_ENTRIES_LOG_ID, logId, true);
    view.setFloat64(at + TRIM_ENTRIES_FROM, from, true);
    view.setFloat64(at + TRIM_ENTRIES_TO, to, true);
    view.setFloat64(at + TRIM_ENTRIES_LOG_BYTES, bytes, true);
  }

  /** Close the commit's frame: the pending run, then every log's entries as blocks. */
  finish(): void {
    this.runs.flushAll();
    for (const log of this.entries.logs) this.writeBlocks(log);
    this.forgetEntries();
  }

  /** Forget a commit given up half way (its apply threw). */
  abandon(): void {
    this.runs.discard();
    this.forgetEntries();
  }

  private forgetEntries(): void {
    this.entries.clear();
    this.trimmedTo.clear();
  }

  /**
   * Lay a log's entries down as blocks: a block ends at BLOCK_BYTES_MAX, or where the byte
   * counts given do not follow on (they are stored per block, derived inside it).
   */
  private writeBlocks(log: LogEntries): void {
    const frames = this.builder.frames;
    let position = log.first;
    let blockStart = -1;
    let blockFirst = 0;
    let blockCount = 0;
    let blockBytesBefore = 0;
    let expectedBytesBefore = 0;
    const entries = this.entries;
    for (let entry = log.head; entry !== NO_ENTRY; entry = entries.next[entry]!) {
      const data = entries.data[entry]!;
      const length = data.length;
      const bytesBefore = entries.bytesBefore[entry]!;
      if (blockStart >= 0 && (frames.length - blockStart + ENTRY_HEADER_BYTES + length > BLOCK_BYTES_MAX || bytesBefore !== expectedBytesBefore)) {
        this.builder.block(log.logId, blockFirst, blockCount, blockBytesBefore, blockStart, frames.length - blockStart);
        blockStart = -1;
      }
      if (blockStart < 0) {
        blockStart = frames.length;
        blockFirst = position;
        blockCount = 0;
        blockBytesBefore = bytesBefore;
      }
      const at = frames.append(ENTRY_HEADER_BYTES + length);
      frames.view.setUint32(at + ENTRY_LENGTH, length, true);
      frames.view.setUint32(at + ENTRY_APPENDED_AT, entries.appendedAt[entry]!, true);
      frames.bytes.set(data, at + ENTRY_HEADER_BYTES);
      blockCount++;
      position++;
      expectedBytesBefore = bytesBefore + length;
    }
    if (blockStart >= 0) this.builder.block(log.logId, blockFirst, blockCount, blockBytesBefore, blockStart, frames.length - blockStart);
  }

  /** A completion run as a meta record. */
  private writeRun(run: CompletionRun): void {
    const at = this.builder.metaRecord(META_COMPLETIONS, COMPLETIONS_OUTCOMES + run.length * 8);
    const view = this.builder.meta.view;
    view.setUint32(at + COMPLETIONS_WRITER_ID, run.writerId, true);
    view.setUint32(at + COMPLETIONS_FIRST_LSN, run.firstLsn, true);
    view.setUint32(at + COMPLETIONS_COUNT, run.length, true);
    for (let index = 0; index < run.length; index++) view.setFloat64(at + COMPLETIONS_OUTCOMES + index * 8, run.outcomes[index]!, true);
  }
}
