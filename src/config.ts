// Server configuration from flags and TAILGROVE_* environment variables (flags win), with
// defaults and validation: a bad value is a startup error naming the key.
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { ENTRY_BYTES_MAX_DEFAULT } from './constants.js';

export interface Config {
  host: string;
  port: number;
  dataDir: string;
  workers: number;
  /** The HS256 secret; undefined means "generate one in the data dir" (development). */
  secret: string | undefined;
  entryBytesMax: number;
  handshakeTimeoutMs: number;
}

const ENTRY_BYTES_MAX_LIMIT = 4 << 20;
const WORKERS_MAX = 64;

export const CONFIG_HELP = `Usage: tailgrove serve [options]   (or: node server.js [options])

Options (each also as an environment variable):
  --host <address>          TAILGROVE_HOST            listen address (default 127.0.0.1)
  --port <number>           TAILGROVE_PORT            listen port, 0 = any free port (default 8080)
  --data <dir>              TAILGROVE_DATA            data directory (default ./data)
  --workers <n>             TAILGROVE_WORKERS         worker threads (default: CPU count)
  --secret <string>         TAILGROVE_SECRET          HS256 token secret (default: generated
                                                      and kept in <data>/secret, development)
  --entry-bytes-max <n>     TAILGROVE_ENTRY_BYTES_MAX largest entry in bytes (default 1048576)
  --handshake-timeout-ms <n>
                            TAILGROVE_HANDSHAKE_TIMEOUT_MS
                                                      close sockets that send no connect
                                                      within this time (default 10000)
  -h, --help                                          this text
`;

export class ConfigError extends Error {}

function integer(key: string, text: string, min: number, max: number): number {
  const value = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`config: ${key} must be an integer from ${min} to ${max}, got "${text}"`);
  }
  return value;
}

export function parseConfig(argv: string[], env: NodeJS.ProcessEnv): Config | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        host: { type: 'string' },
        port: { type: 'string' },
        data: { type: 'string' },
        workers: { type: 'string' },
        secret: { type: 'string' },
        'entry-bytes-max': { type: 'string' },
        'handshake-timeout-ms': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    });
  } catch (error) {
    throw new ConfigError(`config: ${(error as Error).message}`);
  }
  const values = parsed.values;
  if (values.help) return 'help';
  const pick = (flag: string | undefined, name: string): string | undefined => flag ?? env[name];
  // An empty TAILGROVE_SECRET is taken as unset (a common way to clear a variable).
  const secret = values.secret ?? (env.TAILGROVE_SECRET || undefined);
  if (secret !== undefined && secret.length < 16) throw new ConfigError('config: secret must be at least 16 characters');
  return {
    host: pick(values.host, 'TAILGROVE_HOST') ?? '127.0.0.1',
    port: integer('port', pick(values.port, 'TAILGROVE_PORT') ?? '8080', 0, 65535),
    dataDir: pick(values.data, 'TAILGROVE_DATA') ?? './data',
    workers: integer('workers', pick(values.workers, 'TAILGROVE_WORKERS') ?? String(Math.min(availableParallelism(), WORKERS_MAX)), 1, WORKERS_MAX),
    secret,
    entryBytesMax: integer('entry-bytes-max', pick(values['entry-bytes-max'], 'TAILGROVE_ENTRY_BYTES_MAX') ?? String(ENTRY_BYTES_MAX_DEFAULT), 1, ENTRY_BYTES_MAX_LIMIT),
    handshakeTimeoutMs: integer('handshake-timeout-ms', pick(values['handshake-timeout-ms'], 'TAILGROVE_HANDSHAKE_TIMEOUT_MS') ?? '10000', 100, 600000),
  };
}
