// What the retention sweep reads: each log's held range and byte count, and the byte count
// and append time of any held entry (stored per block and per entry; see format.ts).
import type { RetainedLog, RetentionView } from '../../log/engine.js';
import { SegmentReader } from './reader.js';

export class SegmentRetentionView implements RetentionView {
  private readonly reader: SegmentReader;

  constructor(dataDir: string) {
    this.reader = new SegmentReader(dataDir);
  }

  refresh(): void {
    this.reader.refresh();
  }

  *logs(): Iterable<RetainedLog> {
    for (const log of this.reader.logs()) yield { name: log.name, logId: log.logId, first: log.first, length: log.tail, endBytes: log.bytes };
  }

  bytesBefore(logId: number, position: number): number {
    this.reader.entryAt(logId, position);
    return this.reader.foundBytesBefore;
  }

  appendedAt(logId: number, position: number): number {
    this.reader.entryAt(logId, position);
    return this.reader.foundAppendedAt;
  }

  close(): Promise<void> {
    return this.reader.close();
  }
}
