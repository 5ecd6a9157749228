// Operating a real server: /health, /ready and /metrics (exact counters after known traffic),
// the JSON log (startup summary with secrets redacted, slow batches, shutdown), and graceful
// shutdown under load (every committed write acknowledged before the 1001 close, nothing lost
// after a restart) and a second signal that forces the exit.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { mintToken } from '../src/auth/token.js';
import { OP_ENTRIES } from '../src/net/protocol.js';
import { RawClient, frames, OP_ACKED, OP_ERROR } from './helpers/raw-client.js';
import { removeDataDir, startServer, temporaryDataDir, type ServerProcess } from './helpers/server.js';

const SECRET = 'operations-test-secret-0123456789';

function token(server: ServerProcess, device = 'd'): string {
  return mintToken({ sub: 'u', device, grants: [{ site: '*', rights: 'rw' }] }, server.secret, { expiresInSeconds: 3600 });
}

async function http(server: ServerProcess, path: string): Promise<{ status: number; text: string }> {
  const response = await fetch(`http://127.0.0.1:${server.port}${path}`);
  return { status: response.status, text: await response.text() };
}

/** The value of an unlabelled sample (or one with exactly `labels`) in a Prometheus exposition. */
function sample(exposition: string, name: string, labels = ''): number | undefined {
  const line = exposition.split('\n').find((row) => row.startsWith(`${name}${labels} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

t.test('health, readiness, metrics and the log', async (t) => {
  const dataDir = temporaryDataDir();
  // The secret given as a flag (the test helper reads it from the data directory too).
  writeFileSync(join(dataDir, 'secret'), SECRET);
  const server = await startServer({ dataDir, args: ['--secret', SECRET, '--log-format', 'json', '--slow-batch-ms', '1'] });
  t.teardown(async () => {
    await server.stop();
    removeDataDir(dataDir);
  });

  const health = await http(server, '/health');
  t.equal(health.status, 200, '/health answers 200');
  t.same(JSON.parse(health.text), { status: 'live', ready: true }, '/health says live and ready');
  const ready = await http(server, '/ready');
  t.equal(ready.status, 200, '/ready answers 200 once recovery finished');
  t.equal((await http(server, '/no-such-path')).status, 404, 'an unknown path is 404');

  const client = await RawClient.connected(server.url, token(server));
  const lease = await client.lease('ops', 'metrics', 1);
  const tailer = await RawClient.connected(server.url, token(server, 'tailer'));
  const tailed = await tailer.lease('ops', 'metrics', 2);
  tailer.send(frames.tail(tailed.shard, tailed.handle, 0, 7));
  const appends = 2500;
  for (let lsn = lease.nextLsn; lsn < lease.nextLsn + appends; lsn++) client.send(frames.write(lease.shard, lease.handle, lsn, Buffer.alloc(64, lsn & 0xff)));
  await client.outcome(lease.handle, lease.nextLsn + appends - 1);
  client.send(frames.write(lease.shard, 999_999, 1, Buffer.from('nobody')));
  await client.next((f) => f.op === OP_ERROR);
  let delivered = 0;

  // A burst of large entries: batches that copy megabytes take longer than 1 ms.
  for (let i = 0; i < 60; i++) client.send(frames.write(lease.shard, lease.handle, lease.nextLsn + appends + i, Buffer.alloc(256 << 10, i)));
  await client.outcome(lease.handle, lease.nextLsn + appends + 59);
  const total = appends + 60;
  delivered = 0;
  let metrics = '';
  await until('the metrics to count every append', async () => {
    metrics = (await http(server, '/metrics')).text;
    return sample(metrics, 'tailgrove_appends_total') === total && sample(metrics, 'tailgrove_entries_delivered_total') === total;
  });
  t.equal(sample(metrics, 'tailgrove_appends_total'), total, `tailgrove_appends_total is exactly the ${total} acknowledged appends`);
  t.equal(sample(metrics, 'tailgrove_entries_delivered_total'), total, 'tailgrove_entries_delivered_total is the entries pushed to the one tailer');
  t.equal(sample(metrics, 'tailgrove_errors_total', '{code="UNKNOWN_HANDLE"}'), 1, 'the one write to an unknown handle is counted by its error code');
  t.equal(sample(metrics, 'tailgrove_connections'), 2, 'two connections');
  t.equal(sample(metrics, 'tailgrove_sessions'), 2, 'two sessions');
  t.equal(sample(metrics, 'tailgrove_leases'), 2, 'two leases');
  t.equal(sample(metrics, 'tailgrove_tails'), 1, 'one tail');
  t.equal(sample(metrics, 'tailgrove_ready'), 1, 'tailgrove_ready is 1');
  t.ok((sample(metrics, 'tailgrove_batches_total') ?? 0) > 0, 'batches are counted');
  t.ok((sample(metrics, 'tailgrove_commits_total') ?? 0) > 0, 'commits are counted');
  for (const name of [
    'tailgrove_batch_size_count',
    'tailgrove_commit_duration_seconds_count',
    'tailgrove_slow_consumer_pauses_total',
    'tailgrove_slow_batches_total',
    'tailgrove_entries_trimmed_total',
    'tailgrove_logs',
    'process_cpu_seconds_total',
  ]) {
    t.not(sample(metrics, name), undefined, `${name} is exported`);
  }
  for (const phase of ['io_contributions', 'io_deletions', 'client_input', 'catch_up']) {
    t.ok((sample(metrics, 'tailgrove_phase_duration_seconds_count', `{phase="${phase}"}`) ?? 0) > 0, `the ${phase} phase has a duration histogram`);
  }
  t.not(sample(metrics, 'tailgrove_ring_used_bytes', '{worker="0",ring="input"}'), undefined, 'ring occupancy per worker and ring');
  const buckets = metrics
    .split('\n')
    .filter((row) => row.startsWith('tailgrove_commit_duration_seconds_bucket'))
    .map((row) => Number(row.slice(row.lastIndexOf(' ') + 1)));
  t.ok(buckets.length > 5 && buckets.every((count, i) => i === 0 || count >= buckets[i - 1]!), 'histogram buckets are cumulative');

  while (delivered < total) delivered += (await tailer.next((f) => f.op === OP_ENTRIES && f.b === 7)).c;
  t.equal(delivered, total, 'the tailer received every entry');
  // Slow batches are reported once a second, with the status sample.
  await until('a slow batch to be logged', async () => server.output().includes('"msg":"slow batches"'), 5000);
  await client.close();
  await tailer.close();
  t.equal(await server.stop(), 0, 'SIGTERM: exit 0');
  const lines = server
    .output()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { msg: string; level: number; config?: { secret?: string } });
  const starting = lines.find((line) => line.msg === 'starting');
  t.equal(starting?.config?.secret, '[redacted]', 'the startup summary shows the effective config with the secret redacted');
  t.notOk(server.output().includes(SECRET), 'the secret appears nowhere in the log');
  t.ok(lines.some((line) => line.msg === 'slow batches'), 'with --slow-batch-ms 1, slow batches are logged');
  t.ok(lines.some((line) => line.msg.startsWith('SIGTERM: shutting down')) && lines.some((line) => line.msg === 'stopped'), 'shutdown is logged from start to end');
});

t.test('graceful shutdown under load: every committed write is acknowledged, then 1001, then nothing lost', async (t) => {
  const dataDir = temporaryDataDir();
  let server = await startServer({ dataDir });
  t.teardown(async () => {
    await server.stop();
    removeDataDir(dataDir);
  });
  const WRITERS = 3;
  const WINDOW = 256;
  const writers = await Promise.all(
    Array.from({ length: WRITERS }, async (_, index) => {
      const client = await RawClient.connected(server.url, token(server, `writer-${index}`));
      const lease = await client.lease('shutdown', `log-${index}`, 1);
      const state = { client, lease, sent: 0, acked: new Map<number, number>(), closeCode: 0 };
      client.socket.on('close', (code) => (state.closeCode = code));
      // A sliding window of writes: each ack lets one more go.
      client.socket.on('message', () => {
        for (const frame of client.received.splice(0)) {
          if (frame.op !== OP_ACKED) continue;
          state.acked.set(frame.b, frame.position);
          if (client.socket.readyState === client.socket.OPEN) {
            client.send(frames.write(lease.shard, lease.handle, lease.nextLsn + state.sent, Buffer.from(`w${index}-${state.sent}`)));
            state.sent++;
          }
        }
      });
      for (; state.sent < WINDOW; state.sent++) client.send(frames.write(lease.shard, lease.handle, lease.nextLsn + state.sent, Buffer.from(`w${index}-${state.sent}`)));
      return state;
    }),
  );
  await until('writes to be acknowledged', async () => writers.every((writer) => writer.acked.size > 2000));
  t.equal(await server.stop(), 0, 'SIGTERM under load: exit 0');
  await until('every socket to close', async () => writers.every((writer) => writer.closeCode !== 0));
  for (const [index, writer] of writers.entries()) t.equal(writer.closeCode, 1001, `writer ${index} was closed with 1001 (going away)`);
  t.ok(server.output().includes('stopped'), 'the server logged its stop');

  server = await startServer({ dataDir });
  const reader = await RawClient.connected(server.url, token(server, 'reader'));
  for (const [index, writer] of writers.entries()) {
    const lease = await reader.lease('shutdown', `log-${index}`, 10 + index);
    t.equal(lease.tail, writer.acked.size, `log ${index}: ${lease.tail} entries after the restart, exactly the ${writer.acked.size} acknowledged (the batch in flight was committed and acknowledged)`);
    const entries: Buffer[] = [];
    while (entries.length < lease.tail) entries.push(...(await reader.read(lease.shard, lease.handle, 20 + entries.length, entries.length, 1000)));
    let wrong = 0;
    for (const [lsn, position] of writer.acked) if (entries[position]?.toString() !== `w${index}-${lsn - writer.lease.nextLsn}`) wrong++;
    t.equal(wrong, 0, `log ${index}: every acknowledged write is at its acknowledged position`);
  }
  await reader.close();
});

t.test('a second signal during shutdown forces the exit', async (t) => {
  const dataDir = temporaryDataDir();
  const server = await startServer({ dataDir });
  t.teardown(async () => {
    await server.stop();
    removeDataDir(dataDir);
  });
  // 'close', not 'exit': the log must have been read to its end.
  const exited = new Promise<number | null>((resolve) => server.child.once('close', (code) => resolve(code)));
  server.child.kill('SIGTERM');
  server.child.kill('SIGINT');
  t.equal(await exited, 1, 'exit code 1: forced');
  // The two signals may be handled in either order.
  t.match(server.output(), /(SIGINT|SIGTERM) again, exiting now/, 'the forced exit is logged');
});
