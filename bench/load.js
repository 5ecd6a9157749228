// Load generator for tailgrove: N writer connections pipelining appends, M tailer
// connections tailing logs from 0, over the raw WebSocket client (bench/raw-websocket.js).
//
//   npm run build && node bench/load.js [options]
//
//   --connections N   writer connections (default 16)
//   --tailers M       tailer connections (default 4; 0 with --mixed); tailer t tails log t % L
//   --logs L          logs, spread over the writers (default 16; 10000 with --mixed)
//   --size B          entry bytes (default 100; ≥ 8 carries a send timestamp for tail latency)
//   --seconds S       measured seconds, after a 1 s warm-up (default 10)
//   --warmup S        warm-up seconds (default 1)
//   --pipeline P      writes in flight per writer connection (default 256; 4 with --mixed);
//                     with --rate, a safety cap on the writes in flight
//   --rate R          open loop: R appends per second in all, spread over the writers and
//                     paced by a 1 ms timer with catch-up; latency counts from the time the
//                     schedule intended; time the --pipeline cap held back due writes is
//                     reported as rateShortfall
//   --workers W       server workers when spawning the server (default: the server's default)
//   --engine E        native | native-free | auto, passed to the spawned server (when its
//                     --help lists --engine; default: the server's default)
//   --server PATH     the server entry point to spawn (default server.js, from the repo root)
//   --url ws://…      use a running server instead of spawning one (needs --secret)
//   --secret S        that server's secret (the content of <dataDir>/secret)
//   --mixed           the mixed workload: --devices D connections over --logs L logs; device d
//                     appends to log d % L and tails --device-tails others (pseudo-random by
//                     --seed) from 0, on the same connection
//   --devices D       devices of --mixed (default 1000)
//   --device-tails K  logs each device tails in --mixed (default 10)
//   --seed N          seed of the --mixed choice of tailed logs (default 1)
//   --echo            also measure the bare uWS echo server (bench/echo-server.js) for a ratio
//   --echo-only       measure only the echo server (no tailgrove server needed)
//   --batch K         frames per message for --echo-only (default 1: pure message rate)
//   --pubsub-only     measure only uWS pub/sub (bench/pubsub-server.js): 1 publisher keeps
//                     --pipeline messages (default 32) of --size bytes in flight (not yet
//                     received by every subscriber) on one topic, --tailers subscribers;
//                     deliveries/s and publish→receive latency
//   --mask zero|random  client masking key (see raw-websocket.js; default zero)
//   --json            print only the final JSON line (machine output)
//   --verbose         per-second progress on stderr, server output on exit
//
// Prints a compact table on stdout, then one JSON line with every figure; exits 1 when the
// run saw a protocol anomaly, unacknowledged writes or tailers short of the tails. The JSON
// has `mode` (load | mixed | echo | pubsub); every mode has appendsPerSec (echo: messages
// echoed/s; pubsub: publishes/s), deliveredPerSec (pubsub: messages received by all
// subscribers/s), ackLatency (echo: round trip) and tailLatency (pubsub: publish→receive).
//
// Reading the figures: a writer keeps at most P writes in flight, so appends/s can never
// exceed connections × P ÷ mean ack latency. When appends/s sits at that bound, the run
// measured latency, not capacity: raise --pipeline until appends/s stops growing.
import { parseArgs } from 'node:util';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { pack, unpack } from 'msgpackr';
import { mintToken, shardOf } from '../dist/index.js';
import { PREFIX_BYTES, PROTOCOL_VERSION, SHARD_COUNT } from '../dist/constants.js';
import { clientCpuSeconds, processCpuSeconds } from './cpu.js';
import {
  ENTRIES_CAUGHT_UP,
  ERROR,
  ERROR_NAMES,
  HEADER_A,
  HEADER_B,
  HEADER_BYTES,
  HEADER_C,
  HEADER_D,
  HEADER_FLAGS,
  HEADER_OP,
  HEADER_POSITION,
  HEADER_WORD,
  LEASE_NEW_WRITER,
  NACK_LSN_GAP,
  OP_ACK,
  OP_ACKED,
  OP_CONNECT,
  OP_CONNECTED,
  OP_ENTRIES,
  OP_ERROR,
  OP_LEASE,
  OP_LEASED,
  OP_NACKED,
  OP_TAIL,
  OP_WRITE,
  PREFIX_HEADER_LENGTH,
  PREFIX_PAYLOAD_LENGTH,
  PREFIX_SHARD,
} from '../dist/net/protocol.js';
import { RawWebSocket, HEADER_ROOM } from './raw-websocket.js';

const repositoryRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

// ---------------------------------------------------------------------------------------
// Options

const optionSpec = {
  connections: { type: 'string', default: '16' },
  tailers: { type: 'string' }, // 4, or 0 with --mixed
  logs: { type: 'string' }, // 16, or 10000 with --mixed
  size: { type: 'string', default: '100' },
  seconds: { type: 'string', default: '10' },
  warmup: { type: 'string', default: '1' },
  pipeline: { type: 'string' }, // 256, or 4 with --mixed
  rate: { type: 'string' },
  workers: { type: 'string' },
  engine: { type: 'string' },
  server: { type: 'string', default: 'server.js' },
  url: { type: 'string' },
  secret: { type: 'string' },
  mixed: { type: 'boolean', default: false },
  devices: { type: 'string', default: '1000' },
  'device-tails': { type: 'string', default: '10' },
  seed: { type: 'string', default: '1' },
  echo: { type: 'boolean', default: false },
  'echo-only': { type: 'boolean', default: false },
  batch: { type: 'string', default: '1' },
  'pubsub-only': { type: 'boolean', default: false },
  mask: { type: 'string', default: 'zero' },
  json: { type: 'boolean', default: false },
  verbose: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
};

/** The usage text is the comment at the top of this file. */
function usage() {
  const source = readFileSync(fileURLToPath(import.meta.url), 'utf8');
  return source.split('\n').filter((line, index, lines) => line.startsWith('//') && lines.slice(0, index).every((l) => l.startsWith('//'))).map((line) => line.replace(/^\/\/ ?/, '')).join('\n');
}

let options;
try {
  ({ values: options } = parseArgs({ options: optionSpec }));
} catch (error) {
  console.error(`load: ${error.message}\n\n${usage()}`);
  process.exit(2);
}
if (options.help) {
  console.log(usage());
  process.exit(0);
}

function integerOption(name, min) {
  const value = Number(options[name]);
  if (!Number.isInteger(value) || value < min) {
    console.error(`load: --${name} must be an integer ≥ ${min} (got ${options[name]})`);
    process.exit(2);
  }
  return value;
}

const MIXED = options.mixed;
const PUBSUB_ONLY = options['pubsub-only'];
if ([MIXED, PUBSUB_ONLY, options['echo-only']].filter(Boolean).length > 1) {
  console.error('load: --mixed, --echo-only and --pubsub-only exclude each other');
  process.exit(2);
}
if (options.tailers === undefined) options.tailers = MIXED ? '0' : '4';
if (options.logs === undefined) options.logs = MIXED ? '10000' : '16';
if (options.pipeline === undefined) options.pipeline = MIXED ? '4' : PUBSUB_ONLY ? '32' : '256';
const DEVICES = integerOption('devices', 1);
const DEVICE_TAILS = integerOption('device-tails', 0);
const SEED = integerOption('seed', 0);
// In --mixed, the writers are the devices.
const CONNECTIONS = MIXED ? DEVICES : integerOption('connections', 1);
const TAILERS = integerOption('tailers', 0);
const LOGS = integerOption('logs', 1);
const SIZE = integerOption('size', 0);
const SECONDS = Number(options.seconds);
const WARMUP = Number(options.warmup);
const PIPELINE = integerOption('pipeline', 1);
const WORKERS = options.workers === undefined ? null : integerOption('workers', 1);
const ECHO_BATCH = integerOption('batch', 1);
const RATE = options.rate === undefined ? 0 : Number(options.rate);
const ENGINE = options.engine ?? null;
const MASK = options.mask;
const VERBOSE = options.verbose;
const JSON_ONLY = options.json;
if (!(SECONDS > 0) || !(WARMUP >= 0)) {
  console.error('load: --seconds must be > 0 and --warmup ≥ 0');
  process.exit(2);
}
if (options.rate !== undefined && !(RATE > 0)) {
  console.error(`load: --rate must be > 0 appends per second (got ${options.rate})`);
  process.exit(2);
}
if (ENGINE !== null && !['native', 'native-free', 'auto'].includes(ENGINE)) {
  console.error(`load: --engine is native, native-free or auto (got ${ENGINE})`);
  process.exit(2);
}
if (PUBSUB_ONLY && SIZE < 16) {
  console.error('load: --pubsub-only needs --size ≥ 16 (a sequence number and a timestamp travel in each message)');
  process.exit(2);
}
if (MASK !== 'zero' && MASK !== 'random') {
  console.error('load: --mask is zero or random');
  process.exit(2);
}
if (options.url && !options.secret) {
  console.error('load: --url needs --secret (the server\'s <dataDir>/secret)');
  process.exit(2);
}

