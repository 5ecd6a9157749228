// Client state: sessions (opened and closed by the IO thread), leases (attach a session to a
// log, with this device's writer epoch) and their release. Off the per-message hot path:
// names and grants are JS values here.
import { invariant } from '../invariant.js';
import { unpack } from 'msgpackr';
import { SHARD_COUNT } from '../constants.js';
import { allows, type Grant } from '../auth/token.js';
import { ERROR, HEADER_A, HEADER_B, HEADER_FLAGS, LEASE_NEW_WRITER, shardOf } from '../net/protocol.js';
import { controlPayload, leasedBytes, presenceBytes, writeLeased, writePresence } from '../net/server-frames.js';
import { queueCatchUp } from './catch-up.js';
import { COUNT_LEASES, COUNT_TAILS } from '../workers/session-counters.js';
import { sendError, sendRevoked } from './output.js';
import { reserveStagedFrame, stageLog, stageTrimCompletions, stageWriter } from './stage.js';
import { NO_SLOT, RIGHT_READ, RIGHT_SIGNAL, RIGHT_WRITE, TAIL_CATCHING_UP, TAIL_LIVE, TAIL_OFF, TAIL_PAUSED, type Partition } from './state.js';

const NAME_BYTES_MAX = 256;

export function openSession(partition: Partition, session: number, content: Buffer): void {
  const [, device, grants] = unpack(content) as [string, string, Grant[]];
  const slot = partition.sessions.insert(session, 0);
  const columns = partition.sessions.columns;
  columns.device[slot] = partition.deviceNumber(device);
  columns.paused[slot] = 0;
  columns.firstLease[slot] = NO_SLOT;
  partition.grantsBySession.set(session, grants);
}

/** The session table slot of a session the IO thread opened (records never precede its open). */
function openSessionSlot(partition: Partition, session: number): number {
  const slot = partition.sessions.find(session, 0);
  invariant(slot !== NO_SLOT, 'a session event follows the session open');
  return slot;
}

/** The rights `grants` give on a log (by its "site\0log" key). */
function rightsOn(grants: readonly Grant[], key: string): number {
  const separator = key.indexOf('\0');
  const site = key.slice(0, separator);
  const log = key.slice(separator + 1);
  return (allows(grants, site, log, 'r') ? RIGHT_READ : 0) | (allows(grants, site, log, 'w') ? RIGHT_WRITE : 0) | (allows(grants, site, log, 's') ? RIGHT_SIGNAL : 0);
}

/**
 * The session's grants changed (refresh, attest, a grant expired): leases keep the rights
 * the new grants give; a lease left with none is revoked.
 */
export function updateGrants(partition: Partition, session: number, content: Buffer): void {
  const grants = unpack(content) as Grant[];
  partition.grantsBySession.set(session, grants);
  const sessionSlot = openSessionSlot(partition, session);
  let lease = partition.sessions.columns.firstLease[sessionSlot]!;
  while (lease !== NO_SLOT) {
    const next = partition.leases.columns.nextOfSession[lease]!;
    const rights = rightsOn(grants, partition.logNames[partition.leases.columns.logSlot[lease]!]!);
    if (rights === 0) revokeLease(partition, lease, 'the grant for this log was withdrawn');
    else partition.leases.columns.rights[lease] = rights;
    lease = next;
  }
}

/** The session's token was revoked: every lease goes, each with a `_revoke`. */
export function revokeSession(partition: Partition, session: number): void {
  const sessionSlot = openSessionSlot(partition, session);
  while (partition.sessions.columns.firstLease[sessionSlot] !== NO_SLOT) {
    revokeLease(partition, partition.sessions.columns.firstLease[sessionSlot]!, 'the token of this session was revoked');
  }
}

function revokeLease(partition: Partition, lease: number, reason: string): void {
  sendRevoked(partition, partition.leases.key0[lease]!, partition.leases.key1[lease]!, reason);
  detachLease(partition, lease);
}

/** The session's socket is backed up: stop pushing its tails (they keep their position). */
export function pauseSession(partition: Partition, session: number): void {
  const sessionSlot = openSessionSlot(partition, session);
  partition.sessions.columns.paused[sessionSlot] = 1;
  const leases = partition.leases.columns;
  for (let lease = partition.sessions.columns.firstLease[sessionSlot]!; lease !== NO_SLOT; lease = leases.nextOfSession[lease]!) {
    if (leases.tailState[lease] === TAIL_LIVE || leases.tailState[lease] === TAIL_CATCHING_UP) leases.tailState[lease] = TAIL_PAUSED;
  }
}

