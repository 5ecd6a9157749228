// Users' notification preferences, persisted in LMDB by the IO thread and mirrored in memory
// for the notifier: which sites each user joined (with the log prefixes their read grant
// covered when they joined), which they muted until when, and each device's Web Push
// subscription. Small and off the hot path: plain Maps.
import type { MetadataStore } from '../log/engine.js';
import type { PushSubscriptionRecord } from './types.js';

/** A membership (key [site, user]): the log prefixes the user may read, or null for every log. */
export interface MembershipRecord {
  logs: string[] | null;
  joinedAt: number;
}

/** A push subscription (key [user, endpoint]). */
export interface PushSubscriptionStored {
  device: string;
  keys: PushSubscriptionRecord['keys'];
}

export class Preferences {
  private readonly store: MetadataStore;
  /** site → user → membership. */
  private readonly members = new Map<string, Map<string, MembershipRecord>>();
  /** `user \0 site` → muted until (seconds since the epoch). */
  private readonly mutedUntil = new Map<string, number>();
  /** user → endpoint → subscription. */
  private readonly subscriptions = new Map<string, Map<string, PushSubscriptionStored>>();

  constructor(store: MetadataStore) {
    this.store = store;
    for (const { key: [site, user], value } of store.memberships.getRange({})) this.membersOf(site, true)!.set(user, value);
    for (const { key: [user, site], value } of store.mutes.getRange({})) this.mutedUntil.set(`${user}\0${site}`, value);
    for (const { key: [user, endpoint], value } of store.pushSubscriptions.getRange({})) this.subscriptionsOf(user, true)!.set(endpoint, value);
  }

  membersOf(site: string, create = false): Map<string, MembershipRecord> | undefined {
    let members = this.members.get(site);
    if (members === undefined && create) this.members.set(site, (members = new Map()));
    return members;
  }

  async join(user: string, site: string, logs: string[] | null): Promise<void> {
    const record: MembershipRecord = { logs, joinedAt: Math.floor(Date.now() / 1000) };
    await this.store.memberships.put([site, user], record);
    this.membersOf(site, true)!.set(user, record);
  }

  async leave(user: string, site: string): Promise<void> {
    await this.store.memberships.remove([site, user]);
    const members = this.members.get(site);
    members?.delete(user);
    if (members?.size === 0) this.members.delete(site);
  }

  async mute(user: string, site: string, untilSeconds: number): Promise<void> {
    await this.store.mutes.put([user, site], untilSeconds);
    this.mutedUntil.set(`${user}\0${site}`, untilSeconds);
  }

  async unmute(user: string, site: string): Promise<void> {
    await this.store.mutes.remove([user, site]);
    this.mutedUntil.delete(`${user}\0${site}`);
  }

  isMuted(user: string, site: string, nowSeconds: number): boolean {
    const until = this.mutedUntil.get(`${user}\0${site}`);
    if (until === undefined) return false;
    if (until > nowSeconds) return true;
    // Expired: forget it (the stored record goes too).
    this.mutedUntil.delete(`${user}\0${site}`);
    void this.store.mutes.remove([user, site]);
    return false;
  }

  subscriptionsOf(user: string, create = false): Map<string, PushSubscriptionStored> | undefined {
    let subscriptions = this.subscriptions.get(user);
    if (subscriptions === undefined && create) this.subscriptions.set(user, (subscriptions = new Map()));
    return subscriptions;
  }

  async subscribe(user: string, device: string, subscription: PushSubscriptionRecord): Promise<void> {
    const stored: PushSubscriptionStored = { device, keys: subscription.keys };
    await this.store.pushSubscriptions.put([user, subscription.endpoint], stored);
    this.subscriptionsOf(user, true)!.set(subscription.endpoint, stored);
  }

  /** Remove a subscription; resolves with whether it was there. */
  async unsubscribe(user: string, endpoint: string): Promise<boolean> {
    const subscriptions = this.subscriptions.get(user);
    const held = subscriptions?.delete(endpoint) ?? false;
    if (subscriptions?.size === 0) this.subscriptions.delete(user);
    await this.store.pushSubscriptions.remove([user, endpoint]);
    return held;
  }
}