/** The human-readable report (stdout); silent with --json, which prints only the JSON line. */
const say = JSON_ONLY ? () => {} : (...args) => console.log(...args);

const SITE = 'bench';
const RUN_ID = Date.now().toString(36) + Math.floor(Math.random() * 1e6).toString(36);
// Unique log names per run: against a long-running server, tailing "from 0" then measures
// this run's entries, not an old backlog.
const logName = (index) => `run-${RUN_ID}-${index}`;

// Frame geometry, from the shared constants.
const WRITE_HEADER = HEADER_BYTES[OP_WRITE];
const ACK_HEADER = HEADER_BYTES[OP_ACK];
const WRITE_FRAME_BYTES = PREFIX_BYTES + WRITE_HEADER + SIZE;
const ACK_FRAME_BYTES = PREFIX_BYTES + ACK_HEADER;
const H = PREFIX_BYTES; // op header offset inside a frame
const MESSAGE_BYTES_TARGET = 1 << 20; // split batches above ~1 MiB per WebSocket message
const REFILL = Math.max(1, PIPELINE >> 3); // top up once this many pipeline slots are free
const STALL_MS = 2000; // no ack progress for this long with writes in flight: resend

// ---------------------------------------------------------------------------------------
// Latency histogram: log-linear over integer microseconds, < 0.8 % relative error,
// preallocated (recording never allocates).

class Histogram {
  constructor() {
    this.counts = new Float64Array(256 + 24 * 128);
    this.reset();
  }
  reset() {
    this.counts.fill(0);
    this.total = 0;
    this.sum = 0;
    this.max = 0;
  }
  record(micros) {
    let v = micros < 0 ? 0 : Math.round(micros);
    if (v > 0x7fffffff) v = 0x7fffffff;
    let index;
    if (v < 256) index = v;
    else {
      const exponent = 31 - Math.clz32(v);
      const shift = exponent - 7;
      index = 256 + (exponent - 8) * 128 + ((v >>> shift) - 128);
    }
    this.counts[index]++;
    this.total++;
    this.sum += v;
    if (v > this.max) this.max = v;
  }
  /** Value (µs) at quantile q, as the middle of its bucket. */
  quantile(q) {
    if (this.total === 0) return NaN;
    const rank = Math.max(1, Math.ceil(q * this.total));
    let seen = 0;
    for (let index = 0; index < this.counts.length; index++) {
      seen += this.counts[index];
      if (seen >= rank) {
        if (index < 256) return index;
        const exponent = ((index - 256) >>> 7) + 8;
        const shift = exponent - 7;
        const mantissa = ((index - 256) & 127) + 128;
        return Math.min(this.max, (mantissa + 0.5) * 2 ** shift);
      }
    }
    return this.max;
  }
  summary() {
    const ms = (micros) => (Number.isNaN(micros) ? null : Math.round(micros) / 1000);
    return {
      count: this.total,
      meanMs: this.total ? ms(this.sum / this.total) : null,
      p50Ms: ms(this.quantile(0.5)),
      p99Ms: ms(this.quantile(0.99)),
      p999Ms: ms(this.quantile(0.999)),
      maxMs: this.total ? ms(this.max) : null,
    };
  }
}

// ---------------------------------------------------------------------------------------
// Global counters (read at the start and the end of the measured window).

const stats = {
  acks: 0, // writes acknowledged (_ack for a write in flight)
  writesSent: 0, // write frames sent, resends included
  writeMessages: 0, // WebSocket messages carrying writes
  acksSent: 0, // ack frames sent
  entries: 0, // entries delivered to tailers
  entryBytes: 0,
  duplicateAcks: 0, // _ack for an lsn already acknowledged (after a resend): expected, harmless
  nacks: 0,
  overloaded: 0,
  resends: 0, // go-back-N rewinds (LSN_GAP or stall)
  errors: new Map(), // name → count (unexpected _error frames)
  anomalies: [], // protocol violations observed (first few, verbatim)
  anomalyCount: 0,
};
const ackLatency = new Histogram(); // write sent → _ack received
const tailLatency = new Histogram(); // write sent → entry delivered at a tailer
let measuring = false;

function anomaly(message) {
  stats.anomalyCount++;
  if (stats.anomalies.length < 20) stats.anomalies.push(message);
  if (VERBOSE) console.error(`anomaly: ${message}`);
}

// ---------------------------------------------------------------------------------------
// A session: one connection, the connect handshake and the control requests.

function controlFrame(op, shard, fill, payload) {
  const headerLength = HEADER_BYTES[op];
  const length = PREFIX_BYTES + headerLength + (payload ? payload.length : 0);
  const buffer = Buffer.alloc(HEADER_ROOM + length);
  const f = HEADER_ROOM;
  buffer.writeUInt16LE(headerLength, f + PREFIX_HEADER_LENGTH);
  buffer.writeUInt32LE(payload ? payload.length : 0, f + PREFIX_PAYLOAD_LENGTH);
  buffer.writeUInt16LE(shard, f + PREFIX_SHARD);
  buffer[f + H + HEADER_OP] = op;
  fill(buffer, f + H);
  if (payload) payload.copy(buffer, f + H + headerLength);
  return buffer;
}

class Session {
  constructor(name, url, token) {
    this.name = name;
    this.url = url;
    this.token = token;
    this.nextRid = 1;
    this.requests = new Map(); // rid → { resolve, reject, what }
    this.closed = false;
    this.limits = null;
  }

  async open() {
    this.ws = await RawWebSocket.connect(this.url, {
      mask: MASK,
      onMessage: (buffer, start, end) => this.onMessage(buffer, start, end),
      onClose: (code, reason, error) => this.onClose(code, reason, error),
    });
    const rid = this.nextRid++;
    const answer = this.request(rid, 'connect');
    this.sendControl(
      controlFrame(OP_CONNECT, 0, (b, h) => {
        b.writeUInt16LE(PROTOCOL_VERSION, h + HEADER_WORD);
        b.writeUInt32LE(rid, h + HEADER_A);
      }, pack({ token: this.token })),
    );
    this.limits = await answer;
    return this;
  }

  request(rid, what) {
    return new Promise((resolve, reject) => this.requests.set(rid, { resolve, reject, what }));
  }

  sendControl(buffer) {
    this.ws.sendFramed(buffer, HEADER_ROOM, buffer.length);
  }

  /** Lease `log` on SITE; resolves { handle, shard, tail, writerEpoch, nextLsn, info }. */
  async lease(log, newWriter) {
    const rid = this.nextRid++;
    const shard = shardOf(SITE, log, this.limits.shardCount ?? SHARD_COUNT);
    const answer = this.request(rid, `lease ${log}`);
    this.sendControl(
      controlFrame(OP_LEASE, shard, (b, h) => {
        b[h + HEADER_FLAGS] = newWriter ? LEASE_NEW_WRITER : 0;
        b.writeUInt32LE(rid, h + HEADER_A);
        b.writeUInt32LE(0, h + HEADER_B);
      }, pack([SITE, log])),
    );
    const leased = await answer;
    return { ...leased, shard, log };
  }

  onClose(code, reason, error) {
    if (this.closed) return;
    this.closed = true;
    const why = `${this.name}: connection closed (${code}${reason ? ` ${reason}` : ''})${error ? `: ${error.message}` : ''}`;
    for (const { reject } of this.requests.values()) reject(new Error(why));
    this.requests.clear();
    if (!shuttingDown && !serverDied) anomaly(why);
  }

  close() {
    if (!this.closed && this.ws) this.ws.close(1000);
  }

  onMessage(b, start, end) {
    const now = performance.now();
    let offset = start;
    while (offset < end) {
      if (end - offset < PREFIX_BYTES + 4) {
        anomaly(`${this.name}: ${end - offset} trailing bytes in a message (not a whole frame)`);
        return;
      }
      const headerLength = b.readUInt16LE(offset + PREFIX_HEADER_LENGTH);
      const payloadLength = b.readUInt32LE(offset + PREFIX_PAYLOAD_LENGTH);
      const h = offset + H;
      const payload = h + headerLength;
      const next = payload + payloadLength;
      if (next > end) {
        anomaly(`${this.name}: frame of ${next - offset} bytes overruns its message (${end - offset} left)`);
        return;
      }
      const op = b[h + HEADER_OP];
      const expected = HEADER_BYTES[op];
      if (expected === undefined || op < 0x80) {
        anomaly(`${this.name}: unknown server op 0x${op.toString(16)}`);
      } else if (headerLength !== expected) {
        anomaly(`${this.name}: op 0x${op.toString(16)} with header length ${headerLength}, expected ${expected}`);
      } else {
        this.frame(op, b, h, payload, next, now);
      }
      offset = next;
    }
    this.afterMessage();
  }

