// `npm run bench`: the limit of the stack, the peers and tailgrove, measured in one run, with
// the targets checked. Every measurement is a child process (bench/load.js, or the peers'
// bench/peers/nats-load.js and bench/peers/redis-load.js) that starts its own server.
//
//   npm run bench                      the full run (about 20 minutes on 2 cores)
//   npm run bench -- --quick           a short run (under 2 minutes): fewer shapes, 2 s each
//   node bench/run.js [options]        (after npm run build)
//
//   --quick             echo, pub/sub, tailgrove native at its default worker count (a) 16×64, (b) 100 tailers,
//                       (e) 50 % of peak, and (a) 16×64 of NATS and Redis in fsync mode
//   --only LIST         systems to run, comma-separated: ids or groups (see below)
//   --workloads LIST    workloads to run, comma-separated letters: a,b,c,d,e (default all)
//   --seconds S         measured seconds per measurement (default 5; 2 with --quick)
//   --warmup S          warm-up seconds per measurement (default min(1, S/2))
//   --out DIR           where the results go (default bench/results)
//   --dry-run           print the plan (every command line) and exit
//   --strict            exit 1 when a measurement reports a failed run (ok: false)
//   --verbose           the children's stderr, as it comes
//
// Systems (groups: tailgrove, limit, peers, nats, redis):
//   echo            uWS echo server, the same raw client (load.js --echo-only): the limit
//   pubsub          uWS pub/sub, 1 publisher → M subscribers (load.js --pubsub-only), the
//                   best of 16, 32 and 64 publishes in flight (32 only with --quick)
//   tailgrove-1w    tailgrove, native engine (uWS + LMDB), 1 worker
//   tailgrove-2w    tailgrove, native engine, 2 workers (and tailgrove-Nw for the server's
//                   default worker count N when it is above 2; the targets use the default)
//   tailgrove-free-1w, tailgrove-free-2w
//                   tailgrove, native-free engine, 1 and 2 workers (skipped when it does not start)
//   nats-fsync      NATS JetStream, every ack durable      nats-relaxed   default file store
//   redis-fsync     Redis Streams, appendfsync always      redis-relaxed  appendfsync everysec
//
// Workloads: (a) durable appends, 1/16/64 connections × 1/64/10000 logs, 100 B, no tailers;
// (b) fan-out, 1 writer → 100 and 1000 tailers of one log (tailgrove: the best of 256 and
// 1024 writes in flight, as pub/sub gets the best of its windows); (c) mixed (load.js --mixed:
// 1000 devices, 10000 logs, tailgrove only); (d) 64 KiB and 1 MiB entries; (e) latency
// under load: the peak at 16 connections × 64 logs with 4 tailers, then open loop
// (--rate) at 10 %, 50 % and 90 % of it.
//
// Writes bench/results/<timestamp>.json (machine, every command line and its parsed result,
// the targets) and <timestamp>.svg (bench/chart.js), and prints a table of absolute
// figures and of the ratios against the targets. Exits 0 when every measurement produced
// figures (failed runs are flagged, see --strict), 1 otherwise, 130 on Ctrl-C (children,
// servers included, are stopped in every case).
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import cliProgress from 'cli-progress';
import { renderChart } from './chart.js';
import { OPTIONS } from '../dist/config/schema.js';

const repositoryRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

// ---------------------------------------------------------------------------------------
// Options

/** The usage text is the comment at the top of this file. */
function usage() {
  const lines = [];
  for (const line of readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n')) {
    if (!line.startsWith('//')) break;
    lines.push(line.replace(/^\/\/ ?/, ''));
  }
  return lines.join('\n');
}

let options;
try {
  ({ values: options } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      workloads: { type: 'string' },
      seconds: { type: 'string' },
      warmup: { type: 'string' },
      out: { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
      strict: { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }));
} catch (error) {
  console.error(`bench: ${error.message}\n\n${usage()}`);
  process.exit(2);
}
if (options.help) {
  console.log(usage());
  process.exit(0);
}
const fail = (message) => {
  console.error(`bench: ${message}`);
  process.exit(2);
};

