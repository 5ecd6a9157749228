// The micro-benchmarks run (bench/micro/index.ts --quick) and report every suite: ops/s > 0
// and a number for bytes allocated per op. Speed is never asserted (the machine is shared);
// allocation is asserted only where it is zero by design: the ring's reserve + publish and
// the hash table's find. A regression there is a real bug, not noise.
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MicroReport } from '../bench/micro/harness.js';

const SUITES = ['ring', 'hashtable', 'frame-codec', 'phases'];

function run(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', '--import=tsx', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

t.test('bench/micro --quick reports every suite with ops/s and bytes/op', { timeout: 150_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tailgrove-bench-micro-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'micro.json');
  const { code, output } = await run(['bench/micro/index.ts', '--quick', '--out', out]);
  t.equal(code, 0, 'the run exits 0', { output: code === 0 ? undefined : output.slice(-4000) });
  const report = JSON.parse(readFileSync(out, 'utf8')) as MicroReport;
  t.equal(report.node, process.version);
  t.ok(report.machine.cores > 0, 'the machine is described');
  t.equal(report.quick, true);
  for (const suite of SUITES) {
    const cases = report.cases.filter((c) => c.suite === suite);
    t.ok(cases.length >= 3, `suite ${suite} has its cases (${cases.length})`);
    for (const c of cases) {
      t.ok(c.opsPerSec > 0, `${suite} / ${c.name}: ops/s ${c.opsPerSec}`);
      t.ok(Number.isFinite(c.marginPercent), `${suite} / ${c.name}: a margin`);
      t.ok(typeof c.bytesPerOp === 'number' && Number.isFinite(c.bytesPerOp), `${suite} / ${c.name}: bytes/op ${c.bytesPerOp} ${c.note ?? ''}`);
    }
  }
  const allocationFree = report.cases.filter((c) => (c.suite === 'ring' && c.name.startsWith('reserve+publish')) || (c.suite === 'hashtable' && c.name.startsWith('find ')));
  t.ok(allocationFree.length >= 8, 'the allocation-free cases are there (ring reserve+publish, table find hit and miss)');
  for (const c of allocationFree) t.ok(c.bytesPerOp !== null && c.bytesPerOp < 64, `${c.suite} / ${c.name} allocates nothing (${c.bytesPerOp} B/op)`);
});
