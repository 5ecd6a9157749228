// The state one worker owns: the chained hash tables of its partition (the logs of the
// shards it owns, the leases and writers on them, RIFL completion records, sessions) and
// the rings it reads and writes. Phases are functions over this state.
import { invariant } from '../invariant.js';
import {
  COMPLETION_TABLE_CAPACITY,
  LEASE_TABLE_CAPACITY,
  LOG_TABLE_CAPACITY,
  SESSION_TABLE_CAPACITY,
  SHARD_COUNT,
  WRITER_TABLE_CAPACITY,
} from '../constants.js';
import { ChainedTable } from '../hashtable/chained-table.js';
import type { Grant } from '../auth/token.js';
import type { StorageReader } from '../log/storage.js';
import { Ring } from '../ring/ring.js';
import { SlotList } from './slot-list.js';
import type { SessionCounters } from '../workers/session-counters.js';
import { createBatchStats } from '../metrics/pipeline-metrics.js';

export const NO_SLOT = -1;

// Log table, keyed by (logId, 0).
const LOG_SCHEMA = {
  tail: 'f64', // next position to assign (ordered, maybe not yet committed)
  committed: 'f64', // next position not yet durable: entries below it can be read and pushed
  first: 'f64', // first position held: retention removed the entries below it
  bytes: 'f64', // bytes of every entry appended (staged) so far: the next entry's bytesBefore
  epoch: 'u32',
  firstLease: 'i32', // attach order: the first is the leader
  lastLease: 'i32',
  releaseHead: 'i32', // this batch's released entries, as indexes into Partition.released
  releaseTail: 'i32',
  releaseFirst: 'f64', // the position of the first entry released this batch
  tailers: 'u32',
  sampledCommitted: 'f64', // `committed` when the busiest logs were last sampled (metrics)
  presenceBatch: 'u32', // the batch that last changed who is attached (one _presence per log per batch)
  advancedBatch: 'u32', // the batch that last reported this log's growth (one advance record per log per batch)
} as const;

// Lease table, keyed by (session, handle).
export const TAIL_OFF = 0;
export const TAIL_CATCHING_UP = 1;
export const TAIL_LIVE = 2;
// The session's socket is backed up: nothing is pushed; on resume the tail catches up from the log.
export const TAIL_PAUSED = 3;
export const RIGHT_READ = 1;
export const RIGHT_WRITE = 2;
export const RIGHT_SIGNAL = 4;
const LEASE_SCHEMA = {
  logSlot: 'i32',
  writerSlot: 'i32',
  writerEpoch: 'u32',
  rights: 'u8',
  previousOnLog: 'i32',
  nextOnLog: 'i32',
  previousOfSession: 'i32',
  nextOfSession: 'i32',
  tailState: 'u8',
  tailNext: 'f64', // the next position this tailer has not been sent
  tailId: 'u32', // the device's id for this tail, echoed in every push (stale pushes are told apart)
  catchUpQueued: 'u8',
} as const;

// Writer table (RIFL state per device per log), keyed by (logId, deviceNumber).
const WRITER_SCHEMA = {
  writerId: 'u32',
  epoch: 'u32',
  lastLsn: 'u32',
  ackedLsn: 'u32',
  // Completion records at or below it are deleted (or staged to be) from storage.
  trimmedLsn: 'u32',
} as const;

// Completion records, keyed by (writerId, lsn): the outcome of each unacknowledged write.
const COMPLETION_SCHEMA = { outcome: 'f64' } as const;

// Session table, keyed by (session, 0).
const SESSION_SCHEMA = {
  device: 'u32',
  firstLease: 'i32',
  paused: 'u8',
} as const;

export type LogTable = ChainedTable<typeof LOG_SCHEMA>;
export type LeaseTable = ChainedTable<typeof LEASE_SCHEMA>;
export type WriterTable = ChainedTable<typeof WRITER_SCHEMA>;
export type CompletionTable = ChainedTable<typeof COMPLETION_SCHEMA>;
export type SessionTable = ChainedTable<typeof SESSION_SCHEMA>;

export interface PartitionConfig {
  workerIndex: number;
  workerCount: number;
  /** Mixed into new log epochs, so a log recreated after data loss gets a new epoch. */
  incarnation: number;
  /** Report logs that advanced (advances ring): on when offline notifications are. */
  reportAdvances: boolean;
  limits: PartitionLimits;
}

/** The limits a worker enforces (src/limits.ts). */
export interface PartitionLimits {
  leasesPerSession: number;
  tailsPerSession: number;
  unackedWritesPerWriter: number;
}

