// The state the record stream describes, rebuilt by replaying commit frames in stream order —
// the same code in the disk thread and in every reader, so they cannot disagree: logs (with
// their first position, tail, byte count and entry index), writers, completion runs. It also
// keeps, per segment, how many of its bytes are still live, which compaction goes by.
//
// Replay is idempotent for what compaction carries forward: a copy supersedes its original,
// so a crash that left both (the old segment not yet deleted) replays to the same state.
import { invariant } from '../../invariant.js';
import type { DurableWriter } from '../../log/storage.js';
import { BlockIndex, type BlockRemoval } from './block-index.js';
import {
  COMPLETIONS_COUNT,
  COMPLETIONS_FIRST_LSN,
  COMPLETIONS_OUTCOMES,
  COMPLETIONS_WRITER_ID,
  DESCRIPTOR_BYTES,
  DESCRIPTOR_BYTES_BEFORE,
  DESCRIPTOR_BYTE_LENGTH,
  DESCRIPTOR_COUNT,
  DESCRIPTOR_FIRST_POSITION,
  DESCRIPTOR_LOG_ID,
  DESCRIPTOR_OFFSET,
  ENTRY_HEADER_BYTES,
  LOG_EPOCH,
  LOG_LOG_ID,
  LOG_NAME,
  META_COMPLETIONS,
  META_KIND,
  META_LENGTH,
  META_LOG,
  META_TRIM_COMPLETIONS,
  META_TRIM_ENTRIES,
  META_WRITER,
  TRIM_COMPLETIONS_BOUND,
  TRIM_COMPLETIONS_TO_LSN,
  TRIM_COMPLETIONS_WRITER_ID,
  TRIM_ENTRIES_BYTES,
  TRIM_ENTRIES_LOG_BYTES,
  TRIM_ENTRIES_LOG_ID,
  TRIM_ENTRIES_TO,
  WRITER_ACKED_LSN,
  WRITER_DEVICE,
  WRITER_EPOCH,
  WRITER_LAST_LSN,
  WRITER_LOG_ID,
  WRITER_WRITER_ID,
  location,
  locationSegment,
} from './format.js';
import type { FrameView } from './frame-scanner.js';
import type { FollowedState } from './segment-follower.js';

/** A log: its retention state and (being one object with it, to keep small logs small) its block index. */
export class LogState extends BlockIndex {
  /** The first position held (retention's last trim), and the log's byte count at that trim. */
  first = 0;
  trimBytes = 0;
  /** The next position: one past the last entry ever stored (or `first` when it is higher). */
  tail = 0;
  /** The live trim record (its location and size), -1 without one. */
  trimPlace = -1;

  /** Bytes of every entry through the tail: from the last block, or the trim's count when none is held. */
  bytes(): number {
    if (this.tail <= this.first || this.end === this.start) return this.trimBytes;
    const last = this.end - 1;
    return this.bytesBefore(last) + this.byteLength(last) - ENTRY_HEADER_BYTES * this.count(last);
  }
}

interface LogRecord {
  logId: number;
  epoch: number;
  place: number;
  recordBytes: number;
}

interface WriterRecord extends DurableWriter {
  place: number;
  recordBytes: number;
}

/**
 * A writer's completion runs, by first lsn: where each record is and how many outcomes it
 * holds (numbers only — no object per run; the outcomes are read from the segment when
 * asked for, which only recovery does).
 */
class CompletionRuns {
  readonly places = new Map<number, number>();
  readonly counts = new Map<number, number>();
}

function completionsRecordBytes(count: number): number {
  return COMPLETIONS_OUTCOMES + count * 8;
}

/** How much of a segment is live: compaction deletes or rewrites segments with little left. */
interface SegmentUsage {
  /** The segment's length as far as replayed. */
  bytes: number;
  /** Bytes of live records: blocks with their descriptors, and meta records still in force. */
  liveBytes: number;
  liveBlocks: number;
  liveRuns: number;
  /**
   * Per writer, the lowest last-lsn of the completion runs stored in this segment, live or
   * not: a completion trim elsewhere is still needed while an older segment holds a run it
   * dropped. Kept by the disk thread only (see StoreState's constructor).
   */
  runEnds: Map<number, number>;
}

export function writerKey(logId: number, device: string): string {
  return `${logId}\u0000${device}`;
}

