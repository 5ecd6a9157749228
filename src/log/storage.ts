// What the phases need from durable storage, as an interface: the server implements it over
// LMDB (lmdb-store.ts), the simulation over memory (src/testing/memory-storage.ts).
export interface EntrySink {
  /** One committed entry; `data` is valid only during the call. */
  entry(position: number, data: Uint8Array): void;
}

export interface DurableLog {
  name: string;
  logId: number;
  epoch: number;
  /** Number of entries committed: the next position. */
  tail: number;
  /** The first position held (retention removed those below it). */
  first: number;
  /** Bytes of every entry ever appended (trimmed ones included): the next entry's bytesBefore. */
  bytes: number;
}

export interface DurableWriter {
  writerId: number;
  logId: number;
  device: string;
  epoch: number;
  lastLsn: number;
  ackedLsn: number;
}

export interface DurableCompletion {
  writerId: number;
  lsn: number;
  outcome: number;
}

export interface StorageReader {
  /**
   * Feed committed entries of `logId` with positions in [from, to) to `sink`, stopping after
   * the entry that reaches `bytesMax`. Returns how many were fed.
   */
  readEntries(logId: number, from: number, to: number, bytesMax: number, sink: EntrySink): number;
  /** See everything committed so far (a new read snapshot). */
  refresh(): void;
  /**
   * Let go of the read snapshot until the next refresh(): a snapshot held open keeps LMDB
   * from reusing the pages freed after it (retention's deletions would only grow the file).
   */
  release(): void;
  logs(): Iterable<DurableLog>;
  writers(): Iterable<DurableWriter>;
  completions(): Iterable<DurableCompletion>;
}