const QUICK = options.quick;
const SECONDS = options.seconds === undefined ? (QUICK ? 2 : 5) : Number(options.seconds);
if (!(SECONDS > 0)) fail(`--seconds must be > 0 (got ${options.seconds})`);
const WARMUP = options.warmup === undefined ? Math.min(1, SECONDS / 2) : Number(options.warmup);
if (!(WARMUP >= 0)) fail(`--warmup must be ≥ 0 (got ${options.warmup})`);
const OUT_DIR = options.out ?? join(repositoryRoot, 'bench', 'results');
const VERBOSE = options.verbose;

/** Every system, in run order. */
const TAILGROVE_DURABILITY = 'every ack after the batch’s LMDB commit returned (fsync, overlappingSync off)';
const FREE_DURABILITY = 'every ack after the group commit’s fdatasync of the segment file';
/** The server's default worker count on this machine: the targets are computed for it. */
const DEFAULT_WORKERS = OPTIONS.workers.default;
const TARGET_SYSTEM = `tailgrove-${DEFAULT_WORKERS}w`;
const nativeSystem = (workers) => ({
  id: `tailgrove-${workers}w`,
  label: `tailgrove native, ${workers} worker${workers > 1 ? 's' : ''}${workers === DEFAULT_WORKERS ? ' (default)' : ''}`,
  group: 'tailgrove',
  kind: 'tailgrove',
  engine: 'native',
  workers,
  durability: TAILGROVE_DURABILITY,
});
const freeSystem = (workers) => ({ id: `tailgrove-free-${workers}w`, label: `tailgrove native-free, ${workers} worker${workers > 1 ? 's' : ''}`, group: 'tailgrove', kind: 'tailgrove', engine: 'native-free', workers, durability: FREE_DURABILITY });
const TAILGROVE_SYSTEMS = [...new Set([1, 2, DEFAULT_WORKERS])].map(nativeSystem).concat([freeSystem(1), freeSystem(2)]);
const SYSTEMS = [
  { id: 'echo', label: 'uWS echo', group: 'limit', kind: 'echo', durability: 'none (nothing stored)' },
  { id: 'pubsub', label: 'uWS pub/sub', group: 'limit', kind: 'pubsub', durability: 'none (nothing stored)' },
  ...TAILGROVE_SYSTEMS,
  { id: 'nats-fsync', label: 'NATS JetStream (fsync)', group: 'nats', kind: 'peer', peer: 'nats', durability: 'fsync' },
  { id: 'nats-relaxed', label: 'NATS JetStream (relaxed)', group: 'nats', kind: 'peer', peer: 'nats', durability: 'relaxed' },
  { id: 'redis-fsync', label: 'Redis Streams (fsync always)', group: 'redis', kind: 'peer', peer: 'redis', durability: 'fsync' },
  { id: 'redis-relaxed', label: 'Redis Streams (fsync everysec)', group: 'redis', kind: 'peer', peer: 'redis', durability: 'relaxed' },
];
const QUICK_SYSTEMS = ['echo', 'pubsub', TARGET_SYSTEM, 'nats-fsync', 'redis-fsync'];
const GROUPS = { tailgrove: TAILGROVE_SYSTEMS.map((s) => s.id), limit: ['echo', 'pubsub'], nats: ['nats-fsync', 'nats-relaxed'], redis: ['redis-fsync', 'redis-relaxed'] };
GROUPS.peers = [...GROUPS.nats, ...GROUPS.redis];
const WORKLOADS = ['a', 'b', 'c', 'd', 'e'];

let selected = QUICK ? SYSTEMS.filter((s) => QUICK_SYSTEMS.includes(s.id)) : SYSTEMS;
if (options.only !== undefined) {
  const wanted = new Set();
  for (const name of options.only.split(',').map((s) => s.trim()).filter(Boolean)) {
    const ids = GROUPS[name] ?? (SYSTEMS.some((s) => s.id === name) ? [name] : null);
    if (!ids) fail(`--only: unknown system ${name} (ids: ${SYSTEMS.map((s) => s.id).join(', ')}; groups: ${Object.keys(GROUPS).join(', ')})`);
    for (const id of ids) wanted.add(id);
  }
  // --quick narrows a group to its quick members (tailgrove → the default worker count), an id stays.
  const named = new Set(options.only.split(',').map((s) => s.trim()));
  selected = SYSTEMS.filter((s) => wanted.has(s.id) && (!QUICK || QUICK_SYSTEMS.includes(s.id) || named.has(s.id)));
}
let workloads = WORKLOADS;
if (options.workloads !== undefined) {
  workloads = options.workloads.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
  for (const w of workloads) if (!WORKLOADS.includes(w)) fail(`--workloads: unknown workload ${w} (a, b, c, d, e)`);
}
if (selected.length === 0) fail('no system selected');

