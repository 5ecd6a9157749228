// Deterministic simulation of the server: simulated devices connect, lease, write (in order,
// duplicated, with gaps, conditional), ack, read, tail, untail, disconnect, lose their state
// and leave zombie sessions behind, while the simulation interleaves batches, disk commits,
// output delivery and crashes at random. Invariants are checked after every step; any
// violation throws an error naming the seed and step that reproduce it.
import { createHash } from 'node:crypto';
import { SHARD_COUNT } from '../constants.js';
import { INPUT_SESSION_PAUSE, INPUT_SESSION_RESUME, INPUT_SESSION_REVOKE } from '../net/records.js';
import {
  ENTRIES_CAUGHT_UP,
  ENTRIES_READ_END,
  ENTRIES_READ_REPLY,
  ERROR_NAMES,
  NACK_AT_MISMATCH,
  NACK_LSN_GAP,
  OP_ACKED,
  OP_ENTRIES,
  OP_ERROR,
  OP_LEASED,
  OP_NACKED,
  OP_REVOKED,
  OP_PRESENCE,
  shardOf,
} from '../net/protocol.js';
import { MemoryStorage } from './memory-storage.js';
import { Prng } from './prng.js';
import { SimulatedServer, type SimulatedServerOptions } from './simulated-server.js';
import { frames, type ServerFrame } from './wire.js';

const SITE = 'sim';
const REFUSED = -1;

interface Outcome {
  position: number; // REFUSED for a refused conditional write
}

interface DeviceLog {
  name: string;
  shard: number;
  handle: number; // 0: not leased in the current session
  leaseRid: number; // pending lease request, 0 when none
  writerEpoch: number; // 0: no RIFL state (the next lease opens a new writer epoch)
  nextLsn: number;
  // Writes sent in this writer epoch and not yet acknowledged to the server.
  data: Map<number, { bytes: Buffer; at: number | undefined }>;
  outcomes: Map<number, Outcome>;
  acked: number;
  gapProbes: Set<number>;
  tail: { id: number; next: number; caughtUp: boolean } | undefined;
  reads: Map<number, { from: number; limit: number; received: number }>;
}

interface Device {
  name: string;
  session: number; // 0: disconnected
  paused: boolean; // its socket is backed up: the server paused its tails
  logs: Map<string, DeviceLog>;
  // A session left behind by a restart without state: its writes must be fenced once the
  // new epoch is known.
  zombie: { session: number; log: string; handle: number; shard: number; lsn: number; fencedFromEpoch: number } | undefined;
}

export interface SimulationOptions {
  seed: number;
  steps: number;
  devices: number;
  logs: number;
  workerCount: number;
}

export interface SimulationReport {
  seed: number;
  steps: number;
  batches: number;
  commits: number;
  crashes: number;
  acks: number;
  entriesDelivered: number;
  /** A hash of everything every session received: equal for equal seeds. */
  traceHash: string;
}

export class SimulationFailure extends Error {}

export function runSimulation(options: SimulationOptions): SimulationReport {
  return new Simulation(options).run();
}

class Simulation {
  private readonly options: SimulationOptions;
  private readonly random: Prng;
  private readonly faults: Prng;
  private readonly storage = new MemoryStorage();
  private server: SimulatedServer;
  private readonly serverOptions: SimulatedServerOptions;
  private readonly devices: Device[] = [];
  private readonly logNames: string[] = [];
  private readonly trace = createHash('sha256');
  private step = 0;
  private nextSession = 1;
  private nextRid = 1;
  private crashes = 0;
  private acks = 0;
  private entriesDelivered = 0;
  // Sessions whose inbox is owned by a device or a zombie.
  private readonly owners = new Map<number, { device: Device; zombie: boolean }>();
  // Sessions whose leases were revoked: their devices expect a _revoke for each lease.
  private readonly revokedSessions = new Set<number>();