  afterMessage() {}

  frame(op, b, h, payload, end, now) {
    switch (op) {
      case OP_ACKED:
        return this.onAcked(b.readUInt32LE(h + HEADER_A), b.readUInt32LE(h + HEADER_B), b.readDoubleLE(h + HEADER_POSITION), now);
      case OP_ENTRIES:
        return this.onEntries(b, h, payload, end, now);
      case OP_NACKED:
        return this.onNacked(b, h);
      case OP_CONNECTED: {
        const rid = b.readUInt32LE(h + HEADER_A);
        const info = unpack(b.subarray(payload, end));
        return this.answer(rid, info);
      }
      case OP_LEASED: {
        const rid = b.readUInt32LE(h + HEADER_A);
        const info = unpack(b.subarray(payload, end));
        return this.answer(rid, {
          handle: b.readUInt32LE(h + HEADER_B),
          writerEpoch: b.readUInt32LE(h + HEADER_C),
          tail: b.readDoubleLE(h + HEADER_POSITION),
          nextLsn: b.readUInt32LE(h + HEADER_D),
          info,
        });
      }
      case OP_ERROR:
        return this.onError(b, h, payload, end);
    }
  }

  answer(rid, value) {
    const request = this.requests.get(rid);
    if (!request) return anomaly(`${this.name}: answer for unknown rid ${rid}`);
    this.requests.delete(rid);
    request.resolve(value);
  }

  onError(b, h, payload, end) {
    const code = b.readUInt16LE(h + HEADER_WORD);
    const rid = b.readUInt32LE(h + HEADER_A);
    const handle = b.readUInt32LE(h + HEADER_B);
    if (code === ERROR.OVERLOADED) {
      stats.overloaded++;
      this.onOverloaded(handle);
      return;
    }
    let detail;
    try {
      detail = unpack(b.subarray(payload, end));
    } catch {
      detail = { message: '(undecodable payload)' };
    }
    const name = ERROR_NAMES[code] ?? `code ${code}`;
    const request = rid !== 0 ? this.requests.get(rid) : undefined;
    if (request) {
      this.requests.delete(rid);
      request.reject(new Error(`${this.name}: ${request.what}: _error ${name}: ${detail?.message ?? ''}`));
      return;
    }
    stats.errors.set(name, (stats.errors.get(name) ?? 0) + 1);
    if ((stats.errors.get(name) ?? 0) <= 3) {
      anomaly(`${this.name}: _error ${name} (rid ${rid}, handle ${handle}): ${JSON.stringify(detail)}`);
    }
  }

  onOverloaded() {}
  onAcked(handle, lsn) {
    anomaly(`${this.name}: unexpected _ack (handle ${handle}, lsn ${lsn})`);
  }
  onNacked(b, h) {
    anomaly(`${this.name}: unexpected _nack (handle ${b.readUInt32LE(h + HEADER_A)})`);
  }
  onEntries(b, h) {
    anomaly(`${this.name}: unexpected _entries (handle ${b.readUInt32LE(h + HEADER_A)})`);
  }
}

// ---------------------------------------------------------------------------------------
// Writers: each writer connection holds one or more leases and keeps PIPELINE writes in
// flight over all of them, round robin. Per lease, the send time of each lsn sits in a
// preallocated ring indexed by lsn; an ack frame goes out with every batch whose lease
// advanced, so the server can drop completion records.

const IDLE = 0;
const IN_FLIGHT = 1;
const DONE = 2;

function pow2AtLeast(n) {
  let size = 1;
  while (size < n) size *= 2;
  return size;
}

class Lease {
  constructor(leased, logIndex) {
    this.handle = leased.handle;
    this.shard = leased.shard;
    this.logIndex = logIndex;
    this.log = leased.log;
    this.nextLsn = leased.nextLsn || 1; // next lsn to send
    this.doneUpTo = this.nextLsn - 1; // every lsn ≤ this has its _ack
    this.ackSent = this.doneUpTo; // last lsn sent in an ack frame
    this.ringSize = pow2AtLeast(PIPELINE * 2);
    this.mask = this.ringSize - 1;
    this.sentAt = new Float64Array(this.ringSize);
    // Per lsn in (doneUpTo, doneUpTo + ringSize): IDLE, IN_FLIGHT or DONE. Counting in
    // flight per lsn keeps the pipeline exact across rewinds and late or duplicate acks.
    this.state = new Uint8Array(this.ringSize);
    this.highestSent = this.doneUpTo;
    // Go-back-N after a dropped write: every write frame gets exactly one answer (_ack,
    // _nack or _error) and refusals come back in order, so after rewinding at a nack the
    // answers to the frames sent after the nacked one are stale: ignore that many.
    this.framesSent = 0; // write frames sent on this lease (wraps at 2^32)
    this.sendSeq = new Uint32Array(this.ringSize); // framesSent after the latest send of each lsn
    this.ignoreReplies = 0;
    this.limit = Infinity; // highest lsn allowed (set to highestSent on stop: resends only)
    // Frame template: prefix + header + payload; per write only lsn and the timestamp change.
    this.template = Buffer.alloc(WRITE_FRAME_BYTES);
    const t = this.template;
    t.writeUInt16LE(WRITE_HEADER, PREFIX_HEADER_LENGTH);
    t.writeUInt32LE(SIZE, PREFIX_PAYLOAD_LENGTH);
    t.writeUInt16LE(this.shard, PREFIX_SHARD);
    t[H + HEADER_OP] = OP_WRITE;
    t.writeUInt32LE(this.handle, H + HEADER_A);
    for (let i = H + WRITE_HEADER; i < WRITE_FRAME_BYTES; i++) t[i] = (i * 31 + logIndex) & 0xff;
  }

  /** Rewind sending to lsn `from` (go-back-N); returns the writes taken out of flight. */
  rewind(from) {
    let freed = 0;
    for (let lsn = from; lsn < this.nextLsn; lsn++) {
      if (this.state[lsn & this.mask] === IN_FLIGHT) {
        this.state[lsn & this.mask] = IDLE;
        freed++;
      }
    }
    this.nextLsn = from;
    stats.resends++;
    return freed;
  }
}

class Writer extends Session {
  constructor(index, url, token) {
    super(`writer ${index}`, url, token);
    this.leases = [];
    this.byHandle = new Map();
    this.inflight = 0;
    this.roundRobin = 0;
    this.stopped = true;
    this.lastProgress = 0;
    this.progressAt = 0;
    this.acked = 0;
    // --rate: this writer's schedule, `perMs` writes per millisecond from `t0`; `scheduled`
    // writes of it went out. A write's timestamp is the time the schedule intended.
    this.t0 = 0;
    this.perMs = 0;
    this.scheduled = 0;
    // Buffer pool: a message buffer returns to the pool once the socket has written it.
    const frames = Math.max(1, Math.min(PIPELINE, Math.floor(MESSAGE_BYTES_TARGET / WRITE_FRAME_BYTES)));
    this.framesPerMessage = frames;
    this.poolBufferBytes = 0; // set by start(), once the leases are known (room for one ack each)
    this.pool = [];
  }

  /** Leases logs `indices`, up to 256 requests in flight (a lease commits: group commit). */
  async addLeases(indices) {
    for (let i = 0; i < indices.length; i += 256) {
      await Promise.all(indices.slice(i, i + 256).map((index) => this.addLease(index)));
    }
  }

  async addLease(logIndex) {
    const leased = await this.lease(logName(logIndex), true);
    if (leased.nextLsn !== 1) anomaly(`${this.name}: NEW_WRITER lease of ${leased.log} returned nextLsn ${leased.nextLsn}, expected 1`);
    const lease = new Lease(leased, logIndex);
    this.leases.push(lease);
    this.byHandle.set(lease.handle, lease);
  }

  start() {
    this.poolBufferBytes = HEADER_ROOM + this.framesPerMessage * WRITE_FRAME_BYTES + this.leases.length * ACK_FRAME_BYTES;
    this.stopped = false;
    this.progressAt = performance.now();
    this.pump();
  }

  takeBuffer() {
    const pooled = this.pool.pop();
    if (pooled) return pooled;
    const entry = { buffer: Buffer.allocUnsafeSlow(this.poolBufferBytes), release: null };
    entry.release = () => this.pool.push(entry);
    return entry;
  }

  afterMessage() {
    if (!this.stopped || this.hasAcksToSend()) this.pump();
  }

  hasAcksToSend() {
    for (const lease of this.leases) if (lease.doneUpTo > lease.ackSent) return true;
    return false;
  }

