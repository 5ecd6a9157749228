// sharedarraybuffer-ring: a single-producer / single-consumer ring of variable-length
// records over one SharedArrayBuffer. Positions are byte counters that wrap at 2^30 (so they
// stay small integers in V8 and never allocate); the capacity is a power of two ≤ 2^29, so
// a position maps to an offset with a mask.
//
// A record is [u32 length][length bytes], padded to 8 bytes. A record that would straddle
// the end is preceded by a WRAP marker that sends the reader back to offset 0.
// The producer writes records, then publishes its position once (Disruptor style: one
// atomic store per batch, not per record). The consumer reads up to the position it last
// saw published, then publishes how far it has read, which frees the space.
import { invariant } from '../invariant.js';

// Control words, one cache line apart so producer and consumer do not share a line.
const WRITE_POSITION = 0;
const READ_POSITION = 16;
const PRODUCER_WAITING = 17;
const CONTROL_INT32S = 32;
const CONTROL_BYTES = CONTROL_INT32S * 4;

const LENGTH_BYTES = 4;
const ALIGN = 8;
const WRAP = 0xffffffff;
const POSITION_MASK = (1 << 30) - 1;
const CAPACITY_MAX = 1 << 29;

export function ringBufferBytes(capacity: number): number {
  return CONTROL_BYTES + capacity;
}

export function createRingBuffer(capacity: number): SharedArrayBuffer {
  invariant(capacity >= 64 && (capacity & (capacity - 1)) === 0, 'ring capacity is a power of two ≥ 64');
  return new SharedArrayBuffer(ringBufferBytes(capacity));
}

export interface RingRegion {
  offset: number;
  capacity: number;
}

/**
 * Lay several rings out in one SharedArrayBuffer, so copies between them are a copyWithin
 * on one view (Buffer#copy and TypedArray#set between buffers allocate a view per call).
 */
export function createRingArena(capacities: readonly number[]): { buffer: SharedArrayBuffer; regions: RingRegion[] } {
  const regions: RingRegion[] = [];
  let offset = 0;
  for (const capacity of capacities) {
    invariant(capacity >= 64 && (capacity & (capacity - 1)) === 0, 'ring capacity is a power of two ≥ 64');
    regions.push({ offset, capacity });
    offset += ringBufferBytes(capacity);
  }
  return { buffer: new SharedArrayBuffer(offset), regions };
}

/** Copy bytes from one ring's data to another's without allocating when they share a buffer. */
export function copyRingBytes(source: Ring, sourceStart: number, target: Ring, targetStart: number, length: number): void {
  if (source.buffer === target.buffer) {
    target.whole.copyWithin(target.base + targetStart, source.base + sourceStart, source.base + sourceStart + length);
  } else {
    source.bytes.copy(target.bytes, targetStart, sourceStart, sourceStart + length);
  }
}

export class Ring {
  readonly buffer: SharedArrayBuffer;
  /** A view of the whole buffer, and where this ring's data starts in it. */
  readonly whole: Uint8Array;
  readonly base: number;
  readonly capacity: number;
  readonly mask: number;
  readonly control: Int32Array;
  // A Buffer view of the records (reading and writing them; a partial Buffer#copy allocates a view, see copyRingBytes).
  readonly bytes: Buffer;
  readonly view: DataView;
  // Producer side: where the next record goes (unpublished until publish()).
  private writeLocal = 0;
  // Consumer side: how far this reader has read (unpublished until release()).
  private readLocal = 0;
  // Consumer side: the producer's position as of the last refresh().
  private writeSeen = 0;
  // Producer side: the consumer's position as of the last reserve(), so waitForRoom() sleeps
  // only if nothing was released since that reserve() failed.
  private readSeenByProducer = 0;
  // The length of the record at the last reserve() or peek().
  recordLength = 0;

  /** A ring over `buffer` (whole, or a region of an arena from createRingArena). */
  constructor(buffer: SharedArrayBuffer, region: RingRegion = { offset: 0, capacity: buffer.byteLength - CONTROL_BYTES }) {
    this.buffer = buffer;
    this.capacity = region.capacity;
    invariant(this.capacity > 0 && (this.capacity & (this.capacity - 1)) === 0, 'ring capacity is a power of two');
    invariant(this.capacity <= CAPACITY_MAX, 'ring capacity is at most 2^29');
    invariant(region.offset + ringBufferBytes(region.capacity) <= buffer.byteLength, 'the ring fits its buffer');
    this.mask = this.capacity - 1;
    this.base = region.offset + CONTROL_BYTES;
    this.whole = new Uint8Array(buffer);
    this.control = new Int32Array(buffer, region.offset, CONTROL_INT32S);
    this.bytes = Buffer.from(buffer, this.base, this.capacity);
    this.view = new DataView(buffer, this.base, this.capacity);
    this.writeLocal = Atomics.load(this.control, WRITE_POSITION) & POSITION_MASK;
    this.readLocal = Atomics.load(this.control, READ_POSITION) & POSITION_MASK;
    this.writeSeen = this.writeLocal;
  }

