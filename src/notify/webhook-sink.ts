// The webhook sink: POSTs each notification, signed, to one URL, off the caller's path.
// `enqueue` only appends to a bounded queue (the caller is the IO thread); up to `concurrency`
// delivery loops drain it, each owning one notification through all its retries, so a receiver
// that is down holds at most `concurrency` notifications in backoff while the queue sheds the
// oldest. When the queue is empty the loops end: an idle sink has no timers and allocates nothing.
import { randomUUID } from 'node:crypto';
import { defaultMaxListeners, setMaxListeners } from 'node:events';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { signPayload } from './signature.js';
import type { Notification } from './types.js';

export interface WebhookSinkOptions {
  url: string;
  /** The HMAC key of the `tailgrove-signature` header. */
  secret: string;
  /** Notifications waiting to be sent; beyond it the oldest waiting one is dropped. */
  queueMax?: number;
  /** Notifications being delivered at once (each through its retries). */
  concurrency?: number;
  /** Attempts per notification, the first included. */
  attemptsMax?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** Per attempt, from the request to the end of the response. */
  timeoutMs?: number;
  logger: Logger;
}

export interface WebhookSinkStats {
  /** Waiting for a delivery loop. */
  queued: number;
  /** Being sent or waiting to be retried. */
  inFlight: number;
  /** Answered 2xx. */
  delivered: number;
  /** Refused by the receiver (4xx other than 408 and 429) or out of attempts. */
  failed: number;
  /** Discarded by the sink: the oldest when the queue was full, enqueued after close, abandoned by close. */
  dropped: number;
  /** Attempts after the first. */
  retries: number;
}

const USER_AGENT = `tailgrove/${(JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version}`;
const DROP_WARNING_INTERVAL_MS = 10_000;

interface Delivery {
  /** `tailgrove-delivery`: the same for every attempt, so receivers can de-duplicate. */
  id: string;
  user: string;
  body: Buffer;
}

/** How one attempt ended. `retryAfterMs` is the receiver's `retry-after`, when it gave one. */
type Attempt =
  | { outcome: 'delivered' }
  | { outcome: 'refused'; status: number }
  | { outcome: 'retry'; reason: string; retryAfterMs?: number };

/** A fixed-capacity FIFO: dropping the oldest and taking the next are O(1) and allocate nothing. */
class DeliveryQueue {
  private readonly slots: (Delivery | undefined)[];
  private head = 0;
  size = 0;

  constructor(readonly capacity: number) {
    this.slots = new Array<Delivery | undefined>(capacity).fill(undefined);
  }

  push(delivery: Delivery): void {
    this.slots[(this.head + this.size) % this.capacity] = delivery;
    this.size++;
  }

  shift(): Delivery | undefined {
    if (this.size === 0) return undefined;
    const delivery = this.slots[this.head];
    this.slots[this.head] = undefined;
    this.head = (this.head + 1) % this.capacity;
    this.size--;
    return delivery;
  }

  clear(): void {
    while (this.shift() !== undefined);
  }
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`webhook ${name} must be a positive integer, got ${value}`);
  return value;
}

