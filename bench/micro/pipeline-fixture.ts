// One partition with real rings, tables and a MemoryStorage, driven without threads like
// bench/alloc.ts: the real InputRouter for setup, runBatch / the phase functions, and a fake
// disk (instant: COMMITTED_POSITION jumps to what staging published; or storing: the records
// are applied to the MemoryStorage, as the simulation's disk does).
//
// To time a phase alone, the other side of each ring is played by the bench in O(1):
// - rings the IO thread or the disk thread would consume (output, advances, and staging when
//   no release follows) are freed by moving their read position to their write position;
// - rings the phase consumes (input, deletions, staging for io contributions) are replayed:
//   the consumer is moved back to records already published, and the fields that must change
//   (lsns, positions) are rewritten in place. Ring keeps its consumer position private, so
//   rewindConsumer() writes that field; a guard checks it still exists and took effect.
import { pack } from 'msgpackr';
import { CONTROL_PAYLOAD_BYTES_MAX, PREFIX_BYTES } from '../../src/constants.js';
import { InputRouter } from '../../src/io-thread/router.js';
import { DEFAULT_LIMITS } from '../../src/limits.js';
import { applyStaged } from '../../src/log/commit.js';
import { COMMITTED_POSITION } from '../../src/log/staging.js';
import { STAT_ERRORS } from '../../src/metrics/pipeline-metrics.js';
import { HEADER_B, OP_ERROR, OP_LEASED } from '../../src/net/protocol.js';
import { INPUT_CONTENT, OUTPUT_FRAMES, OUTPUT_SESSION } from '../../src/net/records.js';
import { runBatch } from '../../src/phases/batch.js';
import { releaseCommitted } from '../../src/phases/io-contributions.js';
import { Partition } from '../../src/phases/state.js';
import { Ring } from '../../src/ring/ring.js';
import { MemoryStorage } from '../../src/testing/memory-storage.js';
import { decodeFrames, frames, type ServerFrame } from '../../src/testing/wire.js';
import { createWorkerBuffers, openWorkerRings } from '../../src/workers/layout.js';
import { createSessionCounters, SessionCounters } from '../../src/workers/session-counters.js';

const WRITE_POSITION = 0;
const READ_POSITION = 16;
export const SITE = 'bench';

/**
 * Publish what the phase wrote (runBatch would, at the end of the batch), then play the
 * consumer: everything published is read and freed at once.
 */
export function freeAll(ring: Ring): void {
  ring.publish();
  Atomics.store(ring.control, READ_POSITION, Atomics.load(ring.control, WRITE_POSITION));
}

/** Move a ring's consumer back to `position`, so it reads records published before again. */
export function rewindConsumer(ring: Ring, position: number): void {
  (ring as unknown as { readLocal: number }).readLocal = position;
}

function checkRewind(ring: Ring): void {
  const position = ring.readPosition;
  if (typeof (ring as unknown as { readLocal?: unknown }).readLocal !== 'number') throw new Error('Ring no longer keeps readLocal: update rewindConsumer()');
  rewindConsumer(ring, position + 8);
  const moved = ring.readPosition === position + 8;
  rewindConsumer(ring, position);
  if (!moved) throw new Error('rewindConsumer() does not move Ring#readPosition: update it');
}

export interface Lease {
  session: number;
  handle: number;
  shard: number;
  /** The lease's slot in partition.leases. */
  slot: number;
}

export class PipelineFixture {
  readonly storage = new MemoryStorage();
  readonly partition: Partition;
  readonly router: InputRouter;
  readonly input: Ring;
  readonly output: Ring;
  readonly staging: Ring;
  readonly advances: Ring;
  readonly deletions: Ring;
  /** The fake disk's own cursor over staging (storing commits). */
  private readonly diskReader: Ring;
  private readonly storeCommits: boolean;
  /** After setup: output is freed in O(1), not decoded. */
  private benchMode = false;
  private readonly inbox = new Map<number, ServerFrame[]>();

  constructor(options: { storeCommits?: boolean } = {}) {
    this.storeCommits = options.storeCommits ?? false;
    const buffers = createWorkerBuffers(1 << 20, 1 << 22, 1 << 22);
    const rings = openWorkerRings(buffers);
    this.input = rings.input;
    this.output = rings.output;
    this.staging = rings.staging;
    this.advances = rings.advances;
    this.deletions = rings.deletions;
    this.diskReader = new Ring(buffers.arena, buffers.staging);
    const sessionCounters = new SessionCounters(createSessionCounters());
    const partition: Partition = new Partition(
      { workerIndex: 0, workerCount: 1, incarnation: 1, limits: DEFAULT_LIMITS, reportAdvances: true },
      {
        ...rings,
        stagingControl: new Int32Array(buffers.stagingControl),
        sessionCounters,
        outputFull: () => this.drainOutput(),
        advancesFull: () => freeAll(rings.advances),
        stagingFull: () => {
          rings.staging.publish();
          this.commit();
          releaseCommitted(partition);
        },
      },
      this.storage,
    );
    this.partition = partition;
    this.router = new InputRouter([this.input], { entryBytesMax: DEFAULT_LIMITS.entryBytesMax, controlBytesMax: CONTROL_PAYLOAD_BYTES_MAX, signalBytesMax: DEFAULT_LIMITS.signalBytesMax }, sessionCounters, () =>
      this.batch(),
    );
    checkRewind(this.input);
  }

  openSession(session: number): void {
    this.router.openSession(session, pack(['bench', `device-${session}`, [{ site: SITE, rights: 'rw' }]]));
    this.router.publish();
    this.inbox.set(session, []);
  }

  send(session: number, message: Uint8Array): void {
    const error = this.router.route(session, message, 0, message.length);
    if (error !== 0) throw new Error(`the router refused a frame: ${error}`);
    this.router.publish();
  }