/** Drained: paused tails catch up from the log, from where each stopped. */
export function resumeSession(partition: Partition, session: number): void {
  const sessionSlot = openSessionSlot(partition, session);
  partition.sessions.columns.paused[sessionSlot] = 0;
  const leases = partition.leases.columns;
  for (let lease = partition.sessions.columns.firstLease[sessionSlot]!; lease !== NO_SLOT; lease = leases.nextOfSession[lease]!) {
    if (leases.tailState[lease] !== TAIL_PAUSED) continue;
    leases.tailState[lease] = TAIL_CATCHING_UP;
    queueCatchUp(partition, lease);
  }
}

export function closeSession(partition: Partition, session: number): void {
  const slot = openSessionSlot(partition, session);
  while (partition.sessions.columns.firstLease[slot] !== NO_SLOT) detachLease(partition, partition.sessions.columns.firstLease[slot]!);
  partition.sessions.remove(session, 0);
  partition.grantsBySession.delete(session);
}

/** A log's epoch: fixed at creation, different for a log recreated after data loss. */
function logEpoch(incarnation: number, logId: number): number {
  let h = Math.imul(incarnation ^ logId, 0x9e3779b1);
  h ^= h >>> 15;
  h = Math.imul(h, 0x85ebca77);
  h ^= h >>> 13;
  return (h >>> 0) || 1;
}

function parseNames(payload: Buffer): [string, string] | string {
  let value: unknown;
  try {
    value = unpack(payload);
  } catch {
    return 'lease payload is not msgpack';
  }
  if (!Array.isArray(value) || value.length !== 2) return 'lease payload must be msgpack [site, log]';
  for (const name of value) {
    if (typeof name !== 'string' || name.length === 0 || Buffer.byteLength(name) > NAME_BYTES_MAX || name.includes('\0')) {
      return `site and log names are non-empty strings of at most ${NAME_BYTES_MAX} bytes without NUL`;
    }
  }
  return value as [string, string];
}

export function leaseLog(partition: Partition, session: number, shard: number, header: number, payload: number, payloadLength: number): void {
  const input = partition.rings.input;
  const rid = input.view.getUint32(header + HEADER_A, true);
  const flags = input.view.getUint8(header + HEADER_FLAGS);
  const requestedEpoch = input.view.getUint32(header + HEADER_B, true);
  const names = parseNames(input.bytes.subarray(payload, payload + payloadLength));
  if (typeof names === 'string') return sendError(partition, session, rid, 0, 0, ERROR.BAD_REQUEST, names);
  const [site, name] = names;
  if (shardOf(site, name, SHARD_COUNT) !== shard) {
    return sendError(partition, session, rid, 0, 0, ERROR.WRONG_SHARD, `log ${site}/${name} is on shard ${shardOf(site, name, SHARD_COUNT)}, not ${shard}`);
  }
  const grants = partition.grantsBySession.get(session)!;
  const key = `${site}\0${name}`;
  const rights = rightsOn(grants, key);
  const sessionSlot = partition.sessions.find(session, 0);
  let log = partition.logSlotByName.get(key);
  if (rights === 0 || (log === undefined && (rights & RIGHT_WRITE) === 0)) {
    return sendError(partition, session, rid, 0, 0, ERROR.FORBIDDEN, `no grant to lease ${site}/${name}`);
  }
  const leasesMax = partition.config.limits.leasesPerSession;
  if (!partition.rings.sessionCounters.tryIncrement(session, COUNT_LEASES, leasesMax)) {
    return sendError(partition, session, rid, 0, 0, ERROR.LEASE_LIMIT, `at most ${leasesMax} leases per session`, { max: leasesMax });
  }
  if (log === undefined) log = createLog(partition, key, shard);
  const logId = partition.logs.key0[log]!;
  const device = partition.sessions.columns.device[sessionSlot]!;
  const writer = openWriter(partition, logId, shard, device, (flags & LEASE_NEW_WRITER) !== 0, requestedEpoch);
  if (writer === NO_SLOT) {
    const current = partition.writers.columns.epoch[partition.writers.find(logId, device)]!;
    return sendError(partition, session, rid, 0, 0, ERROR.FENCED, `writer epoch ${requestedEpoch} was replaced by epoch ${current}`, { writerEpoch: current });
  }
  const lease = attachLease(partition, session, sessionSlot, log, writer, rights);
  const payloadBytes = controlPayload({
    site,
    log: name,
    epoch: partition.logs.columns.epoch[log],
    leader: leaderOf(partition, log),
    presence: presenceOf(partition, log),
    first: partition.logs.columns.first[log]!,
  });
  // The reply waits for the commit of everything staged before it (a new log, a new writer
  // epoch, earlier writes), so the tail it reports is durable when the device sees it.
  const at = reserveStagedFrame(partition, session, leasedBytes(payloadBytes));
  const writers = partition.writers.columns;
  const staging = partition.rings.staging;
  writeLeased(staging.view, staging.bytes, at, rid, partition.leases.key1[lease]!, writers.epoch[writer]!, partition.logs.columns.tail[log]!, writers.lastLsn[writer]! + 1, payloadBytes);
}

