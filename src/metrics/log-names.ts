// Log names by log id for the metrics (the busiest logs): read from the `logs` database, which
// is keyed by `site \0 name`. A log id not seen yet triggers a rescan, at most once a second.
import type { Store } from '../log/lmdb-store.js';

const RESCAN_MS = 1000;

export interface LogName {
  site: string;
  log: string;
}

export class LogNames {
  private readonly store: Store;
  private readonly names = new Map<number, LogName>();
  private scannedAt = -Infinity;

  constructor(store: Store) {
    this.store = store;
  }

  get(logId: number): LogName | undefined {
    const known = this.names.get(logId);
    if (known !== undefined || Date.now() - this.scannedAt < RESCAN_MS) return known;
    this.scannedAt = Date.now();
    for (const { key, value } of this.store.logs.getRange({})) {
      const separator = key.indexOf('\0');
      this.names.set(value[0], { site: key.slice(0, separator), log: key.slice(separator + 1) });
    }
    return this.names.get(logId);
  }
}