  /** The fake disk commits everything published in staging. */
  commit(): void {
    if (this.storeCommits) {
      this.diskReader.refresh();
      applyStaged(this.diskReader, this.storage);
      Atomics.store(this.partition.rings.stagingControl, COMMITTED_POSITION, this.diskReader.readPosition | 0);
    } else {
      Atomics.store(this.partition.rings.stagingControl, COMMITTED_POSITION, Atomics.load(this.staging.control, WRITE_POSITION));
    }
  }

  /** One batch, then the commit of what it staged. */
  batch(): void {
    runBatch(this.partition);
    this.commit();
    this.drainOutput();
  }

  /** Batches until the input is processed and everything staged is committed and released. */
  settle(): void {
    for (let i = 0; i < 3; i++) this.batch();
    const errors = this.frames().filter((f) => f.op === OP_ERROR);
    if (errors.length > 0) throw new Error(`setup got errors: ${JSON.stringify(errors.map((f) => f.body))}`);
  }

  /** Lease `log` for `session`, settled: returns the handle and the lease's slot. */
  lease(session: number, log: string): Lease {
    const rid = 1000 + this.partition.leases.count;
    const request = frames.lease(SITE, log, rid, { newWriter: true });
    const shard = request.readUInt16LE(6);
    this.send(session, request);
    this.settle();
    const reply = this.inbox.get(session)!.find((f) => f.op === OP_LEASED && f.a === rid);
    if (reply === undefined) throw new Error(`no _leased for ${log}`);
    const slot = this.partition.leases.find(session, reply.b);
    return { session, handle: reply.b, shard, slot };
  }

  /** Every frame delivered so far (setup only). */
  frames(session?: number): ServerFrame[] {
    if (session !== undefined) return this.inbox.get(session) ?? [];
    return [...this.inbox.values()].flat();
  }

  /** Setup is over: from now on output is freed in O(1) (its consumer side is no longer used). */
  startBench(): void {
    this.benchMode = true;
    this.inbox.clear();
  }

  errorCount(): number {
    let errors = 0;
    for (let code = 0; code < 32; code++) errors += this.partition.stats[STAT_ERRORS + code]!;
    return errors;
  }

  private drainOutput(): void {
    const output = this.output;
    if (this.benchMode) {
      freeAll(output);
      return;
    }
    output.publish();
    if (output.refresh() === 0) return;
    for (let offset = output.peek(); offset >= 0; offset = output.peek()) {
      const session = output.view.getUint32(offset + OUTPUT_SESSION, true);
      this.inbox.get(session)?.push(...decodeFrames(Buffer.from(output.bytes.subarray(offset + OUTPUT_FRAMES, offset + output.recordLength))));
      output.advance();
    }
    output.release();
  }
}

/**
 * Input records published once and replayed: `replay()` rewrites the lsns of their writes and
 * acks (each log's writer moves on by its writes per record) and rewinds the input consumer
 * to the first record, so the next processClientInput / runBatch reads them all again.
 */
export class InputReplay {
  private readonly fixture: PipelineFixture;
  private readonly start: number;
  /** Per record: the input ring offsets of its lsn fields (writes, then the ack last). */
  private readonly lsnOffsets: Int32Array[] = [];
  private readonly nextLsn: Uint32Array;
  readonly writesPerRecord: number;

  /** One record per lease: `writes` writes of `payload` and an ack of the last. */
  constructor(fixture: PipelineFixture, leases: Lease[], writes: number, payload: Uint8Array) {
    this.fixture = fixture;
    this.writesPerRecord = writes;
    this.nextLsn = new Uint32Array(leases.length).fill(1);
    const input = fixture.input;
    input.refresh();
    if (input.peek() >= 0) throw new Error('input is not drained before the replayed records');
    const messages = leases.map((lease) => {
      const parts: Buffer[] = [];
      for (let i = 0; i < writes; i++) parts.push(frames.write(lease.shard, lease.handle, i + 1, payload));
      parts.push(frames.ack(lease.shard, lease.handle, writes));
      return { lease, bytes: Buffer.concat(parts), writeBytes: parts[0]!.length };
    });
    for (const message of messages) fixture.send(message.lease.session, message.bytes);
    input.refresh();
    input.peek(); // steps over a wrap marker, if one precedes the first record
    this.start = input.readPosition;
    for (const message of messages) {
      const offset = input.peek();
      if (offset < 0 || input.recordLength !== INPUT_CONTENT + message.bytes.length) throw new Error('the replayed records are not where they were routed');
      const frames = offset + INPUT_CONTENT;
      const lsnOffsets = new Int32Array(writes + 1);
      for (let i = 0; i < writes; i++) lsnOffsets[i] = frames + i * message.writeBytes + PREFIX_BYTES + HEADER_B;
      lsnOffsets[writes] = frames + writes * message.writeBytes + PREFIX_BYTES + HEADER_B;
      this.lsnOffsets.push(lsnOffsets);
      input.advance();
    }
    rewindConsumer(input, this.start);
  }

  /** Rewrite the lsns for the next round and rewind the input to the first record. */
  replay(): void {
    const view = this.fixture.input.view;
    const writes = this.writesPerRecord;
    for (let record = 0; record < this.lsnOffsets.length; record++) {
      const offsets = this.lsnOffsets[record]!;
      const first = this.nextLsn[record]!;
      for (let i = 0; i < writes; i++) view.setUint32(offsets[i]!, first + i, true);
      view.setUint32(offsets[writes]!, first + writes - 1, true);
      this.nextLsn[record] = first + writes;
    }
    rewindConsumer(this.fixture.input, this.start);
  }
}
