// Per-session counts that every worker updates: a session's leases and tails spread over the
// workers that own their logs, so a per-session limit needs one shared count. A row per
// session slot, stamped with the session id: a row is reset when its slot gets a new session
// (InputRouter.openSession), and updates for another session id (a closed one whose records a
// worker is still draining) leave it alone.
import { SESSION_SLOTS } from '../constants.js';

const ROW_INT32S = 4;
const ROW_SESSION = 0;
export const COUNT_LEASES = 1;
export const COUNT_TAILS = 2;
const SLOT_MASK = SESSION_SLOTS - 1;

export function createSessionCounters(): SharedArrayBuffer {
  return new SharedArrayBuffer(SESSION_SLOTS * ROW_INT32S * 4);
}

export class SessionCounters {
  private readonly words: Int32Array;

  constructor(buffer: SharedArrayBuffer) {
    this.words = new Int32Array(buffer);
  }

  /** A new session in its slot: counts start at zero. */
  reset(session: number): void {
    const row = (session & SLOT_MASK) * ROW_INT32S;
    Atomics.store(this.words, row + COUNT_LEASES, 0);
    Atomics.store(this.words, row + COUNT_TAILS, 0);
    Atomics.store(this.words, row + ROW_SESSION, session | 0);
  }

  /** Count one more unless the count is at `max`; returns false when it is. */
  tryIncrement(session: number, count: number, max: number): boolean {
    const row = (session & SLOT_MASK) * ROW_INT32S;
    if (Atomics.load(this.words, row + ROW_SESSION) !== (session | 0)) return true;
    for (;;) {
      const value = Atomics.load(this.words, row + count);
      if (value >= max) return false;
      if (Atomics.compareExchange(this.words, row + count, value, value + 1) === value) return true;
    }
  }

  decrement(session: number, count: number): void {
    const row = (session & SLOT_MASK) * ROW_INT32S;
    if (Atomics.load(this.words, row + ROW_SESSION) !== (session | 0)) return;
    Atomics.sub(this.words, row + count, 1);
  }
}
