// The status snapshot: what the status page (`/`), `GET /stats` and `tailgrove stats` show.
// Rates are over the last sampling interval (one second); totals since the server started.

export interface PhaseTimes {
  /** Mean milliseconds per batch spent in each phase, over the last interval. */
  ioContributions: number;
  ioDeletions: number;
  clientInput: number;
  catchUp: number;
  /** Mean milliseconds of one group commit (the disk thread), over the last interval. */
  commit: number;
}

export interface TopLog {
  site: string;
  log: string;
  appendsPerSecond: number;
  /** The log's length (its next position) when sampled. */
  length: number;
}

export interface StatusSnapshot {
  /** Milliseconds since the epoch when the snapshot was taken. */
  at: number;
  uptimeSeconds: number;
  /** False while recovery runs (WebSocket upgrades get 503 meanwhile). */
  ready: boolean;
  workers: number;
  connections: number;
  sessions: number;
  leases: number;
  tails: number;
  appendsPerSecond: number;
  entriesDeliveredPerSecond: number;
  batchesPerSecond: number;
  /** Mean records and tailers processed per batch over the last interval. */
  batchSize: number;
  phaseMs: PhaseTimes;
  /** Up to 10 logs with the most appends over the last interval, busiest first. */
  topLogs: TopLog[];
  totals: {
    appends: number;
    entriesDelivered: number;
    errors: number;
    trimmedEntries: number;
  };
}
