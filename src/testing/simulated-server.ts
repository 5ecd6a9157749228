// The server without threads, sockets or disk: W partitions over memory storage, the real
// InputRouter as the fake IO thread, and the phases run one partition after another (the
// sequential twin of the workers' fork-join). The simulation decides when batches run, when
// the fake disk commits and when output is delivered; a crash drops everything not committed.
import { pack } from 'msgpackr';
import { CONTROL_PAYLOAD_BYTES_MAX } from '../constants.js';
import type { Grant } from '../auth/token.js';
import { InputRouter } from '../io-thread/router.js';
import { applyStaged } from '../log/commit.js';
import { COMMITTED_POSITION } from '../log/staging.js';
import { OUTPUT_FRAMES, OUTPUT_SESSION } from '../net/records.js';
import { ERROR_NAMES, OP_ERROR } from '../net/protocol.js';
import { runBatch } from '../phases/batch.js';
import { releaseCommitted } from '../phases/io-contributions.js';
import { recoverPartition } from '../phases/recovery.js';
import { Partition, type PartitionLimits } from '../phases/state.js';
import { DEFAULT_LIMITS } from '../limits.js';
import { Ring } from '../ring/ring.js';
import { createWorkerBuffers, openWorkerRings } from '../workers/layout.js';
import { createSessionCounters, SessionCounters } from '../workers/session-counters.js';
import type { MemoryStorage } from './memory-storage.js';
import { decodeFrames, type ServerFrame } from './wire.js';

export interface SimulatedServerOptions {
  workerCount: number;
  incarnation: number;
  entryBytesMax: number;
  limits?: Partial<PartitionLimits>;
  /** Ring sizes, small so the simulation exercises wrap-around and full rings. */
  inputRingBytes: number;
  outputRingBytes: number;
  stagingRingBytes: number;
}

export class SimulatedServer {
  readonly storage: MemoryStorage;
  readonly partitions: Partition[] = [];
  readonly router: InputRouter;
  /** Frames delivered to each session, in order. */
  readonly inbox = new Map<number, ServerFrame[]>();
  private readonly diskReaders: Ring[] = [];
  batches = 0;

  constructor(storage: MemoryStorage, options: SimulatedServerOptions) {
    this.storage = storage;
    const inputs: Ring[] = [];
    const sessionCounters = new SessionCounters(createSessionCounters());
    for (let workerIndex = 0; workerIndex < options.workerCount; workerIndex++) {
      const buffers = createWorkerBuffers(options.inputRingBytes, options.outputRingBytes, options.stagingRingBytes);
      const { input, peerInput, deletions, advances, output, staging } = openWorkerRings(buffers);
      const stagingControl = new Int32Array(buffers.stagingControl);
      inputs.push(input);
      this.diskReaders.push(new Ring(buffers.arena, buffers.staging));
      const advancesReader = new Ring(buffers.arena, buffers.advances);
      const partition: Partition = new Partition(
        { workerIndex, workerCount: options.workerCount, incarnation: options.incarnation, limits: { ...DEFAULT_LIMITS, ...options.limits }, reportAdvances: true },
        {
          input,
          peerInput,
          deletions,
          advances,
          output,
          staging,
          stagingControl,
          sessionCounters,
          outputFull: () => {
            output.publish();
            this.deliver(output);
          },
          // No notifier here: the reports are produced (their path runs) and discarded.
          advancesFull: () => {
            advances.publish();
            advancesReader.skipAll();
          },
          stagingFull: () => {
            staging.publish();
            this.commitPartition(partition);
            releaseCommitted(partition);
          },
        },
        storage,
      );
      recoverPartition(partition);
      this.partitions.push(partition);
    }
    // The fake IO thread never blocks: a full input ring means the workers must run.
    this.router = new InputRouter(inputs, { entryBytesMax: options.entryBytesMax, controlBytesMax: CONTROL_PAYLOAD_BYTES_MAX, signalBytesMax: DEFAULT_LIMITS.signalBytesMax }, sessionCounters, () => this.runBatch());
  }

  openSession(session: number, user: string, device: string, grants: Grant[]): void {
    this.router.openSession(session, pack([user, device, grants]));
    this.router.publish();
    this.inbox.set(session, []);
  }

  closeSession(session: number): void {
    this.router.closeSession(session);
    this.router.publish();
  }

  /** A session event the IO thread would send (INPUT_SESSION_PAUSE, _RESUME, _REVOKE, _GRANTS). */
  sessionEvent(kind: number, session: number, content?: Uint8Array): void {
    this.router.broadcast(kind, session, content);
    this.router.publish();
  }

  /** A WebSocket message from `session`; IO-level refusals land in its inbox like the real ones. */
  send(session: number, message: Buffer): void {
    const error = this.router.route(session, message, 0, message.length);
    this.router.publish();
    if (error !== 0) {
      this.inbox.get(session)?.push({ op: OP_ERROR, flags: 0, word: error, a: 0, b: 0, c: 0, position: 0, d: 0, payload: Buffer.alloc(0), body: { name: ERROR_NAMES[error] } });
    }
  }

  /** One batch: every partition runs its phases, one after another. */
  runBatch(): void {
    for (const partition of this.partitions) runBatch(partition);
    this.batches++;
  }

  /** The fake disk commits everything staged so far, for every partition. */
  commit(): void {
    for (const partition of this.partitions) this.commitPartition(partition);
  }

  /** Deliver all published output to the inboxes. */
  deliverAll(): void {
    for (const partition of this.partitions) this.deliver(partition.rings.output);
  }

  private commitPartition(partition: Partition): void {
    // The fake disk thread's own cursor over this partition's staging ring.
    const reader = this.diskReaders[partition.config.workerIndex]!;
    reader.refresh();
    applyStaged(reader, this.storage);
    this.storage.commits++;
    Atomics.store(partition.rings.stagingControl, COMMITTED_POSITION, reader.readPosition | 0);
  }

  private deliver(output: Ring): void {
    const consumer = output;
    if (consumer.refresh() === 0) return;
    for (let offset = consumer.peek(); offset >= 0; offset = consumer.peek()) {
      const session = consumer.view.getUint32(offset + OUTPUT_SESSION, true);
      const frames = decodeFrames(Buffer.from(consumer.bytes.subarray(offset + OUTPUT_FRAMES, offset + consumer.recordLength)));
      this.inbox.get(session)?.push(...frames);
      consumer.advance();
    }
    consumer.release();
  }
}
