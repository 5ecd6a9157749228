// Reconnect delays: exponential from 100 ms, capped at 5 s, with "equal jitter" (half fixed,
// half random) so devices that lost the same server do not come back in one wave, and no
// retry is immediate.
const BASE_MS = 100;
const CAP_MS = 5000;

/** The delay before reconnect attempt `attempt` (0 for the first). */
export function backoffDelay(attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(CAP_MS, BASE_MS * 2 ** attempt);
  return ceiling / 2 + (random() * ceiling) / 2;
}
