// A doorbell over one Int32 slot pair in shared memory: a sequence number the ringer bumps,
// and a count of sleepers so the ringer only pays for notify() when someone sleeps.
// A waiter spins before sleeping (adaptively: src/ring/adaptive-spin.ts), because a thread
// wake-up costs ~30 µs each way here while a busy pipeline rings again within microseconds.
import { AdaptiveSpin } from './adaptive-spin.js';

const SEQUENCE = 0;
const SLEEPERS = 1;
export const DOORBELL_INT32S = 2;

export class Doorbell {
  private readonly words: Int32Array;
  private readonly base: number;
  private readonly spin = new AdaptiveSpin();

  constructor(words: Int32Array, base: number) {
    this.words = words;
    this.base = base;
  }

  /** The current sequence; pass it to wait() to sleep until the next ring. */
  sequence(): number {
    return Atomics.load(this.words, this.base + SEQUENCE);
  }

  ring(): void {
    Atomics.add(this.words, this.base + SEQUENCE, 1);
    if (Atomics.load(this.words, this.base + SLEEPERS) > 0) Atomics.notify(this.words, this.base + SEQUENCE);
  }

  /**
   * For an event loop thread: a promise that resolves when the sequence differs from `seen`
   * or `timeoutMs` passes, or undefined when it already differs.
   */
  waitAsync(seen: number, timeoutMs: number): Promise<void> | undefined {
    Atomics.add(this.words, this.base + SLEEPERS, 1);
    const waiting = Atomics.waitAsync(this.words, this.base + SEQUENCE, seen, timeoutMs);
    if (!waiting.async) {
      Atomics.sub(this.words, this.base + SLEEPERS, 1);
      return undefined;
    }
    return waiting.value.then(() => {
      Atomics.sub(this.words, this.base + SLEEPERS, 1);
    });
  }

  /** Wait until the sequence differs from `seen`, or `timeoutMs` passes. Returns the sequence. */
  wait(seen: number, timeoutMs: number): number {
    const index = this.base + SEQUENCE;
    for (let spin = 0; spin < this.spin.limit; spin++) {
      const now = Atomics.load(this.words, index);
      if (now !== seen) {
        this.spin.succeeded();
        return now;
      }
    }
    this.spin.slept();
    Atomics.add(this.words, this.base + SLEEPERS, 1);
    Atomics.wait(this.words, index, seen, timeoutMs);
    Atomics.sub(this.words, this.base + SLEEPERS, 1);
    return Atomics.load(this.words, index);
  }
}
