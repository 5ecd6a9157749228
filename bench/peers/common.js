// The shared part of the peer load generators (nats-load.js, redis-load.js): options,
// the writer pipeline and open-loop rate, tailer accounting, latency histograms, CPU,
// the drain, the report. Each system supplies a driver:
//
//   {
//     system: 'nats' | 'redis',
//     start({ durability, verbose }) → server handle (servers.js), when no --url is given
//     prepare({ url, runId, logs }) → context (e.g. creates the stream)
//     openWriter(context, index) → { append(logIndex, payload, done(error)), close(), copiesPayload }
//         done is called once per append (null on success); with copiesPayload the writer
//         copies the payload before append returns, so the caller may reuse its buffer
//     openTailer(context, index, logIndex, onEntry(payload, order), onError(error)) → { close() }
//         onEntry is called once per delivered entry, in order; `order` is a number that
//         must increase strictly along the log (stream sequence / entry id)
//     cleanup(context) — removes what the run created on an external server (--url)
//     count(context) → entries the server holds in the run's logs (checked against the acks)
//     close(context) — optional: closes what prepare opened
//     classify(error) → 'timeout' | other error name (for the trouble counts)
//   }
//
// Latency: each payload of ≥ 8 bytes starts with its send time (a float64, performance.now()
// of this process, little-endian), as bench/load.js writes it. append → ack is measured per
// append, append → tailer per delivered entry, both in HdrHistogram (microseconds, 3
// significant digits). With --rate the send time is the time the open-loop schedule
// intended (not the moment a full pipeline let it go), so queueing counts in the latency.
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import hdr from 'hdr-histogram-js';
import { DURABILITIES } from './servers.js';
import { clientCpuSeconds, processCpuSeconds } from '../cpu.js';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------
// Options

const optionSpec = {
  connections: { type: 'string', default: '16' },
  tailers: { type: 'string', default: '4' },
  logs: { type: 'string', default: '16' },
  size: { type: 'string', default: '100' },
  seconds: { type: 'string', default: '10' },
  warmup: { type: 'string', default: '1' },
  pipeline: { type: 'string', default: '256' },
  rate: { type: 'string' },
  durability: { type: 'string', default: 'fsync' },
  url: { type: 'string' },
  timeout: { type: 'string', default: '10000' },
  client: { type: 'string', default: 'lean' },
  json: { type: 'boolean', default: false },
  verbose: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
};

/** The usage text: the leading comment block of the script at `scriptUrl`. */
export function usageOf(scriptUrl) {
  const source = readFileSync(new URL(scriptUrl), 'utf8');
  const lines = [];
  for (const line of source.split('\n')) {
    if (!line.startsWith('//')) break;
    lines.push(line.replace(/^\/\/ ?/, ''));
  }
  return lines.join('\n');
}

/** Parses argv; exits 2 (with the usage) on a bad option, 0 after --help. */
/** `extra`: options of one system only, { name: { type, default, check(value) → error message | null } }. */
export function parseOptions(name, scriptUrl, argv = process.argv.slice(2), extra = {}) {
  const fail = (message) => {
    console.error(`${name}: ${message}\n\n${usageOf(scriptUrl)}`);
    process.exit(2);
  };
  let values;
  try {
    const spec = { ...optionSpec };
    for (const [key, { type, default: value }] of Object.entries(extra)) spec[key] = { type, default: value };
    ({ values } = parseArgs({ args: argv, options: spec, allowPositionals: false }));
  } catch (error) {
    fail(error.message);
  }
  if (values.help) {
    console.log(usageOf(scriptUrl));
    process.exit(0);
  }
  const integer = (key, min) => {
    const value = Number(values[key]);
    if (!Number.isInteger(value) || value < min) fail(`--${key} must be an integer ≥ ${min} (got ${values[key]})`);
    return value;
  };
  const options = {
    connections: integer('connections', 1),
    tailers: integer('tailers', 0),
    logs: integer('logs', 1),
    size: integer('size', 0),
    seconds: Number(values.seconds),
    warmup: Number(values.warmup),
    pipeline: integer('pipeline', 1),
    rate: values.rate === undefined ? null : Number(values.rate),
    durability: values.durability,
    url: values.url ?? null,
    timeoutMs: integer('timeout', 1),
    client: values.client,
    json: values.json,
    verbose: values.verbose,
  };
  if (!(options.seconds > 0)) fail('--seconds must be > 0');
  if (!(options.warmup >= 0)) fail('--warmup must be ≥ 0');
  if (options.rate !== null && !(options.rate > 0)) fail('--rate must be > 0 appends/s');
  if (!DURABILITIES.includes(options.durability)) fail(`--durability is ${DURABILITIES.join(' or ')}`);
  if (options.client !== 'lean' && options.client !== 'official') fail('--client is lean or official');
  for (const [key, { check }] of Object.entries(extra)) {
    const problem = check ? check(values[key]) : null;
    if (problem) fail(`--${key} ${problem}`);
    options[key] = values[key];
  }
  return options;
}

