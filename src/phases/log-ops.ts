// Ops on a leased handle: write (RIFL, conditional), ack, read, tail, untail, release.
// write and ack are the hot path: integer work over the tables, one staging record per
// write, no objects.
import { COMPLETION_TRIM_LSNS, READ_BYTES_MAX, READ_LIMIT_MAX, SHARD_COUNT } from '../constants.js';

const SHARD_MASK = SHARD_COUNT - 1;
import {
  STAGE_WRITE,
  WRITE_APPENDED_AT,
  WRITE_BYTES_BEFORE,
  WRITE_DATA,
  WRITE_DATA_LENGTH,
  WRITE_HANDLE,
  WRITE_LOG_ID,
  WRITE_LSN,
  WRITE_OUTCOME,
  WRITE_SESSION,
  WRITE_WRITER_ID,
} from '../log/staging.js';
import {
  ENTRIES_CAUGHT_UP,
  ERROR,
  HEADER_A,
  HEADER_B,
  HEADER_C,
  HEADER_FLAGS,
  HEADER_POSITION,
  NACK_AT_MISMATCH,
  NACK_LSN_GAP,
  WRITE_HAS_AT,
} from '../net/protocol.js';
import { ACKED_BYTES, NACKED_BYTES, ENTRIES_HEADER_BYTES, writeAcked, writeEntriesHeader, writeNacked } from '../net/server-frames.js';
import { queueCatchUp } from './catch-up.js';
import { skipTrimmed } from './io-deletions.js';
import { reserveOutput, sendError, sendNacked } from './output.js';
import { detachLease } from './sessions.js';
import { copyRingBytes } from '../ring/ring.js';
import { COUNT_TAILS } from '../workers/session-counters.js';
import { reserveStage, reserveStagedFrame, stageTrimCompletions, stageWriter } from './stage.js';
import { NO_SLOT, RIGHT_READ, RIGHT_WRITE, TAIL_CATCHING_UP, TAIL_LIVE, TAIL_OFF, TAIL_PAUSED, type Partition } from './state.js';
import { sendStoredEntries, storedRead } from './stored-entries.js';

/** The lease slot of (session, handle), or NO_SLOT after sending UNKNOWN_HANDLE. */
export function findLease(partition: Partition, session: number, handle: number, lsn: number, rid: number): number {
  let lease = partition.leases.find(session, handle);
  // A handle names one log: with another shard in the frame it is as unknown as a stranger's.
  if (lease !== NO_SLOT && (partition.logs.key0[partition.leases.columns.logSlot[lease]!]! & SHARD_MASK) !== partition.frameShard) lease = NO_SLOT;
  if (lease === NO_SLOT) sendError(partition, session, rid, handle, lsn, ERROR.UNKNOWN_HANDLE, `handle ${handle} is not leased by this session on this shard`);
  return lease;
}

/** The lease slot of (session, handle) if it may read, or NO_SLOT after sending the error. */
function findReadableLease(partition: Partition, session: number, handle: number, rid: number): number {
  const lease = findLease(partition, session, handle, 0, rid);
  if (lease !== NO_SLOT && (partition.leases.columns.rights[lease]! & RIGHT_READ) === 0) {
    sendError(partition, session, rid, handle, 0, ERROR.FORBIDDEN, 'no grant to read this log');
    return NO_SLOT;
  }
  return lease;
}

/** The lease's writer slot if the lease may write, or NO_SLOT after sending the error. */
function writableWriter(partition: Partition, session: number, handle: number, lsn: number, lease: number): number {
  const leases = partition.leases.columns;
  if ((leases.rights[lease]! & RIGHT_WRITE) === 0) {
    sendError(partition, session, 0, handle, lsn, ERROR.FORBIDDEN, 'no grant to write this log');
    return NO_SLOT;
  }
  const writer = leases.writerSlot[lease]!;
  const epoch = partition.writers.columns.epoch[writer]!;
  if (leases.writerEpoch[lease] !== epoch) {
    sendError(partition, session, 0, handle, lsn, ERROR.FENCED, `writer epoch ${leases.writerEpoch[lease]} was replaced by epoch ${epoch}`, { writerEpoch: epoch });
    return NO_SLOT;
  }
  return writer;
}