// ---------------------------------------------------------------------------------------
// The plan: one entry per measurement. `args` may be a function of the results so far (the
// open-loop rates of workload e depend on the peak measured just before).

const LOAD = 'bench/load.js';
/** tailgrove's fan-out writer windows (writes in flight); the best one counts, as for pub/sub. */
const FAN_OUT_WINDOWS = [256, 1024];
const PEER_SCRIPT = { nats: 'bench/peers/nats-load.js', redis: 'bench/peers/redis-load.js' };
const timing = () => ['--seconds', String(SECONDS), '--warmup', String(WARMUP)];

function measurementsOf(system) {
  const list = [];
  const add = (workload, key, shape, args, extra = {}) => list.push({ system: system.id, workload, key, shape, args, ...extra });
  const quickShapes = new Set(['a:16x64', 'b:100', 'e:peak', 'e:50', 'echo']);
  const want = (workload, key) => workloads.includes(workload) && (!QUICK || quickShapes.has(key));
  if (system.kind === 'echo') {
    if (want('a', 'echo')) add('a', 'echo', '16 connections, 1 frame per message, 256 in flight', ['--echo-only', '--connections', '16']);
    return list;
  }
  if (system.kind === 'pubsub') {
    // uWS pub/sub throughput depends steeply on the publishes in flight (on the development
    // machine it rises up to ~32 and collapses beyond 64), so the baseline is the best of a
    // few windows: the targets and the chart use the best measurement of each key.
    for (const subscribers of [100, 1000]) {
      const key = `b:${subscribers}`;
      for (const window of QUICK ? [32] : [16, 32, 64]) {
        if (want('b', key)) add('b', key, `1 publisher → ${subscribers} subscribers, 100 B, ${window} in flight`, ['--pubsub-only', '--tailers', String(subscribers), '--size', '100', '--pipeline', String(window)]);
      }
    }
    return list;
  }
  const peer = system.kind === 'peer';
  if (peer && QUICK) {
    // One shape per peer in a quick run.
    if (want('a', 'a:16x64')) add('a', 'a:16x64', '16 connections × 64 logs, 100 B', ['--connections', '16', '--logs', '64', '--tailers', '0', '--size', '100']);
    return list;
  }
  for (const connections of [1, 16, 64]) {
    for (const logs of [1, 64, 10000]) {
      const key = `a:${connections}x${logs}`;
      if (want('a', key)) add('a', key, `${connections} connection${connections > 1 ? 's' : ''} × ${logs} log${logs > 1 ? 's' : ''}, 100 B`, ['--connections', String(connections), '--logs', String(logs), '--tailers', '0', '--size', '100']);
    }
  }
  for (const tailers of [100, 1000]) {
    const key = `b:${tailers}`;
    if (!want('b', key)) continue;
    if (peer) {
      add('b', key, `1 writer → ${tailers} tailers of 1 log, 100 B`, ['--connections', '1', '--logs', '1', '--tailers', String(tailers), '--size', '100']);
      continue;
    }
    // Like uWS pub/sub's publishes in flight, the writer's window is the load's free
    // parameter: the best of two counts (entries per push frame grow with it).
    for (const window of FAN_OUT_WINDOWS) {
      add('b', key, `1 writer → ${tailers} tailers of 1 log, 100 B, ${window} in flight`, ['--connections', '1', '--logs', '1', '--tailers', String(tailers), '--size', '100', '--pipeline', String(window)]);
    }
  }
  if (!peer && want('c', 'c')) add('c', 'c', '1000 devices × 10000 logs: append to 1, tail 10, pipeline 4', ['--mixed', '--devices', '1000', '--logs', '10000']);
  if (want('d', 'd:64k')) add('d', 'd:64k', '64 KiB entries, 16 connections × 16 logs, pipeline 8, 1 tailer', ['--connections', '16', '--logs', '16', '--size', '65536', '--pipeline', '8', '--tailers', '1']);
  if (want('d', 'd:1m')) add('d', 'd:1m', '1 MiB entries, 4 connections × 4 logs, pipeline 2, 1 tailer', ['--connections', '4', '--logs', '4', '--size', '1048576', '--pipeline', '2', '--tailers', '1']);
  const eShape = ['--connections', '16', '--logs', '64', '--tailers', '4', '--size', '100'];
  if (want('e', 'e:peak')) {
    add('e', 'e:peak', 'peak: 16 connections × 64 logs, 4 tailers, closed loop', eShape);
    for (const percent of [10, 50, 90]) {
      if (!want('e', `e:${percent}`)) continue;
      add('e', `e:${percent}`, `${percent} % of peak, open loop`, (done) => {
        const peak = done.find((m) => m.system === system.id && m.key === 'e:peak' && m.result?.appendsPerSec > 0);
        if (!peak) return { skip: 'no peak measured for this system' };
        return { args: [...eShape, '--rate', String(Math.max(1, Math.round((peak.result.appendsPerSec * percent) / 100)))] };
      }, { percent });
    }
  }
  return list;
}