  constructor(options: SimulationOptions) {
    this.options = options;
    const root = new Prng(options.seed);
    this.random = root.fork();
    this.faults = root.fork();
    this.serverOptions = {
      workerCount: options.workerCount,
      incarnation: root.below(2 ** 31) + 1,
      entryBytesMax: 1024,
      inputRingBytes: 1 << 14,
      outputRingBytes: 1 << 14,
      stagingRingBytes: 1 << 15,
    };
    this.server = new SimulatedServer(this.storage, this.serverOptions);
    for (let i = 0; i < options.logs; i++) this.logNames.push(`log-${i}`);
    for (let i = 0; i < options.devices; i++) this.devices.push({ name: `device-${i}`, session: 0, paused: false, logs: new Map(), zombie: undefined });
  }

  run(): SimulationReport {
    for (this.step = 0; this.step < this.options.steps; this.step++) {
      this.tick();
      this.checkServer();
    }
    this.quiesce();
    return {
      seed: this.options.seed,
      steps: this.options.steps,
      batches: this.server.batches,
      commits: this.storage.commits,
      crashes: this.crashes,
      acks: this.acks,
      entriesDelivered: this.entriesDelivered,
      traceHash: this.trace.digest('hex'),
    };
  }

  private fail(message: string): never {
    throw new SimulationFailure(`simulation seed ${this.options.seed} step ${this.step}: ${message}`);
  }

  private tick(): void {
    const roll = this.faults.next();
    if (roll < 0.003) return this.crash();
    if (roll < 0.2) return this.server.runBatch();
    if (roll < 0.35) return this.server.commit();
    if (roll < 0.5) return this.deliver();
    this.act(this.random.pick(this.devices));
  }

  /** Run batches, commits and deliveries until nothing moves; then every write has an outcome. */
  private quiesce(): void {
    for (let round = 0; round < 50; round++) {
      // A device revoked meanwhile reconnects; every log without a lease is leased again.
      for (const device of this.devices) {
        if (device.paused) this.resume(device);
        if (device.session === 0) this.connect(device);
        for (const log of device.logs.values()) if (log.handle === 0 && log.leaseRid === 0) this.lease(device, log);
      }
      this.server.runBatch();
      this.server.commit();
      this.server.runBatch();
      this.deliver();
    }
    for (const device of this.devices) {
      for (const log of device.logs.values()) {
        if (log.handle === 0) this.fail(`${device.name} never got a lease on ${log.name}`);
        if (log.reads.size > 0) this.fail(`${device.name} ${log.name} reads never ended: ${[...log.reads.keys()].join(', ')}`);
        for (const lsn of log.data.keys()) {
          if (!log.outcomes.has(lsn)) this.fail(`${device.name} ${log.name} lsn ${lsn} never got an outcome`);
        }
        if (log.tail !== undefined) {
          const stored = this.storedEntries(log.name).length;
          if (!log.tail.caughtUp || log.tail.next !== stored) this.fail(`${device.name} tail of ${log.name} at ${log.tail.next}, caught up ${log.tail.caughtUp}, log has ${stored}`);
        }
      }
    }
  }

  private crash(): void {
    this.crashes++;
    this.deliverNothing();
    for (const device of this.devices) {
      device.session = 0;
      device.paused = false;
      device.zombie = undefined;
      for (const log of device.logs.values()) this.forgetSession(log);
    }
    this.owners.clear();
    this.server = new SimulatedServer(this.storage, this.serverOptions);
  }

  /** A crash loses undelivered output too. */
  private deliverNothing(): void {
    for (const inbox of this.server.inbox.values()) inbox.length = 0;
  }

  private forgetSession(log: DeviceLog): void {
    log.handle = 0;
    log.leaseRid = 0;
    log.reads.clear();
    if (log.tail !== undefined) log.tail.caughtUp = false;
  }

  private connect(device: Device): void {
    device.paused = false;
    device.session = this.nextSession++;
    this.owners.set(device.session, { device, zombie: false });
    this.server.openSession(device.session, `user-of-${device.name}`, device.name, [{ site: SITE, rights: 'rw' }]);
  }

  private disconnect(device: Device): void {
    device.paused = false;
    this.server.closeSession(device.session);
    this.owners.delete(device.session);
    device.session = 0;
    for (const log of device.logs.values()) this.forgetSession(log);
  }

