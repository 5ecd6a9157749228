// A reusable fork-join barrier for a fixed party of threads over shared memory: the last
// thread to arrive bumps the generation and wakes the others (sense reversal by generation
// number, so the barrier can be reused for every phase of every batch).
import { invariant } from '../invariant.js';
import { AdaptiveSpin } from '../ring/adaptive-spin.js';

const ARRIVED = 0;
const GENERATION = 1;
export const BARRIER_INT32S = 2;

export class Barrier {
  private readonly words: Int32Array;
  private readonly base: number;
  private readonly parties: number;
  private readonly spin = new AdaptiveSpin();

  constructor(words: Int32Array, base: number, parties: number) {
    invariant(parties >= 1, 'a barrier has at least one party');
    this.words = words;
    this.base = base;
    this.parties = parties;
  }

  /** Block until all parties arrive. Returns true in exactly one thread: the last to arrive. */
  arrive(): boolean {
    const generation = Atomics.load(this.words, this.base + GENERATION);
    const arrived = Atomics.add(this.words, this.base + ARRIVED, 1) + 1;
    invariant(arrived <= this.parties, 'no more arrivals than parties');
    if (arrived === this.parties) {
      Atomics.store(this.words, this.base + ARRIVED, 0);
      Atomics.add(this.words, this.base + GENERATION, 1);
      Atomics.notify(this.words, this.base + GENERATION);
      return true;
    }
    for (let spin = 0; spin < this.spin.limit; spin++) {
      if (Atomics.load(this.words, this.base + GENERATION) !== generation) {
        this.spin.succeeded();
        return false;
      }
    }
    this.spin.slept();
    while (Atomics.load(this.words, this.base + GENERATION) === generation) {
      Atomics.wait(this.words, this.base + GENERATION, generation, 1000);
    }
    return false;
  }
}
