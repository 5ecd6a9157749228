// `node server.js` / `tailgrove serve`: configure, start, log how to connect, and stop
// gracefully on SIGTERM/SIGINT (a second signal, or the shutdown timeout, forces the exit).
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { mintToken } from './auth/token.js';
import { CONFIG_HELP, ConfigError, effectiveConfig, parseConfig, tokenKeys } from './config.js';
import { startServer, type RunningServer } from './io-thread/server.js';
import { DataDirectoryInUse, lockDataDirectory } from './data-lock.js';
import { createLogger } from './logging.js';
import { selectEngine } from './engine-selection.js';

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
  const logger = createLogger(config.logLevel, config.logFormat);
  const dataDir = resolve(config.dataDir);
  mkdirSync(dataDir, { recursive: true });
  let unlock: () => void;
  try {
    unlock = lockDataDirectory(dataDir);
  } catch (error) {
    if (!(error instanceof DataDirectoryInUse)) throw error;
    logger.fatal(`tailgrove: ${error.message}`);
    process.exit(2);
  }
  const { secret, generated } = loadSecret(dataDir, config.secret);
  let engine;
  try {
    engine = await selectEngine(config.engine, logger);
  } catch (error) {
    unlock();
    logger.fatal({ err: error }, `tailgrove: cannot load the ${config.engine} engine: ${(error as Error).message}`);
    process.exit(1);
  }
  logger.info({ config: effectiveConfig(config), node: process.version }, 'starting');
  const startedAt = Date.now();
  let server: RunningServer;
  try {
    server = await startServer({
      host: config.host,
      port: config.port,
      dataDir,
      workers: config.workers,
      keys: tokenKeys(secret, config.secrets),
      limits: config.limits,
      logger,
      engine: engine.storage,
      transport: engine.transport,
      tuning: { segmentBytes: config.segmentBytes },
      slowBatchMs: config.slowBatchMs,
      statusPage: config.statusPage,
      metrics: config.metrics,
      retention: { rules: config.retention, intervalMs: config.retentionIntervalMs, batchEntries: config.retentionBatchEntries },
      notifications: config.notifications.enabled ? config.notifications : undefined,
      onListening: (port) => logger.info({ port }, `listening on ${config.host}:${port}, recovering`),
      onFatal: (error) => {
        logger.fatal({ err: error }, `tailgrove: fatal: ${error.message}`);
        process.exit(70);
      },
    });
  } catch (error) {
    unlock();
    logger.fatal({ err: error }, `tailgrove: cannot start: ${(error as Error).message}`);
    process.exit(1);
  }
  const url = `ws://${config.host}:${server.port}`;
  const { logs, entries, writers } = server.recovered;
  logger.info(
    { url, dataDir, workers: config.workers, engine: engine.name, recovered: server.recovered, recoveryMs: Date.now() - startedAt },
    `tailgrove ready ${url} (data ${dataDir}, ${config.workers} workers, ${engine.name} engine, recovered ${logs} logs, ${entries} entries, ${writers} writers)`,
  );
  if (generated) {
    const token = mintToken({ sub: 'dev', device: 'dev-device', grants: [{ site: '*', rights: 'rw' }] }, secret, { expiresInSeconds: 30 * 86400 });
    logger.info(
      { secretFile: join(dataDir, 'secret'), token },
      `development secret in ${join(dataDir, 'secret')}; a token for user "dev" with read/write on every site (30 days):\n${token}\n\n` +
        `try it: save as demo.mjs in this folder, run TOKEN=<the token above> node demo.mjs\n` +
        `  import { connect } from 'tailgrove/client'\n` +
        `  const client = await connect('${url}', { token: process.env.TOKEN }), log = await client.lease('demo', 'hello')\n` +
        `  console.log(await log.append(new TextEncoder().encode('hi')), await log.read(0, 10)); await client.close()\n` +
        `status page: http://${config.host}:${server.port}/   metrics: http://${config.host}:${server.port}/metrics`,
    );
  }
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      logger.warn(`${signal} again, exiting now`);
      process.exit(1);
    }
    stopping = true;
    const shutdownStartedAt = Date.now();
    logger.info({ signal, connections: server.connections() }, `${signal}: shutting down (stop accepting, finish and commit the batch in flight, close clients with 1001)`);
    const forced = setTimeout(() => {
      logger.error({ shutdownTimeoutMs: config.shutdownTimeoutMs }, 'shutdown timed out, exiting now');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    server.close().then(
      () => {
        clearTimeout(forced);
        unlock();
        logger.info({ ms: Date.now() - shutdownStartedAt }, 'stopped');
        process.exit(0);
      },
      (error: Error) => {
        logger.error({ err: error }, `shutdown failed: ${error.message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