  /** Send what the pipeline allows, in as few messages as possible, with pending acks. */
  pump() {
    if (this.closed) return;
    // Once stopped, only resends (lsn ≤ lease.limit) go out, one slot suffices. With --rate,
    // only the writes due by the schedule go out, as soon as they are due.
    const paced = RATE > 0 && !this.stopped;
    const threshold = this.stopped || paced ? 1 : REFILL;
    const now = performance.now();
    let free = PIPELINE - this.inflight;
    if (paced) free = Math.min(free, this.due(now));
    let acksDue = this.hasAcksToSend();
    if (free < threshold && !(acksDue && (this.stopped || this.inflight === 0))) return;
    const leases = this.leases;
    while (free >= threshold || acksDue) {
      const entry = this.takeBuffer();
      const b = entry.buffer;
      let offset = HEADER_ROOM;
      if (acksDue) {
        for (const lease of leases) {
          if (lease.doneUpTo <= lease.ackSent) continue;
          b.writeUInt16LE(ACK_HEADER, offset + PREFIX_HEADER_LENGTH);
          b.writeUInt32LE(0, offset + PREFIX_PAYLOAD_LENGTH);
          b.writeUInt16LE(lease.shard, offset + PREFIX_SHARD);
          b[offset + H + HEADER_OP] = OP_ACK;
          b[offset + H + HEADER_FLAGS] = 0;
          b.writeUInt16LE(0, offset + H + HEADER_WORD);
          b.writeUInt32LE(lease.handle, offset + H + HEADER_A);
          b.writeUInt32LE(lease.doneUpTo, offset + H + HEADER_B);
          lease.ackSent = lease.doneUpTo;
          offset += ACK_FRAME_BYTES;
          stats.acksSent++;
        }
        acksDue = false;
      }
      let writes = 0;
      let skips = 0;
      const count = free > 0 ? Math.min(free, this.framesPerMessage) : 0;
      while (writes < count && skips < leases.length) {
        const lease = leases[this.roundRobin];
        this.roundRobin = this.roundRobin + 1 === leases.length ? 0 : this.roundRobin + 1;
        let lsn = lease.nextLsn;
        // After a rewind, skip lsns whose _ack came meanwhile.
        if (lsn <= lease.doneUpTo) lsn = lease.doneUpTo + 1;
        while (lsn - lease.doneUpTo < lease.ringSize && lease.state[lsn & lease.mask] === DONE) lsn++;
        // Ring full (only after stalls), or stopped with nothing to resend on this lease.
        if (lsn - lease.doneUpTo >= lease.ringSize || lsn > lease.limit) {
          lease.nextLsn = lsn;
          skips++;
          continue;
        }
        skips = 0;
        const slot = lsn & lease.mask;
        lease.nextLsn = lsn + 1;
        if (lsn > lease.highestSent) lease.highestSent = lsn;
        const stamp = paced ? this.t0 + ++this.scheduled / this.perMs : now;
        lease.template.copy(b, offset);
        b.writeUInt32LE(lsn, offset + H + HEADER_B);
        if (SIZE >= 8) b.writeDoubleLE(stamp, offset + H + WRITE_HEADER);
        lease.sentAt[slot] = stamp;
        lease.framesSent = (lease.framesSent + 1) >>> 0;
        lease.sendSeq[slot] = lease.framesSent;
        if (lease.state[slot] !== IN_FLIGHT) {
          lease.state[slot] = IN_FLIGHT;
          this.inflight++;
        }
        offset += WRITE_FRAME_BYTES;
        writes++;
      }
      free -= writes;
      stats.writesSent += writes;
      if (writes > 0) stats.writeMessages++;
      if (offset === HEADER_ROOM) {
        entry.release();
        break;
      }
      this.ws.sendFramed(b, HEADER_ROOM, offset, entry.release);
      if (writes < count) break;
    }
  }

  /** --rate: writes the schedule wants sent by `now` that have not gone out. */
  due(now) {
    return Math.floor((now - this.t0) * this.perMs) - this.scheduled;
  }

  /** Stop new writes; keep resending what a dropped write forces to resend. */
  stop() {
    this.stopped = true;
    for (const lease of this.leases) lease.limit = lease.highestSent;
  }

  onAcked(handle, lsn, _position, now) {
    const lease = this.byHandle.get(handle);
    if (lease === undefined) return anomaly(`${this.name}: _ack for unknown handle ${handle}`);
    if (lsn > lease.highestSent) {
      return anomaly(`${this.name}: _ack for lsn ${lsn} never sent on ${lease.log} (highest sent ${lease.highestSent})`);
    }
    const slot = lsn & lease.mask;
    if (lsn <= lease.doneUpTo || lease.state[slot] === DONE) {
      stats.duplicateAcks++;
      return;
    }
    if (lease.state[slot] === IN_FLIGHT) this.inflight--;
    lease.state[slot] = DONE;
    while (lease.state[(lease.doneUpTo + 1) & lease.mask] === DONE) {
      lease.doneUpTo++;
      lease.state[lease.doneUpTo & lease.mask] = IDLE;
    }
    this.acked++;
    stats.acks++;
    logAcked[lease.logIndex]++;
    if (measuring) ackLatency.record((now - lease.sentAt[lsn & lease.mask]) * 1000);
  }

  onNacked(b, h) {
    stats.nacks++;
    const reason = b[h + HEADER_FLAGS];
    const handle = b.readUInt32LE(h + HEADER_A);
    const lsn = b.readUInt32LE(h + HEADER_B);
    const expected = b.readUInt32LE(h + HEADER_C);
    const lease = this.byHandle.get(handle);
    if (lease === undefined) return anomaly(`${this.name}: _nack for unknown handle ${handle}`);
    if (reason !== NACK_LSN_GAP) {
      return anomaly(`${this.name}: _nack reason ${reason} for lsn ${lsn} on ${lease.log} (no conditional writes were sent)`);
    }
    // A write before `expected` was dropped (OVERLOADED): the server refuses everything
    // after it until `expected` comes again. Go back to `expected`; the answers to the
    // frames sent after this one belong to the old window and are ignored.
    if (lease.ignoreReplies > 0) {
      lease.ignoreReplies--;
      return;
    }
    if (expected <= lease.doneUpTo || expected > lease.highestSent) {
      return anomaly(`${this.name}: _nack LSN_GAP for lsn ${lsn} expects ${expected}, outside the window (${lease.doneUpTo}, ${lease.highestSent}]`);
    }
    lease.ignoreReplies = (lease.framesSent - lease.sendSeq[lsn & lease.mask]) >>> 0;
    this.inflight -= lease.rewind(expected);
    this.pump();
  }

  onOverloaded(handle) {
    // A dropped write: the nacks of the writes after it trigger the resend. If it belongs
    // to an old window being ignored, it counts as one of that window's answers.
    const lease = this.byHandle.get(handle);
    if (lease !== undefined && lease.ignoreReplies > 0) lease.ignoreReplies--;
  }

  /** Called every 500 ms: resend everything unacknowledged after a long stall. */
  watchdog(now) {
    if (this.closed || this.inflight === 0 || this.acked !== this.lastProgress) {
      this.lastProgress = this.acked;
      this.progressAt = now;
      return;
    }
    if (now - this.progressAt < STALL_MS) return;
    anomaly(`${this.name}: no _ack for ${Math.round(now - this.progressAt)} ms with ${this.inflight} writes in flight; resending`);
    for (const lease of this.leases) {
      lease.ignoreReplies = 0;
      if (lease.nextLsn > lease.doneUpTo + 1) this.inflight -= lease.rewind(lease.doneUpTo + 1);
    }
    this.progressAt = now;
    this.pump();
  }
}

// ---------------------------------------------------------------------------------------
// Tailers: lease a log, tail from 0, count entries, check positions are gap-free.

/** The _tail request for `handle`, from position 0. */
function tailFrame(shard, handle) {
  return controlFrame(OP_TAIL, shard, (b, h) => {
    b.writeUInt32LE(handle, h + HEADER_A);
    b.writeDoubleLE(0, h + HEADER_POSITION);
  });
}

/**
 * Counts the entries of one _entries frame for `tail` ({ name, handle, position, caughtUp })
 * and checks they continue its position with no gap or duplicate.
 */
function consumeEntries(tail, b, h, payload, end, now) {
  const flags = b[h + HEADER_FLAGS];
  const handle = b.readUInt32LE(h + HEADER_A);
  const count = b.readUInt32LE(h + HEADER_C);
  const from = b.readDoubleLE(h + HEADER_POSITION);
  if (handle !== tail.handle) return anomaly(`${tail.name}: _entries for handle ${handle}, tailing ${tail.handle}`);
  if (from !== tail.position) {
    anomaly(`${tail.name}: _entries from ${from}, expected ${tail.position} (${from > tail.position ? 'gap' : 'duplicate'})`);
  }
  if (flags & ENTRIES_CAUGHT_UP) tail.caughtUp = true;
  let offset = payload;
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    if (offset + 4 > end) return anomaly(`${tail.name}: _entries payload shorter than its ${count} entries`);
    const length = b.readUInt32LE(offset);
    offset += 4;
    if (offset + length > end) return anomaly(`${tail.name}: entry of ${length} bytes overruns the frame`);
    if (measuring && length >= 8) tailLatency.record((now - b.readDoubleLE(offset)) * 1000);
    offset += length;
    bytes += length;
  }
  if (offset !== end) anomaly(`${tail.name}: ${end - offset} bytes after the ${count} entries of an _entries frame`);
  tail.position = from + count;
  stats.entries += count;
  stats.entryBytes += bytes;
}

