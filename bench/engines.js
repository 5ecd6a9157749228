// native vs native-free, side by side: the same load (bench/load.js, any of its options) run
// against a server on each engine, alternating, in one run, with a table of both.
//   npm run bench:engines -- [--rounds N] [load.js options]   (node bench/load.js --help)
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ENGINES = ['native', 'native-free'];
const here = dirname(fileURLToPath(import.meta.url));

const args = process.argv.slice(2);
let rounds = 1;
const roundsAt = args.indexOf('--rounds');
if (roundsAt >= 0) {
  rounds = Number(args[roundsAt + 1]);
  args.splice(roundsAt, 2);
  if (!Number.isInteger(rounds) || rounds < 1) {
    console.error('engines: --rounds is a positive integer');
    process.exit(2);
  }
}
if (args.includes('--engine') || args.includes('--url')) {
  console.error('engines: runs its own servers, one per engine: leave out --engine and --url');
  process.exit(2);
}

function measure(engine) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(here, 'load.js'), ...args, '--engine', engine, '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.on('close', (code) => {
      const line = output.trim().split('\n').at(-1);
      try {
        resolve({ engine, code, result: JSON.parse(line) });
      } catch {
        reject(new Error(`load.js --engine ${engine} exited ${code} without a result`));
      }
    });
  });
}

const runs = [];
for (let round = 0; round < rounds; round++) {
  for (const engine of ENGINES) {
    process.stderr.write(`round ${round + 1}/${rounds}: ${engine}…\n`);
    runs.push(await measure(engine));
  }
}

const fmt = (n) => (n == null ? '—' : Math.round(n).toLocaleString('en-US'));
const ms = (n) => (n == null ? '—' : n.toFixed(2));
console.log('\nengine        appends/s   delivered/s   ack p50 / p99 ms   server CPU');
for (const { engine, result: r } of runs) {
  console.log(`${engine.padEnd(12)} ${fmt(r.appendsPerSec).padStart(10)} ${fmt(r.deliveredPerSec).padStart(13)}   ${`${ms(r.ackLatency?.p50Ms)} / ${ms(r.ackLatency?.p99Ms)}`.padStart(16)}   ${r.serverCpuPercent == null ? '—' : `${r.serverCpuPercent} %`}`);
}
const mean = (engine) => {
  const values = runs.filter((run) => run.engine === engine).map((run) => run.result.appendsPerSec);
  return values.reduce((a, b) => a + b, 0) / values.length;
};
console.log(`\nnative-free / native appends: ${(mean('native-free') / mean('native')).toFixed(2)} (means over ${rounds} round${rounds > 1 ? 's' : ''})`);
console.log(JSON.stringify({ rounds, args, runs: runs.map(({ engine, code, result }) => ({ engine, code, result })) }));
if (runs.some((run) => run.code !== 0 || !run.result.ok)) process.exitCode = 1;