  private lease(device: Device, log: DeviceLog): void {
    log.leaseRid = this.nextRid++;
    this.server.send(device.session, frames.lease(SITE, log.name, log.leaseRid, { newWriter: log.writerEpoch === 0, writerEpoch: log.writerEpoch }));
  }

  private act(device: Device): void {
    if (device.session === 0) return this.connect(device);
    if (this.random.chance(0.02)) return device.paused ? this.resume(device) : this.pause(device);
    if (this.random.chance(0.005)) return this.revoke(device);
    const name = this.random.pick(this.logNames);
    let log = device.logs.get(name);
    if (log === undefined) {
      log = { name, shard: shardOf(SITE, name, SHARD_COUNT), handle: 0, leaseRid: 0, writerEpoch: 0, nextLsn: 1, data: new Map(), outcomes: new Map(), acked: 0, gapProbes: new Set(), tail: undefined, reads: new Map() };
      device.logs.set(name, log);
    }
    if (log.handle === 0) {
      if (log.leaseRid === 0) this.lease(device, log);
      return;
    }
    const roll = this.random.next();
    if (roll < 0.45) this.write(device, log, this.random.chance(0.15));
    else if (roll < 0.52) this.duplicate(device, log);
    else if (roll < 0.55) this.gap(device, log);
    else if (roll < 0.65) this.ack(device, log);
    else if (roll < 0.72) this.read(device, log);
    else if (roll < 0.8) this.tail(device, log);
    else if (roll < 0.83) this.untail(device, log);
    else if (roll < 0.86) this.disconnect(device);
    else if (roll < 0.88) this.restartWithoutState(device, log);
    else if (roll < 0.93) this.zombieWrite(device);
    else this.write(device, log, false);
  }

  /** The device's socket backs up: the IO thread pauses its tails. */
  private pause(device: Device): void {
    device.paused = true;
    this.server.sessionEvent(INPUT_SESSION_PAUSE, device.session);
  }

  /** Drained: its tails resume from the log, without gaps or duplicates. */
  private resume(device: Device): void {
    device.paused = false;
    this.server.sessionEvent(INPUT_SESSION_RESUME, device.session);
  }

  /** Its token is revoked: every lease goes with a _revoke; the device reconnects later. */
  private revoke(device: Device): void {
    this.server.sessionEvent(INPUT_SESSION_REVOKE, device.session);
    this.revokedSessions.add(device.session);
  }

  private write(device: Device, log: DeviceLog, conditional: boolean): void {
    const lsn = log.nextLsn++;
    const bytes = Buffer.from(`${device.name}|${log.name}|${log.writerEpoch}|${lsn}`);
    const known = this.storedEntries(log.name).length;
    const at = conditional ? known + this.random.below(2) : undefined;
    log.data.set(lsn, { bytes, at });
    this.server.send(device.session, frames.write(log.shard, log.handle, lsn, bytes, at));
  }

  private duplicate(device: Device, log: DeviceLog): void {
    const candidates = [...log.data.keys()].filter((lsn) => lsn > log.acked);
    if (candidates.length === 0) return;
    const lsn = this.random.pick(candidates);
    const sent = log.data.get(lsn)!;
    this.server.send(device.session, frames.write(log.shard, log.handle, lsn, sent.bytes, sent.at));
  }

  private gap(device: Device, log: DeviceLog): void {
    // Far beyond anything this writer will reach, so a probe never collides with a real lsn.
    const lsn = log.nextLsn + 1_000_000 + this.random.below(3);
    log.gapProbes.add(lsn);
    this.server.send(device.session, frames.write(log.shard, log.handle, lsn, Buffer.from('gap'), undefined));
  }

  private ack(device: Device, log: DeviceLog): void {
    let upTo = log.acked;
    while (log.outcomes.has(upTo + 1)) upTo++;
    if (upTo === log.acked) return;
    for (let lsn = log.acked + 1; lsn <= upTo; lsn++) log.data.delete(lsn);
    log.acked = upTo;
    this.server.send(device.session, frames.ack(log.shard, log.handle, upTo));
  }