/** The child command (script and arguments) of a measurement of `system`. */
function commandOf(system, args) {
  if (system.kind === 'peer') return [PEER_SCRIPT[system.peer], ...args, '--durability', system.durability, ...timing(), '--json'];
  const base = [LOAD, ...args, ...timing(), '--json'];
  if (system.kind === 'tailgrove') base.push('--engine', system.engine, '--workers', String(system.workers));
  return base;
}

// ---------------------------------------------------------------------------------------
// Child processes. Each measurement runs in its own process group, so that the load
// generator and the server it spawned can be stopped together.

const BENCH_RUN = process.env.TAILGROVE_BENCH_RUN || randomBytes(6).toString('hex');
const live = new Set();

function killGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // gone
    }
  }
}

/**
 * Runs `node script …args`; resolves { exitCode, signal, stdout, stderr, ms, timedOut }.
 * On timeout: SIGTERM to the child, then SIGKILL to its whole group.
 */
function runChild(argv, timeoutMs) {
  const started = performance.now();
  const child = spawn(process.execPath, argv, {
    cwd: repositoryRoot,
    env: { ...process.env, TAILGROVE_BENCH_RUN: BENCH_RUN },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group (the server it spawns joins it)
  });
  live.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk) => {
    stderr += chunk;
    if (stderr.length > 256 * 1024) stderr = stderr.slice(-128 * 1024);
    if (VERBOSE) process.stderr.write(chunk);
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    stopChild(child);
  }, timeoutMs);
  return new Promise((resolve) => {
    child.once('error', (error) => {
      stderr += `\n${error.message}`;
    });
    child.once('close', (exitCode, signal) => {
      clearTimeout(timer);
      live.delete(child);
      // Whatever the child left in its group (a server it did not stop) goes too.
      killGroup(child, 'SIGKILL');
      resolve({ exitCode, signal, stdout, stderr, ms: performance.now() - started, timedOut });
    });
  });
}

/** SIGTERM (the load scripts stop their servers), then SIGKILL to the group after 5 s. */
function stopChild(child) {
  try {
    child.kill('SIGTERM');
  } catch {
    // gone
  }
  const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 5000);
  timer.unref();
  child.once('close', () => clearTimeout(timer));
}

process.once('exit', () => {
  for (const child of live) killGroup(child, 'SIGKILL');
});

/** The last line of `stdout` that parses as a JSON object, or null. */
function lastJson(stdout) {
  const lines = stdout.trim().split('\n').reverse();
  for (const line of lines) {
    const text = line.trim();
    if (!text.startsWith('{')) continue;
    try {
      return JSON.parse(text);
    } catch {
      // not this one
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------
// Availability: the native-free engine and the peers.

/** Whether `node server.js --engine native-free` starts; resolves null, or why not. */
async function probeNativeFree() {
  const help = spawnSync(process.execPath, ['server.js', '--help'], { cwd: repositoryRoot, encoding: 'utf8', timeout: 30000 });
  if (!`${help.stdout}${help.stderr}`.includes('native-free')) return 'server.js has no --engine native-free';
  const dataDir = mkdtempSync(join(os.tmpdir(), 'tailgrove-bench-probe-'));
  const child = spawn(process.execPath, ['server.js', '--engine', 'native-free', '--host', '127.0.0.1', '--port', '0', '--data', dataDir, '--workers', '1', '--log-format', 'json'], {
    cwd: repositoryRoot,
    env: { ...process.env, TAILGROVE_BENCH_RUN: BENCH_RUN },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  live.add(child);
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk) => (output += chunk));
  const outcome = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve('not ready after 20 s'), 20000);
    const check = () => {
      if (/tailgrove ready/.test(output)) {
        clearTimeout(timer);
        resolve(null);
      }
    };
    child.stdout.on('data', check);
    child.once('close', (code) => {
      clearTimeout(timer);
      const message = /"msg":"([^"]*)"/.exec(output)?.[1] ?? output.trim().split('\n').at(-1) ?? '';
      resolve(`exited (${code}) before ready: ${message.slice(0, 300)}`);
    });
  });
  if (child.exitCode === null && child.signalCode === null) {
    stopChild(child);
    await new Promise((resolve) => child.once('close', resolve));
  }
  live.delete(child);
  killGroup(child, 'SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
  return outcome;
}

