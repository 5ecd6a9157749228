// The published state: after each commit's fdatasync the disk thread writes where the durable
// stream ends (head segment, its length). Readers read up to it and never further, so they
// never see a commit before it is durable. The file is not fsynced: after a crash it may lag
// behind the segments (never lead), so opening a store checks the head segment's tail itself.
import { closeSync, constants, openSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { invariant } from '../../invariant.js';
import { crc32 } from './crc32.js';
import {
  PUBLISHED_BYTES,
  PUBLISHED_CRC,
  PUBLISHED_FILE,
  PUBLISHED_HEAD,
  PUBLISHED_LENGTH,
  PUBLISHED_MAGIC,
  PUBLISHED_MAGIC_AT,
  PUBLISHED_SEQUENCE,
} from './format.js';
import { storeDirectory } from './segment-files.js';

// A read racing the writer's 32-byte write can see a mix of both: its CRC fails, read again.
const TORN_READ_RETRIES = 8;

export class PublishedState {
  head = 0;
  length = 0;
  sequence = 0;
  private readonly path: string;
  private readonly writable: boolean;
  private fd = -1;
  private readonly bytes = Buffer.alloc(PUBLISHED_BYTES);
  private readonly view = new DataView(this.bytes.buffer, this.bytes.byteOffset, PUBLISHED_BYTES);

  /** `writable` for the disk thread, which creates the file. */
  constructor(dataDir: string, writable: boolean) {
    this.path = join(storeDirectory(dataDir), PUBLISHED_FILE);
    this.writable = writable;
    if (writable) this.fd = openSync(this.path, constants.O_RDWR | constants.O_CREAT, 0o644);
  }

  /** Read the current state; false when there is none yet (no writer has published) or it is unreadable. */
  read(): boolean {
    if (this.fd < 0) {
      try {
        this.fd = openSync(this.path, 'r');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
        throw error;
      }
    }
    for (let attempt = 0; attempt < TORN_READ_RETRIES; attempt++) {
      if (readSync(this.fd, this.bytes, 0, PUBLISHED_BYTES, 0) < PUBLISHED_BYTES) return false;
      if (this.view.getUint32(PUBLISHED_MAGIC_AT, true) !== PUBLISHED_MAGIC) return false;
      if (this.view.getUint32(PUBLISHED_CRC, true) !== crc32(this.bytes.subarray(0, PUBLISHED_CRC))) continue;
      this.head = this.view.getUint32(PUBLISHED_HEAD, true);
      this.length = this.view.getFloat64(PUBLISHED_LENGTH, true);
      this.sequence = this.view.getFloat64(PUBLISHED_SEQUENCE, true);
      return true;
    }
    return false;
  }

  /** The writer's side: publish that the stream is durable through `length` bytes of segment `head`. */
  write(head: number, length: number, sequence: number): void {
    invariant(this.writable, 'only the disk thread publishes');
    this.view.setUint32(PUBLISHED_MAGIC_AT, PUBLISHED_MAGIC, true);
    this.view.setUint32(PUBLISHED_HEAD, head, true);
    this.view.setFloat64(PUBLISHED_LENGTH, length, true);
    this.view.setFloat64(PUBLISHED_SEQUENCE, sequence, true);
    this.view.setUint32(PUBLISHED_CRC, crc32(this.bytes.subarray(0, PUBLISHED_CRC)), true);
    writeSync(this.fd, this.bytes, 0, PUBLISHED_BYTES, 0);
    this.head = head;
    this.length = length;
    this.sequence = sequence;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