  private read(device: Device, log: DeviceLog): void {
    const rid = this.nextRid++;
    const from = this.random.below(this.storedEntries(log.name).length + 2);
    const limit = 1 + this.random.below(20);
    log.reads.set(rid, { from, limit, received: 0 });
    this.server.send(device.session, frames.read(log.shard, log.handle, rid, from, limit));
  }

  private tail(device: Device, log: DeviceLog): void {
    const from = this.random.below(this.storedEntries(log.name).length + 1);
    log.tail = { id: this.nextRid++, next: from, caughtUp: false };
    this.server.send(device.session, frames.tail(log.shard, log.handle, from, log.tail.id));
  }

  private untail(device: Device, log: DeviceLog): void {
    if (log.tail === undefined) return;
    log.tail = undefined;
    this.server.send(device.session, frames.untail(log.shard, log.handle));
  }

  /**
   * The device loses its state but its old session lives on as a zombie; a new session opens
   * a new writer epoch on `log`. Writes the zombie sends after the new lease must be fenced.
   */
  private restartWithoutState(device: Device, log: DeviceLog): void {
    if (log.writerEpoch === 0 || device.zombie !== undefined) return;
    const zombieSession = device.session;
    this.owners.set(zombieSession, { device, zombie: true });
    device.zombie = { session: zombieSession, log: log.name, handle: log.handle, shard: log.shard, lsn: log.nextLsn, fencedFromEpoch: log.writerEpoch + 1 };
    this.connect(device);
    for (const other of device.logs.values()) this.forgetSession(other);
    // Lost state: this log starts a new writer epoch; the old epoch's unfinished writes are gone.
    const fresh: DeviceLog = { ...log, writerEpoch: 0, nextLsn: 1, data: new Map(), outcomes: new Map(), acked: 0, gapProbes: new Set(), tail: undefined, reads: new Map() };
    device.logs.set(log.name, fresh);
    this.lease(device, fresh);
  }

  private zombieWrite(device: Device): void {
    const zombie = device.zombie;
    if (zombie === undefined) return;
    const lsn = zombie.lsn++;
    this.server.send(zombie.session, frames.write(zombie.shard, zombie.handle, lsn, Buffer.from(`zombie|${device.name}|${zombie.fencedFromEpoch}|${lsn}`), undefined));
  }

  /** A log's stored entries by position (`undefined` where retention trimmed them). */
  private storedEntries(name: string): (Buffer | undefined)[] {
    const record = this.storage.logRecords.get(`${SITE}\0${name}`);
    return record === undefined ? [] : (this.storage.entries.get(record.logId) ?? []);
  }

  private deliver(): void {
    this.server.deliverAll();
    for (const [session, inbox] of this.server.inbox) {
      const owner = this.owners.get(session);
      // Take the frames out first: reacting to them can deliver more (a full ring runs the
      // server), and those land in the inbox for the next delivery, not in this loop.
      for (const frame of inbox.splice(0)) {
        this.trace.update(`${session}:${frame.op}:${frame.flags}:${frame.word}:${frame.a}:${frame.b}:${frame.c}:${frame.position}:${frame.payload.toString('hex')};`);
        if (owner === undefined) continue;
        if (owner.zombie) this.zombieFrame(owner.device, frame);
        // Frames to a session the device has since left (revoked, reconnected) are dead letters.
        else if (session === owner.device.session) this.deviceFrame(owner.device, frame);
      }
    }
  }

  private logOfHandle(device: Device, handle: number): DeviceLog | undefined {
    for (const log of device.logs.values()) if (log.handle === handle && handle !== 0) return log;
    return undefined;
  }

  private deviceFrame(device: Device, frame: ServerFrame): void {
    switch (frame.op) {
      case OP_LEASED:
        return this.leased(device, frame);
      case OP_ACKED:
      case OP_NACKED:
        return this.outcome(device, frame);
      case OP_ENTRIES:
        return this.entries(device, frame);
      case OP_REVOKED:
        return this.revoked(device, frame);
      case OP_PRESENCE:
        return this.presence(device, frame);
      case OP_ERROR:
        // After a revocation, ops already sent on the revoked leases find no handle.
        if (this.revokedSessions.has(device.session) && ERROR_NAMES[frame.word] === 'UNKNOWN_HANDLE') return;
        return this.fail(`${device.name} got error ${ERROR_NAMES[frame.word]}: ${JSON.stringify(frame.body)}`);
      default:
        return this.fail(`${device.name} got unexpected op ${frame.op}`);
    }
  }

