// Log names by log id (the busiest logs, notifications): read from the committed log records,
// keyed by `site \0 name`. A log id not seen yet triggers a rescan, at most once a second.
import type { MetadataStore } from '../log/engine.js';

const RESCAN_MS = 1000;

export interface LogName {
  site: string;
  log: string;
}

export class LogNames {
  private readonly store: MetadataStore;
  private readonly names = new Map<number, LogName>();
  private scannedAt = -Infinity;

  constructor(store: MetadataStore) {
    this.store = store;
  }

  get(logId: number): LogName | undefined {
    const known = this.names.get(logId);
    if (known !== undefined || Date.now() - this.scannedAt < RESCAN_MS) return known;
    this.scannedAt = Date.now();
    for (const { name, logId } of this.store.logNames()) {
      const separator = name.indexOf('\0');
      this.names.set(logId, { site: name.slice(0, separator), log: name.slice(separator + 1) });
    }
    return this.names.get(logId);
  }
}
