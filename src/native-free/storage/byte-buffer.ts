// A growable byte buffer with a DataView over it: commit frames and scratch space are built
// in one of these, reused from commit to commit (no allocation once it has grown).

export class ByteBuffer {
  bytes: Buffer;
  view: DataView;
  /** Bytes in use. */
  length = 0;

  constructor(capacity: number) {
    this.bytes = Buffer.allocUnsafeSlow(capacity);
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
  }

  /** Make room for `count` more bytes and take them; returns where they start. */
  append(count: number): number {
    const start = this.length;
    this.ensure(start + count);
    this.length = start + count;
    return start;
  }

  /** Make the buffer at least `capacity` bytes, keeping what is in use. */
  ensure(capacity: number): void {
    if (capacity <= this.bytes.length) return;
    const grown = Buffer.allocUnsafeSlow(Math.max(capacity, this.bytes.length * 2));
    this.bytes.copy(grown, 0, 0, this.length);
    this.bytes = grown;
    this.view = new DataView(grown.buffer, grown.byteOffset, grown.byteLength);
  }
}