  /** A `_presence` for a lease the device holds lists that lease, under this device. */
  private presence(device: Device, frame: ServerFrame): void {
    const log = this.logOfHandle(device, frame.a);
    if (log === undefined) return; // released or lost since the frame was sent
    const presence = frame.body?.presence as { handle: number; device: string }[] | undefined;
    if (!presence?.some((attached) => attached.handle === frame.a && attached.device === device.name)) {
      this.fail(`${device.name} got _presence for handle ${frame.a} that does not list it: ${JSON.stringify(frame.body)}`);
    }
    if (JSON.stringify(frame.body?.leader) !== JSON.stringify(presence![0])) this.fail(`${device.name}: the leader is not the first attached lease: ${JSON.stringify(frame.body)}`);
  }

  private revoked(device: Device, frame: ServerFrame): void {
    if (!this.revokedSessions.has(device.session)) this.fail(`${device.name} got _revoke without a revocation`);
    const log = this.logOfHandle(device, frame.a);
    if (log === undefined) this.fail(`${device.name} got _revoke for handle ${frame.a} it does not hold (it must follow the _leased)`);
    // The device reconnects with a new token: a new session, leases again, resends, re-tails.
    this.disconnect(device);
  }

  private zombieFrame(device: Device, frame: ServerFrame): void {
    const zombie = device.zombie;
    if (frame.op !== OP_ERROR) return;
    const name = ERROR_NAMES[frame.word];
    if (name === 'UNKNOWN_HANDLE' && zombie !== undefined && this.revokedSessions.has(zombie.session)) return;
    if (name !== 'FENCED') this.fail(`zombie of ${device.name} got ${name}, expected FENCED`);
    if (zombie !== undefined && (frame.body?.writerEpoch as number) < zombie.fencedFromEpoch) this.fail(`zombie fenced by epoch ${String(frame.body?.writerEpoch)}`);
  }

  private leased(device: Device, frame: ServerFrame): void {
    const log = [...device.logs.values()].find((candidate) => candidate.leaseRid === frame.a);
    if (log === undefined) return this.fail(`${device.name} got a lease reply for unknown rid ${frame.a}`);
    log.leaseRid = 0;
    log.handle = frame.b;
    if (log.writerEpoch !== 0 && frame.c !== log.writerEpoch) this.fail(`${device.name} ${log.name} writer epoch changed ${log.writerEpoch} → ${frame.c}`);
    log.writerEpoch = frame.c;
    const stored = this.storedEntries(log.name).length;
    if (frame.position > stored) this.fail(`${device.name} ${log.name} lease tail ${frame.position} is not durable (storage has ${stored})`);
    // Resend, in order, every write of this epoch without an outcome.
    for (const [lsn, sent] of [...log.data].sort((x, y) => x[0] - y[0])) {
      if (!log.outcomes.has(lsn)) this.server.send(device.session, frames.write(log.shard, log.handle, lsn, sent.bytes, sent.at));
    }
    if (frame.d > log.nextLsn) this.fail(`${device.name} ${log.name} server expects lsn ${frame.d} beyond the device's ${log.nextLsn}`);
    if (log.tail !== undefined) {
      log.tail.id = this.nextRid++;
      this.server.send(device.session, frames.tail(log.shard, log.handle, log.tail.next, log.tail.id));
    }
  }