class Tailer extends Session {
  constructor(index, url, token, logIndex) {
    super(`tailer ${index}`, url, token);
    this.logIndex = logIndex;
    this.position = 0; // next expected position
    this.caughtUp = false;
  }

  async start() {
    const leased = await this.lease(logName(this.logIndex), false);
    this.handle = leased.handle;
    this.sendControl(tailFrame(leased.shard, this.handle));
  }

  onEntries(b, h, payload, end, now) {
    consumeEntries(this, b, h, payload, end, now);
  }
}

// ---------------------------------------------------------------------------------------
// Devices (--mixed): one connection appends to its own log and tails DEVICE_TAILS others.

/** mulberry32: a small deterministic PRNG (the tailed logs depend only on --seed). */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The logs device d tails: DEVICE_TAILS distinct logs other than its own, from the seed. */
function tailedLogsOf(d, random) {
  const own = d % LOGS;
  const want = Math.min(DEVICE_TAILS, LOGS - 1);
  const chosen = new Set();
  while (chosen.size < want) {
    const log = Math.floor(random() * LOGS);
    if (log !== own) chosen.add(log);
  }
  return [...chosen];
}

class DeviceTail {
  constructor(device, logIndex, handle) {
    this.device = device;
    this.name = `${device.name} tail of ${logName(logIndex)}`;
    this.logIndex = logIndex;
    this.handle = handle;
    this.position = 0;
    this.caughtUp = false;
  }
  get closed() {
    return this.device.closed;
  }
}

class Device extends Writer {
  constructor(index, url, token, tailedLogs) {
    super(index, url, token);
    this.name = `device ${index}`;
    this.ownLog = index % LOGS;
    this.tailedLogs = tailedLogs;
    this.tails = new Map(); // handle → DeviceTail
  }

  async setUp() {
    await this.addLease(this.ownLog);
    await Promise.all(
      this.tailedLogs.map(async (logIndex) => {
        const leased = await this.lease(logName(logIndex), false);
        this.tails.set(leased.handle, new DeviceTail(this, logIndex, leased.handle));
        this.sendControl(tailFrame(leased.shard, leased.handle));
      }),
    );
  }

  onEntries(b, h, payload, end, now) {
    const tail = this.tails.get(b.readUInt32LE(h + HEADER_A));
    if (tail === undefined) return anomaly(`${this.name}: _entries for handle ${b.readUInt32LE(h + HEADER_A)}, not tailed`);
    consumeEntries(tail, b, h, payload, end, now);
  }
}

const logAcked = new Float64Array(LOGS);

// ---------------------------------------------------------------------------------------
// Child processes: the tailgrove server and the echo server.

let shuttingDown = false;
const children = new Set();

function startChild(args, readyPattern, what) {
  const child = spawn(process.execPath, args, { cwd: repositoryRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let output = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => (output += chunk));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => {
    children.delete(child);
    resolve(code ?? signal);
  }));
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} not ready after 30 s:\n${output}`)), 30000);
    child.stdout.on('data', (chunk) => {
      output += chunk;
      const match = readyPattern.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code}) before ready:\n${output}`));
    });
  });
  return { child, ready, exited, output: () => output };
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves the exit code or signal. */
async function stopChild(handle, graceMs = 5000) {
  if (handle.child.exitCode !== null || handle.child.signalCode !== null) return handle.exited;
  handle.child.kill('SIGTERM');
  const timer = setTimeout(() => {
    console.error(`load: child ${handle.child.pid} did not exit ${graceMs} ms after SIGTERM; SIGKILL`);
    handle.child.kill('SIGKILL');
  }, graceMs);
  const result = await handle.exited;
  clearTimeout(timer);
  return result;
}


const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------
// Echo reference: the same connections and message shapes against a bare uWS echo server.

async function runEcho(url, { connections, batchFrames, frameBytes, pipelineFrames, seconds, warmup }) {
  const messageBytes = batchFrames * frameBytes;
  const window = Math.max(2, Math.ceil(pipelineFrames / batchFrames)); // ≥ 2: never pure ping-pong
  const rtt = new Histogram();
  let messages = 0;
  let echoMeasuring = false;
  let running = true;
  const sockets = [];
  const template = Buffer.alloc(HEADER_ROOM + messageBytes, 0x5a);
  for (let c = 0; c < connections; c++) {
    const sentAt = new Float64Array(pow2AtLeast(window));
    const ringMask = sentAt.length - 1;
    let head = 0; // next send slot
    let tail = 0; // next echo expected
    let ws;
    const send = () => {
      // Zero mask never modifies the buffer, so one buffer serves every send; a random
      // mask masks in place, so it needs a fresh copy per message.
      const buffer = MASK === 'zero' ? template : Buffer.from(template);
      sentAt[head++ & ringMask] = performance.now();
      ws.sendFramed(buffer, HEADER_ROOM, buffer.length);
    };
    ws = await RawWebSocket.connect(url, {
      mask: MASK,
      onMessage: (b, start, end) => {
        if (end - start !== messageBytes) anomaly(`echo: message of ${end - start} bytes, sent ${messageBytes}`);
        const now = performance.now();
        if (echoMeasuring) {
          messages++;
          rtt.record((now - sentAt[tail & ringMask]) * 1000);
        }
        tail++;
        if (running) send();
      },
      onClose: (code, reason, error) => {
        if (running) anomaly(`echo: connection closed (${code}) ${error?.message ?? reason}`);
      },
    });
    sockets.push({ ws, start: () => { for (let i = 0; i < window; i++) send(); } });
  }
  for (const s of sockets) s.start();
  await sleep(warmup * 1000);
  echoMeasuring = true;
  const t0 = performance.now();
  await sleep(seconds * 1000);
  echoMeasuring = false;
  const elapsed = (performance.now() - t0) / 1000;
  running = false;
  const counted = messages;
  for (const s of sockets) s.ws.close(1000);
  await sleep(100);
  return {
    connections,
    batchFrames,
    frameBytes,
    messageBytes,
    messagesInFlightPerConnection: window,
    messagesPerSec: Math.round(counted / elapsed),
    framesPerSec: Math.round((counted * batchFrames) / elapsed),
    mbPerSec: Math.round((counted * messageBytes) / elapsed / 1e6),
    rtt: rtt.summary(),
  };
}

/** Starts a reference server (echo or pub/sub), runs fn(url, pid), stops it. */
async function withReferenceServer(script, readyPattern, what, fn) {
  const reference = startChild([script, '--host', '127.0.0.1', '--port', '0'], readyPattern, what);
  try {
    const url = await reference.ready;
    const cpu0 = processCpuSeconds(reference.child.pid);
    const t0 = performance.now();
    const result = await fn(url, reference.child.pid);
    result.serverCpuPercent ??= Math.round(((processCpuSeconds(reference.child.pid) - cpu0) / ((performance.now() - t0) / 1000)) * 100);
    if (/fallback/i.test(reference.output())) result.warning = reference.output().trim();
    return result;
  } finally {
    await stopChild(reference, 2000);
  }
}

const withEchoServer = (fn) => withReferenceServer('bench/echo-server.js', /echo ready (ws:\/\/\S+)/, 'echo server', fn);

// ---------------------------------------------------------------------------------------
// uWS pub/sub baseline: 1 publisher, M subscribers of one topic (bench/pubsub-server.js).
// A message is in flight from its publish until every subscriber received it; the publisher
// keeps `pipeline` in flight. Each message carries its sequence number (bytes 0–3) and its
// send time (bytes 8–15).

