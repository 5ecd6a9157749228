// Micro-benchmark harness: a suite of cases is timed with benny (ops/s, margin of error), then
// each case's heap allocation is measured on its own: the operation runs M times between two
// heap readings taken right after a full GC, with no collection in between (a PerformanceObserver
// on 'gc' entries checks that; M is kept well below the young generation's free room, and the
// measure is retried with a smaller M if a collection happened anyway).
//
// Each suite file (ring.ts, hashtable.ts, frame-codec.ts, phases.ts) runs alone through
// runStandalone(); index.ts runs them all, each in a child process with a young generation
// large enough for the measure (--min-semi-space-size), and merges their results into one JSON.
import { add, complete, configure, cycle, suite } from 'benny';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem, type } from 'node:os';
import { dirname, resolve } from 'node:path';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { getHeapSpaceStatistics } from 'node:v8';

/** One benchmarked operation. */
export interface MicroCase {
  name: string;
  /** One call of the operation: benny times it, and the allocation measure runs it M times. */
  fn: () => void;
  /** Units of work one call does (frames, entries): ops/s and bytes/op are reported per unit. */
  units?: number;
  /** The name of the unit ("op" when a call is the unit). */
  unit?: string;
}

export interface CaseResult {
  suite: string;
  name: string;
  /** What one op is; `unitsPerCall` ops make one call of the benchmarked function. */
  unit: string;
  unitsPerCall: number;
  /** Ops (units) per second: benny's calls per second × unitsPerCall. */
  opsPerSec: number;
  /** benny's relative margin of error, in percent. */
  marginPercent: number;
  samples: number;
  /** Heap bytes allocated per op (unit), 1 decimal; null when every measure saw a GC. */
  bytesPerOp: number | null;
  /** Ops run in the allocation measure that counted. */
  allocationOps: number;
  note?: string;
}

export interface MicroReport {
  machine: { cpu: string; cores: number; memoryGiB: number; os: string; loadAverage?: number[] };
  node: string;
  date: string;
  quick: boolean;
  flags: string[];
  cases: CaseResult[];
}

export interface RunOptions {
  quick: boolean;
  /** benny settings for a full run (seconds): each case runs at least minSamples cycles and maxTime. */
  maxTime: number;
  minSamples: number;
}

const QUICK = { minSamples: 3, maxTime: 0.15, minTime: 0.02 };

/** A value the benchmarked functions write to, so the JIT cannot drop their results. */
export const blackhole = { value: 0 };

/** Parse the flags every suite and index.ts accept. */
export function parseRunArgs(argv: string[] = process.argv.slice(2)): RunOptions & { out?: string } {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      'max-time': { type: 'string' },
      'min-samples': { type: 'string' },
      out: { type: 'string' },
    },
    strict: true,
  });
  return {
    quick: values.quick ?? false,
    maxTime: values['max-time'] === undefined ? 2 : Number(values['max-time']),
    minSamples: values['min-samples'] === undefined ? 10 : Number(values['min-samples']),
    out: values.out,
  };
}

function gcFunction(): () => void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run with node --expose-gc (npm run bench:micro)');
  return gc;
}

// Every GC in this process, by start time, to tell whether one ran during a measure.
const gcStarts: number[] = [];
let observer: PerformanceObserver | undefined;

function observeGc(): void {
  if (observer !== undefined) return;
  observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) gcStarts.push(entry.startTime);
  });
  observer.observe({ entryTypes: ['gc'] });
}

/** GC entries arrive asynchronously: give them a moment, then count those in [from, to]. */
async function gcsBetween(from: number, to: number): Promise<number> {
  await new Promise((resolve) => setTimeout(resolve, 5));
  let count = 0;
  for (const start of gcStarts) if (start >= from && start <= to) count++;
  return count;
}

function newSpaceRoom(): number {
  const space = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
  return space === undefined ? 8 << 20 : space.space_available_size;
}

// A separate loop function per call site shape would not help: it is warmed up on every case
// before measuring, so its code is compiled before the first heap reading.
function repeat(fn: () => void, calls: number): void {
  for (let i = 0; i < calls; i++) fn();
}

interface HeapDelta {
  bytes: number;
  gcs: number;
}

async function heapDelta(fn: () => void, calls: number): Promise<HeapDelta> {
  const gc = gcFunction();
  gc();
  const started = performance.now();
  const before = process.memoryUsage().heapUsed;
  repeat(fn, calls);
  const after = process.memoryUsage().heapUsed;
  const ended = performance.now();
  return { bytes: after - before, gcs: await gcsBetween(started, ended) };
}

const noop = (): void => {};

/**
 * Heap bytes per call of `fn`: the least of three measures of `calls` calls (noise only adds),
 * less the same measure of an empty function (the heap readings themselves allocate).
 */
