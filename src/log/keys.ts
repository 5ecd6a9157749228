// Binary LMDB keys, big-endian so byte order is numeric order (range scans walk positions).
// entries:     [logId u32][first position u64] → a chunk: the log's consecutive entries from that
//              position, each [length u32 LE][bytes before f64 LE][appended at u32 LE, seconds]
//              [entry bytes] (bytes before and appended at serve retention: by size, by age).
//              One chunk per log per group commit (split at CHUNK_BYTES_TARGET): one B-tree
//              put per log instead of one per entry.
// completions: [commit u64][writerId u32][first lsn u32] → a run of outcomes, float64 LE
//              each, for lsns first, first+1, … (position, or -(tail + 1) for a refused
//              conditional write). Keyed by the commit that wrote them first, so a commit's
//              runs sit side by side at the end of the tree (a few pages, not one per writer);
//              the disk thread keeps each writer's runs in memory to delete them.
import { invariant } from '../invariant.js';

export const ENTRY_KEY_BYTES = 12;
export const CHUNK_RECORD_HEADER_BYTES = 16;
const RECORD_LENGTH = 0;
const RECORD_BYTES_BEFORE = 4;
const RECORD_APPENDED_AT = 12;
/** A chunk is closed once it holds this many bytes (a larger entry is a chunk of its own). */
export const CHUNK_BYTES_TARGET = 64 * 1024;
export const COMPLETION_KEY_BYTES = 16;
const TWO_TO_32 = 2 ** 32;

export function writeEntryKey(key: Buffer, logId: number, position: number): Buffer {
  invariant(Number.isSafeInteger(position) && position >= 0, 'positions are non-negative integers');
  key.writeUInt32BE(logId >>> 0, 0);
  key.writeUInt32BE(Math.floor(position / TWO_TO_32), 4);
  key.writeUInt32BE(position >>> 0, 8);
  return key;
}

export function entryKeyPosition(key: Uint8Array): number {
  const view = new DataView(key.buffer, key.byteOffset, key.byteLength);
  return view.getUint32(4) * TWO_TO_32 + view.getUint32(8);
}

export function entryKeyLogId(key: Uint8Array): number {
  return new DataView(key.buffer, key.byteOffset, key.byteLength).getUint32(0);
}

export function writeCompletionKey(key: Buffer, commit: number, writerId: number, lsn: number): Buffer {
  invariant(Number.isSafeInteger(commit) && commit >= 0, 'commit numbers are non-negative integers');
  key.writeUInt32BE(Math.floor(commit / TWO_TO_32), 0);
  key.writeUInt32BE(commit >>> 0, 4);
  key.writeUInt32BE(writerId >>> 0, 8);
  key.writeUInt32BE(lsn >>> 0, 12);
  return key;
}

export function completionKeyCommit(key: Uint8Array): number {
  const view = new DataView(key.buffer, key.byteOffset, key.byteLength);
  return view.getUint32(0) * TWO_TO_32 + view.getUint32(4);
}

export function completionKeyWriter(key: Uint8Array): number {
  return new DataView(key.buffer, key.byteOffset, key.byteLength).getUint32(8);
}

export function completionKeyLsn(key: Uint8Array): number {
  return new DataView(key.buffer, key.byteOffset, key.byteLength).getUint32(12);
}

/** The key before every entry key of `logId` (a reverse range ending here includes position 0). */
export function writeLogPrefixKey(key: Buffer, logId: number): Buffer {
  key.writeUInt32BE(logId >>> 0, 0);
  return key;
}

/** Append one entry record to a chunk being built; returns the offset after it. */
export function writeChunkRecord(chunk: Buffer, at: number, data: Uint8Array, bytesBefore: number, appendedAt: number): number {
  chunk.writeUInt32LE(data.length, at + RECORD_LENGTH);
  chunk.writeDoubleLE(bytesBefore, at + RECORD_BYTES_BEFORE);
  chunk.writeUInt32LE(appendedAt >>> 0, at + RECORD_APPENDED_AT);
  chunk.set(data, at + CHUNK_RECORD_HEADER_BYTES);
  return at + CHUNK_RECORD_HEADER_BYTES + data.length;
}

/** Walks the entry records of one chunk: next() moves to the next one and says whether there was one. */
export class ChunkCursor {
  private chunk: Buffer = Buffer.alloc(0);
  private nextAt = 0;
  position = 0;
  dataStart = 0;
  dataLength = 0;

  /** Start before the first record of `chunk`, whose key says it begins at `firstPosition`. */
  reset(chunk: Buffer, firstPosition: number): this {
    this.chunk = chunk;
    this.nextAt = 0;
    this.position = firstPosition - 1;
    return this;
  }

  next(): boolean {
    if (this.nextAt >= this.chunk.length) return false;
    invariant(this.nextAt + CHUNK_RECORD_HEADER_BYTES <= this.chunk.length, 'an entry chunk ends at a record boundary');
    this.dataLength = this.chunk.readUInt32LE(this.nextAt + RECORD_LENGTH);
    this.dataStart = this.nextAt + CHUNK_RECORD_HEADER_BYTES;
    this.nextAt = this.dataStart + this.dataLength;
    invariant(this.nextAt <= this.chunk.length, 'an entry record lies within its chunk');
    this.position++;
    return true;
  }

  get bytesBefore(): number {
    return this.chunk.readDoubleLE(this.dataStart - CHUNK_RECORD_HEADER_BYTES + RECORD_BYTES_BEFORE);
  }

  get appendedAt(): number {
    return this.chunk.readUInt32LE(this.dataStart - CHUNK_RECORD_HEADER_BYTES + RECORD_APPENDED_AT);
  }

  data(): Buffer {
    return this.chunk.subarray(this.dataStart, this.dataStart + this.dataLength);
  }

  /** Move to the record at `position` (within this chunk); false if the chunk ends first. */
  seek(position: number): boolean {
    while (this.position < position) if (!this.next()) return false;
    return this.position === position;
  }
}
