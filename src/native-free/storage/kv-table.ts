// A small durable table (KvTable) in one append-only file: each put or remove is a record
//   [length u32][crc u32][kind u8][msgpack: [key, value] for a put, key for a remove]
// (CRC-32 of the bytes after the crc field). Opening replays the file into a Map and cuts a
// torn tail. Writes of one tick are grouped: one write, one fdatasync (both off the event
// loop's thread), then the Map is updated and the promises resolve. When the file grows past
// twice its live records it is rewritten: a temporary file, fsync, rename, directory fsync.
import { closeSync, constants, fdatasync, fdatasyncSync, fstatSync, ftruncateSync, openSync, readSync, renameSync, write, writeSync } from 'node:fs';
import { promisify } from 'node:util';
import type { KvTable } from '../../log/engine.js';
import { crc32 } from './crc32.js';
import { pack, unpack } from './msgpack.js';
import { syncDirectory } from './segment-files.js';

const RECORD_HEADER_BYTES = 9;
const RECORD_LENGTH = 0; // u32
const RECORD_CRC = 4; // u32
const RECORD_KIND = 8; // u8
const PUT = 1;
const REMOVE = 2;
/** Below this the file is never rewritten. */
const REWRITE_BYTES_MIN = 64 * 1024;

const writeAsync = promisify(write);
const fdatasyncAsync = promisify(fdatasync);

type TableKey = string | [string, string];

interface Stored<V, K> {
  key: K;
  value: V;
  /** The bytes of its record in the file. */
  recordBytes: number;
}

interface PendingWrite<V, K> {
  kind: number;
  key: K;
  value: V | undefined;
  record: Buffer;
  resolve: (done: boolean) => void;
  reject: (error: unknown) => void;
}

function mapKey(key: TableKey): string {
  return typeof key === 'string' ? key : JSON.stringify(key);
}

function compareKeys(a: TableKey, b: TableKey): number {
  const left = typeof a === 'string' ? [a] : a;
  const right = typeof b === 'string' ? [b] : b;
  for (let index = 0; index < Math.min(left.length, right.length); index++) {
    if (left[index]! !== right[index]!) return left[index]! < right[index]! ? -1 : 1;
  }
  return left.length - right.length;
}

function encodeRecord(kind: number, payload: unknown): Buffer {
  const body = pack(payload);
  const record = Buffer.allocUnsafe(RECORD_HEADER_BYTES + body.length);
  record.writeUInt32LE(record.length, RECORD_LENGTH);
  record.writeUInt8(kind, RECORD_KIND);
  body.copy(record, RECORD_HEADER_BYTES);
  record.writeUInt32LE(crc32(record.subarray(RECORD_KIND)), RECORD_CRC);
  return record;
}

export class FileKvTable<V, K extends TableKey> implements KvTable<V, K> {
  private readonly path: string;
  private readonly directory: string;
  private readonly entries = new Map<string, Stored<V, K>>();
  private fd: number;
  private fileBytes = 0;
  private liveBytes = 0;
  private pending: PendingWrite<V, K>[] = [];
  /** The flush in progress (one at a time), if any. */
  private flushing: Promise<void> | undefined;

  constructor(directory: string, name: string) {
    this.directory = directory;
    this.path = `${directory}/${name}.tbl`;
    this.fd = openSync(this.path, constants.O_RDWR | constants.O_CREAT, 0o644);
    this.replay();
  }

  /** The file's size and the part of it that is live records (tests watch rewrites). */
  get sizes(): { fileBytes: number; liveBytes: number } {
    return { fileBytes: this.fileBytes, liveBytes: this.liveBytes };
  }

  get(key: K): V | undefined {
    return this.entries.get(mapKey(key))?.value;
  }

  /** Every entry, in key order (as LMDB yields them). */
  *getRange(): Iterable<{ key: K; value: V }> {
    const stored = [...this.entries.values()].sort((a, b) => compareKeys(a.key, b.key));
    for (const { key, value } of stored) yield { key, value };
  }

  put(key: K, value: V): Promise<boolean> {
    return this.enqueue(PUT, key, value, encodeRecord(PUT, [key, value]));
  }

