// Reading commit frames from a segment file: the one parser of the frame layout, used by the
// disk thread's recovery and compaction and by every reader. A frame is handed out as a
// FrameView over a reused buffer: the whole frame when it is small, or only its descriptors
// and meta records when it is large (a reader indexes entries without reading them).
import { readSync } from 'node:fs';
import { ByteBuffer } from './byte-buffer.js';
import { crc32 } from './crc32.js';
import {
  COMMIT_BLOCK_COUNT,
  COMMIT_BYTES_MIN,
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
  location,
} from './format.js';

/** Frames up to this size are read whole, several per read; larger ones in parts. */
const READ_CHUNK_BYTES = 2 ** 20;

export class FrameView {
  segment = 0;
  /** Where the frame starts in its segment. */
  offset = 0;
  length = 0;
  sequence = 0;
  kind = 0;
  blockCount = 0;
  bytes: Buffer = Buffer.alloc(0);
  view: DataView = new DataView(new ArrayBuffer(0));
  /** The index in `bytes` of the frame's first byte (negative when only its tail part was read). */
  base = 0;
  descriptorsAt = 0;
  metaAt = 0;
  metaEnd = 0;

  /** The stream location of the byte at `index` of `bytes`. */
  placeOf(index: number): number {
    return location(this.segment, this.offset + index - this.base);
  }

  /** The frame is whole in `bytes` at `index`. */
  setWhole(bytes: Buffer, view: DataView, index: number, segment: number, offset: number): void {
    this.setHeader(view, index, segment, offset);
    this.bytes = bytes;
    this.view = view;
    this.base = index;
    this.descriptorsAt = index + view.getUint32(index + COMMIT_DESCRIPTORS, true);
    this.metaAt = this.descriptorsAt + this.blockCount * DESCRIPTOR_BYTES;
    this.metaEnd = index + this.length - COMMIT_TRAILER_BYTES;
  }

  private setHeader(view: DataView, index: number, segment: number, offset: number): void {
    this.segment = segment;
    this.offset = offset;
    this.length = view.getUint32(index + COMMIT_LENGTH, true);
    this.sequence = view.getFloat64(index + COMMIT_SEQUENCE, true);
    this.kind = view.getUint32(index + COMMIT_KIND, true);
    this.blockCount = view.getUint32(index + COMMIT_BLOCK_COUNT, true);
  }

  /** Only the frame's descriptors and meta records were read, to index 0 of `bytes`. */
  setTail(header: DataView, headerIndex: number, bytes: Buffer, view: DataView, segment: number, offset: number): void {
    this.setHeader(header, headerIndex, segment, offset);
    const descriptors = header.getUint32(headerIndex + COMMIT_DESCRIPTORS, true);
    this.bytes = bytes;
    this.view = view;
    this.base = -descriptors;
    this.descriptorsAt = 0;
    this.metaAt = this.blockCount * DESCRIPTOR_BYTES;
    this.metaEnd = this.length - COMMIT_TRAILER_BYTES - descriptors;
  }
}

/** Whether a frame header at `index` is well formed (its length and layout add up). */
function headerValid(view: DataView, index: number): boolean {
  if (view.getUint32(index + COMMIT_MAGIC_AT, true) !== COMMIT_MAGIC) return false;
  const length = view.getUint32(index + COMMIT_LENGTH, true);
  const descriptors = view.getUint32(index + COMMIT_DESCRIPTORS, true);
  const blocks = view.getUint32(index + COMMIT_BLOCK_COUNT, true);
  return length >= COMMIT_BYTES_MIN && descriptors >= COMMIT_HEADER_BYTES && descriptors + blocks * DESCRIPTOR_BYTES <= length - COMMIT_TRAILER_BYTES;
}

/** Whether the whole frame at `index` carries its end magic and a matching CRC. */
function frameChecksumValid(bytes: Buffer, view: DataView, index: number, length: number): boolean {
  const trailer = index + length - COMMIT_TRAILER_BYTES;
  return (
    view.getUint32(trailer + COMMIT_TRAILER_MAGIC, true) === COMMIT_END_MAGIC &&
    view.getUint32(trailer + COMMIT_TRAILER_CRC, true) === crc32(bytes.subarray(index, trailer))
  );
}

/** Read up to `count` bytes at `position`; returns how many there were (fewer only at the end of the file). */
export function readFully(fd: number, bytes: Buffer, index: number, count: number, position: number): number {
  let done = 0;
  while (done < count) {
    const read = readSync(fd, bytes, index + done, count - done, position + done);
    if (read === 0) break;
    done += read;
  }
  return done;
}