async function runPubsub(url, serverPid, { subscribers, size, pipeline, seconds, warmup }) {
  if (subscribers < 1) throw new Error('--pubsub-only needs --tailers ≥ 1 (the subscribers)');
  const base = url.endsWith('/') ? url : `${url}/`;
  const latency = new Histogram();
  const ringSize = pow2AtLeast(pipeline * 2);
  const ringMask = ringSize - 1;
  const received = new Uint32Array(ringSize); // per in-flight message: subscribers that have it
  let published = 0; // messages sent (the next sequence number)
  let completed = 0; // messages every subscriber received (in order: each socket is FIFO)
  let deliveries = 0; // messages received by any subscriber, while measuring
  let psMeasuring = false;
  let running = true;
  let publisher = null;
  const template = Buffer.alloc(size, 0x5a);
  const publish = () => {
    if (!running || publisher === null) return;
    const now = performance.now();
    while (published - completed < pipeline) {
      const buffer = Buffer.allocUnsafe(HEADER_ROOM + size);
      template.copy(buffer, HEADER_ROOM);
      buffer.writeUInt32LE(published >>> 0, HEADER_ROOM);
      buffer.writeDoubleLE(now, HEADER_ROOM + 8);
      published++;
      publisher.sendFramed(buffer, HEADER_ROOM, buffer.length);
    }
  };
  const sockets = [];
  const expected = new Float64Array(subscribers); // next sequence number per subscriber
  const open = async (index) => {
    const ws = await RawWebSocket.connect(`${base}sub`, {
      mask: MASK,
      onMessage: (b, start, end) => {
        const now = performance.now();
        if (end - start !== size) return anomaly(`pubsub: subscriber ${index} got ${end - start} bytes, published ${size}`);
        const seq = b.readUInt32LE(start);
        if (seq !== (expected[index] >>> 0)) anomaly(`pubsub: subscriber ${index} got message ${seq}, expected ${expected[index]}`);
        expected[index]++;
        if (psMeasuring) {
          deliveries++;
          latency.record((now - b.readDoubleLE(start + 8)) * 1000);
        }
        const slot = seq & ringMask;
        if (++received[slot] === subscribers) {
          received[slot] = 0;
          completed++;
          publish();
        }
      },
      onClose: (code, reason, error) => {
        if (running) anomaly(`pubsub: subscriber ${index} closed (${code}) ${error?.message ?? reason}`);
      },
    });
    sockets.push(ws);
  };
  const indices = Array.from({ length: subscribers }, (_, i) => i);
  await inBatches(indices, CONNECT_BATCH, open);
  publisher = await RawWebSocket.connect(`${base}pub`, {
    mask: MASK,
    onMessage: () => anomaly('pubsub: the publisher received a message'),
    onClose: (code, reason, error) => {
      if (running) anomaly(`pubsub: publisher closed (${code}) ${error?.message ?? reason}`);
    },
  });
  sockets.push(publisher);
  let lastCompleted = 0;
  let progressAt = performance.now();
  const watchdog = setInterval(() => {
    const now = performance.now();
    if (completed !== lastCompleted || published === completed) {
      lastCompleted = completed;
      progressAt = now;
    } else if (now - progressAt > STALL_MS) {
      anomaly(`pubsub: no message completed for ${Math.round(now - progressAt)} ms (${published - completed} in flight): uWS dropped a publish?`);
      progressAt = now;
    }
  }, 500);
  publish();
  await sleep(warmup * 1000);
  latency.reset();
  const before = { completed, t: performance.now(), client: clientCpuSeconds(), server: processCpuSeconds(serverPid) };
  psMeasuring = true;
  await sleep(seconds * 1000);
  psMeasuring = false;
  const after = { completed, t: performance.now(), client: clientCpuSeconds(), server: processCpuSeconds(serverPid) };
  const elapsed = (after.t - before.t) / 1000;
  running = false;
  clearInterval(watchdog);
  for (const ws of sockets) ws.close(1000);
  await sleep(100);
  for (const ws of sockets) if (!ws.closed) ws.destroy();
  const publishesPerSec = (after.completed - before.completed) / elapsed;
  return {
    subscribers,
    size,
    pipeline,
    elapsedSec: Math.round(elapsed * 1000) / 1000,
    publishesPerSec: Math.round(publishesPerSec),
    deliveredPerSec: Math.round(deliveries / elapsed),
    deliveredMBPerSec: Math.round(((deliveries * size) / elapsed) / 1e5) / 10,
    latency: latency.summary(),
    clientCpuPercent: Math.round(((after.client - before.client) / elapsed) * 100),
    serverCpuPercent: Math.round(((after.server - before.server) / elapsed) * 100),
  };
}

// ---------------------------------------------------------------------------------------
// The tailgrove run.

let serverDeath = new Promise(() => {}); // resolves with a message if the spawned server dies
let serverDied = null;
const sleepUnlessServerDies = (ms) => Promise.race([sleep(ms), serverDeath]);

/** The spawned server's --help text (to pass only the flags it knows), or '' if it fails. */
let serverHelpText = null;
function serverHelp() {
  if (serverHelpText === null) {
    const help = spawnSync(process.execPath, [options.server, '--help'], { cwd: repositoryRoot, encoding: 'utf8', timeout: 30000 });
    serverHelpText = `${help.stdout ?? ''}${help.stderr ?? ''}`;
  }
  return serverHelpText;
}

/** The server's flags for this run: engine, and limits raised to the run's shape. */
function serverLimitArgs() {
  const help = serverHelp();
  const args = [];
  const knows = (flag) => help.includes(flag);
  if (ENGINE !== null) {
    if (!knows('--engine')) throw new Error(`--engine ${ENGINE}: the server (${options.server}) has no --engine option`);
    args.push('--engine', ENGINE);
  }
  const connections = CONNECTIONS + TAILERS;
  if (connections + 16 > 1000 && knows('--connections-per-address-max')) {
    args.push('--connections-per-address-max', String(Math.min(65000, connections + 64)));
  }
  // The load measures capacity, not the per-session frame rate limit (200,000 frames/s by
  // default): one connection pipelining 100 B writes passes it.
  if (knows('--frames-per-second')) args.push('--frames-per-second', '100000000', '--frames-burst', '100000000');
  const leasesPerWriter = MIXED ? 1 + DEVICE_TAILS : CONNECTIONS >= LOGS ? 1 : Math.ceil(LOGS / CONNECTIONS);
  if (leasesPerWriter > 1000 && knows('--leases-per-session')) args.push('--leases-per-session', String(leasesPerWriter + 16));
  if (MIXED && DEVICE_TAILS > 250 && knows('--tails-per-session')) args.push('--tails-per-session', String(DEVICE_TAILS + 16));
  return args;
}

/** Runs `open(item)` over `items`, `batch` at a time: thousands of handshakes at once overflow the accept queue. */
async function inBatches(items, batch, open) {
  for (let i = 0; i < items.length; i += batch) await Promise.all(items.slice(i, i + batch).map(open));
}
const CONNECT_BATCH = 64;

