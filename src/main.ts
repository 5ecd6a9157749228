// `node server.js` / `tailgrove serve`: configure, start, print how to connect, and stop
// cleanly on SIGTERM/SIGINT (a second signal forces the exit).
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { mintToken } from './auth/token.js';
import { CONFIG_HELP, ConfigError, parseConfig, tokenKeys } from './config.js';
import { startServer } from './io-thread/server.js';
import { DataDirectoryInUse, lockDataDirectory } from './data-lock.js';

/** The secret from config, or the development secret kept in the data dir (created once). */
function loadSecret(dataDir: string, configured: string | undefined): { secret: string; generated: boolean } {
  if (configured !== undefined) return { secret: configured, generated: false };
  const file = join(dataDir, 'secret');
  if (!existsSync(file)) writeFileSync(file, randomBytes(32).toString('hex'), { mode: 0o600 });
  return { secret: readFileSync(file, 'utf8').trim(), generated: true };
}

export async function main(argv: string[]): Promise<void> {
  // Output piped into a closed reader (`| head`) must not take the server down.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
  });
  let config;
  try {
    config = parseConfig(argv, process.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${error.message}\n\n${CONFIG_HELP}`);
    process.exit(2);
  }
  if (config === 'help') {
    process.stdout.write(CONFIG_HELP);
    return;
  }
  const dataDir = resolve(config.dataDir);
  mkdirSync(dataDir, { recursive: true });
  let unlock: () => void;
  try {
    unlock = lockDataDirectory(dataDir);
  } catch (error) {
    if (!(error instanceof DataDirectoryInUse)) throw error;
    process.stderr.write(`tailgrove: ${error.message}\n`);
    process.exit(2);
  }
  const { secret, generated } = loadSecret(dataDir, config.secret);
  let server;
  try {
    server = await startServer({
      host: config.host,
      port: config.port,
      dataDir,
      workers: config.workers,
      keys: tokenKeys(secret, config.secrets),
      limits: config.limits,
      onFatal: (error) => {
        process.stderr.write(`tailgrove: fatal: ${error.message}\n`);
        process.exit(70);
      },
    });
  } catch (error) {
    unlock();
    process.stderr.write(`tailgrove: cannot start: ${(error as Error).message}\n`);
    process.exit(1);
  }
  const url = `ws://${config.host}:${server.port}`;
  const { logs, entries, writers } = server.recovered;
  process.stdout.write(`tailgrove ready ${url} (data ${dataDir}, ${config.workers} workers, recovered ${logs} logs, ${entries} entries, ${writers} writers)\n`);
  if (generated) {
    const token = mintToken({ sub: 'dev', device: 'dev-device', grants: [{ site: '*', rights: 'rw' }] }, secret, { expiresInSeconds: 30 * 86400 });
    process.stdout.write(
      `\ndevelopment secret in ${join(dataDir, 'secret')}; a token for user "dev" with read/write on every site (30 days):\n${token}\n\n` +
        `try it: save as demo.mjs in this folder, run TOKEN=<the token above> node demo.mjs\n` +
        `  import { connect } from 'tailgrove/client'\n` +
        `  const client = await connect('${url}', { token: process.env.TOKEN }), log = await client.lease('demo', 'hello')\n` +
        `  console.log(await log.append(new TextEncoder().encode('hi')), await log.read(0, 10)); await client.close()\n\n`,
    );
  }
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      process.stderr.write(`tailgrove: ${signal} again, exiting now\n`);
      process.exit(1);
    }
    stopping = true;
    process.stdout.write(`tailgrove: ${signal}, shutting down\n`);
    server.close().then(
      () => {
        unlock();
        process.exit(0);
      },
      (error: Error) => {
        process.stderr.write(`tailgrove: shutdown failed: ${error.message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