export class FrameScanner {
  readonly frame = new FrameView();
  private readonly chunk = new ByteBuffer(READ_CHUNK_BYTES);
  private readonly tail = new ByteBuffer(64 * 1024);
  // The file bytes held in `chunk`: [chunkStart, chunkEnd) of file chunkFd.
  private chunkFd = -1;
  private chunkStart = 0;
  private chunkEnd = 0;

  /**
   * The frame at `offset` of segment `fd`, if a whole well-formed one ends by `end` — and,
   * when `check`, its CRC holds. Undefined otherwise: a torn or not yet written tail.
   */
  read(fd: number, segment: number, offset: number, end: number, check: boolean): FrameView | undefined {
    if (end - offset < COMMIT_BYTES_MIN) return undefined;
    let at = this.load(fd, offset, COMMIT_HEADER_BYTES, end);
    if (at < 0 || !headerValid(this.chunk.view, at)) return undefined;
    const length = this.chunk.view.getUint32(at + COMMIT_LENGTH, true);
    if (offset + length > end) return undefined;
    if (length <= READ_CHUNK_BYTES) {
      at = this.load(fd, offset, length, end);
      if (at < 0 || (check && !frameChecksumValid(this.chunk.bytes, this.chunk.view, at, length))) return undefined;
      this.frame.setWhole(this.chunk.bytes, this.chunk.view, at, segment, offset);
      return this.frame;
    }
    return this.readLarge(fd, segment, offset, at, length, check);
  }

  /**
   * Visit the frames from `offset` on while they are whole, checking the CRC of those at or
   * after `checkFrom`. Returns where the last good frame ends.
   */
  scan(fd: number, segment: number, offset: number, end: number, checkFrom: number, visit: (frame: FrameView) => void): number {
    this.forget();
    let position = offset;
    for (;;) {
      const frame = this.read(fd, segment, position, end, position >= checkFrom);
      if (frame === undefined) return position;
      visit(frame);
      position += frame.length;
    }
  }

  /** Drop the cached file bytes (before reading a file whose descriptor number may have been reused). */
  forget(): void {
    this.chunkFd = -1;
  }

  /** A frame too large for the chunk: check it in chunk-sized parts, then read its descriptors and meta records. */
  private readLarge(fd: number, segment: number, offset: number, at: number, length: number, check: boolean): FrameView | undefined {
    const header = Buffer.from(this.chunk.bytes.subarray(at, at + COMMIT_HEADER_BYTES));
    const headerView = new DataView(header.buffer, header.byteOffset, COMMIT_HEADER_BYTES);
    this.chunkFd = -1;
    if (check && !this.checksumValid(fd, offset, length)) return undefined;
    const descriptors = headerView.getUint32(COMMIT_DESCRIPTORS, true);
    const tailLength = length - COMMIT_TRAILER_BYTES - descriptors;
    this.tail.ensure(tailLength);
    if (readFully(fd, this.tail.bytes, 0, tailLength, offset + descriptors) < tailLength) return undefined;
    this.frame.setTail(headerView, 0, this.tail.bytes, this.tail.view, segment, offset);
    return this.frame;
  }

  private checksumValid(fd: number, offset: number, length: number): boolean {
    const covered = length - COMMIT_TRAILER_BYTES;
    let crc = 0;
    for (let done = 0; done < covered; ) {
      const count = Math.min(READ_CHUNK_BYTES, covered - done);
      if (readFully(fd, this.chunk.bytes, 0, count, offset + done) < count) return false;
      crc = crc32(this.chunk.bytes.subarray(0, count), crc);
      done += count;
    }
    if (readFully(fd, this.chunk.bytes, 0, COMMIT_TRAILER_BYTES, offset + covered) < COMMIT_TRAILER_BYTES) return false;
    return this.chunk.view.getUint32(COMMIT_TRAILER_MAGIC, true) === COMMIT_END_MAGIC && this.chunk.view.getUint32(COMMIT_TRAILER_CRC, true) === crc;
  }

  /** Have file bytes [position, position + count) in the chunk; returns their index, or -1 past the end. */
  private load(fd: number, position: number, count: number, end: number): number {
    if (fd === this.chunkFd && position >= this.chunkStart && position + count <= this.chunkEnd) return position - this.chunkStart;
    const wanted = Math.min(READ_CHUNK_BYTES, end - position);
    if (wanted < count) return -1;
    const read = readFully(fd, this.chunk.bytes, 0, wanted, position);
    this.chunkFd = fd;
    this.chunkStart = position;
    this.chunkEnd = position + read;
    return read < count ? -1 : 0;
  }
}