export function write(partition: Partition, session: number, header: number, payload: number, payloadLength: number): void {
  const input = partition.rings.input;
  const handle = input.view.getUint32(header + HEADER_A, true);
  const lsn = input.view.getUint32(header + HEADER_B, true);
  const lease = findLease(partition, session, handle, lsn, 0);
  if (lease === NO_SLOT) return;
  const writer = writableWriter(partition, session, handle, lsn, lease);
  if (writer === NO_SLOT) return;
  const writers = partition.writers.columns;
  const writerId = writers.writerId[writer]!;
  const last = writers.lastLsn[writer]!;
  if (lsn === last + 1) {
    const unackedMax = partition.config.limits.unackedWritesPerWriter;
    if (lsn - writers.ackedLsn[writer]! > unackedMax) {
      sendError(partition, session, 0, handle, lsn, ERROR.UNACKED_LIMIT, `at most ${unackedMax} writes without an ack; ack the outcomes received, then resend from lsn ${lsn}`, { max: unackedMax });
      return;
    }
    appendEntry(partition, session, handle, lease, writer, lsn, header, payload, payloadLength);
  } else if (lsn <= writers.ackedLsn[writer]!) {
    sendError(partition, session, 0, handle, lsn, ERROR.STALE_LSN, `lsn ${lsn} was already acknowledged (ack ${writers.ackedLsn[writer]})`);
  } else if (lsn <= last) {
    // A retry: answer with the original outcome, after the commit that made it durable.
    const completion = partition.completions.find(writerId, lsn);
    if (completion === NO_SLOT) throw new Error(`invariant: completion record of writer ${writerId} lsn ${lsn} is missing`);
    const outcome = partition.completions.columns.outcome[completion]!;
    const staging = partition.rings.staging;
    if (outcome >= 0) {
      writeAcked(staging.view, reserveStagedFrame(partition, session, ACKED_BYTES), handle, lsn, outcome);
    } else {
      writeNacked(staging.view, reserveStagedFrame(partition, session, NACKED_BYTES), NACK_AT_MISMATCH, handle, lsn, lsn + 1, -outcome - 1);
    }
  } else {
    sendNacked(partition, session, NACK_LSN_GAP, handle, lsn, last + 1, partition.logs.columns.tail[partition.leases.columns.logSlot[lease]!]!);
  }
}

function appendEntry(partition: Partition, session: number, handle: number, lease: number, writer: number, lsn: number, header: number, payload: number, payloadLength: number): void {
  const input = partition.rings.input;
  const log = partition.leases.columns.logSlot[lease]!;
  const tail = partition.logs.columns.tail[log]!;
  const conditional = (input.view.getUint8(header + HEADER_FLAGS) & WRITE_HAS_AT) !== 0;
  const accepted = !conditional || input.view.getFloat64(header + HEADER_POSITION, true) === tail;
  const outcome = accepted ? tail : -tail - 1;
  const writerId = partition.writers.columns.writerId[writer]!;
  partition.writers.columns.lastLsn[writer] = lsn;
  const completion = partition.completions.insert(writerId, lsn);
  partition.completions.columns.outcome[completion] = outcome;
  const dataLength = accepted ? payloadLength : 0;
  const offset = reserveStage(partition, STAGE_WRITE, WRITE_DATA + dataLength);
  const staging = partition.rings.staging;
  staging.view.setUint32(offset + WRITE_LOG_ID, partition.logs.key0[log]!, true);
  staging.view.setUint32(offset + WRITE_WRITER_ID, writerId, true);
  staging.view.setUint32(offset + WRITE_LSN, lsn, true);
  staging.view.setUint32(offset + WRITE_SESSION, session, true);
  staging.view.setUint32(offset + WRITE_HANDLE, handle, true);
  staging.view.setFloat64(offset + WRITE_OUTCOME, outcome, true);
  staging.view.setUint32(offset + WRITE_DATA_LENGTH, dataLength, true);
  staging.view.setUint32(offset + WRITE_APPENDED_AT, partition.nowSeconds, true);
  staging.view.setFloat64(offset + WRITE_BYTES_BEFORE, partition.logs.columns.bytes[log]!, true);
  if (accepted) {
    copyRingBytes(input, payload, staging, offset + WRITE_DATA, payloadLength);
    partition.logs.columns.tail[log] = tail + 1;
    partition.logs.columns.bytes[log] = partition.logs.columns.bytes[log]! + payloadLength;
  }
}

export function ack(partition: Partition, session: number, header: number): void {
  const input = partition.rings.input;
  const handle = input.view.getUint32(header + HEADER_A, true);
  const lsn = input.view.getUint32(header + HEADER_B, true);
  const lease = findLease(partition, session, handle, lsn, 0);
  if (lease === NO_SLOT) return;
  const writer = writableWriter(partition, session, handle, lsn, lease);
  if (writer === NO_SLOT) return;
  const writers = partition.writers.columns;
  const acked = writers.ackedLsn[writer]!;
  if (lsn > writers.lastLsn[writer]!) {
    sendError(partition, session, 0, handle, lsn, ERROR.BAD_REQUEST, `ack ${lsn} is beyond the last write ${writers.lastLsn[writer]}`);
    return;
  }
  if (lsn <= acked) return;
  const writerId = writers.writerId[writer]!;
  for (let dropped = acked + 1; dropped <= lsn; dropped++) partition.completions.remove(writerId, dropped);
  writers.ackedLsn[writer] = lsn;
  if (lsn - writers.trimmedLsn[writer]! >= COMPLETION_TRIM_LSNS) {
    stageTrimCompletions(partition, writerId, writers.trimmedLsn[writer]! + 1, lsn);
    writers.trimmedLsn[writer] = lsn;
  }
  const log = partition.leases.columns.logSlot[lease]!;
  stageWriter(partition, writer, partition.logs.key0[log]!, partition.writers.key1[writer]!);
}