/** Whether the peers can run: their scripts exist and ensurePeers() finds the servers. */
async function probePeers(wanted) {
  const status = {};
  const missing = Object.entries(PEER_SCRIPT).filter(([peer, script]) => wanted.has(peer) && !existsSync(join(repositoryRoot, script)));
  for (const [peer, script] of missing) status[peer] = `${script} is not there`;
  const install = join(repositoryRoot, 'bench/peers/install.js');
  if (!existsSync(install)) {
    for (const peer of wanted) status[peer] ??= 'bench/peers/install.js is not there';
    return { status, versions: null };
  }
  try {
    const module = await import(pathToFileURL(install).href);
    await module.ensurePeers({ quiet: true });
    return { status, versions: module.peerVersions?.() ?? null };
  } catch (error) {
    for (const peer of wanted) status[peer] ??= error.message.split('\n')[0];
    return { status, versions: null };
  }
}

// ---------------------------------------------------------------------------------------
// Machine

function machineInfo() {
  const cpus = os.cpus();
  const git = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repositoryRoot, encoding: 'utf8' });
  const dirty = spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: repositoryRoot, encoding: 'utf8' });
  return {
    cpuModel: cpus[0]?.model?.trim() ?? null,
    cores: cpus.length,
    memoryBytes: os.totalmem(),
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.versions.node,
    platform: `${os.type()} ${os.arch()}`,
    kernel: os.release(),
    loadAverageAtStart: os.loadavg().map((v) => Math.round(v * 100) / 100),
    commit: git.status === 0 ? git.stdout.trim() + (dirty.stdout?.trim() ? ' (with uncommitted changes)' : '') : null,
  };
}

// ---------------------------------------------------------------------------------------
// Targets

/** The measurement of `system` with `key` (the best one, when there are several: pub/sub). */
const byKey = (measurements, system, key) => {
  const score = (m) => m.result.deliveredPerSec || m.result.appendsPerSec || 0;
  const found = measurements.filter((m) => m.system === system && m.key === key && m.result && !m.skipped);
  return found.reduce((best, m) => (best === undefined || score(m) > score(best) ? m : best), undefined);
};

/** The ratios the project aims at, each with its target and whether this run met it. */
function targetsOf(measurements) {
  const tg = TARGET_SYSTEM;
  const out = [];
  const ratio = (name, numerator, denominator, target, unit, targetText) => {
    const value = numerator && denominator && denominator > 0 ? numerator / denominator : null;
    out.push({ name, value: value === null ? null : Math.round(value * 1000) / 1000, target, unit, targetText, met: value === null ? null : value >= target });
  };
  const appends = (system, key) => byKey(measurements, system, key)?.result.appendsPerSec ?? null;
  const delivered = (system, key) => byKey(measurements, system, key)?.result.deliveredPerSec ?? null;
  ratio('tailgrove / uWS echo — appends/s (16 conn × 64 logs) ÷ echo messages/s', appends(tg, 'a:16x64'), appends('echo', 'echo'), 0.3, 'ratio', '≥ 0.30×');
  ratio('tailgrove / NATS JetStream (fsync) — appends/s, 16 conn × 64 logs', appends(tg, 'a:16x64'), appends('nats-fsync', 'a:16x64'), 3, 'ratio', '≥ 3×');
  ratio('tailgrove / Redis Streams (fsync always) — appends/s, 16 conn × 64 logs', appends(tg, 'a:16x64'), appends('redis-fsync', 'a:16x64'), 2, 'ratio', '≥ 2×');
  ratio('fan-out tailgrove / uWS pub/sub — deliveries/s, 100 tailers', delivered(tg, 'b:100'), delivered('pubsub', 'b:100'), 3, 'ratio', '≥ 3×');
  if (delivered(tg, 'b:1000') && delivered('pubsub', 'b:1000')) {
    ratio('fan-out tailgrove / uWS pub/sub — deliveries/s, 1000 tailers', delivered(tg, 'b:1000'), delivered('pubsub', 'b:1000'), 3, 'ratio', '≥ 3×');
  }
  const e50 = byKey(measurements, tg, 'e:50');
  const p99 = e50?.result.ackLatency?.p99Ms ?? null;
  out.push({ name: 'tailgrove p99 append→ack at 50 % of peak', value: p99, target: 2, unit: 'ms', targetText: '≤ 2 ms', met: p99 === null ? null : p99 <= 2 });
  return out;
}

