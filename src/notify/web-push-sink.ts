// Web Push delivery of offline notifications: the server's VAPID identity, the payload cut
// to fit a push message, and a one-thread piscina pool that encrypts and sends (push-task.ts).
// Who gets notified and when is the notifier's business; this sink only delivers.
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Piscina } from 'piscina';
import type { Logger } from 'pino';
import type { PushOutcome, PushRequest } from './push-task.js';
import type { Notification, PushSubscriptionRecord } from './types.js';
import { loadOrCreateVapidKeys, VAPID_KEYS_FILE, type VapidKeys } from './vapid.js';

export type { PushOutcome } from './push-task.js';

// Push services take at most 4096 bytes of encrypted body; aes128gcm adds 103 to the
// plaintext (86 of header with the sender's key, a 16-byte tag, a padding delimiter).
export const PUSH_PAYLOAD_BYTES_MAX = 3900;

// Notifications come in bursts, then nothing for a while: the thread ends when idle.
const IDLE_TIMEOUT_MS = 5000;
// The task mostly waits on push services: let several notifications be in flight at once.
const TASKS_IN_FLIGHT = 16;

export interface WebPushSinkOptions {
  /** Where the VAPID keys live (vapid.json, generated at the first start). */
  dataDir: string;
  /** The VAPID subject: a mailto: or https: URL where push services can reach the operator. */
  subject: string;
  /** How long a push service keeps a message for a device that is offline (TTL header). */
  ttlSeconds: number;
  logger: Logger;
  /**
   * A PEM file of CA certificates to trust, in addition to Node's bundled roots, when
   * connecting to push services: for a push service behind a private CA (a self-hosted one,
   * or a TLS-intercepting proxy). The browsers' public push services need no option.
   */
  caFile?: string | undefined;
}

function fits(json: string): boolean {
  return Buffer.byteLength(json) <= PUSH_PAYLOAD_BYTES_MAX;
}

/** The notification as JSON, keeping the first changes that fit and counting the rest in `truncated`. */
function pushPayload(notification: Notification): string {
  const whole = JSON.stringify(notification);
  if (fits(whole)) return whole;
  const { changes } = notification;
  const leftOut = notification.truncated ?? 0;
  const keeping = (kept: number): string =>
    JSON.stringify({ ...notification, changes: changes.slice(0, kept), truncated: leftOut + changes.length - kept });
  // Binary search for the most changes that fit (the JSON grows with every change kept). If
  // not even none fit (huge names), the push service refuses it and the outcome says so.
  let low = 0;
  let high = changes.length - 1;
  while (low < high) {
    const middle = Math.ceil((low + high) / 2);
    if (fits(keeping(middle))) low = middle;
    else high = middle - 1;
  }
  return keeping(low);
}

export class WebPushSink {
  /** Base64url of the VAPID public key: what browsers pass to pushManager.subscribe as applicationServerKey. */
  readonly publicKey: string;
  private readonly keys: VapidKeys;
  private readonly options: WebPushSinkOptions;
  private readonly ca: string | undefined;
  private readonly pool: Piscina<PushRequest, PushOutcome[]>;

  private constructor(options: WebPushSinkOptions, keys: VapidKeys, ca: string | undefined) {
    this.options = options;
    this.keys = keys;
    this.publicKey = keys.publicKey;
    this.ca = ca;
    this.pool = new Piscina({
      filename: new URL('./push-task.js', import.meta.url).href,
      minThreads: 0,
      maxThreads: 1,
      idleTimeout: IDLE_TIMEOUT_MS,
      concurrentTasksPerWorker: TASKS_IN_FLIGHT,
    });
  }

  /** Load (or, the first time, generate) the VAPID keys of `dataDir` and start the sending thread. */
  static async open(options: WebPushSinkOptions): Promise<WebPushSink> {
    const { dataDir, subject, ttlSeconds, logger, caFile } = options;
    // web-push would refuse it only at the first send, once per subscription.
    if (!/^(mailto:|https:\/\/)/.test(subject)) throw new Error(`web push subject must be a mailto: or https:// URL, got ${JSON.stringify(subject)}`);
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 0) throw new Error(`web push TTL must be a whole number of seconds ≥ 0, got ${ttlSeconds}`);
    let ca: string | undefined;
    if (caFile !== undefined) {
      ca = await readFile(caFile, 'utf8');
      try {
        new X509Certificate(ca);
      } catch (error) {
        throw new Error(`web push CA file ${caFile} holds no PEM certificate: ${(error as Error).message}`);
      }
    }
    const { keys, created } = loadOrCreateVapidKeys(dataDir);
    if (created) logger.info({ file: join(dataDir, VAPID_KEYS_FILE), publicKey: keys.publicKey }, 'generated VAPID keys for web push');
    return new WebPushSink(options, keys, ca);
  }

  /** Send `notification` to each subscription; one outcome per subscription, in order. Never rejects for a failed endpoint. */
  async send(subscriptions: PushSubscriptionRecord[], notification: Notification): Promise<PushOutcome[]> {
    if (subscriptions.length === 0) return [];
    const { subject, ttlSeconds, logger } = this.options;
    const outcomes = await this.pool.run({
      subscriptions,
      payload: pushPayload(notification),
      vapid: { subject, publicKey: this.keys.publicKey, privateKey: this.keys.privateKey },
      ttlSeconds,
      ca: this.ca,
    });
    for (const { endpoint, ok, gone, status, error } of outcomes) {
      // The origin only: an endpoint's path is the subscription's address, a capability.
      if (!ok && !gone) logger.warn({ pushService: URL.canParse(endpoint) ? new URL(endpoint).origin : 'not a URL', status, error }, 'web push failed');
    }
    return outcomes;
  }

  /** Stop the sending thread once the notifications in flight are sent. */
  async close(): Promise<void> {
    await this.pool.close();
  }
}
