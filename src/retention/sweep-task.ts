// The retention sweep, a piscina task on a thread of its own (never in the phases): walk the
// logs a rule applies to and work out how far each may be trimmed. Reads only; the trims go
// back to the IO thread, which hands them to the workers' io-deletions input.
// Per log: the last entry gives its length and byte count (entry headers carry the bytes
// before each entry and its append time), and a binary search over positions finds the
// first entry to keep by size or by age. Logs that did not change since the last sweep and
// have no entry due to expire are skipped after one read.
import { ENTRY_HEADER_BYTES, ENTRY_KEY_BYTES, entryAppendedAt, entryBytesBefore, entryKeyPosition, writeEntryKey } from '../log/keys.js';
import { openStore, type Store } from '../log/lmdb-store.js';
import { retentionRuleFor, type RetentionRule } from './rules.js';

export interface SweepRequest {
  dataDir: string;
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

let store: Store | undefined;
const seen = new Map<number, LogSeen>();
const key = Buffer.alloc(ENTRY_KEY_BYTES);
const lastKey = Buffer.alloc(ENTRY_KEY_BYTES);

function entryAt(logId: number, position: number): Buffer {
  const value = store!.entries.get(writeEntryKey(key, logId, position));
  if (value === undefined) throw new Error(`retention: log ${logId} has no entry at ${position} below its length`);
  return value;
}

/** The smallest position in [low, high] where `keep` holds (it holds at `high`, and from where it first holds on). */
function firstKept(low: number, high: number, keep: (position: number) => boolean): number {
  while (low < high) {
    const middle = Math.floor((low + high) / 2);
    if (keep(middle)) high = middle;
    else low = middle + 1;
  }
  return low;
}

export default function sweep(request: SweepRequest): Trim[] {
  store ??= openStore(request.dataDir);
  store.root.resetReadTxn();
  const trims: Trim[] = [];
  for (const { key: name, value } of store.logs.getRange({})) {
    const separator = name.indexOf('\0');
    const rule = retentionRuleFor(request.rules, name.slice(0, separator), name.slice(separator + 1));
    if (rule === undefined) continue;
    const logId = value[0];
    const first = store.trims.get(logId)?.[0] ?? 0;
    writeEntryKey(lastKey, logId, Number.MAX_SAFE_INTEGER);
    let length = first;
    let endBytes = 0;
    for (const entry of store.entries.getRange({ start: lastKey, end: writeEntryKey(key, logId, 0), reverse: true, limit: 1 })) {
      length = entryKeyPosition(entry.key) + 1;
      endBytes = entryBytesBefore(entry.value) + entry.value.length - ENTRY_HEADER_BYTES;
    }
    if (length <= first) continue;
    const last = seen.get(logId);
    if (last !== undefined && last.length === length && last.first === first && request.nowSeconds < last.dueAt) continue;

    let trimTo = first;
    if (rule.maxEntries !== undefined) trimTo = Math.max(trimTo, length - rule.maxEntries);
    const { maxBytes, maxAgeSeconds } = rule;
    if (maxBytes !== undefined && endBytes - entryBytesBefore(entryAt(logId, first)) > maxBytes) {
      trimTo = Math.max(trimTo, firstKept(first, length, (p) => p === length || endBytes - entryBytesBefore(entryAt(logId, p)) <= maxBytes));
    }
    let dueAt = Infinity;
    if (maxAgeSeconds !== undefined) {
      const cutoff = request.nowSeconds - maxAgeSeconds;
      if (entryAppendedAt(entryAt(logId, first)) <= cutoff) {
        trimTo = Math.max(trimTo, firstKept(first, length, (p) => p === length || entryAppendedAt(entryAt(logId, p)) > cutoff));
      } else {
        dueAt = entryAppendedAt(entryAt(logId, first)) + maxAgeSeconds;
      }
    }
    trimTo = Math.min(trimTo, first + request.batchEntries);
    if (trimTo > first) trims.push({ logId, trimTo });
    else seen.set(logId, { length, first, dueAt });
  }
  return trims;
}
