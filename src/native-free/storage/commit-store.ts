// The disk thread's CommitStore: the only writer of the segments. Opening it recovers the
// store — replays every segment, checks the checksums of the head segment's frames (the only
// place a torn write can be: each commit is fsynced before the next is written) and truncates
// a torn tail. A commit builds the group commit's frame (after a carry frame, when compaction
// has work), writes them with one write, fdatasyncs once, then applies them to its state and
// publishes the new durable end for readers. Nothing is acknowledged before that.
import { closeSync, fdatasyncSync, fstatSync, ftruncateSync, unlinkSync, writeSync } from 'node:fs';
import { invariant } from '../../invariant.js';
import type { CommitStore } from '../../log/engine.js';
import type { CommitSink } from '../../log/commit.js';
import { Compactor, type CompactionOptions } from './compactor.js';
import { FrameBuilder } from './frame-builder.js';
import { FrameScanner, FrameView } from './frame-scanner.js';
import { COMMIT_KIND_APPLY, PUBLISHED_FILE, SEGMENT_BYTES, SEGMENT_HEADER_BYTES } from './format.js';
import { PublishedState } from './published.js';
import { SegmentCommitSink } from './commit-sink.js';
import { createSegment, listSegments, openSegment, segmentHeaderValid, segmentPath, segmentsDirectory, storeDirectory, syncDirectory } from './segment-files.js';
import { StoreState } from './store-state.js';

export interface CommitStoreOptions extends CompactionOptions {
  /** A new segment is started once the head reaches this size. */
  segmentBytes: number;
}

export const DEFAULT_COMMIT_STORE_OPTIONS: CommitStoreOptions = {
  segmentBytes: SEGMENT_BYTES,
  liveRatioMax: 0.5,
  carryBytesPerCommit: 4 * 2 ** 20,
  // Several retention sweeps (one a second by default).
  quietMs: 10_000,
};

export class CorruptStoreError extends Error {
  override name = 'CorruptStoreError';
}

export class SegmentCommitStore implements CommitStore {
  /** The replayed state, with what compaction needs besides what readers keep. */
  readonly state = new StoreState(true);
  private readonly dataDir: string;
  private readonly directory: string;
  private readonly options: CommitStoreOptions;
  private readonly published: PublishedState;
  private readonly builder = new FrameBuilder();
  private readonly sink: SegmentCommitSink;
  private readonly compactor: Compactor;
  private readonly applied = new FrameView();
  private head = 0;
  private headFd = -1;
  private headLength = 0;
  /** Set when a write or fdatasync failed: what is on disk is unknown, the store must be reopened. */
  private failure: unknown;

  constructor(dataDir: string, options: CommitStoreOptions = DEFAULT_COMMIT_STORE_OPTIONS) {
    this.dataDir = dataDir;
    this.directory = segmentsDirectory(dataDir);
    this.options = options;
    this.published = new PublishedState(dataDir, true);
    this.sink = new SegmentCommitSink(this.state, this.builder);
    this.recover();
    this.compactor = new Compactor(this.state, this.directory, options);
  }

  commit(apply: (sink: CommitSink) => void): void {
    invariant(this.failure === undefined, 'the store failed a write and must be reopened');
    if (this.headLength >= this.options.segmentBytes && this.headLength > SEGMENT_HEADER_BYTES) this.roll();
    const builder = this.builder;
    builder.clear();
    const carried = this.compactor.carry(builder, this.head, this.state.sequence + 1);
    builder.begin(this.state.sequence + (carried ? 2 : 1), COMMIT_KIND_APPLY);
    try {
      apply(this.sink);
      this.sink.finish();
    } catch (error) {
      this.sink.abandon();
      builder.abandon();
      throw error;
    }
    if (builder.empty) builder.abandon();
    else builder.finish();
    const length = builder.frames.length;
    if (length > 0) this.write(length);
    // The victim's frames walked for this commit are carried (or held nothing live).
    const done = this.compactor.committed();
    if (done >= 0) this.deleteSegment(done);
  }

  close(): Promise<void> {
    this.compactor.close();
    if (this.headFd >= 0) closeSync(this.headFd);
    this.headFd = -1;
    this.published.close();
    return Promise.resolve();
  }