// ---------------------------------------------------------------------------------------
// Report

const fmt = (n) => (n === null || n === undefined || Number.isNaN(n) ? '—' : Math.round(n).toLocaleString('en-US'));
const ms = (v) => (v === null || v === undefined ? '—' : v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0));

function table(rows, header) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const numeric = header.map((_, i) => rows.every((r) => /^[-—\d.,%×/ ]+$/.test(String(r[i])) || r[i] === ''));
  const line = (cells) => cells.map((c, i) => (numeric[i] ? String(c).padStart(widths[i]) : String(c).padEnd(widths[i]))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '─'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

function report(results) {
  const label = Object.fromEntries(SYSTEMS.map((s) => [s.id, s.label]));
  const rows = [];
  for (const m of results.measurements) {
    const r = m.result;
    if (m.skipped) {
      rows.push([label[m.system], `(${m.workload})`, m.shape, 'skipped', '', '', '', '', '']);
      continue;
    }
    if (!r) {
      rows.push([label[m.system], `(${m.workload})`, m.shape, m.error === 'interrupted' ? 'interrupted' : 'FAILED', '', '', '', '', '']);
      continue;
    }
    const ack = r.ackLatency;
    const flag = r.ok === false ? ' !' : '';
    rows.push([
      label[m.system],
      `(${m.workload})`,
      m.shape + (r.targetRate ?? r.config?.rate ? ` = ${fmt(r.targetRate ?? r.config.rate)}/s` : ''),
      fmt(r.appendsPerSec) + flag,
      r.deliveredPerSec === null || r.deliveredPerSec === undefined || (r.tails ?? r.tailFanout) === 0 ? '—' : fmt(r.deliveredPerSec),
      ack?.count ? `${ms(ack.p50Ms)} / ${ms(ack.p99Ms)} / ${ms(ack.p999Ms)}` : '—',
      r.tailLatency?.count ? ms(r.tailLatency.p99Ms) : '—',
      r.serverCpuPercent === null || r.serverCpuPercent === undefined ? '—' : `${r.serverCpuPercent}%`,
      r.clientCpuPercent === null || r.clientCpuPercent === undefined ? '—' : `${r.clientCpuPercent}%`,
    ]);
  }
  const lines = [];
  const m = results.machine;
  lines.push(`tailgrove benchmark${results.quick ? ' (--quick)' : ''}: ${results.startedAt}, ${results.durationSec} s, ${SECONDS} s per measurement after ${WARMUP} s warm-up`);
  lines.push(`machine: ${m.cpuModel} × ${m.cores}, ${m.memoryGiB} GiB, Node ${m.node}, ${m.platform} ${m.kernel}, load average at start ${m.loadAverageAtStart.join(' ')}; client and servers share these cores`);
  lines.push('');
  lines.push(table(rows, ['system', 'workload', 'shape', 'appends/s', 'delivered/s', 'ack p50 / p99 / p99.9 ms', 'tail p99 ms', 'server cpu', 'client cpu']));
  lines.push('echo: appends/s = messages echoed/s, ack = round trip; pub/sub: appends/s = publishes/s (each to every subscriber), tail = publish→receive.');
  lines.push('"!" = the run reported a problem (anomalies, errors or unacknowledged writes: see the JSON).');
  lines.push('');
  lines.push(`Targets (${SYSTEMS.find((s) => s.id === TARGET_SYSTEM).label}):`);
  lines.push(
    table(
      results.targets.map((t) => [t.name, t.value === null ? '—' : t.unit === 'ms' ? `${ms(t.value)} ms` : t.value < 10 ? `${t.value.toFixed(2)}×` : `${t.value.toFixed(1)}×`, t.targetText, t.met === null ? 'not measured' : t.met ? 'met' : 'MISSED']),
      ['ratio', 'value', 'target', ''],
    ),
  );
  if (results.notes.length) {
    lines.push('');
    for (const note of results.notes) lines.push(`note: ${note}`);
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------
// The run

async function main() {
  const startedAt = new Date();
  const t0 = performance.now();
  const notes = [];
  const machine = machineInfo();

  // Availability of the optional systems.
  let systems = [...selected];
  const wantedPeers = new Set(systems.filter((s) => s.kind === 'peer').map((s) => s.peer));
  let peerVersions = null;
  if (wantedPeers.size > 0 && !options['dry-run']) {
    const peers = await probePeers(wantedPeers);
    peerVersions = peers.versions;
    for (const [peer, why] of Object.entries(peers.status)) {
      notes.push(`peers not available: ${peer} skipped (${why})`);
      systems = systems.filter((s) => s.peer !== peer);
    }
  }
  if (systems.some((s) => s.engine === 'native-free') && !options['dry-run']) {
    const why = await probeNativeFree();
    if (why) {
      notes.push(`tailgrove native-free skipped: \`node server.js --engine native-free\` ${why}`);
      systems = systems.filter((s) => s.engine !== 'native-free');
    }
  }

  const plan = systems.flatMap((system) => measurementsOf(system).map((m) => ({ ...m, systemSpec: system })));
  if (options['dry-run']) {
    for (const m of plan) {
      const args = typeof m.args === 'function' ? ['…', '--rate', `<${m.percent} % of the peak>`] : m.args;
      console.log(`${m.system.padEnd(15)} (${m.workload}) ${m.key.padEnd(10)} node ${commandOf(m.systemSpec, args).join(' ')}`);
    }
    console.log(`${plan.length} measurements`);
    return;
  }
  if (plan.length === 0) {
    for (const note of notes) console.error(`note: ${note}`);
    fail('nothing to measure (check --only and --workloads)');
  }

  const measurements = [];
  const results = {
    version: 1,
    quick: QUICK,
    startedAt: startedAt.toISOString(),
    finishedAt: null,
    durationSec: null,
    interrupted: false,
    secondsPerMeasurement: SECONDS,
    warmupSeconds: WARMUP,
    argv: process.argv.slice(2),
    machine,
    peerVersions,
    systems: systems.map(({ id, label, group, engine, workers, peer, durability }) => ({ id, label, group, engine, workers, peer, durability })),
    // The measurement keys: a:<connections>x<logs>, b:<tailers>, c, d:64k, d:1m, e:peak,
    // e:<percent>, echo; each measurement has its command line and the child's JSON result.
    notes,
    measurements,
    targets: [],
  };
  mkdirSync(OUT_DIR, { recursive: true });
  const stamp = startedAt.toISOString().replace(/:/g, '-').replace(/\.\d+Z$/, 'Z');
  const jsonPath = join(OUT_DIR, `${stamp}.json`);
  const svgPath = join(OUT_DIR, `${stamp}.svg`);
  const save = () => {
    results.finishedAt = new Date().toISOString();
    results.durationSec = Math.round((performance.now() - t0) / 100) / 10;
    results.targets = targetsOf(measurements);
    for (const system of results.systems) {
      const detail = measurements.find((m) => m.system === system.id && m.result?.server?.durabilityDetail)?.result.server.durabilityDetail;
      if (detail) system.durabilityDetail = detail;
    }
    writeFileSync(jsonPath, `${JSON.stringify(results, null, 2)}\n`);
    writeFileSync(svgPath, renderChart(results));
  };

  // Ctrl-C / SIGTERM: stop the measurement in flight (and its servers), keep what was measured.
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) {
      for (const child of live) killGroup(child, 'SIGKILL');
      process.exit(130);
    }
    interrupted = true;
    results.interrupted = true;
    for (const child of live) stopChild(child);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const tty = process.stderr.isTTY;
  const multibar = new cliProgress.MultiBar(
    {
      format: ' {bar} {value}/{total} measurements | {duration_formatted} elapsed, ~{eta_formatted} left | {current}',
      hideCursor: true,
      clearOnComplete: true,
      etaBuffer: 4,
      fps: 4,
    },
    cliProgress.Presets.shades_classic,
  );
  const bar = multibar.create(plan.length, 0, { current: 'starting' });
  const say = (line) => (tty ? multibar.log(`${line}\n`) : process.stderr.write(`${line}\n`));
  for (const note of notes) say(`note: ${note}`);

  for (const [index, item] of plan.entries()) {
    if (interrupted) break;
    const { systemSpec, args: argsOrFn, percent, ...fields } = item;
    const title = `${systemSpec.label} (${item.workload}) ${item.shape}`;
    bar.update(index, { current: title });
    let args = argsOrFn;
    if (typeof argsOrFn === 'function') {
      const planned = argsOrFn(measurements);
      if (planned.skip) {
        measurements.push({ ...fields, percent, skipped: planned.skip, command: null, result: null });
        say(`[${index + 1}/${plan.length}] ${title}: skipped (${planned.skip})`);
        continue;
      }
      args = planned.args;
    }
    const argv = commandOf(systemSpec, args);
    // Generous (1000 connections take a while to set up on 2 busy cores), but a hung child
    // must not stall the whole run.
    const timeoutMs = (SECONDS + WARMUP) * 2000 + 90_000;
    const outcome = await runChild(argv, timeoutMs);
    let result = lastJson(outcome.stdout);
    let partial = null;
    if (interrupted) {
      // Stopped half-way: whatever it printed covers a cut-short window, not a measurement.
      partial = result;
      result = null;
    }
    const record = {
      ...fields,
      ...(percent ? { percent } : {}),
      command: `node ${argv.join(' ')}`,
      exitCode: outcome.exitCode ?? outcome.signal,
      durationSec: Math.round(outcome.ms / 100) / 10,
      ok: Boolean(result && result.ok !== false && outcome.exitCode === 0),
      result,
    };
    if (partial) record.interruptedResult = partial;
    if (!result || outcome.exitCode !== 0) record.stderrTail = outcome.stderr.trim().split('\n').slice(-15).join('\n');
    if (outcome.timedOut) record.error = `timed out after ${Math.round(timeoutMs / 1000)} s`;
    else if (!result) record.error = `no JSON result (exit ${record.exitCode})`;
    if (interrupted) record.error = 'interrupted';
    measurements.push(record);
    const figure = !result
      ? `FAILED: ${record.error}${record.stderrTail ? `\n    ${record.stderrTail.split('\n').slice(-3).join('\n    ')}` : ''}`
      : `${fmt(result.appendsPerSec)} appends/s` +
        (result.deliveredPerSec ? `, ${fmt(result.deliveredPerSec)} delivered/s` : '') +
        (result.ackLatency?.count ? `, ack p99 ${ms(result.ackLatency.p99Ms)} ms` : '') +
        (result.ok === false ? ` (the run reported problems: ${(result.anomalies ?? []).slice(0, 2).join('; ') || `exit ${record.exitCode}`})` : '');
    say(`[${index + 1}/${plan.length}] ${title}: ${figure}`);
    save(); // partial results survive a crash or Ctrl-C
  }
  bar.update(measurements.length, { current: interrupted ? 'interrupted' : 'done' });
  multibar.stop();
  save();

  console.log(report(results));
  console.log('');
  const shown = (path) => (relative(process.cwd(), path).startsWith('..') ? path : relative(process.cwd(), path));
  console.log(`results: ${shown(jsonPath)}`);
  console.log(`chart:   ${shown(svgPath)}`);
  if (interrupted) {
    console.log('interrupted: the results hold the measurements finished before Ctrl-C');
    process.exitCode = 130;
    return;
  }
  const failed = measurements.filter((m) => !m.skipped && !m.result);
  if (failed.length) console.log(`${failed.length} measurement${failed.length > 1 ? 's' : ''} failed: ${failed.map((m) => `${m.system} ${m.key}`).join(', ')} (stderr in the results JSON)`);
  const troubled = measurements.filter((m) => m.result && !m.ok);
  if (failed.length) process.exitCode = 1;
  else if (options.strict && troubled.length) process.exitCode = 1;
}

main().catch((error) => {
  console.error(`bench: ${error.stack ?? error}`);
  for (const child of live) killGroup(child, 'SIGKILL');
  process.exit(1);
});
