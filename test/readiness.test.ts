// Readiness follows recovery: the port answers /health as soon as it listens, while /ready and
// WebSocket upgrades answer 503 until the partitions are recovered. The recovery is made long
// for real: a writer leaves many unacknowledged writes, whose completion records (RIFL) every
// restart must load before sessions may resume.
import { spawn } from 'node:child_process';
import t from 'tap';
import WebSocket from 'ws';
import { mintToken } from '../src/auth/token.js';
import { RawClient, frames } from './helpers/raw-client.js';
import { removeDataDir, repositoryRoot, serverArgs, startServer, temporaryDataDir } from './helpers/server.js';

const UNACKED = 400_000;
const FRAMES_PER_MESSAGE = 2000;
const ARGS = ['--unacked-writes-max', String(UNACKED + 1), '--log-format', 'json'];

t.test('/ready and upgrades wait for recovery; /health answers throughout', async (t) => {
  const dataDir = temporaryDataDir();
  t.teardown(() => removeDataDir(dataDir));
  const first = await startServer({ dataDir, args: ARGS });
  const client = await RawClient.connected(first.url, mintToken({ sub: 'u', device: 'd', grants: [{ site: '*', rights: 'rw' }] }, first.secret, { expiresInSeconds: 600 }));
  const lease = await client.lease('ready', 'log', 1);
  for (let sent = 0; sent < UNACKED; sent += FRAMES_PER_MESSAGE) {
    const batch: Buffer[] = [];
    for (let i = 0; i < FRAMES_PER_MESSAGE; i++) batch.push(frames.write(lease.shard, lease.handle, lease.nextLsn + sent + i, Buffer.from('x')));
    client.send(...batch);
  }
  const last = await client.outcome(lease.handle, lease.nextLsn + UNACKED - 1, 60_000);
  t.equal(last.position, UNACKED - 1, `${UNACKED} writes acknowledged and left unacked by the device`);
  await client.close();
  t.equal(await first.stop(), 0, 'stopped');

  const child = spawn(process.execPath, serverArgs(['--host', '127.0.0.1', '--port', '0', '--data', dataDir, ...ARGS]), { cwd: repositoryRoot, stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  child.stdout.setEncoding('utf8');
  let output = '';
  const seen = (pattern: RegExp): Promise<RegExpExecArray> =>
    new Promise((resolve) => {
      const check = (): void => {
        const match = pattern.exec(output);
        if (match) {
          child.stdout.off('data', onData);
          resolve(match);
        }
      };
      const onData = (chunk: string): void => {
        output += chunk;
        check();
      };
      child.stdout.on('data', onData);
      check();
    });
  const port = Number((await seen(/listening on 127\.0\.0\.1:(\d+), recovering/))[1]);
  const during = await Promise.all([
    fetch(`http://127.0.0.1:${port}/health`).then(async (r) => ({ status: r.status, body: await r.json() })),
    fetch(`http://127.0.0.1:${port}/ready`).then((r) => r.status),
    new Promise<number>((resolve) => {
      const socket = new WebSocket(`ws://127.0.0.1:${port}/`);
      socket.on('unexpected-response', (_request, response) => resolve(response.statusCode ?? 0));
      socket.on('open', () => resolve(101));
      socket.on('error', () => resolve(-1));
    }),
  ]);
  const readyLine = /tailgrove ready/.test(output);
  t.notOk(readyLine, 'the requests were made before recovery finished');
  t.equal(during[0].status, 200, 'during recovery /health answers 200');
  t.same(during[0].body, { status: 'live', ready: false }, 'during recovery /health says live, not ready');
  t.equal(during[1], 503, 'during recovery /ready answers 503');
  t.equal(during[2], 503, `during recovery a WebSocket upgrade is refused with 503 (got ${during[2]})`);
  await seen(/tailgrove ready/);
  t.equal((await fetch(`http://127.0.0.1:${port}/ready`)).status, 200, 'after recovery /ready answers 200');
  const recovered = JSON.parse(output.split('\n').find((line) => line.includes('tailgrove ready'))!) as { recovered: { completions: number }; recoveryMs: number };
  t.equal(recovered.recovered.completions, UNACKED, 'the recovery loaded every completion record');
  t.comment(`recovery of ${UNACKED} completion records took ${recovered.recoveryMs} ms`);
  child.kill('SIGTERM');
});
