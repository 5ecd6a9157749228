// The deterministic simulation (src/testing/simulation.ts): many seeds, each checked after
// every step. Reproduce a failure with: node --import=tsx test/simulation.test.ts --seed N
// (or TAILGROVE_SIM_SEED=N npm test).
import t from 'tap';
import { randomInt } from 'node:crypto';
import { runSimulation } from '../src/testing/simulation.js';

function seedArgument(): number | undefined {
  const flag = process.argv.indexOf('--seed');
  const text = flag >= 0 ? process.argv[flag + 1] : process.env.TAILGROVE_SIM_SEED;
  return text === undefined ? undefined : Number(text);
}

const given = seedArgument();
const seeds = given !== undefined ? [given] : Array.from({ length: 12 }, () => randomInt(1, 2 ** 31));

for (const seed of seeds) {
  t.test(`simulation seed ${seed}`, async (t) => {
    t.comment(`seed ${seed} (rerun: node --import=tsx test/simulation.test.ts --seed ${seed})`);
    const workerCount = 1 + (seed % 3);
    const report = runSimulation({ seed, steps: 4000, devices: 6, logs: 5, workerCount });
    t.ok(report.acks > 0, `seed ${seed}: writes were acknowledged (${report.acks})`);
    t.ok(report.batches > 0 && report.commits > 0, `seed ${seed}: batches ran and commits happened`);
    const again = runSimulation({ seed, steps: 4000, devices: 6, logs: 5, workerCount });
    t.equal(again.traceHash, report.traceHash, `seed ${seed}: the same seed gives the same run (phases are deterministic)`);
    t.comment(JSON.stringify(report));
  });
}
