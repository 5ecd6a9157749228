// Following the record stream from another thread (workers, the retention sweep, the IO
// thread's log names): replay every segment when opened, then on each advance() replay the
// frames the disk thread has published since — never beyond, so never a commit that is not
// yet durable, never part of one.
//
// Opening replays what the disk thread's recovery would keep (the head segment's frames are
// checked, up to a torn tail), so a reader opened before the disk thread recovered agrees
// with it. Segment files are held open while the state still reads from them: compaction
// may delete a file under a reader, which keeps reading it until its replay moves past.
import { closeSync, fstatSync } from 'node:fs';
import { invariant } from '../../invariant.js';
import { FrameScanner, type FrameView } from './frame-scanner.js';
import { SEGMENT_HEADER_BYTES } from './format.js';
import { PublishedState } from './published.js';
import { listSegments, openSegment, segmentHeaderValid, segmentPath, segmentsDirectory } from './segment-files.js';

/** What a follower replays frames into. */
export interface FollowedState {
  apply(frame: FrameView): void;
  /** Whether the state still reads entries from segment `id` (else its file may be closed). */
  reads(id: number): boolean;
  /** A segment the follower closed. */
  forget(id: number): void;
}

export class SegmentFollower<State extends FollowedState> {
  state: State;
  /** Open segment files by id. */
  readonly files = new Map<number, number>();
  private readonly directory: string;
  private readonly published: PublishedState;
  private readonly createState: () => State;
  private readonly scanner = new FrameScanner();
  private readonly apply = (frame: FrameView): void => this.state.apply(frame);
  /** The segment being replayed and how far. */
  private segment = 0;
  private offset = 0;
  /** The highest id listed when opened: a missing id up to it was deleted before, not while, following. */
  private listedMax = 0;

  constructor(dataDir: string, createState: () => State) {
    this.directory = segmentsDirectory(dataDir);
    this.published = new PublishedState(dataDir, false);
    this.createState = createState;
    this.state = createState();
    this.load(false);
  }

  /** Published bytes not replayed yet, read now (Infinity once a later segment is published). */
  pendingBytes(): number {
    if (!this.published.read()) return 0;
    return this.published.head > this.segment ? Infinity : this.published.length - this.offset;
  }

  /** Replay what was published since the last advance. */
  advance(): void {
    if (!this.published.read()) return;
    const { head, length } = this.published;
    while (this.segment < head) {
      // The current segment is sealed: replay it to its end, then step to the next id.
      const fd = this.files.get(this.segment);
      if (fd !== undefined) this.offset = this.scanner.scan(fd, this.segment, this.offset, fstatSync(fd).size, Infinity, this.apply);
      if (!this.stepToNextSegment(head)) return;
    }
    const fd = this.files.get(this.segment);
    if (head === this.segment && fd !== undefined && length > this.offset) {
      this.offset = this.scanner.scan(fd, this.segment, this.offset, length, Infinity, this.apply);
    }
    this.closeUnread();
  }

  close(): void {
    for (const fd of this.files.values()) closeSync(fd);
    this.files.clear();
    this.published.close();
  }

  /**
   * Open the segment after the current one. A segment created after opening that is gone
   * already was compacted away unseen — its records may have cancelled others this state
   * holds — so the state is rebuilt from scratch. Returns false then.
   */
  private stepToNextSegment(head: number): boolean {
    for (let next = this.segment + 1; next <= head; next++) {
      const fd = this.files.get(next) ?? openSegment(this.directory, next, false);
      if (fd === undefined) {
        if (next <= this.listedMax) continue;
        this.rebuild();
        return false;
      }
      this.files.set(next, fd);
      this.segment = next;
      this.offset = SEGMENT_HEADER_BYTES;
      return true;
    }
    invariant(false, 'the published head segment exists');
  }

  private rebuild(): void {
    for (const fd of this.files.values()) closeSync(fd);
    this.files.clear();
    this.state = this.createState();
    this.load(true);
  }

  /**
   * Open every segment (retrying if one is deleted meanwhile: all replayed files must be
   * from one listing), then replay them: sealed ones whole, the last one up to its last good
   * frame — or, rebuilding while the disk thread runs (`toPublished`), up to the published end.
   */
  private load(toPublished: boolean): void {
    for (;;) {
      const ids = listSegments(this.directory);
      let complete = true;
      for (const id of ids) {
        const fd = openSegment(this.directory, id, false);
        if (fd === undefined) {
          complete = false;
          break;
        }
        this.files.set(id, fd);
      }
      if (complete) break;
      for (const fd of this.files.values()) closeSync(fd);
      this.files.clear();
    }
    const published = this.published.read();
    const limit = toPublished && published;
    const ids = [...this.files.keys()];
    // A last segment without a valid header is being started (or, when replaying to the
    // published end, any segment past it): it is read once published.
    for (let last = ids[ids.length - 1]; last !== undefined; last = ids[ids.length - 1]) {
      if (limit ? last <= this.published.head : segmentHeaderValid(this.files.get(last)!, last)) break;
      closeSync(this.files.get(last)!);
      this.files.delete(last);
      ids.pop();
    }
    this.listedMax = ids[ids.length - 1] ?? 0;
    for (const [order, id] of ids.entries()) {
      const fd = this.files.get(id)!;
      const isLast = order === ids.length - 1;
      if (!segmentHeaderValid(fd, id)) throw new Error(`segment ${segmentPath(this.directory, id)} has a bad header`);
      const size = fstatSync(fd).size;
      let end: number;
      if (isLast && limit && this.published.head === id) {
        end = this.scanner.scan(fd, id, SEGMENT_HEADER_BYTES, this.published.length, Infinity, this.apply);
      } else {
        end = this.scanner.scan(fd, id, SEGMENT_HEADER_BYTES, size, isLast ? SEGMENT_HEADER_BYTES : Infinity, this.apply);
        if (!isLast && end !== size) throw new Error(`segment ${segmentPath(this.directory, id)} has a bad frame at ${end}`);
        if (isLast && published && this.published.head === id && end < this.published.length) {
          throw new Error(`segment ${segmentPath(this.directory, id)} has a bad frame at ${end}, below its durable length ${this.published.length}`);
        }
      }
      this.segment = id;
      this.offset = end;
    }
    this.closeUnread();
  }

  /** Close the files of segments replayed past that the state no longer reads. */
  private closeUnread(): void {
    for (const [id, fd] of this.files) {
      if (id >= this.segment || this.state.reads(id)) continue;
      closeSync(fd);
      this.files.delete(id);
      this.state.forget(id);
    }
  }
}
