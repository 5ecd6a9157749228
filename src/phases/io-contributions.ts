// Phase: io contributions. The disk thread has made part of the staging ring durable; release
// it: acks and nacks of writes, replies that waited for the commit, and live pushes of the
// newly committed entries to tailers (coalesced per tailer per log, copied straight from
// staging). Then free the staging space.
import { invariant } from '../invariant.js';
import { PUSH_FRAME_BYTES_MAX } from '../constants.js';
import {
  COMMITTED_POSITION,
  FRAME_BYTES,
  FRAME_LENGTH,
  FRAME_SESSION,
  STAGE_FRAME,
  STAGE_KIND,
  STAGE_WRITE,
  WRITE_DATA,
  WRITE_DATA_LENGTH,
  WRITE_HANDLE,
  WRITE_LOG_ID,
  WRITE_LSN,
  WRITE_OUTCOME,
  WRITE_SESSION,
} from '../log/staging.js';
import { NACK_AT_MISMATCH } from '../net/protocol.js';
import { ADVANCE_LENGTH, ADVANCE_LOG_ID, ADVANCE_RECORD_BYTES } from '../net/records.js';
import { copyRingBytes } from '../ring/ring.js';
import { ENTRIES_HEADER_BYTES, ENTRY_LENGTH_BYTES, writeEntriesHeader } from '../net/server-frames.js';
import { reserveOutput, sendAcked, sendFrame, sendNacked } from './output.js';
import { STAT_APPENDS, STAT_DELIVERED } from '../metrics/pipeline-metrics.js';
import { NO_SLOT, TAIL_LIVE, type Partition } from './state.js';

/** Release everything the disk thread has committed. Returns the number of records released. */
export function releaseCommitted(partition: Partition): number {
  const staging = partition.rings.staging;
  const committed = Atomics.load(partition.rings.stagingControl, COMMITTED_POSITION);
  if (staging.refreshTo(committed) === 0) return 0;
  partition.released.clear();
  partition.releasedNext.clear();
  partition.dirtyLogs.clear();
  let records = 0;
  for (let offset = staging.peek(); offset >= 0; offset = staging.peek()) {
    const kind = staging.view.getUint32(offset + STAGE_KIND, true);
    if (kind === STAGE_WRITE) releaseWrite(partition, offset);
    else if (kind === STAGE_FRAME) {
      const session = staging.view.getUint32(offset + FRAME_SESSION, true);
      sendFrame(partition, session, staging, offset + FRAME_BYTES, staging.view.getUint32(offset + FRAME_LENGTH, true));
    }
    staging.advance();
    records++;
  }
  pushReleased(partition);
  reportAdvances(partition);
  staging.release();
  return records;
}

/** One record per log that grew: its id and committed length (the IO thread's notifier reads them). */
function reportAdvances(partition: Partition): void {
  const ring = partition.rings.advances;
  const logs = partition.logs;
  for (let i = 0; i < partition.advancedLogs.length; i++) {
    const log = partition.advancedLogs.items[i]!;
    let offset = ring.reserve(ADVANCE_RECORD_BYTES);
    while (offset < 0) {
      partition.rings.advancesFull();
      offset = ring.reserve(ADVANCE_RECORD_BYTES);
    }
    ring.view.setUint32(offset + ADVANCE_LOG_ID, logs.key0[log]!, true);
    ring.view.setFloat64(offset + ADVANCE_LENGTH, logs.columns.committed[log]!, true);
  }
  partition.advancedLogs.clear();
}

function releaseWrite(partition: Partition, offset: number): void {
  const view = partition.rings.staging.view;
  const session = view.getUint32(offset + WRITE_SESSION, true);
  const handle = view.getUint32(offset + WRITE_HANDLE, true);
  const lsn = view.getUint32(offset + WRITE_LSN, true);
  const outcome = view.getFloat64(offset + WRITE_OUTCOME, true);
  if (outcome < 0) {
    sendNacked(partition, session, NACK_AT_MISMATCH, handle, lsn, lsn + 1, -outcome - 1);
    return;
  }
  const logs = partition.logs;
  const log = logs.find(view.getUint32(offset + WRITE_LOG_ID, true), 0);
  invariant(log !== NO_SLOT, 'a released entry belongs to a known log');
  invariant(logs.columns.committed[log] === outcome, 'entries commit in position order');
  logs.columns.committed[log] = outcome + 1;
  partition.stats[STAT_APPENDS]!++;
  if (partition.config.reportAdvances && logs.columns.advancedBatch[log] !== partition.batch) {
    logs.columns.advancedBatch[log] = partition.batch;
    partition.advancedLogs.push(log);
  }
  sendAcked(partition, session, handle, lsn, outcome);
  if (logs.columns.tailers[log] === 0) return;
  const index = partition.released.push(offset);
  partition.releasedNext.push(NO_SLOT);
  if (logs.columns.releaseHead[log] === NO_SLOT) {
    logs.columns.releaseHead[log] = index;
    logs.columns.releaseFirst[log] = outcome;
    partition.dirtyLogs.push(log);
  } else {
    partition.releasedNext.items[logs.columns.releaseTail[log]!] = index;
  }
  logs.columns.releaseTail[log] = index;
}