function positionArgument(partition: Partition, session: number, rid: number, handle: number, header: number): number {
  const position = partition.rings.input.view.getFloat64(header + HEADER_POSITION, true);
  if (!Number.isSafeInteger(position) || position < 0) {
    sendError(partition, session, rid, handle, 0, ERROR.BAD_REQUEST, 'a position is a non-negative integer');
    return -1;
  }
  return position;
}

export function read(partition: Partition, session: number, header: number): void {
  const input = partition.rings.input;
  const handle = input.view.getUint32(header + HEADER_A, true);
  const rid = input.view.getUint32(header + HEADER_B, true);
  const lease = findReadableLease(partition, session, handle, rid);
  if (lease === NO_SLOT) return;
  const from = positionArgument(partition, session, rid, handle, header);
  if (from < 0) return;
  const requested = input.view.getUint32(header + HEADER_C, true);
  const limit = requested === 0 || requested > READ_LIMIT_MAX ? READ_LIMIT_MAX : requested;
  const log = partition.leases.columns.logSlot[lease]!;
  const committed = partition.logs.columns.committed[log]!;
  const first = partition.logs.columns.first[log]!;
  if (from < first) {
    sendError(partition, session, rid, handle, 0, ERROR.GONE, `entries below position ${first} were removed by retention`, { earliest: first });
    return;
  }
  storedRead.session = session;
  storedRead.handle = handle;
  storedRead.rid = rid;
  storedRead.readReply = true;
  storedRead.logId = partition.logs.key0[log]!;
  storedRead.from = from;
  storedRead.to = Math.max(from, Math.min(from + limit, committed));
  storedRead.committed = committed;
  storedRead.bytesMax = READ_BYTES_MAX;
  partition.storage.refresh();
  sendStoredEntries(partition, storedRead);
}

export function tail(partition: Partition, session: number, header: number): void {
  const handle = partition.rings.input.view.getUint32(header + HEADER_A, true);
  const lease = findReadableLease(partition, session, handle, 0);
  if (lease === NO_SLOT) return;
  const requested = positionArgument(partition, session, 0, handle, header);
  if (requested < 0) return;
  const leases = partition.leases.columns;
  const log = leases.logSlot[lease]!;
  if (leases.tailState[lease] === TAIL_OFF) {
    const tailsMax = partition.config.limits.tailsPerSession;
    if (!partition.rings.sessionCounters.tryIncrement(session, COUNT_TAILS, tailsMax)) {
      sendError(partition, session, 0, handle, 0, ERROR.TAIL_LIMIT, `at most ${tailsMax} tails per session`, { max: tailsMax });
      return;
    }
    partition.logs.columns.tailers[log] = partition.logs.columns.tailers[log]! + 1;
    partition.tails++;
  }
  leases.tailId[lease] = partition.rings.input.view.getUint32(header + HEADER_B, true);
  const from = skipTrimmed(partition, session, handle, leases.tailId[lease]!, log, requested);
  leases.tailNext[lease] = from;
  if (partition.sessions.columns.paused[partition.sessions.find(session, 0)] === 1) {
    // The socket is backed up: the tail starts when it drains.
    leases.tailState[lease] = TAIL_PAUSED;
  } else if (from >= partition.logs.columns.committed[log]!) {
    leases.tailState[lease] = TAIL_LIVE;
    const output = partition.rings.output;
    writeEntriesHeader(output.view, reserveOutput(partition, session, ENTRIES_HEADER_BYTES), ENTRIES_CAUGHT_UP, handle, leases.tailId[lease]!, 0, from, 0);
  } else {
    leases.tailState[lease] = TAIL_CATCHING_UP;
    queueCatchUp(partition, lease);
  }
}

export function untail(partition: Partition, session: number, header: number): void {
  const handle = partition.rings.input.view.getUint32(header + HEADER_A, true);
  const lease = findLease(partition, session, handle, 0, 0);
  if (lease === NO_SLOT) return;
  const leases = partition.leases.columns;
  if (leases.tailState[lease] === TAIL_OFF) return;
  const log = leases.logSlot[lease]!;
  partition.logs.columns.tailers[log] = partition.logs.columns.tailers[log]! - 1;
  partition.tails--;
  partition.rings.sessionCounters.decrement(session, COUNT_TAILS);
  leases.tailState[lease] = TAIL_OFF;
}

export function release(partition: Partition, session: number, header: number): void {
  const handle = partition.rings.input.view.getUint32(header + HEADER_A, true);
  const lease = findLease(partition, session, handle, 0, 0);
  if (lease !== NO_SLOT) detachLease(partition, lease);
}
