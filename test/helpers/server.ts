// Start a real tailgrove server as a child process on 127.0.0.1 with its data in a temp dir.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repositoryRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface ServerProcess {
  url: string;
  port: number;
  dataDir: string;
  secret: string;
  child: ChildProcess;
  output: () => string;
  /** SIGTERM and wait for exit. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait for exit. */
  kill(): Promise<void>;
}

export interface StartOptions {
  dataDir?: string;
  workers?: number;
  port?: number;
  args?: string[];
}

export function temporaryDataDir(): string {
  return mkdtempSync(join(tmpdir(), 'tailgrove-test-'));
}

export function removeDataDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Node's arguments to run server.js with `options` under the engine of this test run: the
 * suite runs once per engine (package.json "test"), TAILGROVE_TEST_ENGINE picks it, and
 * native-free runs must load no `.node` file at all (test/fixtures/no-native.cjs).
 */
export function serverArgs(options: string[]): string[] {
  const engine = process.env.TAILGROVE_TEST_ENGINE;
  if (engine === undefined) return ['server.js', ...options];
  const guard = engine === 'native-free' ? ['--require', join(repositoryRoot, 'test', 'fixtures', 'no-native.cjs')] : [];
  return [...guard, 'server.js', ...options, '--engine', engine];
}

export async function startServer(options: StartOptions = {}): Promise<ServerProcess> {
  const dataDir = options.dataDir ?? temporaryDataDir();
  const serverOptions = ['--host', '127.0.0.1', '--port', String(options.port ?? 0), '--data', dataDir];
  if (options.workers !== undefined) serverOptions.push('--workers', String(options.workers));
  const args = serverArgs([...serverOptions, ...(options.args ?? [])]);
  const child = spawn(process.execPath, args, { cwd: repositoryRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  // A test process that dies must not leave its server running.
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  void exited.then(() => process.off('exit', killOnExit));
  const port = await new Promise<number>((resolve, reject) => {
    const onData = (chunk: string): void => {
      output += chunk;
      const match = /tailgrove ready ws:\/\/127\.0\.0\.1:(\d+)/.exec(output);
      if (match) resolve(Number(match[1]));
    };
    child.stdout!.on('data', onData);
    void exited.then((code) => reject(new Error(`server exited with ${code} before ready:\n${output}`)));
  });
  const secret = readFileSync(join(dataDir, 'secret'), 'utf8').trim();
  return {
    url: `ws://127.0.0.1:${port}/`,
    port,
    dataDir,
    secret,
    child,
    output: () => output,
    async stop() {
      child.kill('SIGTERM');
      return exited;
    },
    async kill() {
      child.kill('SIGKILL');
      await exited;
    },
  };
}
