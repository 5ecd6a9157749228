// Retry delays: exponential from `baseMs`, capped at `capMs`, with "equal jitter" (half
// fixed, half random) so devices that hit the same fault do not come back in one wave, and
// no retry is immediate. Reconnects use 100 ms → 5 s; resends after RATE_LIMITED 50 → 500 ms.
const BASE_MS = 100;
const CAP_MS = 5000;

/** The delay before retry `attempt` (0 for the first). */
export function backoffDelay(attempt: number, random: () => number = Math.random, baseMs = BASE_MS, capMs = CAP_MS): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** attempt);
  return ceiling / 2 + (random() * ceiling) / 2;
}
