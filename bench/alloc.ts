// Allocation check of the hot path: 1 M write frames (plus acks) through the real frame
// routing (InputRouter) and the real phases (runBatch on W partitions), with a disk that
// commits instantly and an IO side that discards output, so only routing and phases run.
// Reports heap growth and the garbage collections that happened while they ran. A hot path
// that allocated even 16 bytes per frame would cause dozens of scavenges here.
// Run: npm run bench:alloc   (node --expose-gc --import=tsx bench/alloc.ts [--frames N])
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { pack } from 'msgpackr';
import { CONTROL_PAYLOAD_BYTES_MAX } from '../src/constants.js';
import { DEFAULT_LIMITS } from '../src/limits.js';
import { InputRouter } from '../src/io-thread/router.js';
import { COMMITTED_POSITION } from '../src/log/staging.js';
import { runBatch } from '../src/phases/batch.js';
import { releaseCommitted } from '../src/phases/io-contributions.js';
import { Partition } from '../src/phases/state.js';
import { Ring } from '../src/ring/ring.js';
import { createWorkerBuffers, openWorkerRings } from '../src/workers/layout.js';
import { createSessionCounters, SessionCounters } from '../src/workers/session-counters.js';
import { MemoryStorage } from '../src/testing/memory-storage.js';
import { frames } from '../src/testing/wire.js';
import { OP_LEASED } from '../src/net/protocol.js';
import { decodeFrames } from '../src/testing/wire.js';
import { OUTPUT_FRAMES } from '../src/net/records.js';

const { values } = parseArgs({ options: { frames: { type: 'string', default: '1000000' }, workers: { type: 'string', default: '2' } } });
const FRAMES = Number(values.frames);
const WORKERS = Number(values.workers);
const LOGS = 64;
const FRAMES_PER_MESSAGE = 64;
const ENTRY_BYTES = 100;

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with --expose-gc (npm run bench:alloc)');

const partitions: Partition[] = [];
const sessionCounters = new SessionCounters(createSessionCounters());
const inputs: Ring[] = [];
let discardOutput = true;
const captured: Buffer[] = [];

function drainOutput(ring: Ring): void {
  if (ring.refresh() === 0) return;
  for (let offset = ring.peek(); offset >= 0; offset = ring.peek()) {
    if (!discardOutput) captured.push(Buffer.from(ring.bytes.subarray(offset + OUTPUT_FRAMES, offset + ring.recordLength)));
    ring.advance();
  }
  ring.release();
}

/** The instant disk: everything published in staging is committed. */
function commitAll(partition: Partition): void {
  const staging = partition.rings.staging;
  Atomics.store(partition.rings.stagingControl, COMMITTED_POSITION, Atomics.load(staging.control, 0));
}

const storage = new MemoryStorage();
for (let workerIndex = 0; workerIndex < WORKERS; workerIndex++) {
  const buffers = createWorkerBuffers(1 << 24, 1 << 24, 1 << 25);
  const { input, peerInput, deletions, advances, output, staging } = openWorkerRings(buffers);
  const advancesReader = new Ring(buffers.arena, buffers.advances);
  inputs.push(input);
  const partition: Partition = new Partition(
    { workerIndex, workerCount: WORKERS, incarnation: 1, limits: DEFAULT_LIMITS, reportAdvances: true },
    {
      input,
      peerInput,
      deletions,
      advances,
      output,
      staging,
      stagingControl: new Int32Array(buffers.stagingControl),
      sessionCounters,
      outputFull: () => drainOutput(output),
      advancesFull: () => {
        advances.publish();
        advancesReader.skipAll();
      },
      stagingFull: () => {
        staging.publish();
        commitAll(partition);
        releaseCommitted(partition);
      },
    },
    storage,
  );
  partitions.push(partition);
}
const router = new InputRouter(inputs, { entryBytesMax: 1 << 20, controlBytesMax: CONTROL_PAYLOAD_BYTES_MAX, signalBytesMax: 64 << 10 }, sessionCounters, () => batch());

function batch(): void {
  for (const partition of partitions) {
    runBatch(partition);
    commitAll(partition);
  }
  for (const partition of partitions) drainOutput(partition.rings.output);
}

