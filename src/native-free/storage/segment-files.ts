// Segment files: naming, listing, creating (durably: header, fdatasync, directory fsync) and
// opening. Ids are consecutive from 1: a new segment is always the last id + 1, so a reader
// following the stream knows which id comes next.
import { closeSync, fdatasyncSync, fsyncSync, mkdirSync, openSync, readdirSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from './crc32.js';
import {
  SEGMENTS_DIRECTORY,
  SEGMENT_HEADER_BYTES,
  SEGMENT_HEADER_CRC,
  SEGMENT_HEADER_ID,
  SEGMENT_HEADER_MAGIC,
  SEGMENT_HEADER_VERSION,
  SEGMENT_MAGIC,
  SEGMENT_SUFFIX,
  SEGMENT_VERSION,
  STORE_DIRECTORY,
} from './format.js';

export function storeDirectory(dataDir: string): string {
  return join(dataDir, STORE_DIRECTORY);
}

/** The segments directory of a data directory, created if missing. */
export function segmentsDirectory(dataDir: string): string {
  const directory = join(storeDirectory(dataDir), SEGMENTS_DIRECTORY);
  mkdirSync(directory, { recursive: true });
  return directory;
}

export function segmentPath(directory: string, id: number): string {
  return join(directory, id.toString(16).padStart(8, '0') + SEGMENT_SUFFIX);
}

/** The ids of the segment files present, ascending. */
export function listSegments(directory: string): number[] {
  const ids: number[] = [];
  for (const name of readdirSync(directory)) {
    if (!name.endsWith(SEGMENT_SUFFIX)) continue;
    const id = Number.parseInt(name.slice(0, -SEGMENT_SUFFIX.length), 16);
    if (Number.isSafeInteger(id) && id > 0) ids.push(id);
  }
  return ids.sort((a, b) => a - b);
}

/** Make the directory's entries (created, renamed or removed files) durable. */
export function syncDirectory(directory: string): void {
  const fd = openSync(directory, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Open a segment (read-only unless `writable`); undefined when it does not exist (any more). */
export function openSegment(directory: string, id: number, writable: boolean): number | undefined {
  try {
    return openSync(segmentPath(directory, id), writable ? 'r+' : 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

const header = Buffer.alloc(SEGMENT_HEADER_BYTES);
const headerView = new DataView(header.buffer, header.byteOffset, SEGMENT_HEADER_BYTES);

/** Whether the segment starts with a whole, valid header for `id` (a roll cut short has none). */
export function segmentHeaderValid(fd: number, id: number): boolean {
  if (readSync(fd, header, 0, SEGMENT_HEADER_BYTES, 0) < SEGMENT_HEADER_BYTES) return false;
  return (
    headerView.getUint32(SEGMENT_HEADER_MAGIC, true) === SEGMENT_MAGIC &&
    headerView.getUint32(SEGMENT_HEADER_VERSION, true) === SEGMENT_VERSION &&
    headerView.getUint32(SEGMENT_HEADER_ID, true) === id &&
    headerView.getUint32(SEGMENT_HEADER_CRC, true) === crc32(header.subarray(0, SEGMENT_HEADER_CRC))
  );
}

/**
 * Create segment `id` with its header and make it durable (file and directory entry) before
 * any commit goes into it. Returns its file descriptor, open for writing.
 */
export function createSegment(directory: string, id: number): number {
  const fd = openSync(segmentPath(directory, id), 'wx+');
  header.fill(0);
  headerView.setUint32(SEGMENT_HEADER_MAGIC, SEGMENT_MAGIC, true);
  headerView.setUint32(SEGMENT_HEADER_VERSION, SEGMENT_VERSION, true);
  headerView.setUint32(SEGMENT_HEADER_ID, id, true);
  headerView.setUint32(SEGMENT_HEADER_CRC, crc32(header.subarray(0, SEGMENT_HEADER_CRC)), true);
  writeSync(fd, header, 0, SEGMENT_HEADER_BYTES, 0);
  fdatasyncSync(fd);
  syncDirectory(directory);
  return fd;
}
