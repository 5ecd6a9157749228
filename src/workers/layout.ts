// The shared memory of the pipeline: one control block of Int32 words (doorbells, the
// barrier, per-batch totals, the stop flag) and, per worker, its rings.
import { BARRIER_INT32S } from './barrier.js';
import { DOORBELL_INT32S } from '../ring/doorbell.js';
import { INPUT_RING_BYTES, OUTPUT_RING_BYTES, STAGING_BYTES } from '../constants.js';
import { createRingArena, Ring, type RingRegion } from '../ring/ring.js';
import { STAGING_CONTROL_INT32S } from '../log/staging.js';
import { createSessionCounters } from './session-counters.js';

// Rung by the IO thread (new input) and the disk thread (a commit): workers have work.
export const WORK_DOORBELL = 0;
// Rung by the worker leader after a batch staged records: the disk thread has work.
export const DISK_DOORBELL = WORK_DOORBELL + DOORBELL_INT32S;
// Rung by workers that published output: the IO thread has frames to send.
export const OUTPUT_DOORBELL = DISK_DOORBELL + DOORBELL_INT32S;
export const BATCH_BARRIER = OUTPUT_DOORBELL + DOORBELL_INT32S;
// Per-batch totals summed by the workers, read and reset by the leader after the join.
export const BATCH_WORK_TOTAL = BATCH_BARRIER + BARRIER_INT32S;
export const BATCH_STAGED_TOTAL = BATCH_WORK_TOTAL + 1;
// Workers with staged records not yet committed and released (their acks are still owed).
export const BATCH_PENDING_TOTAL = BATCH_STAGED_TOTAL + 1;
// Set by the IO thread to stop; the leader turns it into STOP_BATCHES at a batch boundary.
export const SHUTDOWN_REQUESTED = BATCH_PENDING_TOTAL + 1;
export const STOP_BATCHES = SHUTDOWN_REQUESTED + 1;
// Workers and the disk thread count themselves out here as they stop.
export const THREADS_STOPPED = STOP_BATCHES + 1;
export const CONTROL_INT32S = 16;

const PEER_INPUT_RING_BYTES = 4096;
const DELETIONS_RING_BYTES = 64 << 10;
const ADVANCES_RING_BYTES = 256 << 10;

/** One worker's rings, laid out in one arena so entry copies between them allocate nothing. */
export interface WorkerBuffers {
  arena: SharedArrayBuffer;
  input: RingRegion;
  peerInput: RingRegion;
  deletions: RingRegion;
  advances: RingRegion;
  output: RingRegion;
  staging: RingRegion;
  stagingControl: SharedArrayBuffer;
}

export interface WorkerRings {
  input: Ring;
  peerInput: Ring;
  deletions: Ring;
  advances: Ring;
  output: Ring;
  staging: Ring;
}

export function createWorkerBuffers(inputBytes: number, outputBytes: number, stagingBytes: number): WorkerBuffers {
  const { buffer, regions } = createRingArena([inputBytes, PEER_INPUT_RING_BYTES, DELETIONS_RING_BYTES, ADVANCES_RING_BYTES, outputBytes, stagingBytes]);
  return {
    arena: buffer,
    input: regions[0]!,
    peerInput: regions[1]!,
    deletions: regions[2]!,
    advances: regions[3]!,
    output: regions[4]!,
    staging: regions[5]!,
    stagingControl: new SharedArrayBuffer(STAGING_CONTROL_INT32S * 4),
  };
}

export function openWorkerRings(buffers: WorkerBuffers): WorkerRings {
  return {
    input: new Ring(buffers.arena, buffers.input),
    peerInput: new Ring(buffers.arena, buffers.peerInput),
    deletions: new Ring(buffers.arena, buffers.deletions),
    advances: new Ring(buffers.arena, buffers.advances),
    output: new Ring(buffers.arena, buffers.output),
    staging: new Ring(buffers.arena, buffers.staging),
  };
}

export interface PipelineBuffers {
  control: SharedArrayBuffer;
  /** Per-session counts shared by all workers (session-counters.ts). */
  sessionCounters: SharedArrayBuffer;
  workers: WorkerBuffers[];
}

export function createPipelineBuffers(workerCount: number): PipelineBuffers {
  const workers: WorkerBuffers[] = [];
  for (let index = 0; index < workerCount; index++) {
    workers.push(createWorkerBuffers(INPUT_RING_BYTES, OUTPUT_RING_BYTES, STAGING_BYTES));
  }
  return { control: new SharedArrayBuffer(CONTROL_INT32S * 4), sessionCounters: createSessionCounters(), workers };
}