function pushReleased(partition: Partition): void {
  const logs = partition.logs;
  const leases = partition.leases;
  for (let i = 0; i < partition.dirtyLogs.length; i++) {
    const log = partition.dirtyLogs.items[i]!;
    const head = logs.columns.releaseHead[log]!;
    const first = logs.columns.releaseFirst[log]!;
    // A tailer that tailed from a later position gets frames of its own; every tailer at
    // the start of the release gets the same frames (pushShared).
    let aligned = 0;
    for (let lease = logs.columns.firstLease[log]!; lease !== NO_SLOT; lease = leases.columns.nextOnLog[lease]!) {
      if (leases.columns.tailState[lease] !== TAIL_LIVE) continue;
      if (leases.columns.tailNext[lease] === first) aligned++;
      else pushChain(partition, lease, head);
    }
    if (aligned > 0) pushShared(partition, log, head, first);
    logs.columns.releaseHead[log] = NO_SLOT;
  }
}

/**
 * Push one log's released entries to every live tailer at their start. Each frame's entries
 * are gathered from staging once, for the first tailer; the others get a copy of that frame's
 * payload within the output ring (one block copy instead of one per entry) — unless a full
 * ring made the worker wait since, when the IO thread may have sent and freed it.
 */
function pushShared(partition: Partition, log: number, head: number, first: number): void {
  cutFrames(partition, head);
  const output = partition.rings.output;
  const leases = partition.leases;
  const firstLease = partition.logs.columns.firstLease[log]!;
  let position = first;
  for (let frame = 0; frame < partition.pushFrameStart.length; frame++) {
    const start = partition.pushFrameStart.items[frame]!;
    const count = partition.pushFrameCount.items[frame]!;
    const payload = partition.pushFramePayload.items[frame]!;
    let source = -1;
    let sourceStalls = 0;
    for (let lease = firstLease; lease !== NO_SLOT; lease = leases.columns.nextOnLog[lease]!) {
      if (leases.columns.tailState[lease] !== TAIL_LIVE || leases.columns.tailNext[lease] !== position) continue;
      let at = reserveOutput(partition, leases.key0[lease]!, ENTRIES_HEADER_BYTES + payload);
      at += writeEntriesHeader(output.view, at, 0, leases.key1[lease]!, leases.columns.tailId[lease]!, count, position, payload);
      if (source >= 0 && partition.outputStalls === sourceStalls) {
        copyRingBytes(output, source, output, at, payload);
      } else {
        writeChainEntries(partition, start, count, at);
        source = at;
        sourceStalls = partition.outputStalls;
      }
      leases.columns.tailNext[lease] = position + count;
      partition.stats[STAT_DELIVERED]! += count;
    }
    position += count;
  }
}

/** Cut a chain of released entries into push frames of at most PUSH_FRAME_BYTES_MAX (at least one entry each). */
function cutFrames(partition: Partition, head: number): void {
  const staging = partition.rings.staging;
  partition.pushFrameStart.clear();
  partition.pushFrameCount.clear();
  partition.pushFramePayload.clear();
  let index = head;
  while (index !== NO_SLOT) {
    let count = 0;
    let payload = 0;
    const start = index;
    while (index !== NO_SLOT) {
      const length = staging.view.getUint32(partition.released.items[index]! + WRITE_DATA_LENGTH, true);
      if (count > 0 && payload + ENTRY_LENGTH_BYTES + length > PUSH_FRAME_BYTES_MAX) break;
      payload += ENTRY_LENGTH_BYTES + length;
      count++;
      index = partition.releasedNext.items[index]!;
    }
    partition.pushFrameStart.push(start);
    partition.pushFrameCount.push(count);
    partition.pushFramePayload.push(payload);
  }
}

/** Copy `count` released entries, from chain index `index` on, as (length, bytes) into the output ring at `at`. */
function writeChainEntries(partition: Partition, index: number, count: number, at: number): void {
  const staging = partition.rings.staging;
  const output = partition.rings.output;
  for (let written = 0; written < count; written++) {
    const record = partition.released.items[index]!;
    const length = staging.view.getUint32(record + WRITE_DATA_LENGTH, true);
    output.view.setUint32(at, length, true);
    copyRingBytes(staging, record + WRITE_DATA, output, at + ENTRY_LENGTH_BYTES, length);
    at += ENTRY_LENGTH_BYTES + length;
    index = partition.releasedNext.items[index]!;
  }
}

/** Push the released entries of one log (a chain of staging records) to one live tailer from its own position. */
function pushChain(partition: Partition, lease: number, head: number): void {
  const staging = partition.rings.staging;
  const output = partition.rings.output;
  const leases = partition.leases;
  let index = head;
  // Skip what this tailer has already been sent (it tailed from a later position).
  while (index !== NO_SLOT && staging.view.getFloat64(partition.released.items[index]! + WRITE_OUTCOME, true) < leases.columns.tailNext[lease]!) {
    index = partition.releasedNext.items[index]!;
  }
  if (index === NO_SLOT) return;
  invariant(staging.view.getFloat64(partition.released.items[index]! + WRITE_OUTCOME, true) === leases.columns.tailNext[lease], 'a live tailer receives entries without gaps');
  cutFrames(partition, index);
  for (let frame = 0; frame < partition.pushFrameStart.length; frame++) {
    const count = partition.pushFrameCount.items[frame]!;
    const payload = partition.pushFramePayload.items[frame]!;
    const first = leases.columns.tailNext[lease]!;
    let at = reserveOutput(partition, leases.key0[lease]!, ENTRIES_HEADER_BYTES + payload);
    at += writeEntriesHeader(output.view, at, 0, leases.key1[lease]!, leases.columns.tailId[lease]!, count, first, payload);
    writeChainEntries(partition, partition.pushFrameStart.items[frame]!, count, at);
    leases.columns.tailNext[lease] = first + count;
    partition.stats[STAT_DELIVERED]! += count;
  }
}
