// Compaction: space is reused by deleting old segments. A sealed segment with nothing live
// left becomes the victim at once; one whose live bytes fell to `liveRatioMax` of its size
// or below does once they have stopped falling for `quietMs` — while retention is still
// trimming it, it is about to die by itself, and copying it would only write it twice. The
// victim's frames are walked in
// order and whatever is still live — entry blocks retention has not trimmed, the latest
// writer / log / trim records, completion runs not yet acknowledged, completion trims an
// older segment still needs — is copied into a carry frame that goes out with the next
// group commits (same write, same fdatasync), a budget per commit. Once the walk is done
// and those commits are durable, the victim is deleted. A crash at any point loses nothing:
// until the delete, the original and the copy both replay, and the copy wins.
import { closeSync, fstatSync } from 'node:fs';
import { invariant } from '../../invariant.js';
import type { BlockIndex } from './block-index.js';
import type { FrameBuilder } from './frame-builder.js';
import { FrameScanner, readFully, type FrameView } from './frame-scanner.js';
import {
  BLOCK_BYTES_MAX,
  COMMIT_KIND_CARRY,
  COMPLETIONS_FIRST_LSN,
  COMPLETIONS_WRITER_ID,
  DESCRIPTOR_BYTES,
  DESCRIPTOR_COUNT,
  DESCRIPTOR_FIRST_POSITION,
  DESCRIPTOR_LOG_ID,
  DESCRIPTOR_OFFSET,
  ENTRY_HEADER_BYTES,
  ENTRY_LENGTH,
  LOG_NAME,
  META_COMPLETIONS,
  META_KIND,
  META_LENGTH,
  META_LOG,
  META_TRIM_COMPLETIONS,
  META_TRIM_ENTRIES,
  META_WRITER,
  SEGMENT_HEADER_BYTES,
  TRIM_COMPLETIONS_BOUND,
  TRIM_COMPLETIONS_TO_LSN,
  TRIM_COMPLETIONS_WRITER_ID,
  TRIM_ENTRIES_LOG_ID,
  WRITER_DEVICE,
  WRITER_LOG_ID,
  location,
  locationOffset,
  locationSegment,
} from './format.js';
import { openSegment } from './segment-files.js';
import { writerKey, type StoreState } from './store-state.js';

export interface CompactionOptions {
  /** A sealed segment is compacted once its live bytes are at most this fraction of its size. */
  liveRatioMax: number;
  /** About how many bytes of the victim one commit carries forward (and scans). */
  carryBytesPerCommit: number;
  /** How long a partly live segment's live bytes must hold still before it is compacted. */
  quietMs: number;
}

/** The longest between two looks at the segments' live bytes (each look walks every segment). */
const OBSERVE_INTERVAL_MS_MAX = 100;

/** A segment's live bytes when last looked at, and since when they have held. */
interface Quiet {
  liveBytes: number;
  since: number;
}

export class Compactor {
  private readonly state: StoreState;
  private readonly directory: string;
  private readonly options: CompactionOptions;
  private readonly scanner = new FrameScanner();
  /**
   * The blocks this carry frame has copied (by place): several are carried at once, and the
   * state learns of the copies only when the frame is applied. (A victim that once was the
   * head holds carried blocks after newer ones: a log's blocks are not walked in order.)
   */
  private readonly carried = new Set<number>();
  /** Per completion-trim bound, the lowest run end per writer in the segments below it. */
  private readonly runEndsBelow = new Map<number, Map<number, number>>();
  private readonly quiet = new Map<number, Quiet>();
  private observedAt = -Infinity;
  /** Segments found due at the last look, to compact one after the other. */
  private due: number[] = [];
  /** The segment being compacted, -1 for none; its descriptor, length and walk position. */
  victim = -1;
  private victimFd = -1;
  private victimEnd = 0;
  private cursor = 0;
  private nextCursor = 0;

  constructor(state: StoreState, directory: string, options: CompactionOptions) {
    this.state = state;
    this.directory = directory;
    this.options = options;
  }

  /**
   * Open a carry frame in `builder` with the next part of the victim's live records (picking
   * a victim below `head` if there is none). Returns whether a frame was built.
   */
  carry(builder: FrameBuilder, head: number, sequence: number): boolean {
    if (this.victim < 0 && !this.chooseVictim(head)) return false;
    builder.begin(sequence, COMMIT_KIND_CARRY);
    this.carried.clear();
    let budget = this.options.carryBytesPerCommit;
    let position = this.cursor;
    while (position < this.victimEnd && budget > 0) {
      const frame = this.scanner.read(this.victimFd, this.victim, position, this.victimEnd, false);
      invariant(frame !== undefined, 'a sealed segment holds whole frames');
      budget -= this.carryFrame(frame, builder);
      position += frame.length;
    }
    this.nextCursor = position;
    if (builder.empty) {
      builder.abandon();
      return false;
    }
    builder.finish();
    return true;
  }

