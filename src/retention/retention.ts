// Retention on the IO thread's side: every interval, run the sweep (a piscina task, off the
// event loop and off the workers) and hand its trims to the workers' io-deletions input,
// each to the worker that owns the log's shard. A full deletions ring just ends this round:
// the next sweep asks again for whatever is still over its limit.
import { Piscina } from 'piscina';
import type { Logger } from 'pino';
import { SHARD_COUNT } from '../constants.js';
import { DELETION_LOG_ID, DELETION_RECORD_BYTES, DELETION_TRIM_TO } from '../net/records.js';
import type { EngineName } from '../log/engine.js';
import type { Ring } from '../ring/ring.js';
import type { RetentionRule } from './rules.js';
import type { SweepRequest, Trim } from './sweep-task.js';

export interface RetentionOptions {
  dataDir: string;
  engine: EngineName;
  rules: RetentionRule[];
  intervalMs: number;
  batchEntries: number;
  /** Each worker's deletions ring (this thread is its only producer). */
  deletions: Ring[];
  /** Wake the workers. */
  wake: () => void;
  logger: Logger;
}

export class Retention {
  private readonly options: RetentionOptions;
  private readonly pool: Piscina<SweepRequest, Trim[]>;
  private readonly timer: NodeJS.Timeout;
  private sweeping: Promise<void> | undefined;

  constructor(options: RetentionOptions) {
    this.options = options;
    this.pool = new Piscina({ filename: new URL('./sweep-task.js', import.meta.url).href, minThreads: 1, maxThreads: 1 });
    this.timer = setInterval(() => {
      this.sweeping ??= this.sweep().finally(() => (this.sweeping = undefined));
    }, options.intervalMs);
  }

  private async sweep(): Promise<void> {
    const { dataDir, engine, rules, batchEntries, deletions } = this.options;
    let trims: Trim[];
    try {
      trims = await this.pool.run({ dataDir, engine, rules, nowSeconds: Math.floor(Date.now() / 1000), batchEntries });
    } catch (error) {
      this.options.logger.error({ err: error }, 'retention sweep failed');
      return;
    }
    if (trims.length === 0) return;
    for (const { logId, trimTo } of trims) {
      const ring = deletions[(logId % SHARD_COUNT) % deletions.length]!;
      const offset = ring.reserve(DELETION_RECORD_BYTES);
      if (offset < 0) break;
      ring.view.setUint32(offset + DELETION_LOG_ID, logId, true);
      ring.view.setFloat64(offset + DELETION_TRIM_TO, trimTo, true);
    }
    for (const ring of deletions) ring.publish();
    this.options.wake();
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.sweeping;
    await this.pool.destroy();
  }
}
