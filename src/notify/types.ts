// What an offline notification says, and where Web Push sends it.

/** The body of a notification (JSON; for Web Push, the plaintext that gets encrypted). */
export interface Notification {
  type: 'tailgrove.notification';
  user: string;
  /** The logs that advanced, coalesced over an interval. */
  changes: { site: string; log: string; length: number }[];
  /** When the notification was made, ms since the epoch. */
  at: number;
  /** Set when `changes` was cut to fit a Web Push message: how many changes were left out. */
  truncated?: number;
}

/** A browser's push subscription, as `PushSubscription.toJSON()` gives it (keys in base64url). */
export interface PushSubscriptionRecord {
  endpoint: string;
  keys: { p256dh: string; auth: string };
}