function createLog(partition: Partition, key: string, shard: number): number {
  const logId = (partition.nextLogSequence[shard]!++ * SHARD_COUNT + shard) >>> 0;
  const log = insertLog(partition, key, logId, logEpoch(partition.config.incarnation, logId), 0, 0, 0);
  stageLog(partition, logId, partition.logs.columns.epoch[log]!, key);
  return log;
}

/** Add a log to the table (new, or recovered with entries [first, tail) of `bytes` in all). */
export function insertLog(partition: Partition, key: string, logId: number, epoch: number, tail: number, first: number, bytes: number): number {
  const log = partition.logs.insert(logId, 0);
  const columns = partition.logs.columns;
  columns.tail[log] = tail;
  columns.committed[log] = tail;
  columns.first[log] = first;
  columns.bytes[log] = bytes;
  columns.sampledCommitted[log] = tail;
  columns.epoch[log] = epoch;
  columns.firstLease[log] = NO_SLOT;
  columns.lastLease[log] = NO_SLOT;
  columns.releaseHead[log] = NO_SLOT;
  columns.releaseTail[log] = NO_SLOT;
  partition.logSlotByName.set(key, log);
  partition.logNames[log] = key;
  return log;
}

/**
 * The writer slot for this device on this log, opening a new epoch when asked (or when the
 * device never wrote here). Returns NO_SLOT when the requested epoch was replaced (fenced).
 */
function openWriter(partition: Partition, logId: number, shard: number, device: number, newEpoch: boolean, requestedEpoch: number): number {
  const writers = partition.writers;
  let writer = writers.find(logId, device);
  if (writer === NO_SLOT) {
    writer = writers.insert(logId, device);
    writers.columns.writerId[writer] = (partition.nextWriterSequence[shard]!++ * SHARD_COUNT + shard) >>> 0;
  }
  const columns = writers.columns;
  if (newEpoch || columns.epoch[writer] === 0) {
    const acked = columns.ackedLsn[writer]!;
    const last = columns.lastLsn[writer]!;
    for (let lsn = acked + 1; lsn <= last; lsn++) partition.completions.remove(columns.writerId[writer]!, lsn);
    // The new epoch numbers its writes from 1 again: no record of the old one may remain.
    if (last > columns.trimmedLsn[writer]!) stageTrimCompletions(partition, columns.writerId[writer]!, columns.trimmedLsn[writer]! + 1, last);
    columns.epoch[writer] = columns.epoch[writer]! + 1;
    columns.lastLsn[writer] = 0;
    columns.ackedLsn[writer] = 0;
    columns.trimmedLsn[writer] = 0;
    stageWriter(partition, writer, logId, device);
    return writer;
  }
  if (requestedEpoch !== 0 && requestedEpoch !== columns.epoch[writer]) return NO_SLOT;
  return writer;
}

function attachLease(partition: Partition, session: number, sessionSlot: number, log: number, writer: number, rights: number): number {
  const { workerCount, workerIndex } = partition.config;
  const handle = (partition.nextHandleSequence++ * workerCount + workerIndex) >>> 0;
  const lease = partition.leases.insert(session, handle);
  const leases = partition.leases.columns;
  const logs = partition.logs.columns;
  const sessions = partition.sessions.columns;
  leases.logSlot[lease] = log;
  leases.writerSlot[lease] = writer;
  leases.writerEpoch[lease] = partition.writers.columns.epoch[writer]!;
  leases.rights[lease] = rights;
  leases.tailState[lease] = TAIL_OFF;
  // Attach order is leadership order: append to the log's list.
  leases.previousOnLog[lease] = logs.lastLease[log]!;
  leases.nextOnLog[lease] = NO_SLOT;
  if (logs.lastLease[log] === NO_SLOT) logs.firstLease[log] = lease;
  else leases.nextOnLog[logs.lastLease[log]!] = lease;
  logs.lastLease[log] = lease;
  leases.previousOfSession[lease] = NO_SLOT;
  leases.nextOfSession[lease] = sessions.firstLease[sessionSlot]!;
  if (sessions.firstLease[sessionSlot] !== NO_SLOT) leases.previousOfSession[sessions.firstLease[sessionSlot]!] = lease;
  sessions.firstLease[sessionSlot] = lease;
  markPresenceChanged(partition, log);
  return lease;
}

