// The IO thread's MetadataStore: four small tables of its own (kv-table.ts), and the names
// of the logs the disk thread committed, followed from the segments (log records only).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Revocation } from '../../auth/revocations.js';
import type { MetadataStore } from '../../log/engine.js';
import type { MembershipRecord, PushSubscriptionStored } from '../../notify/preferences.js';
import type { FrameView } from './frame-scanner.js';
import { LOG_LOG_ID, LOG_NAME, META_KIND, META_LENGTH, META_LOG, TABLES_DIRECTORY } from './format.js';
import { FileKvTable } from './kv-table.js';
import { SegmentFollower, type FollowedState } from './segment-follower.js';
import { storeDirectory } from './segment-files.js';

/** Only the log records of the stream: name → logId (the latest record of a name wins). */
class LogNames implements FollowedState {
  readonly names = new Map<string, number>();

  apply(frame: FrameView): void {
    const view = frame.view;
    for (let at = frame.metaAt; at < frame.metaEnd; at += view.getUint32(at + META_LENGTH, true)) {
      if (view.getUint32(at + META_KIND, true) !== META_LOG) continue;
      this.names.set(frame.bytes.toString('utf8', at + LOG_NAME, at + view.getUint32(at + META_LENGTH, true)), view.getUint32(at + LOG_LOG_ID, true));
    }
  }

  reads(): boolean {
    return false;
  }

  forget(): void {}
}

/**
 * The log names are followed in steps on a timer: replayed only when asked for, a name first
 * asked for after an hour would replay an hour of records on the IO thread at once.
 */
const FOLLOW_INTERVAL_MS = 100;

export class SegmentMetadataStore implements MetadataStore {
  readonly revocations: FileKvTable<Revocation, string>;
  readonly memberships: FileKvTable<MembershipRecord, [string, string]>;
  readonly mutes: FileKvTable<number, [string, string]>;
  readonly pushSubscriptions: FileKvTable<PushSubscriptionStored, [string, string]>;
  private readonly logRecords: SegmentFollower<LogNames>;
  private readonly following: NodeJS.Timeout;

  constructor(dataDir: string) {
    const tables = join(storeDirectory(dataDir), TABLES_DIRECTORY);
    mkdirSync(tables, { recursive: true });
    this.revocations = new FileKvTable(tables, 'revocations');
    this.memberships = new FileKvTable(tables, 'memberships');
    this.mutes = new FileKvTable(tables, 'mutes');
    this.pushSubscriptions = new FileKvTable(tables, 'push-subscriptions');
    this.logRecords = new SegmentFollower(dataDir, () => new LogNames());
    this.following = setInterval(() => this.logRecords.advance(), FOLLOW_INTERVAL_MS).unref();
  }

  *logNames(): Iterable<{ name: string; logId: number }> {
    this.logRecords.advance();
    for (const [name, logId] of this.logRecords.state.names) yield { name, logId };
  }

  async close(): Promise<void> {
    clearInterval(this.following);
    await Promise.all([this.revocations.close(), this.memberships.close(), this.mutes.close(), this.pushSubscriptions.close()]);
    this.logRecords.close();
  }
}