async function runLoad() {
  let server = null;
  let url = options.url;
  let secret = options.secret;
  let dataDir = null;
  if (!url) {
    dataDir = mkdtempSync(join(tmpdir(), 'tailgrove-bench-'));
    server = startChild(
      [options.server, '--host', '127.0.0.1', '--port', '0', '--data', dataDir, ...(WORKERS === null ? [] : ['--workers', String(WORKERS)]), ...serverLimitArgs()],
      /tailgrove ready (ws:\/\/\S+)/,
      'tailgrove server',
    );
    try {
      url = await server.ready;
    } catch (error) {
      rmSync(dataDir, { recursive: true, force: true });
      throw error;
    }
    secret = readFileSync(join(dataDir, 'secret'), 'utf8').trim();
    const started = performance.now();
    serverDeath = server.exited.then((code) => {
      if (shuttingDown) return new Promise(() => {}); // an exit we asked for
      const message = `server exited (${code}) ${((performance.now() - started) / 1000).toFixed(1)} s after ready, during the run`;
      anomaly(message);
      serverDied = message;
      return message;
    });
  }
  if (!url.endsWith('/') && new URL(url).pathname === '/') url = `${url}/`;
  const token = (role) =>
    mintToken({ sub: 'bench', device: `bench-${RUN_ID}-${role}`, grants: [{ site: SITE, rights: 'rw' }] }, secret, { expiresInSeconds: 3600 });

  const writers = [];
  const tailers = [];
  const tails = []; // everything that tails: tailers, and the devices' tails in --mixed
  const result = { ok: false };
  let progressTimer = null;
  let watchdogTimer = null;
  let rateTimer = null;
  const pacing = { blockedMs: 0, ticks: 0, blockedTicks: 0 };
  try {
    // Connect everyone, then lease: writer i takes logs i, i+N, … (or log i % L when there
    // are more writers than logs: then several devices write the same log). In --mixed,
    // device d writes log d % L and tails DEVICE_TAILS others.
    const random = prng(SEED);
    for (let i = 0; i < CONNECTIONS; i++) {
      writers.push(MIXED ? new Device(i, url, token(`d${i}`), tailedLogsOf(i, random)) : new Writer(i, url, token(`w${i}`)));
    }
    for (let t = 0; t < TAILERS; t++) tailers.push(new Tailer(t, url, token(`t${t}`), t % LOGS));
    await inBatches([...writers, ...tailers], CONNECT_BATCH, (session) => session.open());
    const limits = writers[0].limits;
    if (limits.entryBytesMax !== undefined && SIZE > limits.entryBytesMax) {
      throw new Error(`--size ${SIZE} exceeds the server's entryBytesMax ${limits.entryBytesMax}`);
    }
    if (MIXED) {
      await inBatches(writers, CONNECT_BATCH, (device) => device.setUp());
      for (const device of writers) tails.push(...device.tails.values());
    } else {
      await Promise.all(
        writers.map(async (writer, i) => {
          if (CONNECTIONS >= LOGS) await writer.addLease(i % LOGS);
          else {
            const indices = [];
            for (let j = i; j < LOGS; j += CONNECTIONS) indices.push(j);
            await writer.addLeases(indices);
          }
        }),
      );
    }
    await inBatches(tailers, CONNECT_BATCH, (tailer) => tailer.start());
    tails.push(...tailers);

    if (RATE > 0) {
      // Open loop (as bench/peers/common.js): writer i's schedule starts i/N of an interval
      // after the first; every millisecond (or as late as the event loop allows) each writer
      // sends what is due and what the cap lets through; the rest stays due (catch-up), and
      // latency counts from the scheduled time, so queueing shows in it.
      const perMs = RATE / CONNECTIONS / 1000;
      const start = performance.now();
      for (const [i, writer] of writers.entries()) {
        writer.perMs = perMs;
        writer.t0 = start + i / CONNECTIONS / perMs;
      }
    }
    for (const writer of writers) writer.start();
    watchdogTimer = setInterval(() => {
      const now = performance.now();
      for (const writer of writers) writer.watchdog(now);
    }, 500);
    if (RATE > 0) {
      let last = performance.now();
      rateTimer = setInterval(() => {
        const now = performance.now();
        const dt = now - last;
        last = now;
        let blocked = false;
        for (const writer of writers) {
          writer.pump();
          if (writer.inflight >= PIPELINE && writer.due(now) >= 1) blocked = true;
        }
        if (measuring) {
          pacing.ticks++;
          if (blocked) {
            pacing.blockedTicks++;
            pacing.blockedMs += dt;
          }
        }
      }, 1);
    }
    if (VERBOSE) {
      let last = { acks: 0, entries: 0 };
      progressTimer = setInterval(() => {
        console.error(`  ${Math.round((stats.acks - last.acks))} acks/s  ${Math.round(stats.entries - last.entries)} entries/s`);
        last = { acks: stats.acks, entries: stats.entries };
      }, 1000);
    }

    await sleepUnlessServerDies(WARMUP * 1000);
    ackLatency.reset();
    tailLatency.reset();
    const before = { ...stats, t: performance.now(), client: clientCpuSeconds(), server: server ? processCpuSeconds(server.child.pid) : NaN, scheduled: writers.reduce((sum, w) => sum + w.scheduled, 0) };
    measuring = true;
    await sleepUnlessServerDies(SECONDS * 1000);
    measuring = false;
    const after = { ...stats, t: performance.now(), client: clientCpuSeconds(), server: server ? processCpuSeconds(server.child.pid) : NaN };
    const elapsed = (after.t - before.t) / 1000;
    const behindWrites = RATE > 0 ? writers.reduce((sum, w) => sum + Math.max(0, w.due(after.t)), 0) : 0;
    const scheduledInWindow = writers.reduce((sum, w) => sum + w.scheduled, 0) - before.scheduled;

    // Drain: stop writing, wait for the last acks and for the tailers to reach the tails.
    clearInterval(rateTimer);
    for (const writer of writers) writer.stop();
    const drainStart = performance.now();
    const tailedLogs = new Set(tails.map((t) => t.logIndex));
    const drained = () =>
      writers.every((w) => w.inflight === 0 || w.closed) && tails.every((t) => t.closed || t.position >= logAcked[t.logIndex]);
    while (!drained() && !serverDied && performance.now() - drainStart < 5000) await sleep(20);
    for (const writer of writers) writer.pump(); // final ack frames
    const drainMs = Math.round(performance.now() - drainStart);
    const inflightLeft = writers.reduce((sum, w) => sum + w.inflight, 0);
    const tailLag = tails.map((t) => logAcked[t.logIndex] - t.position);
    for (const t of tails) {
      if (t.position > logAcked[t.logIndex]) {
        anomaly(`${t.name}: delivered ${t.position} entries of ${t.logIndex === undefined ? '?' : logName(t.logIndex)} but only ${logAcked[t.logIndex]} were acknowledged`);
      }
    }

    const appendsPerSec = (after.acks - before.acks) / elapsed;
    const deliveredPerSec = (after.entries - before.entries) / elapsed;
    let appendsOnTailedLogs = 0;
    for (const index of tailedLogs) appendsOnTailedLogs += logAcked[index];
    const lagging = tailLag.filter((lag) => lag !== 0);
    Object.assign(result, {
      mode: MIXED ? 'mixed' : 'load',
      serverDied,
      ok: !serverDied && stats.anomalyCount === 0 && inflightLeft === 0 && lagging.length === 0,
      config: {
        connections: CONNECTIONS, tailers: TAILERS, logs: LOGS, size: SIZE, seconds: SECONDS, warmup: WARMUP, pipeline: PIPELINE,
        rate: RATE || null, workers: server ? WORKERS : null, engine: server ? ENGINE : null, mask: MASK, url: options.url ?? null,
        ...(MIXED ? { mixed: true, devices: DEVICES, deviceTails: DEVICE_TAILS, seed: SEED } : {}),
      },
      elapsedSec: Math.round(elapsed * 1000) / 1000,
      appendsPerSec: Math.round(appendsPerSec),
      appendMBPerSec: Math.round((appendsPerSec * SIZE) / 1e5) / 10,
      deliveredPerSec: Math.round(deliveredPerSec),
      deliveredMBPerSec: Math.round(((after.entryBytes - before.entryBytes) / elapsed) / 1e5) / 10,
      tailFanout: TAILERS,
      tails: tails.length,
      writesPerMessage: Math.round(((after.writesSent - before.writesSent) / Math.max(1, after.writeMessages - before.writeMessages)) * 10) / 10,
      ackLatency: ackLatency.summary(),
      tailLatency: SIZE >= 8 ? tailLatency.summary() : null,
      clientCpuPercent: Math.round(((after.client - before.client) / elapsed) * 100),
      serverCpuPercent: server && !serverDied ? Math.round(((after.server - before.server) / elapsed) * 100) : null,
      totals: { acks: stats.acks, writesSent: stats.writesSent, entriesDelivered: stats.entries, appendsOnTailedLogs, acksSent: stats.acksSent },
      // One entry per tail (the lag of each) up to 64 tails; beyond, only the lagging ones.
      drain: { ms: drainMs, inflightLeft, tailLag: tails.length <= 64 ? tailLag : lagging.slice(0, 64), tailsLagging: lagging.length },
      nacks: stats.nacks,
      overloaded: stats.overloaded,
      resends: stats.resends,
      duplicateAcks: stats.duplicateAcks,
      errors: Object.fromEntries(stats.errors),
      anomalies: stats.anomalies,
      anomalyCount: stats.anomalyCount,
    });
    if (MIXED) {
      const written = new Set(writers.map((w) => w.ownLog));
      result.mixed = {
        devices: DEVICES,
        logs: LOGS,
        logsWritten: written.size,
        tails: tails.length,
        tailsOfWrittenLogs: tails.filter((t) => written.has(t.logIndex)).length,
        logsLeased: new Set([...written, ...tails.map((t) => t.logIndex)]).size,
      };
    }
    if (RATE > 0) {
      result.targetRate = RATE;
      result.offeredPerSec = Math.round(scheduledInWindow / elapsed);
      result.rateAchieved = Math.round((appendsPerSec / RATE) * 1000) / 1000;
      // Time the --pipeline cap held back due writes, and the writes still due at the end of
      // the window: both 0 when the open loop kept its schedule.
      result.rateShortfall = {
        blockedMs: Math.round(pacing.blockedMs),
        blockedFraction: pacing.ticks ? Math.round((pacing.blockedTicks / pacing.ticks) * 1000) / 1000 : 0,
        behindWrites,
      };
    }
  } finally {
    shuttingDown = true;
    clearInterval(rateTimer);
    clearInterval(progressTimer);
    clearInterval(watchdogTimer);
    for (const session of [...writers, ...tailers]) session.close();
    await sleep(200);
    for (const session of [...writers, ...tailers]) if (session.ws && !session.ws.closed) session.ws.destroy();
    if (server) {
      const exit = await stopChild(server, 5000);
      result.serverExit = exit;
      if (VERBOSE || (exit !== 0 && exit !== 'SIGTERM')) {
        console.error(`--- server output (exit ${exit}) ---\n${server.output().trim()}\n---`);
      }
      rmSync(dataDir, { recursive: true, force: true });
    }
  }
  return result;
}

// ---------------------------------------------------------------------------------------
// Report