async function measureAllocation(fn: () => void, callsWanted: number): Promise<{ bytesPerCall: number | null; calls: number; note?: string }> {
  observeGc();
  repeat(fn, Math.min(callsWanted, 1000));
  repeat(noop, 1000);
  let calls = callsWanted;
  for (let attempt = 0; attempt < 4; attempt++) {
    // A probe: if the calls would fill half the young generation, run fewer.
    const probeCalls = Math.max(1, Math.min(calls, 200));
    const probe = await heapDelta(fn, probeCalls);
    const perCall = Math.max(0, probe.bytes) / probeCalls;
    const room = newSpaceRoom();
    if (perCall * calls > room / 2) calls = Math.max(probeCalls, Math.floor(room / 2 / Math.max(perCall, 1)));
    let best = Infinity;
    let sawGc = false;
    for (let rep = 0; rep < 3; rep++) {
      const delta = await heapDelta(fn, calls);
      if (delta.gcs > 0) {
        sawGc = true;
        break;
      }
      best = Math.min(best, delta.bytes);
    }
    if (!sawGc) {
      let baseline = Infinity;
      for (let rep = 0; rep < 3; rep++) {
        const delta = await heapDelta(noop, calls);
        if (delta.gcs === 0) baseline = Math.min(baseline, delta.bytes);
      }
      if (!Number.isFinite(baseline)) baseline = 0;
      return { bytesPerCall: Math.max(0, best - baseline) / calls, calls };
    }
    calls = Math.max(1, Math.floor(calls / 4));
  }
  return { bytesPerCall: null, calls, note: 'GC during measure' };
}

/** Run one suite: benny's timing of every case, then the allocation measure of each. */
export async function runSuite(name: string, cases: MicroCase[], options: RunOptions): Promise<CaseResult[]> {
  gcFunction();
  const settings = options.quick ? QUICK : { minSamples: options.minSamples, maxTime: options.maxTime };
  const summary = await suite(
    name,
    configure({ cases: settings, minDisplayPrecision: 1 }),
    ...cases.map((c) => add(c.name, c.fn)),
    cycle(),
    complete(),
  );
  const results: CaseResult[] = [];
  for (const c of cases) {
    const timed = summary.results.find((r) => r.name === c.name);
    if (timed === undefined) throw new Error(`benny did not report case ${c.name}`);
    const units = c.units ?? 1;
    // About 0.2 s of calls (0.03 s with --quick), between 200 and 100 000 calls.
    const targetSeconds = options.quick ? 0.03 : 0.2;
    const callsWanted = Math.max(200, Math.min(100_000, Math.round(timed.ops * targetSeconds)));
    const allocation = await measureAllocation(c.fn, callsWanted);
    results.push({
      suite: name,
      name: c.name,
      unit: c.unit ?? 'op',
      unitsPerCall: units,
      opsPerSec: Math.round(timed.ops * units),
      marginPercent: Number(timed.margin.toFixed(2)),
      samples: timed.samples,
      bytesPerOp: allocation.bytesPerCall === null ? null : Number((allocation.bytesPerCall / units).toFixed(1)),
      allocationOps: allocation.calls * units,
      ...(allocation.note === undefined ? {} : { note: allocation.note }),
    });
  }
  printTable(results);
  return results;
}

function formatRate(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

/** The suite's figures per op (unit), bytes allocated included. */
export function printTable(results: CaseResult[]): void {
  const rows = results.map((r) => [
    r.name,
    r.unit,
    formatRate(r.opsPerSec),
    `±${r.marginPercent.toFixed(1)}%`,
    r.bytesPerOp === null ? (r.note ?? 'n/a') : r.bytesPerOp.toFixed(1),
  ]);
  const header = ['case', 'op', 'ops/s', 'margin', 'bytes/op'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]): string => `| ${cells.map((cell, i) => (i >= 2 ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join(' | ')} |`;
  console.log(`\n${results[0]?.suite ?? ''}`);
  console.log(line(header));
  console.log(`|${widths.map((w, i) => (i >= 2 ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`);
  for (const row of rows) console.log(line(row));
  console.log('');
}

export function machineInfo(): MicroReport['machine'] {
  const cpuList = cpus();
  return {
    cpu: cpuList[0]?.model.trim() ?? 'unknown',
    cores: cpuList.length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    os: `${type()} ${release()}`,
    // Load when the report is written (1, 5, 15 min): figures are noisy above ~1 per core.
    loadAverage: loadavg().map((load) => Number(load.toFixed(2))),
  };
}

export function report(cases: CaseResult[], options: RunOptions, flags: string[]): MicroReport {
  return { machine: machineInfo(), node: process.version, date: new Date().toISOString(), quick: options.quick, flags, cases };
}

export function writeReport(path: string, value: MicroReport): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);
}

/** True when `moduleUrl` is the script node was started with. */
export function isMain(moduleUrl: string): boolean {
  return process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(moduleUrl);
}

/**
 * Run one suite as a script: `node --expose-gc --import=tsx bench/micro/<suite>.ts [--quick]
 * [--out file.json]`. Without --out the figures are only printed.
 */
export async function runStandalone(name: string, build: () => MicroCase[] | Promise<MicroCase[]>): Promise<void> {
  const options = parseRunArgs();
  const cases = await build();
  const results = await runSuite(name, cases, options);
  if (options.out !== undefined) writeReport(options.out, report(results, options, process.execArgv));
  observer?.disconnect();
}
