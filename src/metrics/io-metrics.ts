// Counts kept by the IO thread itself: the frames it refuses (by error code) and the
// slow-consumer pauses. Plain numbers on the IO thread; exported with the pipeline's.
import { ERROR_CODE_SLOTS } from './pipeline-metrics.js';

export class IoMetrics {
  /** `_error` frames sent by the IO thread, by code. */
  readonly errors = new Float64Array(ERROR_CODE_SLOTS);
  /** Times a socket backed up and its tails were paused. */
  pauses = 0;
  /** WebSocket upgrades refused by the connection limits or while recovering. */
  upgradesRefused = 0;
}

/** The IO thread's counters (one IO thread per process). */
export const ioMetrics = new IoMetrics();