  /**
   * The commit holding the last carry frame is durable and applied. Returns the victim when
   * its walk is complete — nothing in it is live any more and it may be deleted — else -1.
   */
  committed(): number {
    this.cursor = this.nextCursor;
    if (this.victim < 0 || this.cursor < this.victimEnd) return -1;
    const done = this.victim;
    this.quiet.delete(done);
    const usage = this.state.usage(done);
    invariant(usage.liveBlocks === 0 && usage.liveRuns === 0 && usage.liveBytes === 0, 'a compacted segment holds nothing live');
    closeSync(this.victimFd);
    this.victim = -1;
    this.victimFd = -1;
    return done;
  }

  close(): void {
    if (this.victimFd >= 0) closeSync(this.victimFd);
    this.victim = -1;
    this.victimFd = -1;
  }

  /**
   * The next victim: from the segments found due at the last look (dead ones first, then
   * those with the fewest live bytes); a new look when none is left, at most so often.
   */
  private chooseVictim(head: number): boolean {
    if (this.due.length === 0) this.observe(head);
    const best = this.due.shift();
    if (best === undefined) return false;
    const fd = openSegment(this.directory, best, false);
    invariant(fd !== undefined, 'a segment is deleted only by compaction');
    this.victim = best;
    this.victimFd = fd;
    this.victimEnd = fstatSync(fd).size;
    this.cursor = this.nextCursor = SEGMENT_HEADER_BYTES;
    this.scanner.forget();
    this.runEndsBelow.clear();
    return true;
  }

  /** Look at every sealed segment's live bytes; queue those due for compaction. */
  private observe(head: number): void {
    const now = performance.now();
    if (now - this.observedAt < Math.min(OBSERVE_INTERVAL_MS_MAX, this.options.quietMs / 10)) return;
    this.observedAt = now;
    for (const [id, usage] of this.state.segments) {
      if (id >= head) continue;
      let quiet = this.quiet.get(id);
      if (quiet === undefined) this.quiet.set(id, (quiet = { liveBytes: usage.liveBytes, since: now }));
      if (quiet.liveBytes !== usage.liveBytes) {
        quiet.liveBytes = usage.liveBytes;
        quiet.since = now;
      }
      if (usage.liveBytes === 0 || (usage.liveBytes <= usage.bytes * this.options.liveRatioMax && now - quiet.since >= this.options.quietMs)) this.due.push(id);
    }
    this.due.sort((a, b) => this.state.segments.get(a)!.liveBytes - this.state.segments.get(b)!.liveBytes);
  }

  /** Carry one victim frame's live blocks and records. Returns the work done, in bytes. */
  private carryFrame(frame: FrameView, builder: FrameBuilder): number {
    const view = frame.view;
    let work = frame.metaEnd - frame.descriptorsAt;
    for (let at = frame.descriptorsAt; at < frame.metaAt; at += DESCRIPTOR_BYTES) {
      work += this.carryBlocks(
        builder,
        view.getUint32(at + DESCRIPTOR_LOG_ID, true),
        view.getFloat64(at + DESCRIPTOR_FIRST_POSITION, true),
        view.getUint32(at + DESCRIPTOR_COUNT, true),
        location(frame.segment, frame.offset + view.getUint32(at + DESCRIPTOR_OFFSET, true)),
      );
    }
    for (let at = frame.metaAt; at < frame.metaEnd; at += view.getUint32(at + META_LENGTH, true)) {
      const kind = view.getUint32(at + META_KIND, true);
      const length = view.getUint32(at + META_LENGTH, true);
      if (!this.recordLive(frame, at, kind, length)) continue;
      const copy = builder.metaRecord(kind, length);
      frame.bytes.copy(builder.meta.bytes, copy, at, at + length);
      if (kind === META_TRIM_COMPLETIONS) {
        // Carried past newer runs of the writer, the trim must spare them: bound it.
        builder.meta.view.setUint32(copy + TRIM_COMPLETIONS_BOUND, Math.min(view.getUint32(at + TRIM_COMPLETIONS_BOUND, true), frame.segment), true);
      }
    }
    return work;
  }