  /** Write the built frames at the head's end, fdatasync, apply them, publish the new end. */
  private write(length: number): void {
    invariant(this.headLength + length < 2 ** 32, 'a segment stays below 4 GiB');
    try {
      for (let done = 0; done < length; ) done += writeSync(this.headFd, this.builder.frames.bytes, done, length - done, this.headLength + done);
      fdatasyncSync(this.headFd);
    } catch (error) {
      this.failure = error;
      throw error;
    }
    this.applyWritten(length);
    this.headLength += length;
    this.published.write(this.head, this.headLength, this.state.sequence);
  }

  /** Replay the frames just written (the carry frame, then the commit's) into the state. */
  private applyWritten(length: number): void {
    const frames = this.builder.frames;
    for (let index = 0; index < length; index += this.applied.length) {
      this.applied.setWhole(frames.bytes, frames.view, index, this.head, this.headLength + index);
      this.state.apply(this.applied);
    }
  }

  /** Start the next segment; the sealed one stays as it is until compaction deletes it. */
  private roll(): void {
    const fd = createSegment(this.directory, this.head + 1);
    closeSync(this.headFd);
    this.head++;
    this.headFd = fd;
    this.headLength = SEGMENT_HEADER_BYTES;
    this.state.usage(this.head).bytes = SEGMENT_HEADER_BYTES;
  }

  /** Compaction finished with a segment: remove it, durably, before anything relies on it being gone. */
  private deleteSegment(id: number): void {
    unlinkSync(segmentPath(this.directory, id));
    syncDirectory(this.directory);
    this.state.forget(id);
  }

  /**
   * Replay every segment. Sealed segments were whole when the next one was started; only
   * the last can end in a torn frame: its frames are checked and a bad tail cut off. A bad
   * frame inside what was published as durable is corruption, not a torn write: refuse.
   */
  private recover(): void {
    const scanner = new FrameScanner();
    const apply = (frame: FrameView): void => this.state.apply(frame);
    const published = this.published.read();
    let ids = listSegments(this.directory);
    const last = ids[ids.length - 1];
    if (last !== undefined) {
      const fd = openSegment(this.directory, last, true)!;
      const headerless = !segmentHeaderValid(fd, last);
      if (headerless && fstatSync(fd).size > SEGMENT_HEADER_BYTES) throw new CorruptStoreError(`segment ${segmentPath(this.directory, last)} has a bad header`);
      closeSync(fd);
      if (headerless) {
        // A segment start cut short (its header is written and synced before any commit).
        unlinkSync(segmentPath(this.directory, last));
        syncDirectory(this.directory);
        ids = ids.slice(0, -1);
      }
    }
    for (const [order, id] of ids.entries()) {
      const isLast = order === ids.length - 1;
      const fd = openSegment(this.directory, id, isLast)!;
      if (!segmentHeaderValid(fd, id)) throw new CorruptStoreError(`segment ${segmentPath(this.directory, id)} has a bad header`);
      const size = fstatSync(fd).size;
      this.state.usage(id).bytes = size;
      const end = scanner.scan(fd, id, SEGMENT_HEADER_BYTES, size, isLast ? SEGMENT_HEADER_BYTES : Infinity, apply);
      if (!isLast) {
        closeSync(fd);
        if (end !== size) throw new CorruptStoreError(`segment ${segmentPath(this.directory, id)} has a bad frame at ${end}`);
        continue;
      }
      const durable = published && this.published.head === id ? this.published.length : SEGMENT_HEADER_BYTES;
      if (end < durable) {
        throw new CorruptStoreError(
          `segment ${segmentPath(this.directory, id)} has a bad frame at ${end}, below its durable length ${durable}: acknowledged commits are damaged ` +
            `(to drop them and everything after, remove ${PUBLISHED_FILE} from ${storeDirectory(this.dataDir)})`,
        );
      }
      if (end < size) {
        ftruncateSync(fd, end);
        fdatasyncSync(fd);
        this.state.usage(id).bytes = end;
      }
      this.head = id;
      this.headFd = fd;
      this.headLength = end;
    }
    if (this.headFd < 0) {
      this.head = (ids[ids.length - 1] ?? 0) + 1;
      this.headFd = createSegment(this.directory, this.head);
      this.headLength = SEGMENT_HEADER_BYTES;
      this.state.usage(this.head).bytes = SEGMENT_HEADER_BYTES;
    }
    this.published.write(this.head, this.headLength, this.state.sequence);
  }
}
