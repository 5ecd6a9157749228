// A commit's completion records, coalesced per writer into runs of consecutive lsns, so a
// device's pipelined burst is one record rather than one per write. Shared by the storage
// engines' commit sinks; each says how a run is written. Run objects are reused from one
// commit to the next.

export interface CompletionRun {
  writerId: number;
  firstLsn: number;
  length: number;
  /** The outcomes of lsns firstLsn, firstLsn + 1, …: the first `length` are set. */
  outcomes: Float64Array;
}

export class CompletionRuns {
  private readonly write: (run: CompletionRun) => void;
  private readonly byWriter = new Map<number, CompletionRun>();
  /** This commit's runs in first-seen order, and runs to reuse. */
  private readonly inOrder: CompletionRun[] = [];
  private readonly spare: CompletionRun[] = [];

  /** `write` stores a run; it is called with runs of at least one lsn and may not keep them. */
  constructor(write: (run: CompletionRun) => void) {
    this.write = write;
  }

  add(writerId: number, lsn: number, outcome: number): void {
    let run = this.byWriter.get(writerId);
    if (run === undefined) {
      run = this.spare.pop() ?? { writerId, firstLsn: lsn, length: 0, outcomes: new Float64Array(64) };
      run.writerId = writerId;
      run.length = 0;
      this.byWriter.set(writerId, run);
      this.inOrder.push(run);
    } else if (run.length > 0 && lsn !== run.firstLsn + run.length) {
      this.writeRun(run);
    }
    if (run.length === 0) run.firstLsn = lsn;
    if (run.length === run.outcomes.length) {
      const grown = new Float64Array(run.outcomes.length * 2);
      grown.set(run.outcomes);
      run.outcomes = grown;
    }
    run.outcomes[run.length++] = outcome;
  }

  /** Write the writer's pending run now (before its stored records are trimmed). */
  flushWriter(writerId: number): void {
    const run = this.byWriter.get(writerId);
    if (run !== undefined) this.writeRun(run);
  }

  /** Write every pending run: the end of a commit. */
  flushAll(): void {
    for (const run of this.inOrder) this.writeRun(run);
    this.reset();
  }

  /** Forget the pending runs: a commit given up half way. */
  discard(): void {
    for (const run of this.inOrder) run.length = 0;
    this.reset();
  }

  private writeRun(run: CompletionRun): void {
    if (run.length === 0) return;
    this.write(run);
    run.length = 0;
  }

  private reset(): void {
    for (const run of this.inOrder) this.spare.push(run);
    this.inOrder.length = 0;
    this.byWriter.clear();
  }
}