export interface PartitionRings {
  input: Ring;
  /** Replication from peers: reserved, empty until the cluster lands (SPEC §8). */
  peerInput: Ring;
  /** Retention's trims, from the IO thread (the io-deletions input). */
  deletions: Ring;
  /** Logs whose committed length grew, to the IO thread (offline notifications). */
  advances: Ring;
  output: Ring;
  staging: Ring;
  /** The disk thread's COMMITTED_POSITION word for this worker's staging ring. */
  stagingControl: Int32Array;
  /** Called when the output ring is full: return once the consumer has made room. */
  outputFull: () => void;
  /** Called when the advances ring is full: return once the IO thread has made room. */
  advancesFull: () => void;
  /** Called when the staging ring is full: return once a commit was released (see batch.ts). */
  stagingFull: () => void;
  /** Leases and tails per session, shared by all workers (src/workers/session-counters.ts). */
  sessionCounters: SessionCounters;
}

export class Partition {
  readonly config: PartitionConfig;
  readonly rings: PartitionRings;
  readonly storage: StorageReader;
  readonly logs: LogTable = new ChainedTable(LOG_SCHEMA, LOG_TABLE_CAPACITY);
  readonly leases: LeaseTable = new ChainedTable(LEASE_SCHEMA, LEASE_TABLE_CAPACITY);
  readonly writers: WriterTable = new ChainedTable(WRITER_SCHEMA, WRITER_TABLE_CAPACITY);
  readonly completions: CompletionTable = new ChainedTable(COMPLETION_SCHEMA, COMPLETION_TABLE_CAPACITY);
  readonly sessions: SessionTable = new ChainedTable(SESSION_SCHEMA, SESSION_TABLE_CAPACITY);
  // Off the hot path (lease, connect): names, grants and device ids as JS values.
  readonly logSlotByName = new Map<string, number>();
  readonly logNames: string[] = [];
  readonly grantsBySession = new Map<number, Grant[]>();
  readonly deviceNumbers = new Map<string, number>();
  readonly deviceNames: string[] = [];
  readonly deviceBytes: Buffer[] = [];
  // Per-shard sequence numbers for new log and writer ids (id = sequence × SHARD_COUNT + shard).
  readonly nextLogSequence = new Uint32Array(SHARD_COUNT).fill(1);
  readonly nextWriterSequence = new Uint32Array(SHARD_COUNT).fill(1);
  nextHandleSequence = 1;
  // Per-batch scratch: entries released by the last commit, chained per log.
  readonly released = new SlotList(4096);
  readonly releasedNext = new SlotList(4096);
  readonly dirtyLogs = new SlotList(1024);
  /** One log's released chain cut into push frames: first chain index, entries, payload bytes. */
  readonly pushFrameStart = new SlotList(64);
  readonly pushFrameCount = new SlotList(64);
  readonly pushFramePayload = new SlotList(64);
  /** Times a full output ring made this worker wait (a frame written before may be gone). */
  outputStalls = 0;
  /** Logs whose committed length grew in this batch's release (reported once each). */
  readonly advancedLogs = new SlotList(1024);
  /** Logs whose attached leases changed this batch: each gets one `_presence` round. */
  readonly presenceChanged = new SlotList(1024);
  // Leases whose tail reads the backlog from storage, a bounded amount per batch.
  catchUp = new SlotList(1024);
  catchUpNext = new SlotList(1024);
  readonly catchUpServed = new SlotList(1024);
  batch = 0;
  /** Seconds since the epoch, set by the worker before each batch: entries carry it (retention by age). */
  nowSeconds = 0;
  /** This batch's counts for the metrics (src/metrics/pipeline-metrics.ts), flushed after it. */
  readonly stats = createBatchStats();
  /** Leases with a tail running (a gauge for the metrics). */
  tails = 0;
  /** The shard of the frame being processed: a handle is valid only with its log's shard. */
  frameShard = 0;

  constructor(config: PartitionConfig, rings: PartitionRings, storage: StorageReader) {
    invariant(config.workerIndex >= 0 && config.workerIndex < config.workerCount, 'worker index in range');
    this.config = config;
    this.rings = rings;
    this.storage = storage;
  }

  ownsShard(shard: number): boolean {
    return shard % this.config.workerCount === this.config.workerIndex;
  }

  deviceNumber(device: string): number {
    let number = this.deviceNumbers.get(device);
    if (number === undefined) {
      number = this.deviceNames.length;
      this.deviceNumbers.set(device, number);
      this.deviceNames.push(device);
      this.deviceBytes.push(Buffer.from(device, 'utf8'));
    }
    return number;
  }
}
