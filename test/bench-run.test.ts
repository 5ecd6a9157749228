// `npm run bench` (bench/run.js) end to end, at its smallest: a quick run of tailgrove and
// the uWS echo server for half a second per measurement. Checks that the run completes,
// writes its results (JSON) and chart (SVG), and leaves no process behind. Speed is never
// asserted. The servers come from dist/ (`npm test` builds first).
import t from 'tap';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';

const repositoryRoot = join(import.meta.dirname, '..');

interface Outcome {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], env: Record<string, string>): Promise<Outcome> {
  const child = spawn(process.execPath, ['bench/run.js', ...args], { cwd: repositoryRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve) => child.once('close', (status, signal) => resolve({ status, signal, stdout, stderr })));
}

/** Pids of the processes whose environment holds `NAME=value` (run.js marks every child so). */
function processesMarked(name: string, value: string): number[] {
  const needle = `${name}=${value}\0`;
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (`${readFileSync(`/proc/${entry}/environ`, 'latin1')}\0`.includes(needle)) found.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}

/**
 * A small well-formedness check of an XML document: tags nest and close, attributes are
 * quoted, text holds no raw `<` and only known entities. Returns the problems found.
 */
function xmlProblems(xml: string): string[] {
  const problems: string[] = [];
  const stack: string[] = [];
  const token = /<!--[\s\S]*?-->|<\?[\s\S]*?\?>|<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+\s*=\s*(?:"[^"<]*"|'[^'<]*'))*)\s*(\/?)>|([^<]+)|(<)/g;
  let match: RegExpExecArray | null;
  while ((match = token.exec(xml)) !== null) {
    const [, closing, name, , selfClosing, text, stray] = match;
    if (stray) {
      problems.push(`a "<" that starts no valid tag at offset ${match.index}: ${xml.slice(match.index, match.index + 60)}`);
      break;
    }
    if (text !== undefined) {
      const bad = /&(?!(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/.exec(text);
      if (bad) problems.push(`an unescaped "&" at offset ${match.index + bad.index}`);
      if (stack.length === 0 && text.trim()) problems.push(`text outside the root element at offset ${match.index}`);
      continue;
    }
    if (!name) continue; // comment or processing instruction
    if (closing) {
      const open = stack.pop();
      if (open !== name) problems.push(`</${name}> closes <${open ?? 'nothing'}> at offset ${match.index}`);
      if (stack.length === 0 && xml.slice(token.lastIndex).trim()) problems.push('content after the root element');
    } else if (!selfClosing) {
      if (stack.length === 0 && match.index > 0 && xml.slice(0, match.index).replace(/<\?[\s\S]*?\?>|<!--[\s\S]*?-->/g, '').trim()) {
        problems.push('content before the root element');
      }
      stack.push(name);
    }
  }
  if (stack.length) problems.push(`unclosed elements: ${stack.join(' > ')}`);
  return problems;
}

interface Measurement {
  system: string;
  key: string;
  command: string | null;
  skipped?: string;
  result: { appendsPerSec?: number; deliveredPerSec?: number | null; ackLatency?: { p99Ms: number | null } | null } | null;
}

t.test('npm run bench --quick (tailgrove and echo, 0.5 s per measurement)', async (t) => {
  t.setTimeout(120_000);
  const out = mkdtempSync(join(tmpdir(), 'tailgrove-bench-run-test-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const marker = randomBytes(8).toString('hex');

  const outcome = await run(['--quick', '--only', 'tailgrove,echo', '--seconds', '0.5', '--out', out], { TAILGROVE_BENCH_RUN: marker });
  t.equal(outcome.status, 0, `exit 0\n--- stdout ---\n${outcome.stdout}\n--- stderr ---\n${outcome.stderr}`);
  t.match(outcome.stdout, /Targets/, 'prints the targets table');

  const files = readdirSync(out);
  const jsonFiles = files.filter((name) => name.endsWith('.json'));
  const svgFiles = files.filter((name) => name.endsWith('.svg'));
  t.equal(jsonFiles.length, 1, 'one results file');
  t.equal(svgFiles.length, 1, 'one chart');
  t.equal(jsonFiles[0]?.replace(/\.json$/, ''), svgFiles[0]?.replace(/\.svg$/, ''), 'both named by the run’s timestamp');

  const results = JSON.parse(readFileSync(join(out, jsonFiles[0]!), 'utf8')) as {
    quick: boolean;
    machine: { cpuModel: string | null; cores: number; node: string; kernel: string; memoryBytes: number };
    measurements: Measurement[];
    targets: { name: string; met: boolean | null }[];
  };
  t.equal(results.quick, true);
  t.ok(results.machine.cores > 0 && results.machine.memoryBytes > 0 && results.machine.node && results.machine.kernel, 'machine described');
  const systems = new Set(results.measurements.map((m) => m.system));
  // --quick runs tailgrove at the server's default worker count (the CPU count less one).
  const workers = Math.max(1, availableParallelism() - 1);
  t.same([...systems].sort(), ['echo', `tailgrove-${workers}w`], 'only the systems asked for');
  const echo = results.measurements.find((m) => m.system === 'echo');
  t.ok(echo?.command?.includes('--echo-only'), 'the echo command line is recorded');
  t.ok((echo?.result?.appendsPerSec ?? 0) > 0, 'echo: appendsPerSec > 0');
  const tailgrove = results.measurements.filter((m) => m.system === `tailgrove-${workers}w`);
  t.ok(tailgrove.length >= 2, 'tailgrove measurements');
  const appends = tailgrove.find((m) => m.key === 'a:16x64');
  t.ok((appends?.result?.appendsPerSec ?? 0) > 0, 'tailgrove (a) 16×64: appendsPerSec > 0');
  for (const m of tailgrove) {
    if (m.skipped) continue;
    t.ok((m.result?.appendsPerSec ?? 0) > 0, `tailgrove ${m.key}: appendsPerSec > 0`);
    t.match(m.command ?? '', new RegExp(`bench/load\\.js .*--engine native --workers ${workers}`), `tailgrove ${m.key}: command line recorded`);
  }
  t.ok(results.targets.some((target) => /echo/.test(target.name)), 'the echo ratio is among the targets');

  const svg = readFileSync(join(out, svgFiles[0]!), 'utf8');
  t.match(svg.trimStart(), /^<svg[\s>]/, 'the chart’s root is <svg');
  t.same(xmlProblems(svg), [], 'the chart is well-formed XML');

  // Every child (load generators, servers) is gone once run.js has exited.
  let survivors = processesMarked('TAILGROVE_BENCH_RUN', marker);
  for (let i = 0; i < 20 && survivors.length > 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    survivors = processesMarked('TAILGROVE_BENCH_RUN', marker);
  }
  t.same(survivors, [], 'no child process survives');
});

t.test('the XML check catches what it should', async (t) => {
  t.same(xmlProblems('<svg><g><rect/></g></svg>'), []);
  t.not(xmlProblems('<svg><g></svg>').length, 0, 'mismatched close');
  t.not(xmlProblems('<svg><text>a < b</text></svg>').length, 0, 'raw <');
  t.not(xmlProblems('<svg><text>a & b</text></svg>').length, 0, 'raw &');
  t.not(xmlProblems('<svg x=1></svg>').length, 0, 'unquoted attribute');
});