  /** Resolves true when the key was there. */
  remove(key: K): Promise<boolean> {
    return this.enqueue(REMOVE, key, undefined, encodeRecord(REMOVE, key));
  }

  async close(): Promise<void> {
    while (this.flushing !== undefined) await this.flushing;
    closeSync(this.fd);
  }

  private enqueue(kind: number, key: K, value: V | undefined, record: Buffer): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.pending.push({ kind, key, value, record, resolve, reject });
      if (this.flushing === undefined) this.flushing = this.flush();
    });
  }

  /** Write what is pending as one group (what arrives meanwhile forms the next), until nothing is. */
  private async flush(): Promise<void> {
    // Let the rest of this tick add to the group.
    await Promise.resolve();
    while (this.pending.length > 0) {
      const group = this.pending;
      this.pending = [];
      try {
        const bytes = Buffer.concat(group.map((write) => write.record));
        for (let done = 0; done < bytes.length; ) done += (await writeAsync(this.fd, bytes, done, bytes.length - done, this.fileBytes + done)).bytesWritten;
        await fdatasyncAsync(this.fd);
        this.fileBytes += bytes.length;
      } catch (error) {
        for (const write of group) write.reject(error);
        continue;
      }
      for (const write of group) write.resolve(this.applyWrite(write.kind, write.key, write.value, write.record.length));
      if (this.fileBytes > REWRITE_BYTES_MIN && this.fileBytes > 2 * this.liveBytes) this.rewrite();
    }
    this.flushing = undefined;
  }

  /** Apply a put or remove to the Map; returns what the write resolves to. */
  private applyWrite(kind: number, key: K, value: V | undefined, recordBytes: number): boolean {
    const id = mapKey(key);
    const replaced = this.entries.get(id);
    if (replaced !== undefined) {
      this.liveBytes -= replaced.recordBytes;
      this.entries.delete(id);
    }
    if (kind === REMOVE) return replaced !== undefined;
    this.entries.set(id, { key, value: value as V, recordBytes });
    this.liveBytes += recordBytes;
    return true;
  }

  /** Replay the file; a torn or corrupt tail (a write cut short) is cut off. */
  private replay(): void {
    const size = fstatSync(this.fd).size;
    const bytes = Buffer.allocUnsafe(size);
    for (let done = 0; done < size; ) done += readSync(this.fd, bytes, done, size - done, done);
    let offset = 0;
    while (offset + RECORD_HEADER_BYTES <= size) {
      const length = bytes.readUInt32LE(offset + RECORD_LENGTH);
      if (length < RECORD_HEADER_BYTES || offset + length > size) break;
      if (bytes.readUInt32LE(offset + RECORD_CRC) !== crc32(bytes.subarray(offset + RECORD_KIND, offset + length))) break;
      const kind = bytes[offset + RECORD_KIND]!;
      const payload = unpack(bytes.subarray(offset + RECORD_HEADER_BYTES, offset + length)) as unknown;
      if (kind === PUT) {
        const [key, value] = payload as [K, V];
        this.applyWrite(PUT, key, value, length);
      } else {
        this.applyWrite(REMOVE, payload as K, undefined, length);
      }
      offset += length;
    }
    if (offset < size) {
      ftruncateSync(this.fd, offset);
      fdatasyncSync(this.fd);
    }
    this.fileBytes = offset;
  }

  /** Write the live records to a new file and put it in place of the old one. */
  private rewrite(): void {
    const temporary = `${this.path}.rewrite`;
    const fd = openSync(temporary, 'w');
    let offset = 0;
    for (const stored of this.entries.values()) {
      const record = encodeRecord(PUT, [stored.key, stored.value]);
      for (let done = 0; done < record.length; ) done += writeSync(fd, record, done, record.length - done, offset + done);
      stored.recordBytes = record.length;
      offset += record.length;
    }
    fdatasyncSync(fd);
    renameSync(temporary, this.path);
    syncDirectory(this.directory);
    closeSync(this.fd);
    this.fd = fd;
    this.fileBytes = offset;
    this.liveBytes = offset;
  }
}