// ---------------------------------------------------------------------------------------
// Measurements

function histogram() {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3, autoResize: true });
}

/** { count, meanMs, p50Ms, p99Ms, p999Ms, maxMs } of a microsecond histogram (bench/load.js shape). */
function summary(h) {
  const ms = (micros) => Math.round(micros) / 1000;
  if (h.totalCount === 0) return { count: 0, meanMs: null, p50Ms: null, p99Ms: null, p999Ms: null, maxMs: null };
  return {
    count: h.totalCount,
    meanMs: ms(h.mean),
    p50Ms: ms(h.getValueAtPercentile(50)),
    p99Ms: ms(h.getValueAtPercentile(99)),
    p999Ms: ms(h.getValueAtPercentile(99.9)),
    maxMs: ms(h.maxValue),
  };
}


// ---------------------------------------------------------------------------------------
// The run

export async function runPeerLoad(driver, options) {
  const { connections: C, tailers: T, logs: L, size: SIZE, pipeline: P, rate: RATE } = options;
  const runId = Date.now().toString(36) + Math.floor(Math.random() * 1e6).toString(36);
  const log = (line) => {
    if (options.verbose) console.error(`${driver.system}-load: ${line}`);
  };

  const stats = { acks: 0, appendsSent: 0, entries: 0, entryBytes: 0, timeouts: 0, anomalyCount: 0 };
  const errors = new Map(); // name → count
  const anomalies = [];
  const anomaly = (message) => {
    stats.anomalyCount++;
    if (anomalies.length < 20) anomalies.push(message);
    log(`anomaly: ${message}`);
  };
  const countError = (error) => {
    const kind = driver.classify(error);
    let count;
    if (kind === 'timeout') count = ++stats.timeouts;
    else {
      count = (errors.get(kind) ?? 0) + 1;
      errors.set(kind, count);
    }
    if (count <= 3) anomaly(`${kind}: ${error?.message ?? error}`);
  };
  const ackLatency = histogram();
  const tailLatency = histogram();
  const logAcked = new Float64Array(L);
  let measuring = false;
  let stopping = false; // no new appends
  let closing = false; // connections being closed: their errors are expected

  // Server.
  let server = null;
  let serverDied = null;
  let serverDeath = new Promise(() => {});
  // Against an external server (--url) the durability is that server's configuration.
  const result = { ok: false, system: driver.system, durability: options.url ? null : options.durability };
  const cleanups = [];
  const onSignal = () => {
    closing = true;
    const stop = server ? server.stop({ timeoutMs: 2000 }) : Promise.resolve();
    stop.finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  let context = null;
  const writers = [];
  const tailers = [];
  let timer = null;
  try {
    let url = options.url;
    if (!url) {
      server = await driver.start({ durability: options.durability, verbose: options.verbose });
      url = server.url;
      log(`${driver.system} ${server.version} pid ${server.pid} at ${url} (${server.durabilityDetail})`);
      serverDeath = server.exited.then((code) => {
        if (closing) return new Promise(() => {});
        serverDied = `${driver.system} server exited (${code}) during the run`;
        anomaly(serverDied);
        return serverDied;
      });
    }
    const sleepUnlessServerDies = (ms) => Promise.race([sleep(ms), serverDeath]);
    context = await driver.prepare({ url, runId, logs: L, options });

    // Template payload: a byte pattern per log, the send time in the first 8 bytes.
    const templates = Array.from({ length: L }, (_, logIndex) => {
      const b = Buffer.alloc(SIZE);
      for (let i = 0; i < SIZE; i++) b[i] = (i * 31 + logIndex) & 0xff;
      return b;
    });
    const payloadFor = (logIndex, sentAt) => {
      // A fresh buffer per append: clients keep a reference until they flush the socket.
      const b = Buffer.allocUnsafe(SIZE);
      templates[logIndex].copy(b);
      if (SIZE >= 8) b.writeDoubleLE(sentAt, 0);
      return b;
    };

    // Tailers first (tailer t tails log t % L from the beginning), then the writers.
    for (let t = 0; t < T; t++) {
      const logIndex = t % L;
      const tailer = { index: t, logIndex, delivered: 0, lastOrder: -Infinity, handle: null };
      tailer.handle = await driver.openTailer(context, t, logIndex, (payload, order) => {
        const now = performance.now();
        if (!(order > tailer.lastOrder)) anomaly(`tailer ${t}: entry order ${order} after ${tailer.lastOrder} on log ${logIndex}`);
        tailer.lastOrder = order;
        tailer.delivered++;
        stats.entries++;
        stats.entryBytes += payload.length;
        if (measuring && payload.length >= 8) {
          tailLatency.recordValue(Math.max(1, Math.round((now - Buffer.from(payload.buffer, payload.byteOffset, 8).readDoubleLE(0)) * 1000)));
        }
      }, (error) => {
        if (closing) return;
        countError(error);
      });
      tailers.push(tailer);
    }

    // Writers: writer i writes log i % L (more writers than logs) or logs i, i + C, …
    const perWriterRate = RATE === null ? 0 : RATE / C;
    for (let i = 0; i < C; i++) {
      const logsOfWriter = [];
      if (C >= L) logsOfWriter.push(i % L);
      else for (let j = i; j < L; j += C) logsOfWriter.push(j);
      const handle = await driver.openWriter(context, i);
      const writer = { index: i, handle, logs: logsOfWriter, next: 0, inflight: 0, scheduled: 0, t0: 0, scratch: Buffer.alloc(SIZE) };
      writers.push(writer);
    }

    const sendOne = (writer, sentAt) => {
      const logIndex = writer.logs[writer.next];
      writer.next = writer.next + 1 === writer.logs.length ? 0 : writer.next + 1;
      writer.inflight++;
      stats.appendsSent++;
      let payload;
      if (writer.handle.copiesPayload) {
        payload = writer.scratch;
        templates[logIndex].copy(payload);
        if (SIZE >= 8) payload.writeDoubleLE(sentAt, 0);
      } else {
        payload = payloadFor(logIndex, sentAt);
      }
      let answered = false;
      const done = (error) => {
        if (answered) return;
        answered = true;
        writer.inflight--;
        if (error) {
          if (!closing) countError(error);
        } else {
          stats.acks++;
          logAcked[logIndex]++;
          if (measuring) ackLatency.recordValue(Math.max(1, Math.round((performance.now() - sentAt) * 1000)));
        }
        refill(writer);
      };
      try {
        writer.handle.append(logIndex, payload, done);
      } catch (error) {
        done(error);
      }
    };
    // Closed loop: keep P appends in flight. Open loop: send what the schedule says is due,
    // at most P in flight (the rest waits, and its latency counts from the scheduled time).
    const refill = (writer) => {
      if (stopping || closing) return;
      if (RATE === null) {
        while (writer.inflight < P) sendOne(writer, performance.now());
        return;
      }
      const due = Math.floor(((performance.now() - writer.t0) * perWriterRate) / 1000);
      while (writer.scheduled < due && writer.inflight < P) {
        writer.scheduled++;
        sendOne(writer, writer.t0 + (writer.scheduled * 1000) / perWriterRate);
      }
    };

    const start = performance.now();
    for (const writer of writers) {
      // Open loop: stagger the writers' schedules over one interval.
      writer.t0 = start + (RATE === null ? 0 : (writer.index / C) * (1000 / perWriterRate));
      refill(writer);
    }
    if (RATE !== null) {
      timer = setInterval(() => {
        for (const writer of writers) refill(writer);
      }, 1);
    }
    let progress = null;
    if (options.verbose) {
      let last = { acks: 0, entries: 0 };
      progress = setInterval(() => {
        console.error(`  ${stats.acks - last.acks} appends/s  ${stats.entries - last.entries} delivered/s`);
        last = { acks: stats.acks, entries: stats.entries };
      }, 1000);
      cleanups.push(() => clearInterval(progress));
    }

    await sleepUnlessServerDies(options.warmup * 1000);
    ackLatency.reset();
    tailLatency.reset();
    const cpuOf = () => (server ? processCpuSeconds(server.pid) : NaN);
    const before = { ...stats, t: performance.now(), client: clientCpuSeconds(), server: cpuOf() };
    const scheduledBefore = writers.reduce((sum, w) => sum + w.scheduled, 0);
    measuring = true;
    await sleepUnlessServerDies(options.seconds * 1000);
    measuring = false;
    const after = { ...stats, t: performance.now(), client: clientCpuSeconds(), server: cpuOf() };
    const scheduledAfter = writers.reduce((sum, w) => sum + w.scheduled, 0);
    const elapsed = (after.t - before.t) / 1000;

    // Drain: no new appends; wait for the acks in flight and for the tailers to reach the
    // number of appends acknowledged on their logs.
    stopping = true;
    clearInterval(timer);
    const drainStart = performance.now();
    const drained = () => writers.every((w) => w.inflight === 0) && tailers.every((t) => t.delivered >= logAcked[t.logIndex]);
    while (!drained() && !serverDied && performance.now() - drainStart < Math.max(10000, options.timeoutMs + 1000)) await sleep(20);
    const drainMs = Math.round(performance.now() - drainStart);
    const inflightLeft = writers.reduce((sum, w) => sum + w.inflight, 0);
    const tailLag = tailers.map((t) => logAcked[t.logIndex] - t.delivered);
    for (const t of tailers) {
      if (t.delivered > logAcked[t.logIndex] && stats.timeouts === 0 && errors.size === 0) {
        anomaly(`tailer ${t.index}: delivered ${t.delivered} entries of log ${t.logIndex} but only ${logAcked[t.logIndex]} were acknowledged`);
      }
    }
    // The server's own count of the run's entries: every acknowledged append is there, and
    // (without errors or timeouts, after which an unacknowledged append may have landed)
    // nothing else.
    let stored = null;
    if (!serverDied) {
      try {
        stored = await driver.count(context);
      } catch (error) {
        anomaly(`counting the entries on the server: ${error.message}`);
      }
    }
    const clean = stats.timeouts === 0 && errors.size === 0;
    if (stored !== null && (stored < stats.acks || (clean && inflightLeft === 0 && stored !== stats.acks))) {
      anomaly(`the server holds ${stored} entries of this run, ${stats.acks} appends were acknowledged`);
    }
    const appendsPerSec = (after.acks - before.acks) / elapsed;
    const deliveredPerSec = (after.entries - before.entries) / elapsed;
    const rateBacklog = RATE === null ? null : writers.reduce((sum, w) => sum + Math.max(0, Math.floor(((after.t - w.t0) * perWriterRate) / 1000) - w.scheduled), 0);
    const errorCount = [...errors.values()].reduce((a, b) => a + b, 0);
    Object.assign(result, {
      ok: !serverDied && stats.anomalyCount === 0 && errorCount === 0 && stats.timeouts === 0 && inflightLeft === 0 && tailLag.every((lag) => lag <= 0),
      serverDied,
      config: {
        connections: C,
        tailers: T,
        logs: L,
        size: SIZE,
        seconds: options.seconds,
        warmup: options.warmup,
        pipeline: P,
        rate: RATE,
        durability: options.url ? null : options.durability,
        timeoutMs: options.timeoutMs,
        client: options.client,
        ...Object.fromEntries(Object.keys(driver.options ?? {}).map((key) => [key, options[key]])),
        url: options.url,
      },
      server: server
        ? { pid: server.pid, version: server.version, url: server.url, dataDir: server.dataDir, durabilityDetail: server.durabilityDetail }
        : { pid: null, version: null, url: options.url, dataDir: null, durabilityDetail: 'an external server (--url): its own configuration' },
      serverPid: server ? server.pid : null,
      elapsedSec: Math.round(elapsed * 1000) / 1000,
      offeredPerSec: RATE === null ? null : Math.round((scheduledAfter - scheduledBefore) / elapsed),
      appendsPerSec: Math.round(appendsPerSec),
      appendMBPerSec: Math.round((appendsPerSec * SIZE) / 1e5) / 10,
      deliveredPerSec: Math.round(deliveredPerSec),
      deliveredMBPerSec: Math.round((after.entryBytes - before.entryBytes) / elapsed / 1e5) / 10,
      tailFanout: T,
      ackLatency: summary(ackLatency),
      tailLatency: SIZE >= 8 && T > 0 ? summary(tailLatency) : null,
      clientCpuPercent: Math.round(((after.client - before.client) / elapsed) * 100),
      serverCpuPercent: server && !serverDied && Number.isFinite(after.server - before.server) ? Math.round(((after.server - before.server) / elapsed) * 100) : null,
      totals: { acks: stats.acks, appendsSent: stats.appendsSent, entriesDelivered: stats.entries, entriesOnServer: stored },
      drain: { ms: drainMs, inflightLeft, tailLag, rateBacklog },
      timeouts: stats.timeouts,
      errors: Object.fromEntries(errors),
      anomalies,
      anomalyCount: stats.anomalyCount,
    });
  } finally {
    closing = true;
    clearInterval(timer);
    for (const cleanup of cleanups) cleanup();
    const closeAll = async (items) => {
      await Promise.all(items.map(async (item) => {
        try {
          await item.handle?.close();
        } catch {
          // closing anyway
        }
      }));
    };
    await closeAll([...writers, ...tailers]);
    if (context && options.url) {
      try {
        await driver.cleanup(context);
      } catch (error) {
        log(`cleanup: ${error.message}`);
      }
    }
    if (context) await driver.close?.(context);
    if (server) {
      result.serverExit = await server.stop();
      if (options.verbose || (!result.ok && server.output().trim())) {
        if (!result.ok) console.error(`--- ${driver.system} server output ---\n${server.output().trim().split('\n').slice(-30).join('\n')}\n---`);
      }
    }
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
  return result;
}

// ---------------------------------------------------------------------------------------
// Report

const fmt = (n) => (n === null || n === undefined || Number.isNaN(n) ? '—' : Math.round(n).toLocaleString('en-US'));
const ms = (v) => (v === null || v === undefined ? '—' : v < 10 ? v.toFixed(2) : v.toFixed(1));
const lat = (s) => (s && s.count ? `p50 ${ms(s.p50Ms)}  p99 ${ms(s.p99Ms)}  p99.9 ${ms(s.p999Ms)}  max ${ms(s.maxMs)} ms  (${fmt(s.count)} samples)` : '—');

export function printTable(r) {
  const c = r.config;
  if (!c) return;
  if (r.serverDied) console.log(`!! ${r.serverDied}: the figures below cover only the time before`);
  console.log(
    `${r.system} load (${r.durability}${r.server?.version ? `, ${r.system} ${r.server.version}` : ''}): ${c.connections} writers over ${c.logs} logs, ` +
      `${c.tailers} tailers, ${c.size} B entries, pipeline ${c.pipeline}${c.rate ? `, open loop at ${fmt(c.rate)}/s` : ''}, ` +
      `${c.client} client, ${r.elapsedSec} s measured after ${c.warmup} s warm-up`,
  );
  if (r.server?.durabilityDetail) console.log(`  durability       ${r.server.durabilityDetail}`);
  if (c.rate) console.log(`  offered/s        ${fmt(r.offeredPerSec).padStart(12)}   (${fmt(r.drain.rateBacklog)} behind schedule at the end)`);
  console.log(`  appends/s        ${fmt(r.appendsPerSec).padStart(12)}   (${r.appendMBPerSec} MB/s of entries, acks received)`);
  console.log(`  delivered/s      ${fmt(r.deliveredPerSec).padStart(12)}   (entries at ${c.tailers} tailers, ${r.deliveredMBPerSec} MB/s)`);
  console.log(`  append→ack       ${lat(r.ackLatency)}`);
  console.log(`  append→tailer    ${lat(r.tailLatency)}`);
  console.log(`  cpu              client ${r.clientCpuPercent}%  server ${r.serverCpuPercent ?? '—'}%  (100% = one core)`);
  console.log(`  drain            ${r.drain.ms} ms, ${r.drain.inflightLeft} appends unacknowledged, tail lag [${r.drain.tailLag.join(', ')}]`);
  const trouble = [];
  if (r.timeouts) trouble.push(`${r.timeouts} timeouts`);
  for (const [name, count] of Object.entries(r.errors)) trouble.push(`${count} × ${name}`);
  console.log(`  trouble          ${trouble.length ? trouble.join(', ') : 'none'}`);
  if (r.anomalies.length) {
    console.log(`  anomalies (${r.anomalyCount}):`);
    for (const line of r.anomalies) console.log(`    - ${line}`);
  }
}

/** Parses options, runs, prints (the table unless --json, then the JSON line), sets the exit code. */
export async function main(driver, scriptUrl) {
  const options = parseOptions(`${driver.system}-load`, scriptUrl, process.argv.slice(2), driver.options ?? {});
  let result;
  try {
    result = await runPeerLoad(driver, options);
  } catch (error) {
    result = { ok: false, system: driver.system, durability: options.durability, error: error.message };
    console.error(`${driver.system}-load: ${error.stack ?? error}`);
  }
  if (!options.json) printTable(result);
  console.log(JSON.stringify(result));
  process.exitCode = result.ok ? 0 : 1;
}