export class StoreState implements BlockRemoval, FollowedState {
  readonly logs = new Map<number, LogState>();
  /** Log records by name. */
  readonly names = new Map<string, LogRecord>();
  /** Writer records by writerKey(logId, device). */
  readonly writers = new Map<string, WriterRecord>();
  /** Completion runs by writer, by first lsn (as LMDB keys them). */
  readonly runs = new Map<number, CompletionRuns>();
  readonly segments = new Map<number, SegmentUsage>();
  /** The last frame replayed. */
  sequence = 0;
  /** Whether segments keep their runEnds (compaction's, so the disk thread's only). */
  private readonly tracksRunEnds: boolean;
  /** The usage of the segment of the frame being applied. */
  private frameUsage: SegmentUsage | undefined;

  constructor(tracksRunEnds: boolean) {
    this.tracksRunEnds = tracksRunEnds;
  }

  log(logId: number): LogState {
    let log = this.logs.get(logId);
    if (log === undefined) this.logs.set(logId, (log = new LogState()));
    return log;
  }

  usage(segment: number): SegmentUsage {
    let usage = this.segments.get(segment);
    if (usage === undefined) this.segments.set(segment, (usage = { bytes: 0, liveBytes: 0, liveBlocks: 0, liveRuns: 0, runEnds: new Map() }));
    return usage;
  }

  /** Apply one commit frame: its blocks, then its meta records in order. */
  apply(frame: FrameView): void {
    invariant(frame.sequence > this.sequence, 'frames replay in commit order');
    this.sequence = frame.sequence;
    const usage = (this.frameUsage = this.usage(frame.segment));
    usage.bytes = Math.max(usage.bytes, frame.offset + frame.length);
    const view = frame.view;
    for (let at = frame.descriptorsAt; at < frame.metaAt; at += DESCRIPTOR_BYTES) {
      this.applyBlock(
        view.getUint32(at + DESCRIPTOR_LOG_ID, true),
        view.getFloat64(at + DESCRIPTOR_FIRST_POSITION, true),
        view.getUint32(at + DESCRIPTOR_COUNT, true),
        view.getFloat64(at + DESCRIPTOR_BYTES_BEFORE, true),
        location(frame.segment, frame.offset + view.getUint32(at + DESCRIPTOR_OFFSET, true)),
        view.getUint32(at + DESCRIPTOR_BYTE_LENGTH, true),
      );
    }
    for (let at = frame.metaAt; at < frame.metaEnd; at += view.getUint32(at + META_LENGTH, true)) {
      const length = view.getUint32(at + META_LENGTH, true);
      invariant(length > 0 && at + length <= frame.metaEnd, 'meta records lie within their frame');
      const place = frame.placeOf(at);
      switch (view.getUint32(at + META_KIND, true)) {
        case META_COMPLETIONS:
          this.applyCompletions(frame, at, place, length);
          break;
        case META_WRITER:
          this.applyWriter(frame, at, place, length);
          break;
        case META_LOG:
          this.applyLog(frame, at, place, length);
          break;
        case META_TRIM_COMPLETIONS:
          this.applyTrimCompletions(view.getUint32(at + TRIM_COMPLETIONS_WRITER_ID, true), view.getUint32(at + TRIM_COMPLETIONS_TO_LSN, true), view.getUint32(at + TRIM_COMPLETIONS_BOUND, true));
          break;
        case META_TRIM_ENTRIES:
          this.applyTrimEntries(view.getUint32(at + TRIM_ENTRIES_LOG_ID, true), view.getFloat64(at + TRIM_ENTRIES_TO, true), view.getFloat64(at + TRIM_ENTRIES_LOG_BYTES, true), place);
          break;
        default:
          invariant(false, 'unknown meta record kind');
      }
    }
  }

  blockRemoved(place: number, byteLength: number): void {
    const usage = this.segments.get(locationSegment(place));
    if (usage === undefined) return; // a reader forgot the segment: nothing to account
    usage.liveBytes -= byteLength + DESCRIPTOR_BYTES;
    usage.liveBlocks--;
  }

  /** Whether entries or completion outcomes are still read from the segment. */
  reads(segment: number): boolean {
    const usage = this.segments.get(segment);
    return usage !== undefined && (usage.liveBlocks > 0 || usage.liveRuns > 0);
  }

  /** Readers drop the usage of segments they closed; the disk thread, of segments it deleted. */
  forget(segment: number): void {
    this.segments.delete(segment);
  }

  private applyBlock(logId: number, first: number, count: number, bytesBefore: number, place: number, byteLength: number): void {
    const log = this.log(logId);
    if (first + count <= log.first) return; // trimmed already: an old copy replayed
    log.put(first, count, bytesBefore, place, byteLength, this);
    const usage = this.usage(locationSegment(place));
    usage.liveBytes += byteLength + DESCRIPTOR_BYTES;
    usage.liveBlocks++;
    if (first + count > log.tail) log.tail = first + count;
  }