const fmt = (n) => (n === null || n === undefined || Number.isNaN(n) ? '—' : Math.round(n).toLocaleString('en-US'));
const ms = (v) => (v === null || v === undefined ? '—' : v < 10 ? v.toFixed(2) : v.toFixed(1));
const lat = (s) => (s && s.count ? `p50 ${ms(s.p50Ms)}  p99 ${ms(s.p99Ms)}  p99.9 ${ms(s.p999Ms)}  max ${ms(s.maxMs)} ms  (${fmt(s.count)} samples)` : '—');

function printLoad(r) {
  const c = r.config;
  if (r.serverDied) say(`!! ${r.serverDied}: the figures below cover only the time before`);
  const who = c.mixed
    ? `${c.devices} devices over ${c.logs} logs (each appends to 1, tails ${c.deviceTails}), ${c.tailers} more tailers`
    : `${c.connections} writers over ${c.logs} logs, ${c.tailers} tailers`;
  say(
    `tailgrove ${r.mode}: ${who}, ${c.size} B entries, ` +
      `${c.rate ? `open loop at ${fmt(c.rate)} appends/s (cap ${c.pipeline} in flight)` : `pipeline ${c.pipeline}`}, ` +
      `${c.workers ?? (c.url ? 'external' : 'default')} workers${c.engine ? ` (${c.engine})` : ''}, ${r.elapsedSec} s measured after ${c.warmup} s warm-up`,
  );
  say(`  appends/s        ${fmt(r.appendsPerSec).padStart(12)}   (${r.appendMBPerSec} MB/s of entries, acks received)`);
  if (r.rateShortfall) {
    const s = r.rateShortfall;
    say(`  open loop        ${Math.round(r.rateAchieved * 100)} % of ${fmt(r.targetRate)}/s; cap blocked ${s.blockedMs} ms (${Math.round(s.blockedFraction * 100)} % of ticks), ${fmt(s.behindWrites)} writes behind`);
  }
  say(`  delivered/s      ${fmt(r.deliveredPerSec).padStart(12)}   (entries at ${r.tails} tails, ${r.deliveredMBPerSec} MB/s)`);
  if (r.mixed) say(`  mixed            ${r.mixed.logsWritten} logs written, ${r.mixed.logsLeased} leased; ${r.mixed.tailsOfWrittenLogs} of ${r.mixed.tails} tails on a written log`);
  say(`  append→ack       ${lat(r.ackLatency)}`);
  say(`  append→tailer    ${lat(r.tailLatency)}`);
  say(`  writes/message   ${r.writesPerMessage}`);
  say(`  cpu              client ${r.clientCpuPercent}%  server ${r.serverCpuPercent ?? '—'}%  (100% = one core)`);
  say(`  drain            ${r.drain.ms} ms, ${r.drain.inflightLeft} writes unacknowledged, ${r.drain.tailsLagging} tails short of the tail${r.tails <= 16 ? ` [${r.drain.tailLag.join(', ')}]` : ''}`);
  const trouble = [];
  if (r.nacks) trouble.push(`${r.nacks} nacks`);
  if (r.overloaded) trouble.push(`${r.overloaded} OVERLOADED`);
  if (r.resends) trouble.push(`${r.resends} resends`);
  if (r.duplicateAcks) trouble.push(`${r.duplicateAcks} duplicate acks`);
  for (const [name, count] of Object.entries(r.errors)) trouble.push(`${count} × ${name}`);
  say(`  trouble          ${trouble.length ? trouble.join(', ') : 'none'}`);
  if (r.anomalies.length) {
    say(`  anomalies (${r.anomalyCount}):`);
    for (const line of r.anomalies) say(`    - ${line}`);
  }
}

function printEcho(e) {
  say(
    `uWS echo: ${e.connections} connections, ${e.batchFrames} × ${e.frameBytes} B frames per message, ` +
      `${e.messagesInFlightPerConnection} messages in flight each`,
  );
  say(`  messages/s       ${fmt(e.messagesPerSec).padStart(12)}   (${e.mbPerSec} MB/s each way)`);
  say(`  frames/s         ${fmt(e.framesPerSec).padStart(12)}`);
  say(`  round trip       ${lat(e.rtt)}`);
  say(`  cpu              client ${e.clientCpuPercent}%  server ${e.serverCpuPercent}%`);
  if (e.warning) say(`  WARNING          ${e.warning}`);
}

async function measureEcho(shape) {
  return withEchoServer(async (url) => {
    const c0 = clientCpuSeconds();
    const t0 = performance.now();
    const e = await runEcho(url, shape);
    e.clientCpuPercent = Math.round(((clientCpuSeconds() - c0) / ((performance.now() - t0) / 1000)) * 100);
    return e;
  });
}

function printPubsub(p) {
  say(`uWS pub/sub: 1 publisher, ${p.subscribers} subscribers of one topic, ${p.size} B messages, ${p.pipeline} in flight, ${p.elapsedSec} s measured`);
  say(`  publishes/s      ${fmt(p.publishesPerSec).padStart(12)}   (received by every subscriber)`);
  say(`  delivered/s      ${fmt(p.deliveredPerSec).padStart(12)}   (messages at all subscribers, ${p.deliveredMBPerSec} MB/s)`);
  say(`  publish→receive  ${lat(p.latency)}`);
  say(`  cpu              client ${p.clientCpuPercent}%  server ${p.serverCpuPercent}%`);
  if (p.warning) say(`  WARNING          ${p.warning}`);
}

async function main() {
  const onSignal = () => {
    shuttingDown = true;
    for (const child of children) child.kill('SIGTERM');
    setTimeout(() => {
      for (const child of children) child.kill('SIGKILL');
      process.exit(130);
    }, 3000).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  if (options['echo-only']) {
    const echo = await measureEcho({
      connections: CONNECTIONS,
      batchFrames: ECHO_BATCH,
      frameBytes: WRITE_FRAME_BYTES,
      pipelineFrames: PIPELINE,
      seconds: SECONDS,
      warmup: WARMUP,
    });
    echo.anomalies = stats.anomalies;
    printEcho(echo);
    for (const line of stats.anomalies) say(`    - ${line}`);
    // The common figures under the names of a tailgrove run: one echoed message is one
    // "append", its round trip the "ack latency".
    console.log(JSON.stringify({
      mode: 'echo',
      ok: stats.anomalyCount === 0,
      appendsPerSec: echo.messagesPerSec,
      deliveredPerSec: null,
      ackLatency: echo.rtt,
      tailLatency: null,
      serverCpuPercent: echo.serverCpuPercent,
      clientCpuPercent: echo.clientCpuPercent,
      anomalyCount: stats.anomalyCount,
      echo,
    }));
    if (stats.anomalyCount) process.exitCode = 1;
    return;
  }

  if (PUBSUB_ONLY) {
    const pubsub = await withReferenceServer('bench/pubsub-server.js', /pubsub ready (ws:\/\/\S+)/, 'pub/sub server', (url, pid) =>
      runPubsub(url, pid, { subscribers: TAILERS, size: SIZE, pipeline: PIPELINE, seconds: SECONDS, warmup: WARMUP }),
    );
    pubsub.anomalies = stats.anomalies;
    printPubsub(pubsub);
    for (const line of stats.anomalies) say(`    - ${line}`);
    console.log(JSON.stringify({
      mode: 'pubsub',
      ok: stats.anomalyCount === 0,
      appendsPerSec: pubsub.publishesPerSec,
      deliveredPerSec: pubsub.deliveredPerSec,
      ackLatency: null,
      tailLatency: pubsub.latency,
      tailFanout: TAILERS,
      serverCpuPercent: pubsub.serverCpuPercent,
      clientCpuPercent: pubsub.clientCpuPercent,
      anomalyCount: stats.anomalyCount,
      pubsub,
    }));
    if (stats.anomalyCount) process.exitCode = 1;
    return;
  }

  const load = await runLoad();
  printLoad(load);
  const report = { ...load };
  if (options.echo) {
    // Same writers, frame size and pipeline, with as many frames per message as the
    // tailgrove writers actually sent: the cost of the transport alone.
    stats.anomalies = [];
    const echo = await measureEcho({
      connections: CONNECTIONS,
      batchFrames: Math.max(1, Math.round(load.writesPerMessage || 1)),
      frameBytes: WRITE_FRAME_BYTES,
      pipelineFrames: PIPELINE,
      seconds: SECONDS,
      warmup: WARMUP,
    });
    printEcho(echo);
    report.echo = echo;
    report.appendsPerEchoFrame = Math.round((load.appendsPerSec / echo.framesPerSec) * 1000) / 1000;
    say(`  ratio            tailgrove appends/s ÷ echo frames/s = ${report.appendsPerEchoFrame}`);
  }
  console.log(JSON.stringify(report));
  if (!load.ok) process.exitCode = 1;
}

main().catch((error) => {
  console.error(`load: ${error.stack ?? error}`);
  for (const child of children) child.kill('SIGKILL');
  process.exit(1);
});