  /**
   * If the block described at `place` is still the log's live block for its positions, copy
   * it (from the log's first position on) and the log's following blocks in the victim, into
   * one block of up to BLOCK_BYTES_MAX. Returns the bytes copied.
   */
  private carryBlocks(builder: FrameBuilder, logId: number, first: number, count: number, place: number): number {
    const log = this.state.logs.get(logId);
    if (log === undefined) return 0;
    const from = Math.max(first, log.first);
    if (from >= first + count || this.carried.has(place)) return 0;
    const index: BlockIndex = log;
    let item = index.find(from);
    if (item < 0 || index.place(item) !== place) return 0;
    const frames = builder.frames;
    const blockAt = frames.length;
    let bytesBefore = -1;
    let end = from;
    let nextBytesBefore = 0;
    for (; item < index.end; item++) {
      const itemPlace = index.place(item);
      const length = index.byteLength(item);
      if (locationSegment(itemPlace) !== this.victim || index.firstPosition(item) > end) break;
      if (bytesBefore >= 0 && (index.bytesBefore(item) !== nextBytesBefore || frames.length - blockAt + length > BLOCK_BYTES_MAX)) break;
      const at = frames.append(length);
      invariant(readFully(this.victimFd, frames.bytes, at, length, locationOffset(itemPlace)) === length, 'a live block lies within its segment');
      let itemBytesBefore = index.bytesBefore(item);
      let skipped = at;
      // The block's entries below the log's first position are trimmed: leave them behind.
      for (let position = index.firstPosition(item); position < from; position++) {
        const entryLength = frames.view.getUint32(skipped + ENTRY_LENGTH, true);
        itemBytesBefore += entryLength;
        skipped += ENTRY_HEADER_BYTES + entryLength;
      }
      if (skipped > at) {
        frames.bytes.copyWithin(at, skipped, at + length);
        frames.length -= skipped - at;
      }
      const itemEnd = index.firstPosition(item) + index.count(item);
      this.carried.add(itemPlace);
      if (bytesBefore < 0) bytesBefore = itemBytesBefore;
      nextBytesBefore = itemBytesBefore + (frames.length - at) - ENTRY_HEADER_BYTES * (itemEnd - Math.max(from, index.firstPosition(item)));
      end = itemEnd;
    }
    builder.block(logId, from, end - from, bytesBefore, blockAt, frames.length - blockAt);
    return frames.length - blockAt;
  }

  /** Whether the meta record at `at` of a victim frame is still in force. */
  private recordLive(frame: FrameView, at: number, kind: number, length: number): boolean {
    const view = frame.view;
    const place = frame.placeOf(at);
    switch (kind) {
      case META_COMPLETIONS:
        return this.state.runs.get(view.getUint32(at + COMPLETIONS_WRITER_ID, true))?.places.get(view.getUint32(at + COMPLETIONS_FIRST_LSN, true)) === place;
      case META_WRITER: {
        const device = frame.bytes.toString('utf8', at + WRITER_DEVICE, at + length);
        return this.state.writers.get(writerKey(view.getUint32(at + WRITER_LOG_ID, true), device))?.place === place;
      }
      case META_LOG:
        return this.state.names.get(frame.bytes.toString('utf8', at + LOG_NAME, at + length))?.place === place;
      case META_TRIM_ENTRIES:
        return this.state.logs.get(view.getUint32(at + TRIM_ENTRIES_LOG_ID, true))?.trimPlace === place;
      case META_TRIM_COMPLETIONS: {
        const bound = Math.min(view.getUint32(at + TRIM_COMPLETIONS_BOUND, true), frame.segment);
        const lowest = this.lowestRunEnds(bound).get(view.getUint32(at + TRIM_COMPLETIONS_WRITER_ID, true));
        return lowest !== undefined && lowest <= view.getUint32(at + TRIM_COMPLETIONS_TO_LSN, true);
      }
      default:
        invariant(false, 'unknown meta record kind');
    }
  }

  /** Per writer, the lowest end of a completion run stored in a segment below `bound`. */
  private lowestRunEnds(bound: number): Map<number, number> {
    let lowest = this.runEndsBelow.get(bound);
    if (lowest !== undefined) return lowest;
    lowest = new Map();
    for (const [id, usage] of this.state.segments) {
      if (id >= bound) continue;
      for (const [writerId, end] of usage.runEnds) {
        const known = lowest.get(writerId);
        if (known === undefined || end < known) lowest.set(writerId, end);
      }
    }
    this.runEndsBelow.set(bound, lowest);
    return lowest;
  }
}
