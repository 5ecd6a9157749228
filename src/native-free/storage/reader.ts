// A reader of the store from any thread (workers: history reads, tail catch-up, recovery;
// the retention sweep through retention-view.ts). It replays the stream into its own state
// (segment-follower.ts) and reads entries from the segment files: one read per block.
import { invariant } from '../../invariant.js';
import type { ClosableReader } from '../../log/engine.js';
import type { DurableCompletion, DurableLog, DurableWriter, EntrySink } from '../../log/storage.js';
import type { BlockIndex } from './block-index.js';
import { ByteBuffer } from './byte-buffer.js';
import { readFully } from './frame-scanner.js';
import { BLOCK_BYTES_MAX, COMPLETIONS_OUTCOMES, ENTRY_APPENDED_AT, ENTRY_HEADER_BYTES, ENTRY_LENGTH, locationOffset, locationSegment } from './format.js';
import { SegmentFollower } from './segment-follower.js';
import { StoreState } from './store-state.js';

/** Between reads, a reader replays once this much was published since its last replay. */
const FOLLOW_STEP_BYTES = 256 * 1024;

export class SegmentReader implements ClosableReader {
  private readonly follower: SegmentFollower<StoreState>;
  private readonly block = new ByteBuffer(BLOCK_BYTES_MAX * 2);
  /** What entryAt() found. */
  foundBytesBefore = 0;
  foundAppendedAt = 0;

  constructor(dataDir: string) {
    this.follower = new SegmentFollower(dataDir, () => new StoreState(false));
  }

  /** The replayed state (tests and the retention view read it). */
  get state(): StoreState {
    return this.follower.state;
  }

  readEntries(logId: number, from: number, to: number, bytesMax: number, sink: EntrySink): number {
    const log = this.follower.state.logs.get(logId);
    if (log === undefined) return 0;
    let position = Math.max(from, log.first);
    const end = Math.min(to, log.tail);
    if (position >= end) return 0;
    const index: BlockIndex = log;
    let count = 0;
    let bytes = 0;
    for (let item = index.find(position); position < end; item++) {
      invariant(item >= index.start && item < index.end && index.firstPosition(item) <= position, 'held positions are indexed');
      this.readBlock(index, item);
      const blockEnd = Math.min(end, index.firstPosition(item) + index.count(item));
      let offset = 0;
      for (let at = index.firstPosition(item); at < blockEnd; at++) {
        const length = this.block.view.getUint32(offset + ENTRY_LENGTH, true);
        if (at >= position) {
          sink.entry(at, this.block.bytes.subarray(offset + ENTRY_HEADER_BYTES, offset + ENTRY_HEADER_BYTES + length));
          count++;
          bytes += length;
          if (bytes >= bytesMax) return count;
        }
        offset += ENTRY_HEADER_BYTES + length;
      }
      position = blockEnd;
    }
    return count;
  }

  /** Find the entry at `position` (retention): sets foundBytesBefore and foundAppendedAt. */
  entryAt(logId: number, position: number): void {
    const log = this.follower.state.logs.get(logId);
    const item = log === undefined || position < log.first ? -1 : log.find(position);
    if (item < 0) throw new Error(`retention: log ${logId} has no entry at ${position} below its length`);
    const index: BlockIndex = log!;
    this.readBlock(index, item);
    let offset = 0;
    let bytesBefore = index.bytesBefore(item);
    for (let at = index.firstPosition(item); at < position; at++) {
      const length = this.block.view.getUint32(offset + ENTRY_LENGTH, true);
      bytesBefore += length;
      offset += ENTRY_HEADER_BYTES + length;
    }
    this.foundBytesBefore = bytesBefore;
    this.foundAppendedAt = this.block.view.getUint32(offset + ENTRY_APPENDED_AT, true);
  }

  refresh(): void {
    this.follower.advance();
  }

  /**
   * Between reads, keep following in steps: a reader that only replayed when it next read
   * (or when a segment was sealed) would replay up to a whole segment at once — a 240 ms
   * batch for a worker without tailers at a 64 MiB roll. Also lets go of the files of
   * deleted segments once the disk thread started a new one.
   */
  release(): void {
    if (this.follower.pendingBytes() >= FOLLOW_STEP_BYTES) this.follower.advance();
  }

  *logs(): Iterable<DurableLog> {
    const state = this.follower.state;
    for (const [name, record] of state.names) {
      const log = state.logs.get(record.logId);
      yield { name, logId: record.logId, epoch: record.epoch, tail: log?.tail ?? 0, first: log?.first ?? 0, bytes: log?.bytes() ?? 0 };
    }
  }

  *writers(): Iterable<DurableWriter> {
    for (const { writerId, logId, device, epoch, lastLsn, ackedLsn } of this.follower.state.writers.values()) {
      yield { writerId, logId, device, epoch, lastLsn, ackedLsn };
    }
  }

  /** Every completion run not trimmed (a run straddling an ack stays whole, as in LMDB), outcomes read from its segment. */
  *completions(): Iterable<DurableCompletion> {
    const outcomes = new ByteBuffer(COMPLETIONS_OUTCOMES);
    for (const [writerId, runs] of this.follower.state.runs) {
      for (const [firstLsn, place] of runs.places) {
        const count = runs.counts.get(firstLsn)!;
        const fd = this.follower.files.get(locationSegment(place));
        invariant(fd !== undefined, 'a segment is open while its completion runs are live');
        outcomes.ensure(count * 8);
        invariant(readFully(fd, outcomes.bytes, 0, count * 8, locationOffset(place) + COMPLETIONS_OUTCOMES) === count * 8, 'a completion run lies within its segment');
        for (let index = 0; index < count; index++) yield { writerId, lsn: firstLsn + index, outcome: outcomes.view.getFloat64(index * 8, true) };
      }
    }
  }

  close(): Promise<void> {
    this.follower.close();
    return Promise.resolve();
  }

  private readBlock(index: BlockIndex, item: number): void {
    const place = index.place(item);
    const length = index.byteLength(item);
    const fd = this.follower.files.get(locationSegment(place));
    invariant(fd !== undefined, 'a segment is open while its blocks are indexed');
    this.block.ensure(length);
    invariant(readFully(fd, this.block.bytes, 0, length, locationOffset(place)) === length, 'a block lies within its segment');
  }
}