  private applyCompletions(frame: FrameView, at: number, place: number, length: number): void {
    const view = frame.view;
    const writerId = view.getUint32(at + COMPLETIONS_WRITER_ID, true);
    const firstLsn = view.getUint32(at + COMPLETIONS_FIRST_LSN, true);
    const count = view.getUint32(at + COMPLETIONS_COUNT, true);
    invariant(length === completionsRecordBytes(count), 'a completion run record holds its outcomes');
    let runs = this.runs.get(writerId);
    if (runs === undefined) this.runs.set(writerId, (runs = new CompletionRuns()));
    const replaced = runs.places.get(firstLsn);
    if (replaced !== undefined) this.runReleased(replaced, runs.counts.get(firstLsn)!);
    runs.places.set(firstLsn, place);
    runs.counts.set(firstLsn, count);
    const usage = this.frameUsage!;
    usage.liveBytes += length;
    usage.liveRuns++;
    if (!this.tracksRunEnds) return;
    const end = firstLsn + count - 1;
    const lowest = usage.runEnds.get(writerId);
    if (lowest === undefined || end < lowest) usage.runEnds.set(writerId, end);
  }

  private applyWriter(frame: FrameView, at: number, place: number, length: number): void {
    const view = frame.view;
    const logId = view.getUint32(at + WRITER_LOG_ID, true);
    const device = frame.bytes.toString('utf8', at + WRITER_DEVICE, at + length);
    const key = writerKey(logId, device);
    let record = this.writers.get(key);
    if (record === undefined) {
      record = { writerId: 0, logId, device, epoch: 0, lastLsn: 0, ackedLsn: 0, place, recordBytes: length };
      this.writers.set(key, record);
    } else {
      // Updated in place: acks rewrite a device's record over and over.
      this.released(record.place, record.recordBytes);
    }
    record.writerId = view.getUint32(at + WRITER_WRITER_ID, true);
    record.epoch = view.getUint32(at + WRITER_EPOCH, true);
    record.lastLsn = view.getUint32(at + WRITER_LAST_LSN, true);
    record.ackedLsn = view.getUint32(at + WRITER_ACKED_LSN, true);
    record.place = place;
    record.recordBytes = length;
    this.frameUsage!.liveBytes += length;
  }

  private applyLog(frame: FrameView, at: number, place: number, length: number): void {
    const name = frame.bytes.toString('utf8', at + LOG_NAME, at + length);
    const replaced = this.names.get(name);
    if (replaced !== undefined) this.released(replaced.place, replaced.recordBytes);
    this.names.set(name, { logId: frame.view.getUint32(at + LOG_LOG_ID, true), epoch: frame.view.getUint32(at + LOG_EPOCH, true), place, recordBytes: length });
    this.frameUsage!.liveBytes += length;
  }

  /** LMDB's rule: drop the writer's runs that end at or below `toLsn` (a run straddling it stays whole). */
  private applyTrimCompletions(writerId: number, toLsn: number, bound: number): void {
    const runs = this.runs.get(writerId);
    if (runs === undefined) return;
    for (const firstLsn of runs.counts.keys()) {
      const count = runs.counts.get(firstLsn)!;
      const place = runs.places.get(firstLsn)!;
      if (firstLsn + count - 1 > toLsn || locationSegment(place) >= bound) continue;
      runs.places.delete(firstLsn);
      runs.counts.delete(firstLsn);
      this.runReleased(place, count);
    }
    if (runs.places.size === 0) this.runs.delete(writerId);
  }

  private applyTrimEntries(logId: number, to: number, bytes: number, place: number): void {
    const log = this.log(logId);
    invariant(to >= log.first, "a log's first position never moves down");
    if (log.trimPlace >= 0) this.released(log.trimPlace, TRIM_ENTRIES_BYTES);
    log.first = to;
    log.trimBytes = bytes;
    log.trimPlace = place;
    this.usage(locationSegment(place)).liveBytes += TRIM_ENTRIES_BYTES;
    log.dropBelow(to, this);
    if (to > log.tail) log.tail = to;
  }

  private runReleased(place: number, count: number): void {
    const usage = this.segments.get(locationSegment(place));
    if (usage === undefined) return;
    usage.liveBytes -= completionsRecordBytes(count);
    usage.liveRuns--;
  }

  private released(place: number, recordBytes: number): void {
    const usage = this.segments.get(locationSegment(place));
    if (usage !== undefined) usage.liveBytes -= recordBytes;
  }
}
