// All micro-benchmark suites, each in a child process of its own (a fresh JIT per suite, and a
// young generation large enough that no scavenge runs while allocation is measured), merged
// into one JSON report: bench/results/micro-<timestamp>.json (or --out FILE).
// Run: npm run bench:micro [-- --quick]
//      node --import=tsx bench/micro/index.ts [--quick] [--out FILE] [--max-time S] [--min-samples N]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseRunArgs, printTable, report, writeReport, type CaseResult, type MicroReport } from './harness.js';

export const SUITES = ['ring', 'hashtable', 'frame-codec', 'phases'] as const;

// --expose-gc for the measure's gc(); a 64 MiB semi-space (128 at most) so that M calls of an
// allocating case fit in the young generation between two heap readings.
export const CHILD_FLAGS = ['--expose-gc', '--max-semi-space-size=128', '--min-semi-space-size=64', '--import=tsx'];

const here = dirname(fileURLToPath(import.meta.url));
const options = parseRunArgs();
const passOn: string[] = [];
if (options.quick) passOn.push('--quick');
const argv = process.argv.slice(2);
for (const flag of ['--max-time', '--min-samples']) {
  const at = argv.indexOf(flag);
  if (at >= 0 && argv[at + 1] !== undefined) passOn.push(flag, argv[at + 1]!);
}

const scratch = mkdtempSync(join(tmpdir(), 'tailgrove-micro-'));
const cases: CaseResult[] = [];
const failed: string[] = [];
const started = Date.now();
try {
  for (const name of SUITES) {
    const out = join(scratch, `${name}.json`);
    const child = spawnSync(process.execPath, [...CHILD_FLAGS, join(here, `${name}.ts`), ...passOn, '--out', out], { stdio: 'inherit' });
    if (child.status !== 0) {
      failed.push(`${name} (exit ${child.status ?? child.signal})`);
      continue;
    }
    const part = JSON.parse(readFileSync(out, 'utf8')) as MicroReport;
    cases.push(...part.cases);
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const path = options.out ?? join(here, '..', 'results', `micro-${stamp}.json`);
writeReport(path, report(cases, options, CHILD_FLAGS));
console.log('\nAll suites (ops/s and bytes allocated per op):');
for (const name of SUITES) {
  const suiteCases = cases.filter((c) => c.suite === name);
  if (suiteCases.length > 0) printTable(suiteCases);
}
console.log(`${cases.length} cases in ${((Date.now() - started) / 1000).toFixed(1)} s; results: ${path}`);
if (failed.length > 0) {
  console.error(`failed suites: ${failed.join(', ')}`);
  process.exitCode = 1;
}
