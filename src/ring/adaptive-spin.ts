// How long to spin before sleeping, learned per waiter: a wake-up costs ~30 µs each way on
// this machine, so when the awaited change usually comes while spinning, spin longer; when
// it usually does not, spin less and leave the core to the threads doing work.
import { SPIN_ITERATIONS_MAX, SPIN_ITERATIONS_MIN } from '../constants.js';

export class AdaptiveSpin {
  /** Iterations to spin on the next wait. */
  limit = SPIN_ITERATIONS_MIN;

  /** The change came while spinning. */
  succeeded(): void {
    this.limit = Math.min(SPIN_ITERATIONS_MAX, this.limit * 2);
  }

  /** The waiter had to sleep. */
  slept(): void {
    this.limit = Math.max(SPIN_ITERATIONS_MIN, this.limit >> 1);
  }
}