export function detachLease(partition: Partition, lease: number): void {
  const leases = partition.leases.columns;
  const logs = partition.logs.columns;
  const log = leases.logSlot[lease]!;
  const sessionSlot = partition.sessions.find(partition.leases.key0[lease]!, 0);
  if (leases.tailState[lease] !== TAIL_OFF) {
    logs.tailers[log] = logs.tailers[log]! - 1;
    partition.tails--;
    partition.rings.sessionCounters.decrement(partition.leases.key0[lease]!, COUNT_TAILS);
  }
  const previousOnLog = leases.previousOnLog[lease]!;
  const nextOnLog = leases.nextOnLog[lease]!;
  if (previousOnLog === NO_SLOT) logs.firstLease[log] = nextOnLog;
  else leases.nextOnLog[previousOnLog] = nextOnLog;
  if (nextOnLog === NO_SLOT) logs.lastLease[log] = previousOnLog;
  else leases.previousOnLog[nextOnLog] = previousOnLog;
  const previousOfSession = leases.previousOfSession[lease]!;
  const nextOfSession = leases.nextOfSession[lease]!;
  const sessions = partition.sessions.columns;
  if (previousOfSession === NO_SLOT) sessions.firstLease[sessionSlot] = nextOfSession;
  else leases.nextOfSession[previousOfSession] = nextOfSession;
  if (nextOfSession !== NO_SLOT) leases.previousOfSession[nextOfSession] = previousOfSession;
  partition.rings.sessionCounters.decrement(partition.leases.key0[lease]!, COUNT_LEASES);
  leases.catchUpQueued[lease] = 0;
  partition.leases.remove(partition.leases.key0[lease]!, partition.leases.key1[lease]!);
  markPresenceChanged(partition, log);
}

function deviceOfLease(partition: Partition, lease: number): string {
  const sessionSlot = partition.sessions.find(partition.leases.key0[lease]!, 0);
  return partition.deviceNames[partition.sessions.columns.device[sessionSlot]!]!;
}

/** An attached lease as devices see it: its handle (the address for signals) and device. */
interface Attached {
  handle: number;
  device: string;
}

function attachedOf(partition: Partition, lease: number): Attached {
  return { handle: partition.leases.key1[lease]!, device: deviceOfLease(partition, lease) };
}

/** The leader: the first lease still attached (attach order). */
function leaderOf(partition: Partition, log: number): Attached | null {
  const first = partition.logs.columns.firstLease[log]!;
  return first === NO_SLOT ? null : attachedOf(partition, first);
}

function presenceOf(partition: Partition, log: number): Attached[] {
  const attached: Attached[] = [];
  for (let lease = partition.logs.columns.firstLease[log]!; lease !== NO_SLOT; lease = partition.leases.columns.nextOnLog[lease]!) {
    attached.push(attachedOf(partition, lease));
  }
  return attached;
}

function markPresenceChanged(partition: Partition, log: number): void {
  const logs = partition.logs.columns;
  if (logs.presenceBatch[log] === partition.batch) return;
  logs.presenceBatch[log] = partition.batch;
  partition.presenceChanged.push(log);
}

/**
 * One `_presence` per attached lease of each log whose attachments changed this batch
 * (joins and leaves coalesced). Staged: a device learns a new handle only after that
 * lease's own `_leased` was released, so a signal to it cannot overtake its lease reply.
 */
export function sendPresenceChanges(partition: Partition): void {
  const changed = partition.presenceChanged;
  for (let i = 0; i < changed.length; i++) {
    const log = changed.items[i]!;
    // A log removed since (never happens today: logs stay) or left empty has nobody to tell.
    if (partition.logs.occupied[log] === 0 || partition.logs.columns.firstLease[log] === NO_SLOT) continue;
    const payload = controlPayload({ presence: presenceOf(partition, log), leader: leaderOf(partition, log) });
    const staging = partition.rings.staging;
    for (let lease = partition.logs.columns.firstLease[log]!; lease !== NO_SLOT; lease = partition.leases.columns.nextOnLog[lease]!) {
      writePresence(staging.view, staging.bytes, reserveStagedFrame(partition, partition.leases.key0[lease]!, presenceBytes(payload)), partition.leases.key1[lease]!, payload);
    }
  }
  changed.clear();
}