  private outcome(device: Device, frame: ServerFrame): void {
    const log = this.logOfHandle(device, frame.a);
    if (log === undefined) return;
    const lsn = frame.b;
    if (frame.op === OP_NACKED && frame.flags === NACK_LSN_GAP) {
      if (!log.gapProbes.has(lsn)) this.fail(`${device.name} ${log.name} lsn ${lsn} got LSN_GAP (expected ${frame.c})`);
      return;
    }
    const sent = log.data.get(lsn);
    const position = frame.op === OP_ACKED ? frame.position : REFUSED;
    if (frame.op === OP_NACKED && frame.flags !== NACK_AT_MISMATCH) this.fail(`unknown nack reason ${frame.flags}`);
    const previous = log.outcomes.get(lsn);
    if (previous !== undefined) {
      if (previous.position !== position) this.fail(`${device.name} ${log.name} lsn ${lsn} outcome changed ${previous.position} → ${position}`);
      return;
    }
    if (sent === undefined) {
      if (lsn <= log.acked) return;
      this.fail(`${device.name} ${log.name} outcome for lsn ${lsn} never sent`);
    }
    if (position === REFUSED) {
      if (sent.at === undefined) this.fail(`${device.name} ${log.name} unconditional lsn ${lsn} refused`);
    } else {
      this.acks++;
      const stored = this.storedEntries(log.name)[position];
      if (stored === undefined || !stored.equals(sent.bytes)) this.fail(`${device.name} ${log.name} lsn ${lsn} acked at ${position}, which holds ${stored?.toString()}`);
      if (sent.at !== undefined && sent.at !== position) this.fail(`conditional write at ${sent.at} landed at ${position}`);
    }
    log.outcomes.set(lsn, { position });
  }

  private entries(device: Device, frame: ServerFrame): void {
    const log = this.logOfHandle(device, frame.a);
    if (log === undefined) return;
    const stored = this.storedEntries(log.name);
    frame.entries!.forEach((entry, index) => {
      const expected = stored[frame.position + index];
      if (expected === undefined || !expected.equals(entry)) this.fail(`${device.name} ${log.name} got entry ${frame.position + index} = ${entry.toString()}, storage holds ${expected?.toString()}`);
    });
    if ((frame.flags & ENTRIES_READ_REPLY) !== 0) {
      const read = log.reads.get(frame.b);
      if (read === undefined) this.fail(`${device.name} read reply for unknown rid ${frame.b}`);
      if (frame.position !== read.from + read.received) this.fail(`read reply starts at ${frame.position}, expected ${read.from + read.received}`);
      read.received += frame.c;
      if (read.received > read.limit) this.fail(`read ${frame.b} got ${read.received} entries, limit ${read.limit}`);
      if ((frame.flags & ENTRIES_READ_END) !== 0) {
        const caughtUp = (frame.flags & ENTRIES_CAUGHT_UP) !== 0;
        if (!caughtUp && read.received !== read.limit) this.fail(`read ${frame.b} ended with ${read.received} of ${read.limit} entries before the tail`);
        log.reads.delete(frame.b);
      }
      return;
    }
    const tail = log.tail;
    // Pushes of an earlier tail of this handle may still arrive: they carry its id.
    if (tail === undefined || frame.b !== tail.id) return;
    if (frame.position !== tail.next) this.fail(`${device.name} ${log.name} tail got ${frame.position}, expected ${tail.next} (gap or duplicate)`);
    tail.next += frame.c;
    this.entriesDelivered += frame.c;
    if ((frame.flags & ENTRIES_CAUGHT_UP) !== 0) tail.caughtUp = true;
  }

  /** Invariants over the server's tables against storage, after every step. */
  private checkServer(): void {
    for (const partition of this.server.partitions) {
      const logs = partition.logs;
      for (let slot = 0; slot < logs.slotsUsed; slot++) {
        if (logs.occupied[slot] === 0) continue;
        const stored = this.storage.entries.get(logs.key0[slot]!)?.length ?? 0;
        const committed = logs.columns.committed[slot]!;
        const tail = logs.columns.tail[slot]!;
        if (!(committed <= stored && stored <= tail)) this.fail(`log ${partition.logNames[slot]} committed ${committed}, stored ${stored}, tail ${tail}`);
      }
    }
    for (const entries of this.storage.entries.values()) {
      const seen = new Set<string>();
      for (const entry of entries) {
        if (entry === undefined) continue;
        const tag = entry.toString();
        if (seen.has(tag)) this.fail(`entry ${tag} stored twice`);
        seen.add(tag);
      }
    }
  }
}