// Setup (allocates freely): one session leasing LOGS logs.
const SESSION = 1;
router.openSession(SESSION, pack(['bench', 'bench-device', [{ site: 'bench', rights: 'rw' }]]));
for (let log = 0; log < LOGS; log++) router.route(SESSION, ...wholeMessage(frames.lease('bench', `log-${log}`, log + 1, { newWriter: true })));
router.publish();
discardOutput = false;
batch();
batch();
const handles = new Map<number, { handle: number; shard: number }>();
for (const message of captured) {
  for (const frame of decodeFrames(message)) {
    if (frame.op === OP_LEASED) handles.set(frame.a - 1, { handle: frame.b, shard: frames.lease('bench', `log-${frame.a - 1}`, 1).readUInt16LE(6) });
  }
}
discardOutput = true;
if (handles.size !== LOGS) throw new Error(`leased ${handles.size} of ${LOGS} logs`);

function wholeMessage(bytes: Buffer): [Buffer, number, number] {
  return [bytes, 0, bytes.length];
}

// One reusable message per log: FRAMES_PER_MESSAGE writes then an ack of the last; the lsn
// fields are rewritten in place for each send.
const payload = Buffer.alloc(ENTRY_BYTES, 0x61);
const messages: { bytes: Buffer; lsnOffsets: number[]; ackLsnOffset: number }[] = [];
for (let log = 0; log < LOGS; log++) {
  const { handle, shard } = handles.get(log)!;
  const parts: Buffer[] = [];
  for (let i = 0; i < FRAMES_PER_MESSAGE; i++) parts.push(frames.write(shard, handle, 1, payload));
  parts.push(frames.ack(shard, handle, 1));
  const writeBytes = parts[0]!.length;
  messages.push({
    bytes: Buffer.concat(parts),
    lsnOffsets: Array.from({ length: FRAMES_PER_MESSAGE }, (_, i) => i * writeBytes + 16),
    ackLsnOffset: FRAMES_PER_MESSAGE * writeBytes + 16,
  });
}
const nextLsn = new Uint32Array(LOGS).fill(1);

function sendRound(log: number): void {
  const message = messages[log]!;
  for (let i = 0; i < FRAMES_PER_MESSAGE; i++) message.bytes.writeUInt32LE(nextLsn[log]! + i, message.lsnOffsets[i]!);
  nextLsn[log] = nextLsn[log]! + FRAMES_PER_MESSAGE;
  message.bytes.writeUInt32LE(nextLsn[log]! - 1, message.ackLsnOffset);
  router.route(SESSION, message.bytes, 0, message.bytes.length);
}

function run(frameCount: number): void {
  let sent = 0;
  let log = 0;
  while (sent < frameCount) {
    sendRound(log);
    log = (log + 1) % LOGS;
    sent += FRAMES_PER_MESSAGE + 1;
    if (log % 8 === 0) {
      router.publish();
      batch();
    }
  }
  router.publish();
  batch();
  batch();
}

// Warm up so the JIT has compiled the hot path, then measure.
run(200_000);
let scavenges = 0;
let majorCollections = 0;
const observer = new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const kind = (entry as unknown as { detail?: { kind?: number } }).detail?.kind;
    if (kind === 1) scavenges++;
    else majorCollections++;
  }
});
gc();
const heapBefore = process.memoryUsage().heapUsed;
observer.observe({ entryTypes: ['gc'] });
const started = performance.now();
run(FRAMES);
const elapsed = performance.now() - started;
const heapAfter = process.memoryUsage().heapUsed;
await new Promise((resolve) => setTimeout(resolve, 50));
observer.disconnect();
const appended = partitions.reduce((sum, p) => sum + p.logs.columns.committed.reduce((a, b) => a + b, 0), 0);

console.log(
  JSON.stringify({
    frames: FRAMES,
    workers: WORKERS,
    entriesCommitted: appended,
    framesPerSecond: Math.round(FRAMES / (elapsed / 1000)),
    heapGrowthBytes: heapAfter - heapBefore,
    heapGrowthBytesPerFrame: Number(((heapAfter - heapBefore) / FRAMES).toFixed(3)),
    scavenges,
    majorCollections,
  }),
);