/** `retry-after` as delay-seconds or an HTTP date, in ms from now; undefined when absent or unreadable. */
function parseRetryAfter(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

export class WebhookSink {
  private readonly url: URL;
  private readonly secret: string;
  private readonly concurrency: number;
  private readonly attemptsMax: number;
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;
  private readonly timeoutMs: number;
  private readonly logger: Logger;
  private readonly transport: typeof http | typeof https;
  private readonly agent: http.Agent;
  private readonly queue: DeliveryQueue;
  /** Aborted when close gives up: ends the requests and backoff waits under way. */
  private readonly abandon = new AbortController();
  private loops = 0;
  private inFlight = 0;
  private delivered = 0;
  private failed = 0;
  private dropped = 0;
  private retries = 0;
  private closing = false;
  private closed: Promise<void> | undefined;
  private warnedClosed = false;
  /** Resolves the pending close once the last delivery loop ends. */
  private onIdle: (() => void) | undefined;
  private dropsUnreported = 0;
  private lastDropWarningAt = -Infinity;
  private dropWarningTimer: NodeJS.Timeout | undefined;

  constructor(options: WebhookSinkOptions) {
    this.url = new URL(options.url);
    if (this.url.protocol !== 'http:' && this.url.protocol !== 'https:') throw new RangeError(`webhook url must be http or https, got ${this.url.protocol}`);
    if (options.secret === '') throw new RangeError('webhook secret must not be empty');
    this.secret = options.secret;
    this.queue = new DeliveryQueue(positiveInteger('queueMax', options.queueMax ?? 10_000));
    this.concurrency = positiveInteger('concurrency', options.concurrency ?? 4);
    this.attemptsMax = positiveInteger('attemptsMax', options.attemptsMax ?? 8);
    this.backoffBaseMs = positiveInteger('backoffBaseMs', options.backoffBaseMs ?? 500);
    this.backoffMaxMs = positiveInteger('backoffMaxMs', options.backoffMaxMs ?? 60_000);
    this.timeoutMs = positiveInteger('timeoutMs', options.timeoutMs ?? 10_000);
    this.logger = options.logger;
    this.transport = this.url.protocol === 'https:' ? https : http;
    // Keep-alive reuses connections between notifications; Node unrefs idle sockets itself.
    this.agent = new this.transport.Agent({ keepAlive: true, maxSockets: this.concurrency });
    // Each delivery loop listens for the abandonment once at a time (its request or its backoff wait).
    setMaxListeners(Math.max(defaultMaxListeners, this.concurrency), this.abandon.signal);
  }

  /** Queue a notification. Never blocks, never throws: a full queue drops its oldest entry. */
  enqueue(notification: Notification): void {
    try {
      if (this.closing) {
        if (!this.warnedClosed) this.logger.warn({ user: notification.user }, 'webhook sink is closed: notifications dropped');
        this.warnedClosed = true;
        this.dropped++;
        return;
      }
      const delivery = { id: randomUUID(), user: notification.user, body: Buffer.from(JSON.stringify(notification)) };
      if (this.queue.size === this.queue.capacity) {
        this.queue.shift();
        this.noteDrop();
      }
      this.queue.push(delivery);
      if (this.loops < this.concurrency) void this.runLoop();
    } catch (error) {
      this.logger.error({ err: error }, 'webhook enqueue failed');
    }
  }

  stats(): WebhookSinkStats {
    return { queued: this.queue.size, inFlight: this.inFlight, delivered: this.delivered, failed: this.failed, dropped: this.dropped, retries: this.retries };
  }

  /**
   * Stop taking notifications and deliver what is queued (retries included) for at most
   * `timeoutMs`; then abandon the rest (counted as dropped) and log how many there were.
   * Calling it again returns the first call's promise.
   */
  close(timeoutMs: number): Promise<void> {
    this.closed ??= this.shutDown(timeoutMs);
    return this.closed;
  }

  private async shutDown(timeoutMs: number): Promise<void> {
    this.closing = true;
    clearTimeout(this.dropWarningTimer);
    if (this.loops > 0) {
      const idle = new Promise<void>((resolve) => (this.onIdle = resolve));
      let timer: NodeJS.Timeout | undefined;
      // Not unref'd: the caller awaits close to know the queue was flushed, and the wait is bounded.
      const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs)));
      const gaveUp = await Promise.race([idle.then(() => false), timedOut]);
      clearTimeout(timer);
      if (gaveUp) {
        const abandoned = this.queue.size + this.inFlight;
        this.dropped += this.queue.size;
        this.queue.clear();
        this.abandon.abort();
        await idle;
        this.logger.warn({ abandoned, timeoutMs }, 'webhook sink closed before delivering everything: notifications abandoned');
      }
    }
    this.agent.destroy();
    this.logger.info({ delivered: this.delivered, failed: this.failed, dropped: this.dropped, retries: this.retries }, 'webhook sink closed');
  }

  private noteDrop(): void {
    this.dropped++;
    this.dropsUnreported++;
    if (this.dropWarningTimer !== undefined) return;
    const wait = this.lastDropWarningAt + DROP_WARNING_INTERVAL_MS - performance.now();
    if (wait <= 0) {
      this.warnDrops();
      return;
    }
    // Report the drops of this interval at its end, so none go unmentioned.
    this.dropWarningTimer = setTimeout(() => {
      this.dropWarningTimer = undefined;
      this.warnDrops();
    }, wait);
    this.dropWarningTimer.unref();
  }

  private warnDrops(): void {
    this.logger.warn({ dropped: this.dropsUnreported, droppedTotal: this.dropped, queueMax: this.queue.capacity }, 'webhook queue full: dropped the oldest notifications');
    this.dropsUnreported = 0;
    this.lastDropWarningAt = performance.now();
  }

  /** One delivery loop: takes notifications until the queue is empty (or close gives up). */
  private async runLoop(): Promise<void> {
    this.loops++;
    for (let delivery = this.queue.shift(); delivery !== undefined; delivery = this.queue.shift()) {
      this.inFlight++;
      try {
        await this.deliver(delivery);
      } catch (error) {
        // A bug, not a receiver's answer: count the notification as failed and keep draining.
        this.failed++;
        this.logger.error({ err: error, delivery: delivery.id }, 'webhook delivery crashed');
      }
      this.inFlight--;
    }
    this.loops--;
    if (this.loops === 0) this.onIdle?.();
  }

  private async deliver(delivery: Delivery): Promise<void> {
    const signal = this.abandon.signal;
    for (let attempt = 0; ; attempt++) {
      const result = await this.attempt(delivery);
      if (signal.aborted) {
        this.dropped++;
        return;
      }
      if (result.outcome === 'delivered') {
        this.delivered++;
        return;
      }
      const context = { delivery: delivery.id, user: delivery.user, attempts: attempt + 1 };
      if (result.outcome === 'refused') {
        this.failed++;
        this.logger.warn({ ...context, status: result.status }, 'webhook refused the notification: not retried');
        return;
      }
      if (attempt + 1 >= this.attemptsMax) {
        this.failed++;
        this.logger.warn({ ...context, reason: result.reason }, 'webhook delivery failed: out of attempts');
        return;
      }
      // Full jitter spreads the retries of many notifications after an outage.
      const delayMs = Math.min(this.backoffMaxMs, result.retryAfterMs ?? Math.random() * Math.min(this.backoffMaxMs, this.backoffBaseMs * 2 ** attempt));
      this.retries++;
      this.logger.debug({ ...context, reason: result.reason, delayMs: Math.round(delayMs) }, 'webhook delivery will be retried');
      try {
        await sleep(delayMs, undefined, { signal, ref: false });
      } catch {
        this.dropped++; // close gave up during the wait
        return;
      }
    }
  }

  /** One POST, settled by the response's end, an error, the timeout or close giving up. */
  private attempt(delivery: Delivery): Promise<Attempt> {
    return new Promise((resolve) => {
      const request = this.transport.request(this.url, {
        method: 'POST',
        agent: this.agent,
        headers: {
          'content-type': 'application/json',
          'content-length': delivery.body.length,
          'user-agent': USER_AGENT,
          'tailgrove-delivery': delivery.id,
          // Signed afresh per attempt: the timestamp must be recent for the receiver's replay check.
          'tailgrove-signature': signPayload(this.secret, delivery.body),
        },
      });
      const timer = setTimeout(() => request.destroy(new Error(`timed out after ${this.timeoutMs} ms`)), this.timeoutMs);
      timer.unref();
      const onAbandon = (): void => void request.destroy(new Error('abandoned by close'));
      this.abandon.signal.addEventListener('abort', onAbandon);
      let status = 0;
      let retryAfterMs: number | undefined;
      let settled = false;
      const settle = (reason: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.abandon.signal.removeEventListener('abort', onAbandon);
        // A status seen counts even if the body then broke off: the receiver has decided.
        if (status >= 200 && status < 300) resolve({ outcome: 'delivered' });
        else if (status === 0 || status >= 500 || status === 408 || status === 429) resolve({ outcome: 'retry', reason: status === 0 ? reason : `status ${status}`, retryAfterMs });
        else resolve({ outcome: 'refused', status });
      };
      request.on('response', (response) => {
        status = response.statusCode ?? 0;
        retryAfterMs = parseRetryAfter(response.headers['retry-after']);
        response.on('end', () => settle('end'));
        response.on('error', (error) => settle(error.message));
        response.resume(); // the body is not used, but must be read for the connection to be reused
      });
      request.on('error', (error) => settle(error.message));
      request.on('close', () => settle('connection closed'));
      request.end(delivery.body);
    });
  }
}
