// Building commit frames into one buffer (a carry frame from compaction and the group
// commit's frame go out in one write): blocks are laid down first, straight into the frame;
// descriptors and meta records are gathered on the side and appended when the frame closes.
import { invariant } from '../../invariant.js';
import { ByteBuffer } from './byte-buffer.js';
import { crc32 } from './crc32.js';
import {
  COMMIT_BLOCK_COUNT,
  COMMIT_DESCRIPTORS,
  COMMIT_END_MAGIC,
  COMMIT_HEADER_BYTES,
  COMMIT_KIND,
  COMMIT_LENGTH,
  COMMIT_MAGIC,
  COMMIT_MAGIC_AT,
  COMMIT_SEQUENCE,
  COMMIT_TRAILER_BYTES,
  COMMIT_TRAILER_CRC,
  COMMIT_TRAILER_MAGIC,
  DESCRIPTOR_BYTES,
  DESCRIPTOR_BYTES_BEFORE,
  DESCRIPTOR_BYTE_LENGTH,
  DESCRIPTOR_COUNT,
  DESCRIPTOR_FIRST_POSITION,
  DESCRIPTOR_LOG_ID,
  DESCRIPTOR_OFFSET,
  META_KIND,
  META_LENGTH,
} from './format.js';

const FRAME_MAX = 2 ** 32 - 1;

export class FrameBuilder {
  /** The frames built since the last clear(), back to back. */
  readonly frames = new ByteBuffer(2 ** 20);
  readonly meta = new ByteBuffer(2 ** 16);
  private readonly descriptors = new ByteBuffer(2 ** 12);
  private frameStart = -1;
  private blockCount = 0;

  /** Start over: the frames were written (or given up). */
  clear(): void {
    invariant(this.frameStart < 0, 'no frame is open');
    this.frames.length = 0;
  }

  begin(sequence: number, kind: number): void {
    invariant(this.frameStart < 0, 'one frame at a time');
    this.frameStart = this.frames.append(COMMIT_HEADER_BYTES);
    this.frames.bytes.fill(0, this.frameStart, this.frameStart + COMMIT_HEADER_BYTES);
    const view = this.frames.view;
    view.setUint32(this.frameStart + COMMIT_MAGIC_AT, COMMIT_MAGIC, true);
    view.setFloat64(this.frameStart + COMMIT_SEQUENCE, sequence, true);
    view.setUint32(this.frameStart + COMMIT_KIND, kind, true);
    this.descriptors.length = 0;
    this.meta.length = 0;
    this.blockCount = 0;
  }

  /**
   * Describe a block of `count` entries of `logId` from `firstPosition`, whose `byteLength`
   * bytes the caller has appended to `frames` at `index`.
   */
  block(logId: number, firstPosition: number, count: number, bytesBefore: number, index: number, byteLength: number): void {
    const at = this.descriptors.append(DESCRIPTOR_BYTES);
    const view = this.descriptors.view;
    view.setUint32(at + DESCRIPTOR_LOG_ID, logId, true);
    view.setUint32(at + DESCRIPTOR_COUNT, count, true);
    view.setUint32(at + DESCRIPTOR_OFFSET, index - this.frameStart, true);
    view.setUint32(at + DESCRIPTOR_BYTE_LENGTH, byteLength, true);
    view.setFloat64(at + DESCRIPTOR_FIRST_POSITION, firstPosition, true);
    view.setFloat64(at + DESCRIPTOR_BYTES_BEFORE, bytesBefore, true);
    this.blockCount++;
  }

  /** Take room for a meta record of `length` bytes (header included); returns its index in `meta`. */
  metaRecord(kind: number, length: number): number {
    const at = this.meta.append(length);
    this.meta.bytes.fill(0, at, at + length);
    this.meta.view.setUint32(at + META_KIND, kind, true);
    this.meta.view.setUint32(at + META_LENGTH, length, true);
    return at;
  }

  /** Whether the open frame has anything in it. */
  get empty(): boolean {
    return this.blockCount === 0 && this.meta.length === 0 && this.frames.length === this.frameStart + COMMIT_HEADER_BYTES;
  }

  /** Drop the open frame. */
  abandon(): void {
    this.frames.length = this.frameStart;
    this.frameStart = -1;
  }

  /** Close the open frame: descriptors, meta records, trailer, CRC. Returns its index in `frames`. */
  finish(): number {
    const start = this.frameStart;
    const descriptorsAt = this.frames.append(this.descriptors.length);
    this.descriptors.bytes.copy(this.frames.bytes, descriptorsAt, 0, this.descriptors.length);
    const metaAt = this.frames.append(this.meta.length);
    this.meta.bytes.copy(this.frames.bytes, metaAt, 0, this.meta.length);
    const trailer = this.frames.append(COMMIT_TRAILER_BYTES);
    const length = this.frames.length - start;
    invariant(length <= FRAME_MAX, 'a frame fits a u32 length');
    const view = this.frames.view;
    view.setUint32(start + COMMIT_LENGTH, length, true);
    view.setUint32(start + COMMIT_DESCRIPTORS, descriptorsAt - start, true);
    view.setUint32(start + COMMIT_BLOCK_COUNT, this.blockCount, true);
    view.setUint32(trailer + COMMIT_TRAILER_CRC, crc32(this.frames.bytes.subarray(start, trailer)), true);
    view.setUint32(trailer + COMMIT_TRAILER_MAGIC, COMMIT_END_MAGIC, true);
    this.frameStart = -1;
    return start;
  }
}
