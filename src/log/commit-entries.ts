// A commit's entries gathered per log, for the commit sinks that lay each log's entries down
// together (LMDB: one chunk per log; native-free: blocks per log). Entries are chained per log
// in arrival order, which is position order. Their bytes are kept as the views they came as:
// views of the staging ring, valid until the commit returns (CommitSink.entry).
import { invariant } from '../invariant.js';

export const NO_ENTRY = -1;

/** One log's entries in the commit: a chain through the entry arrays. */
export interface LogEntries {
  logId: number;
  head: number;
  last: number;
  /** The position of its first entry in this commit, and the one its next entry must have. */
  first: number;
  next: number;
}

export class CommitEntries {
  data: Buffer[] = [];
  bytesBefore = new Float64Array(1024);
  appendedAt = new Uint32Array(1024);
  /** The next entry of the same log, or NO_ENTRY. */
  next = new Int32Array(1024);
  /** The logs with entries in this commit, in first-seen order. */
  readonly logs: LogEntries[] = [];
  private count = 0;
  private readonly byId = new Map<number, LogEntries>();
  private readonly spare: LogEntries[] = [];

  /** Add an entry at the end of its log's chain; returns that chain. */
  add(logId: number, position: number, data: Buffer, bytesBefore: number, appendedAt: number): LogEntries {
    let log = this.byId.get(logId);
    if (log === undefined) {
      log = this.spare.pop() ?? { logId, head: NO_ENTRY, last: NO_ENTRY, first: position, next: position };
      log.logId = logId;
      log.head = NO_ENTRY;
      log.first = log.next = position;
      this.byId.set(logId, log);
      this.logs.push(log);
    }
    invariant(position === log.next, 'a log commits consecutive positions');
    if (this.count === this.next.length) this.grow();
    const index = this.count++;
    this.data[index] = data;
    this.bytesBefore[index] = bytesBefore;
    this.appendedAt[index] = appendedAt >>> 0;
    this.next[index] = NO_ENTRY;
    if (log.head === NO_ENTRY) log.head = index;
    else this.next[log.last] = index;
    log.last = index;
    log.next++;
    return log;
  }

  /** Start over for the next commit (dropping the views). */
  clear(): void {
    for (const log of this.logs) this.spare.push(log);
    this.logs.length = 0;
    this.byId.clear();
    this.data.fill(undefined as unknown as Buffer, 0, this.count);
    this.count = 0;
  }

  private grow(): void {
    const capacity = this.next.length * 2;
    const bytesBefore = new Float64Array(capacity);
    bytesBefore.set(this.bytesBefore);
    this.bytesBefore = bytesBefore;
    const appendedAt = new Uint32Array(capacity);
    appendedAt.set(this.appendedAt);
    this.appendedAt = appendedAt;
    const next = new Int32Array(capacity);
    next.set(this.next);
    this.next = next;
  }
}
