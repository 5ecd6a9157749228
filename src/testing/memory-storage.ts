// Durable storage in memory for the simulation: what a commit made durable survives a
// simulated crash (the partitions are rebuilt from it); what was only staged does not.
import type { CommitSink } from '../log/commit.js';
import type { DurableCompletion, DurableLog, DurableWriter, EntrySink, StorageReader } from '../log/storage.js';

export class MemoryStorage implements StorageReader, CommitSink {
  /** Entries by log, by position; retention leaves `undefined` below a log's first. */
  readonly entries = new Map<number, (Buffer | undefined)[]>();
  readonly firsts = new Map<number, number>();
  readonly byteTotals = new Map<number, number>();
  readonly completionRecords = new Map<number, Map<number, number>>();
  readonly writerRecords = new Map<string, DurableWriter>();
  readonly logRecords = new Map<string, { logId: number; epoch: number }>();
  commits = 0;

  // CommitSink
  entry(logId: number, position: number, data: Buffer, bytesBefore: number): void {
    let entries = this.entries.get(logId);
    if (entries === undefined) this.entries.set(logId, (entries = []));
    if (position !== entries.length) throw new Error(`storage: log ${logId} got position ${position}, expected ${entries.length}`);
    const total = this.byteTotals.get(logId) ?? 0;
    if (bytesBefore !== total) throw new Error(`storage: log ${logId} entry ${position} says ${bytesBefore} bytes before it, expected ${total}`);
    entries.push(Buffer.from(data));
    this.byteTotals.set(logId, total + data.length);
  }

  trimEntries(logId: number, from: number, to: number): void {
    const entries = this.entries.get(logId) ?? [];
    for (let position = from; position < to; position++) entries[position] = undefined;
    this.firsts.set(logId, to);
  }

  completion(writerId: number, lsn: number, outcome: number): void {
    let records = this.completionRecords.get(writerId);
    if (records === undefined) this.completionRecords.set(writerId, (records = new Map()));
    records.set(lsn, outcome);
  }

  writer(writerId: number, logId: number, device: string, epoch: number, lastLsn: number, ackedLsn: number): void {
    this.writerRecords.set(`${logId}\0${device}`, { writerId, logId, device, epoch, lastLsn, ackedLsn });
  }

  log(logId: number, epoch: number, name: string): void {
    this.logRecords.set(name, { logId, epoch });
  }

  trimCompletions(writerId: number, fromLsn: number, toLsn: number): void {
    const records = this.completionRecords.get(writerId);
    for (let lsn = fromLsn; lsn <= toLsn; lsn++) records?.delete(lsn);
  }

  // StorageReader
  readEntries(logId: number, from: number, to: number, bytesMax: number, sink: EntrySink): number {
    const entries = this.entries.get(logId) ?? [];
    let count = 0;
    let bytes = 0;
    for (let position = from; position < Math.min(to, entries.length); position++) {
      if (entries[position] === undefined) throw new Error(`storage: log ${logId} read at ${position}, which was trimmed`);
      sink.entry(position, entries[position]!);
      count++;
      bytes += entries[position]!.length;
      if (bytes >= bytesMax) break;
    }
    return count;
  }

  refresh(): void {}

  release(): void {}

  *logs(): Iterable<DurableLog> {
    for (const [name, { logId, epoch }] of this.logRecords) {
      yield { name, logId, epoch, tail: this.entries.get(logId)?.length ?? 0, first: this.firsts.get(logId) ?? 0, bytes: this.byteTotals.get(logId) ?? 0 };
    }
  }

  *writers(): Iterable<DurableWriter> {
    yield* this.writerRecords.values();
  }

  *completions(): Iterable<DurableCompletion> {
    for (const [writerId, records] of this.completionRecords) {
      for (const [lsn, outcome] of records) yield { writerId, lsn, outcome };
    }
  }
}
