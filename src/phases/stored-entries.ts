// Committed entries read back from storage (history reads, tailers catching up), framed as
// _entries for one session. Entries are gathered into one reused scratch buffer first, since
// their sizes are only known as storage yields them.
import { PUSH_FRAME_BYTES_MAX } from '../constants.js';
import type { EntrySink } from '../log/storage.js';
import { ENTRIES_CAUGHT_UP, ENTRIES_READ_END, ENTRIES_READ_REPLY } from '../net/protocol.js';
import { ENTRIES_HEADER_BYTES, ENTRY_LENGTH_BYTES, writeEntriesHeader } from '../net/server-frames.js';
import { reserveOutput } from './output.js';
import { STAT_DELIVERED } from '../metrics/pipeline-metrics.js';
import type { Partition } from './state.js';

class ScratchSink implements EntrySink {
  bytes = Buffer.alloc(2 << 20);
  length = 0;
  count = 0;

  reset(): void {
    this.length = 0;
    this.count = 0;
  }

  entry(_position: number, data: Uint8Array): void {
    const needed = this.length + ENTRY_LENGTH_BYTES + data.length;
    if (needed > this.bytes.length) {
      const grown = Buffer.alloc(Math.max(needed, this.bytes.length * 2));
      this.bytes.copy(grown, 0, 0, this.length);
      this.bytes = grown;
    }
    this.bytes.writeUInt32LE(data.length, this.length);
    this.bytes.set(data, this.length + ENTRY_LENGTH_BYTES);
    this.length = needed;
    this.count++;
  }
}

const scratch = new ScratchSink();

export interface StoredRead {
  session: number;
  handle: number;
  /** The read's request id, or the tail's id. */
  rid: number;
  /** A read's answer (flag READ_REPLY), or a tail's push. */
  readReply: boolean;
  logId: number;
  from: number;
  to: number;
  /** The log's committed tail: reaching it is "caught up". */
  committed: number;
  bytesMax: number;
}

/** Payload bytes of the entries the last sendStoredEntries() sent. */
export function storedBytesSent(): number {
  return scratch.length;
}

/** The one request object callers fill in (no object per read). */
export const storedRead: StoredRead = { session: 0, handle: 0, rid: 0, readReply: false, logId: 0, from: 0, to: 0, committed: 0, bytesMax: 0 };

/**
 * Send committed entries in [from, to) (at most `bytesMax`, at least one entry) to the
 * session. The last frame carries CAUGHT_UP when the entries reach the committed tail (and
 * READ_END for a read); when there is nothing to send it is an empty frame. Returns the
 * number of entries sent.
 */
export function sendStoredEntries(partition: Partition, read: StoredRead): number {
  scratch.reset();
  const count = partition.storage.readEntries(read.logId, read.from, read.to, read.bytesMax, scratch);
  const caughtUp = read.from + count >= read.committed;
  partition.stats[STAT_DELIVERED]! += count;
  const baseFlags = read.readReply ? ENTRIES_READ_REPLY : 0;
  const output = partition.rings.output;
  let cursor = 0;
  let position = read.from;
  do {
    // As many entries as fit one push frame (at least one).
    let end = cursor;
    let frameCount = 0;
    while (end < scratch.length) {
      const length = ENTRY_LENGTH_BYTES + scratch.bytes.readUInt32LE(end);
      if (frameCount > 0 && end - cursor + length > PUSH_FRAME_BYTES_MAX) break;
      end += length;
      frameCount++;
    }
    const last = end >= scratch.length;
    const flags = baseFlags | (last && caughtUp ? ENTRIES_CAUGHT_UP : 0) | (last && read.readReply ? ENTRIES_READ_END : 0);
    const payload = end - cursor;
    const at = reserveOutput(partition, read.session, ENTRIES_HEADER_BYTES + payload);
    writeEntriesHeader(output.view, at, flags, read.handle, read.rid, frameCount, position, payload);
    scratch.bytes.copy(output.bytes, at + ENTRIES_HEADER_BYTES, cursor, end);
    position += frameCount;
    cursor = end;
  } while (cursor < scratch.length);
  return count;
}
