// The retention sweep, a piscina task on a thread of its own (never in the phases): walk the
// logs a rule applies to and work out how far each may be trimmed. Reads only; the trims go
// back to the IO thread, which hands them to the workers' io-deletions input.
// Per log: the storage engine's retention view gives its length and byte count (each entry
// is stored with the bytes before it and its append time), and a binary search over
// positions finds the first entry to keep by size or by age. Logs that did not change since the last sweep and
// have no entry due to expire are skipped after one read.
import type { EngineName, RetentionView } from '../log/engine.js';
import { loadEngine } from '../log/engines.js';
import { retentionRuleFor, type RetentionRule } from './rules.js';

export interface SweepRequest {
  dataDir: string;
  engine: EngineName;
  rules: RetentionRule[];
  nowSeconds: number;
  /** The most entries of one log trimmed per sweep. */
  batchEntries: number;
}

export interface Trim {
  logId: number;
  /** The new first position. */
  trimTo: number;
}

interface LogSeen {
  length: number;
  first: number;
  /** When (seconds) the first entry expires by age; Infinity without an age limit. */
  dueAt: number;
}

let view: RetentionView | undefined;
const seen = new Map<number, LogSeen>();

/** The smallest position in [low, high] where `keep` holds (it holds at `high`, and from where it first holds on). */
function firstKept(low: number, high: number, keep: (position: number) => boolean): number {
  while (low < high) {
    const middle = Math.floor((low + high) / 2);
    if (keep(middle)) high = middle;
    else low = middle + 1;
  }
  return low;
}

export default async function sweep(request: SweepRequest): Promise<Trim[]> {
  view ??= (await loadEngine(request.engine)).openRetentionView(request.dataDir);
  view.refresh();
  const trims: Trim[] = [];
  for (const { name, logId, first, length, endBytes } of view.logs()) {
    const separator = name.indexOf('\0');
    const rule = retentionRuleFor(request.rules, name.slice(0, separator), name.slice(separator + 1));
    if (rule === undefined || length <= first) continue;
    const last = seen.get(logId);
    if (last !== undefined && last.length === length && last.first === first && request.nowSeconds < last.dueAt) continue;

    const logView = view;
    let trimTo = first;
    if (rule.maxEntries !== undefined) trimTo = Math.max(trimTo, length - rule.maxEntries);
    const { maxBytes, maxAgeSeconds } = rule;
    if (maxBytes !== undefined && endBytes - logView.bytesBefore(logId, first) > maxBytes) {
      trimTo = Math.max(trimTo, firstKept(first, length, (p) => p === length || endBytes - logView.bytesBefore(logId, p) <= maxBytes));
    }
    let dueAt = Infinity;
    if (maxAgeSeconds !== undefined) {
      const cutoff = request.nowSeconds - maxAgeSeconds;
      if (logView.appendedAt(logId, first) <= cutoff) {
        trimTo = Math.max(trimTo, firstKept(first, length, (p) => p === length || logView.appendedAt(logId, p) > cutoff));
      } else {
        dueAt = logView.appendedAt(logId, first) + maxAgeSeconds;
      }
    }
    trimTo = Math.min(trimTo, first + request.batchEntries);
    if (trimTo > first) trims.push({ logId, trimTo });
    else seen.set(logId, { length, first, dueAt });
  }
  return trims;
}
