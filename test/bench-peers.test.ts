// The peer benchmark (bench/peers/): the peers install, and each load script runs a tiny
// load against the server it starts itself, reports a sane JSON line and leaves no server
// process or data directory behind. Performance is never asserted.
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ensurePeers } from '../bench/peers/install.js';
import { alive } from '../src/data-lock.js';

const repositoryRoot = join(import.meta.dirname, '..');

interface Outcome {
  status: number | null;
  stdout: string;
  stderr: string;
}

function runScript(script: string, args: string[]): Promise<Outcome> {
  const child = spawn(process.execPath, [script, ...args], { cwd: repositoryRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve) => child.once('close', (status) => resolve({ status, stdout, stderr })));
}


t.test('ensurePeers finds (or installs) nats-server and redis-server', async (t) => {
  t.setTimeout(240_000); // a fresh machine runs apt-get update + install
  const found = await ensurePeers();
  t.match(found['nats-server'], /nats-server$/);
  t.match(found['redis-server'], /redis-server$/);
  t.ok(Array.isArray(found.installed));
});

const TINY = ['--connections', '2', '--logs', '2', '--tailers', '1', '--size', '64', '--seconds', '1', '--warmup', '0.2', '--pipeline', '8', '--json'];

// The lean clients (the default) and the official ones (nats.js, ioredis).
for (const [system, client] of [['nats', 'lean'], ['redis', 'lean'], ['nats', 'official'], ['redis', 'official']] as const) {
  t.test(`${system}-load.js --client ${client} runs a tiny fsync load and cleans up`, async (t) => {
    t.setTimeout(60_000);
    const outcome = await runScript(`bench/peers/${system}-load.js`, [...TINY, '--durability', 'fsync', '--client', client]);
    const lines = outcome.stdout.trim().split('\n');
    t.equal(lines.length, 1, '--json prints only the JSON line');
    let report: {
      ok: boolean;
      system: string;
      durability: string;
      appendsPerSec: number;
      deliveredPerSec: number;
      serverPid: number | null;
      server: { dataDir?: string | null };
      totals: { acks: number; entriesOnServer: number | null };
      ackLatency: { count: number; p50Ms: number | null; p99Ms: number | null; p999Ms: number | null };
      tailLatency: { count: number } | null;
      errors: Record<string, number>;
      timeouts: number;
    };
    try {
      report = JSON.parse(lines.at(-1) ?? '');
    } catch {
      t.fail(`no JSON on stdout (exit ${outcome.status}):\n${outcome.stdout}\n${outcome.stderr}`);
      return;
    }
    t.equal(outcome.status, 0, `exit code 0 (stderr: ${outcome.stderr.trim()})`);
    t.equal(report.ok, true);
    t.equal(report.system, system);
    t.equal(report.durability, 'fsync');
    t.ok(report.appendsPerSec > 0, 'appendsPerSec > 0');
    t.ok(report.deliveredPerSec > 0, 'deliveredPerSec > 0');
    t.ok(report.ackLatency.count > 0 && report.ackLatency.p50Ms !== null, 'ack latency recorded');
    t.ok(report.tailLatency && report.tailLatency.count > 0, 'tail latency recorded');
    t.same(report.errors, {});
    t.equal(report.timeouts, 0);
    t.equal(report.totals.entriesOnServer, report.totals.acks, 'the server holds exactly the acknowledged appends');
    t.type(report.serverPid, 'number', 'the JSON names the server pid');
    if (typeof report.serverPid === 'number') {
      const pid = report.serverPid;
      // The load script waits for its server's exit: nothing should be left running.
      const deadline = Date.now() + 3000;
      while (alive(pid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      const left = alive(pid);
      if (left) process.kill(pid, 'SIGKILL');
      t.notOk(left, `the ${system} server (pid ${pid}) is gone`);
    }
    if (report.server.dataDir) t.notOk(existsSync(report.server.dataDir), 'its data directory is removed');
  });
}
