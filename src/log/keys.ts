// Binary LMDB keys, big-endian so byte order is numeric order (range scans walk positions).
// entries:     [logId u32][position u64]  → [bytes before f64 LE][appended at u32 LE, seconds][entry bytes]
//              (the header serves retention: by size, by age; readers strip it)
// completions: [writerId u32][first lsn u32] → a run of outcomes, float64 LE each, for lsns
//              first, first+1, … (position, or -(tail + 1) for a refused conditional write)
import { invariant } from '../invariant.js';

export const ENTRY_KEY_BYTES = 12;
export const ENTRY_HEADER_BYTES = 12;
const HEADER_BYTES_BEFORE = 0;
const HEADER_APPENDED_AT = 8;
export const COMPLETION_KEY_BYTES = 8;
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

export function writeCompletionKey(key: Buffer, writerId: number, lsn: number): Buffer {
  key.writeUInt32BE(writerId >>> 0, 0);
  key.writeUInt32BE(lsn >>> 0, 4);
  return key;
}

export function completionKeyLsn(key: Uint8Array): number {
  return new DataView(key.buffer, key.byteOffset, key.byteLength).getUint32(4);
}

export function writeEntryHeader(value: Buffer, bytesBefore: number, appendedAt: number): void {
  value.writeDoubleLE(bytesBefore, HEADER_BYTES_BEFORE);
  value.writeUInt32LE(appendedAt >>> 0, HEADER_APPENDED_AT);
}

export function entryBytesBefore(value: Uint8Array): number {
  return new DataView(value.buffer, value.byteOffset, ENTRY_HEADER_BYTES).getFloat64(HEADER_BYTES_BEFORE, true);
}

export function entryAppendedAt(value: Uint8Array): number {
  return new DataView(value.buffer, value.byteOffset, ENTRY_HEADER_BYTES).getUint32(HEADER_APPENDED_AT, true);
}
