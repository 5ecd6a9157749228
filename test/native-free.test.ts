// The native-free engine loads no native addon: the server runs under a preload that refuses
// every process.dlopen (test/fixtures/no-native.cjs), in every thread, and serves a session.
// `--engine auto` falls back to it, with one log line, where the native addons cannot load;
// `--engine native` there fails to start with a clear message.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { mintToken } from '../src/auth/token.js';
import { connect } from '../src/client/index.js';
import { removeDataDir, repositoryRoot, temporaryDataDir } from './helpers/server.js';

const GUARD = ['--require', join(repositoryRoot, 'test', 'fixtures', 'no-native.cjs')];

interface Started {
  port: number;
  output: () => string;
  stop(): Promise<number | null>;
}

/** Start server.js with `nodeArgs` before it; resolves when ready (or rejects with the output when it exits). */
function start(nodeArgs: string[], engine: string, dataDir: string): Promise<Started> {
  const child = spawn(process.execPath, [...nodeArgs, 'server.js', '--port', '0', '--data', dataDir, '--engine', engine, '--log-format', 'json'], { cwd: repositoryRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /tailgrove ready ws:\/\/127\.0\.0\.1:(\d+)/.exec(output);
      if (match) {
        resolve({
          port: Number(match[1]),
          output: () => output,
          stop: () => {
            child.kill('SIGTERM');
            return closed;
          },
        });
      }
    });
    void closed.then((code) => reject(Object.assign(new Error(`exited with ${code}`), { code, output })));
  });
}

t.test('native-free serves a session without loading a single native addon', async (t) => {
  const dataDir = temporaryDataDir();
  t.teardown(() => removeDataDir(dataDir));
  const server = await start(GUARD, 'native-free', dataDir);
  const secret = (await import('node:fs')).readFileSync(join(dataDir, 'secret'), 'utf8').trim();
  const client = await connect(`ws://127.0.0.1:${server.port}`, { token: mintToken({ sub: 'u', device: 'd', grants: [{ site: '*', rights: 'rw' }] }, secret, { expiresInSeconds: 60 }) });
  const log = await client.lease('site', 'log');
  for (let i = 0; i < 100; i++) await log.append(new TextEncoder().encode(`entry ${i}`));
  const entries = await log.read(0, 1000);
  t.equal(entries.length, 100, 'appends and reads work');
  t.equal(new TextDecoder().decode(entries[99]!.data), 'entry 99', 'the last entry reads back');
  await client.close();
  t.equal(await server.stop(), 0, 'it stops cleanly');
  t.match(server.output(), /"engine":"native-free"/, 'the ready line names the engine');
  t.notMatch(server.output(), /NATIVE ADDON REFUSED/, 'no thread tried to load a .node file');
});

t.test('auto falls back to native-free where native addons cannot load, and says so once', async (t) => {
  const dataDir = temporaryDataDir();
  t.teardown(() => removeDataDir(dataDir));
  const server = await start(GUARD, 'auto', dataDir);
  await server.stop();
  const fallbacks = server.output().split('\n').filter((line) => line.includes('the native engine cannot run here'));
  t.equal(fallbacks.length, 1, 'one log line says what failed and what was chosen');
  t.match(fallbacks[0], /running the native-free engine/);
  t.match(server.output(), /"engine":"native-free"/, 'and native-free runs');
});

t.test('native where it cannot load fails to start with a clear message; auto elsewhere is native', async (t) => {
  const dataDir = temporaryDataDir();
  t.teardown(() => removeDataDir(dataDir));
  const failed = await start(GUARD, 'native', dataDir).then(
    () => undefined,
    (error: { code: number; output: string }) => error,
  );
  t.equal(failed?.code, 1, 'exit code 1');
  t.match(failed?.output, /cannot load the native engine/, 'the message names the engine');
  const server = await start([], 'auto', dataDir);
  await server.stop();
  t.match(server.output(), /"engine":"native"/, 'with the addons available, auto runs native');
});
