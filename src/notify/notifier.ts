// Offline notifications, on the IO thread and never in the phases: the workers only report
// "log L advanced to length N" (one record per log per batch, src/phases/io-contributions.ts);
// the notifier turns those into per-user changes for members of the log's site who have no
// device connected and have not muted it, coalesces them per user, and every interval sends
// each such user one notification — to their devices' Web Push subscriptions (encrypted and
// sent on a piscina thread) and to the webhook — within an hourly cap per user.
import type { Logger } from 'pino';
import type { LogNames } from '../metrics/log-names.js';
import type { Preferences } from './preferences.js';
import type { Notification } from './types.js';
import type { WebPushSink } from './web-push-sink.js';
import type { WebhookSink } from './webhook-sink.js';

export interface NotifierOptions {
  preferences: Preferences;
  names: LogNames;
  /** Whether the user has a device connected right now. */
  isOnline: (user: string) => boolean;
  push: WebPushSink | undefined;
  webhook: WebhookSink | undefined;
  /** Changes are coalesced per user over this interval. */
  intervalMs: number;
  /** At most this many notifications per user per hour; more are dropped (counted). */
  perUserPerHour: number;
  logger: Logger;
}

type Change = Notification['changes'][number];

export interface NotifierStats {
  notifications: number;
  rateLimited: number;
  pushSent: number;
  pushFailed: number;
  pushGone: number;
}

const HOUR_MS = 3600_000;

export class Notifier {
  private readonly options: NotifierOptions;
  /** user → `site \0 log` → the latest change. */
  private readonly pending = new Map<string, Map<string, Change>>();
  /** Advances of logs whose names the LMDB snapshot did not have yet: retried at the next flush. */
  private readonly unresolved = new Map<number, number>();
  /** user → [window start, notifications in it]. */
  private readonly sent = new Map<string, [number, number]>();
  private readonly timer: NodeJS.Timeout;
  private readonly pushes = new Set<Promise<void>>();
  readonly stats: NotifierStats = { notifications: 0, rateLimited: 0, pushSent: 0, pushFailed: 0, pushGone: 0 };

  constructor(options: NotifierOptions) {
    this.options = options;
    this.timer = setInterval(() => this.flush(), options.intervalMs);
    this.timer.unref();
  }

  /** A log's committed length grew (a worker's report). */
  logAdvanced(logId: number, length: number): void {
    const name = this.options.names.get(logId);
    if (name === undefined) {
      this.unresolved.set(logId, length);
      return;
    }
    const members = this.options.preferences.membersOf(name.site);
    if (members === undefined) return;
    const now = Math.floor(Date.now() / 1000);
    for (const [user, membership] of members) {
      if (this.options.isOnline(user)) continue;
      if (membership.logs !== null && !membership.logs.some((prefix) => name.log.startsWith(prefix))) continue;
      if (this.options.preferences.isMuted(user, name.site, now)) continue;
      let changes = this.pending.get(user);
      if (changes === undefined) this.pending.set(user, (changes = new Map()));
      changes.set(`${name.site}\0${name.log}`, { site: name.site, log: name.log, length });
    }
  }

  /** Send what is pending: one notification per user. */
  flush(): void {
    for (const [logId, length] of [...this.unresolved]) {
      this.unresolved.delete(logId);
      if (this.options.names.get(logId) !== undefined) this.logAdvanced(logId, length);
    }
    const now = Date.now();
    for (const [user, changes] of this.pending) {
      this.pending.delete(user);
      // Came online meanwhile: the device sees the logs itself.
      if (this.options.isOnline(user)) continue;
      if (!this.allowed(user, now)) {
        this.stats.rateLimited++;
        continue;
      }
      const notification: Notification = { type: 'tailgrove.notification', user, changes: [...changes.values()], at: now };
      this.stats.notifications++;
      this.options.webhook?.enqueue(notification);
      this.sendPush(user, notification);
    }
  }

  private allowed(user: string, now: number): boolean {
    const window = this.sent.get(user);
    if (window === undefined || now - window[0] >= HOUR_MS) {
      this.sent.set(user, [now, 1]);
      return true;
    }
    if (window[1] >= this.options.perUserPerHour) return false;
    window[1]++;
    return true;
  }

  private sendPush(user: string, notification: Notification): void {
    const push = this.options.push;
    const subscriptions = this.options.preferences.subscriptionsOf(user);
    if (push === undefined || subscriptions === undefined || subscriptions.size === 0) return;
    const records = [...subscriptions].map(([endpoint, { keys }]) => ({ endpoint, keys }));
    const sending = push.send(records, notification).then(
      async (outcomes) => {
        for (const outcome of outcomes) {
          if (outcome.ok) this.stats.pushSent++;
          else if (outcome.gone) {
            // The browser dropped the subscription: forget it. A send already in flight to it
            // may report gone a second time; it is counted once, when forgotten.
            if (await this.options.preferences.unsubscribe(user, outcome.endpoint)) this.stats.pushGone++;
          } else this.stats.pushFailed++;
        }
      },
      (error: Error) => {
        this.stats.pushFailed += records.length;
        this.options.logger.error({ err: error, user }, 'web push failed');
      },
    );
    this.pushes.add(sending);
    void sending.finally(() => this.pushes.delete(sending));
  }

  /** Send what is pending and wait for the pushes in flight (the webhook sink closes on its own). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    this.flush();
    await Promise.all(this.pushes);
  }
}
