// Offline notifications, assembled for the server: preferences, the sinks (Web Push, webhook)
// and the notifier, fed from the workers' advances rings by the IO thread.
import type { Logger } from 'pino';
import type { MetadataStore } from '../log/engine.js';
import type { LogNames } from '../metrics/log-names.js';
import { ADVANCE_LENGTH, ADVANCE_LOG_ID } from '../net/records.js';
import type { Ring } from '../ring/ring.js';
import type { NotificationStats } from '../metrics/prometheus.js';
import { Notifier } from './notifier.js';
import { Preferences } from './preferences.js';
import { WebhookSink } from './webhook-sink.js';
import { WebPushSink } from './web-push-sink.js';

export interface NotificationOptions {
  dataDir: string;
  intervalMs: number;
  perUserPerHour: number;
  webPush: boolean;
  pushSubject: string;
  pushTtlSeconds: number;
  pushCaFile: string | undefined;
  webhookUrl: string | undefined;
  webhookSecret: string | undefined;
}

const WEBHOOK_CLOSE_MS = 5000;

export class Notifications {
  readonly preferences: Preferences;
  readonly pushPublicKey: string | undefined;
  private readonly notifier: Notifier;
  private readonly push: WebPushSink | undefined;
  private readonly webhook: WebhookSink | undefined;

  private constructor(preferences: Preferences, notifier: Notifier, push: WebPushSink | undefined, webhook: WebhookSink | undefined) {
    this.preferences = preferences;
    this.notifier = notifier;
    this.push = push;
    this.webhook = webhook;
    this.pushPublicKey = push?.publicKey;
  }

  static async start(options: NotificationOptions, store: MetadataStore, names: LogNames, isOnline: (user: string) => boolean, logger: Logger): Promise<Notifications> {
    const preferences = new Preferences(store);
    const push = options.webPush
      ? await WebPushSink.open({ dataDir: options.dataDir, subject: options.pushSubject, ttlSeconds: options.pushTtlSeconds, logger, caFile: options.pushCaFile })
      : undefined;
    const webhook =
      options.webhookUrl === undefined ? undefined : new WebhookSink({ url: options.webhookUrl, secret: options.webhookSecret!, logger });
    const notifier = new Notifier({ preferences, names, isOnline, push, webhook, intervalMs: options.intervalMs, perUserPerHour: options.perUserPerHour, logger });
    return new Notifications(preferences, notifier, push, webhook);
  }

  /** Read the workers' reports of logs that advanced (the IO thread is the rings' only consumer). */
  drain(advances: readonly Ring[]): void {
    for (const ring of advances) {
      if (ring.refresh() === 0) continue;
      for (let offset = ring.peek(); offset >= 0; offset = ring.peek()) {
        this.notifier.logAdvanced(ring.view.getUint32(offset + ADVANCE_LOG_ID, true), ring.view.getFloat64(offset + ADVANCE_LENGTH, true));
        ring.advance();
      }
      ring.release();
    }
  }

  stats(): NotificationStats {
    const webhook = this.webhook?.stats();
    return {
      ...this.notifier.stats,
      webhookDelivered: webhook?.delivered ?? 0,
      webhookFailed: webhook?.failed ?? 0,
      webhookDropped: webhook?.dropped ?? 0,
      webhookRetries: webhook?.retries ?? 0,
    };
  }

  /** Send what is pending, then close the sinks (the webhook gets a few seconds to deliver). */
  async close(): Promise<void> {
    await this.notifier.close();
    await this.webhook?.close(WEBHOOK_CLOSE_MS);
    await this.push?.close();
  }
}
