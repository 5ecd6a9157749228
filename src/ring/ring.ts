// sharedarraybuffer-ring: a single-producer / single-consumer ring of variable-length
// records over one SharedArrayBuffer. Positions are u32 byte counters that wrap; the
// capacity is a power of two, so a position maps to an offset with a mask.
//
// A record is [u32 length][length bytes], padded to 8 bytes. A record that would straddle
// the end is preceded by a WRAP marker that sends the reader back to offset 0.
// The producer writes records, then publishes its position once (Disruptor style: one
// atomic store per batch, not per record). The consumer reads up to the position it last
// saw published, then publishes how far it has read, which frees the space.
import assert from 'node:assert/strict';

// Control words, one cache line apart so producer and consumer do not share a line.
const WRITE_POSITION = 0;
const READ_POSITION = 16;
const PRODUCER_WAITING = 17;
const CONTROL_INT32S = 32;
const CONTROL_BYTES = CONTROL_INT32S * 4;

const LENGTH_BYTES = 4;
const ALIGN = 8;
const WRAP = 0xffffffff;

export function ringBufferBytes(capacity: number): number {
  return CONTROL_BYTES + capacity;
}

export function createRingBuffer(capacity: number): SharedArrayBuffer {
  assert.ok(capacity >= 64 && (capacity & (capacity - 1)) === 0, 'ring capacity is a power of two ≥ 64');
  return new SharedArrayBuffer(ringBufferBytes(capacity));
}

export class Ring {
  readonly buffer: SharedArrayBuffer;
  readonly capacity: number;
  readonly mask: number;
  readonly control: Int32Array;
  // A Buffer view so records copy with Buffer#copy, which allocates nothing.
  readonly bytes: Buffer;
  readonly view: DataView;
  // Producer side: where the next record goes (unpublished until publish()).
  private writeLocal = 0;
  // Consumer side: how far this reader has read (unpublished until release()).
  private readLocal = 0;
  // Consumer side: the producer's position as of the last refresh().
  private writeSeen = 0;
  // The length of the record at the last reserve() or peek().
  recordLength = 0;

  constructor(buffer: SharedArrayBuffer) {
    this.buffer = buffer;
    this.capacity = buffer.byteLength - CONTROL_BYTES;
    assert.ok(this.capacity > 0 && (this.capacity & (this.capacity - 1)) === 0, 'ring capacity is a power of two');
    this.mask = this.capacity - 1;
    this.control = new Int32Array(buffer, 0, CONTROL_INT32S);
    this.bytes = Buffer.from(buffer, CONTROL_BYTES, this.capacity);
    this.view = new DataView(buffer, CONTROL_BYTES, this.capacity);
    this.writeLocal = Atomics.load(this.control, WRITE_POSITION) >>> 0;
    this.readLocal = Atomics.load(this.control, READ_POSITION) >>> 0;
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
    assert.ok(length >= 0 && length <= this.recordBytesMax, 'record fits the ring');
    const needed = align(LENGTH_BYTES + length);
    const read = Atomics.load(this.control, READ_POSITION) >>> 0;
    let write = this.writeLocal;
    let offset = write & this.mask;
    const tillEnd = this.capacity - offset;
    let padding = 0;
    if (tillEnd < needed) padding = tillEnd;
    if (((write - read) >>> 0) + padding + needed > this.capacity) return -1;
    if (padding > 0) {
      this.view.setUint32(offset, WRAP, true);
      write = (write + padding) >>> 0;
      offset = 0;
    }
    this.view.setUint32(offset, length, true);
    this.writeLocal = (write + needed) >>> 0;
    this.recordLength = length;
    return offset + LENGTH_BYTES;
  }

  /** Producer: make every record reserved so far visible to the consumer. */
  publish(): void {
    Atomics.store(this.control, WRITE_POSITION, this.writeLocal | 0);
  }

  /** Producer: bytes reserved but not yet published. */
  get unpublishedBytes(): number {
    return (this.writeLocal - (Atomics.load(this.control, WRITE_POSITION) >>> 0)) >>> 0;
  }

  /** Consumer: look at the producer's published position; returns the bytes readable. */
  refresh(): number {
    this.writeSeen = Atomics.load(this.control, WRITE_POSITION) >>> 0;
    return (this.writeSeen - this.readLocal) >>> 0;
  }

  /** Consumer: read only up to `position` (a published position the caller learned elsewhere). */
  refreshTo(position: number): number {
    this.writeSeen = position >>> 0;
    return (this.writeSeen - this.readLocal) >>> 0;
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
      this.readLocal = (this.readLocal + (this.capacity - offset)) >>> 0;
      // A wrap marker is only ever published together with the record after it.
      assert.notEqual(this.readLocal, this.writeSeen, 'a wrap marker is followed by a record');
      offset = 0;
      length = this.view.getUint32(0, true);
    }
    assert.ok(length <= this.recordBytesMax, 'ring record length is sane');
    this.recordLength = length;
    return offset + LENGTH_BYTES;
  }

  /** Consumer: move past the record returned by the last peek(). */
  advance(): void {
    this.readLocal = (this.readLocal + align(LENGTH_BYTES + this.recordLength)) >>> 0;
  }

  /** Consumer: free everything read so far for the producer, waking it if it waits for room. */
  release(): void {
    Atomics.store(this.control, READ_POSITION, this.readLocal | 0);
    if (Atomics.load(this.control, PRODUCER_WAITING) !== 0) Atomics.notify(this.control, READ_POSITION);
  }

  /** Producer: sleep until the consumer releases room, or `timeoutMs` passes. */
  waitForRoom(timeoutMs: number): void {
    const read = Atomics.load(this.control, READ_POSITION);
    Atomics.store(this.control, PRODUCER_WAITING, 1);
    Atomics.wait(this.control, READ_POSITION, read, timeoutMs);
    Atomics.store(this.control, PRODUCER_WAITING, 0);
  }

  /** Bytes published and not yet released: how full the ring is. */
  occupancy(): number {
    return ((Atomics.load(this.control, WRITE_POSITION) >>> 0) - (Atomics.load(this.control, READ_POSITION) >>> 0)) >>> 0;
  }
}

function align(n: number): number {
  return (n + ALIGN - 1) & ~(ALIGN - 1);
}