  /** The largest payload one record can carry. */
  get recordBytesMax(): number {
    return this.capacity / 4;
  }

  /**
   * Producer: reserve room for a record of `length` bytes. Returns the byte offset in
   * `bytes` to write the payload at, or -1 when the ring is full (backpressure).
   */
  reserve(length: number): number {
    invariant(length >= 0 && length <= this.recordBytesMax, 'record fits the ring');
    const needed = align(LENGTH_BYTES + length);
    const read = Atomics.load(this.control, READ_POSITION) & POSITION_MASK;
    this.readSeenByProducer = read;
    let write = this.writeLocal;
    let offset = write & this.mask;
    const tillEnd = this.capacity - offset;
    let padding = 0;
    if (tillEnd < needed) padding = tillEnd;
    if (((write - read) & POSITION_MASK) + padding + needed > this.capacity) return -1;
    if (padding > 0) {
      this.view.setUint32(offset, WRAP, true);
      write = (write + padding) & POSITION_MASK;
      offset = 0;
    }
    this.view.setUint32(offset, length, true);
    this.writeLocal = (write + needed) & POSITION_MASK;
    this.recordLength = length;
    return offset + LENGTH_BYTES;
  }

  /** Producer: make every record reserved so far visible to the consumer. */
  publish(): void {
    Atomics.store(this.control, WRITE_POSITION, this.writeLocal | 0);
  }

  /** Producer: bytes reserved but not yet published. */
  get unpublishedBytes(): number {
    return (this.writeLocal - (Atomics.load(this.control, WRITE_POSITION) & POSITION_MASK)) & POSITION_MASK;
  }

  /** Consumer: look at the producer's published position; returns the bytes readable. */
  refresh(): number {
    this.writeSeen = Atomics.load(this.control, WRITE_POSITION) & POSITION_MASK;
    return (this.writeSeen - this.readLocal) & POSITION_MASK;
  }

  /** Consumer: read only up to `position` (a published position the caller learned elsewhere). */
  refreshTo(position: number): number {
    this.writeSeen = position & POSITION_MASK;
    return (this.writeSeen - this.readLocal) & POSITION_MASK;
  }

  /** Consumer: the position read so far (advance()d, released or not). */
  get readPosition(): number {
    return this.readLocal;
  }

  /**
   * Consumer: the payload offset of the next record up to the last refresh(), or -1 when
   * none is left. Its length is in `recordLength`. Call advance() to move past it.
   */
  peek(): number {
    if (this.readLocal === this.writeSeen) return -1;
    let offset = this.readLocal & this.mask;
    let length = this.view.getUint32(offset, true);
    if (length === WRAP) {
      this.readLocal = (this.readLocal + (this.capacity - offset)) & POSITION_MASK;
      // A wrap marker is only ever published together with the record after it.
      invariant(this.readLocal !== this.writeSeen, 'a wrap marker is followed by a record');
      offset = 0;
      length = this.view.getUint32(0, true);
    }
    invariant(length <= this.recordBytesMax, 'ring record length is sane');
    this.recordLength = length;
    return offset + LENGTH_BYTES;
  }

  /** Consumer: move past the record returned by the last peek(). */
  advance(): void {
    this.readLocal = (this.readLocal + align(LENGTH_BYTES + this.recordLength)) & POSITION_MASK;
  }

  /** Consumer: free everything read so far for the producer, waking it if it waits for room. */
  release(): void {
    Atomics.store(this.control, READ_POSITION, this.readLocal | 0);
    if (Atomics.load(this.control, PRODUCER_WAITING) !== 0) Atomics.notify(this.control, READ_POSITION);
  }

  /** Producer, after reserve() returned -1: sleep until the consumer releases room, or `timeoutMs` passes. */
  waitForRoom(timeoutMs: number): void {
    Atomics.store(this.control, PRODUCER_WAITING, 1);
    Atomics.wait(this.control, READ_POSITION, this.readSeenByProducer, timeoutMs);
    Atomics.store(this.control, PRODUCER_WAITING, 0);
  }

  /** Consumer: read past everything published and free it (a consumer that only discards). */
  skipAll(): void {
    this.refresh();
    while (this.peek() >= 0) this.advance();
    this.release();
  }

  /** Bytes published and not yet released: how full the ring is. */
  occupancy(): number {
    return ((Atomics.load(this.control, WRITE_POSITION) & POSITION_MASK) - (Atomics.load(this.control, READ_POSITION) & POSITION_MASK)) & POSITION_MASK;
  }
}

function align(n: number): number {
  return (n + ALIGN - 1) & ~(ALIGN - 1);
}
