// Server configuration from flags and TAILGROVE_* environment variables (flags win), with
// defaults and validation: a bad value is a startup error naming the key.
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { DEFAULT_KID, type TokenKeys } from './auth/token.js';
import { DEFAULT_LIMITS, type Limits } from './limits.js';

export interface Config {
  host: string;
  port: number;
  dataDir: string;
  workers: number;
  /** The HS256 secret; undefined means "generate one in the data dir" (development). */
  secret: string | undefined;
  /** More secrets by key id (`kid` in the token header), for rotation. */
  secrets: Record<string, string>;
  limits: Limits;
  /** Kept at the top level for callers that only need these two. */
  entryBytesMax: number;
  handshakeTimeoutMs: number;
}

const WORKERS_MAX = 64;
const SECRET_LENGTH_MIN = 16;

interface IntegerOption {
  flag: string;
  env: string;
  limit: keyof Limits;
  min: number;
  max: number;
  help: string;
}

// Every limit is an option; `limit` names its field in Limits (defaults in limits.ts).
const LIMIT_OPTIONS: IntegerOption[] = [
  { flag: 'entry-bytes-max', env: 'TAILGROVE_ENTRY_BYTES_MAX', limit: 'entryBytesMax', min: 1, max: 4 << 20, help: 'largest entry in bytes' },
  { flag: 'handshake-timeout-ms', env: 'TAILGROVE_HANDSHAKE_TIMEOUT_MS', limit: 'handshakeTimeoutMs', min: 100, max: 600_000, help: 'close sockets that send no connect within this time' },
  { flag: 'idle-timeout-seconds', env: 'TAILGROVE_IDLE_TIMEOUT_SECONDS', limit: 'idleTimeoutSeconds', min: 8, max: 960, help: 'close silent sockets (the server pings first)' },
  { flag: 'leases-per-session', env: 'TAILGROVE_LEASES_PER_SESSION', limit: 'leasesPerSession', min: 1, max: 1 << 20, help: 'leases one session may hold' },
  { flag: 'tails-per-session', env: 'TAILGROVE_TAILS_PER_SESSION', limit: 'tailsPerSession', min: 1, max: 1 << 20, help: 'tails one session may run' },
  { flag: 'unacked-writes-max', env: 'TAILGROVE_UNACKED_WRITES_MAX', limit: 'unackedWritesPerWriter', min: 16, max: 1 << 24, help: 'writes of one writer without an ack' },
  { flag: 'connections-max', env: 'TAILGROVE_CONNECTIONS_MAX', limit: 'connectionsMax', min: 1, max: 65_000, help: 'connections in all' },
  { flag: 'connections-per-address-max', env: 'TAILGROVE_CONNECTIONS_PER_ADDRESS_MAX', limit: 'connectionsPerAddressMax', min: 1, max: 65_000, help: 'connections from one IP address' },
  { flag: 'frames-per-second', env: 'TAILGROVE_FRAMES_PER_SECOND', limit: 'framesPerSecond', min: 1, max: 100_000_000, help: 'sustained frames per second per session' },
  { flag: 'frames-burst', env: 'TAILGROVE_FRAMES_BURST', limit: 'framesBurst', min: 1, max: 100_000_000, help: 'frames per session above the sustained rate' },
  { flag: 'violations-max', env: 'TAILGROVE_VIOLATIONS_MAX', limit: 'violationsMax', min: 1, max: 1_000_000, help: 'malformed frames before a socket is closed (4004)' },
  { flag: 'socket-buffered-bytes-max', env: 'TAILGROVE_SOCKET_BUFFERED_BYTES_MAX', limit: 'socketBufferedBytesMax', min: 65_536, max: 1 << 30, help: 'bytes buffered per socket before its tails pause' },
  { flag: 'clock-skew-seconds', env: 'TAILGROVE_CLOCK_SKEW_SECONDS', limit: 'clockSkewSeconds', min: 0, max: 3600, help: 'tolerance for token exp/nbf/iat' },
];

function optionHelp(option: IntegerOption): string {
  return `  --${option.flag} <n>\n      ${option.env}: ${option.help} (default ${DEFAULT_LIMITS[option.limit]})\n`;
}

export const CONFIG_HELP = `Usage: tailgrove serve [options]   (or: node server.js [options])

Options (each also as an environment variable):
  --host <address>          TAILGROVE_HOST            listen address (default 127.0.0.1)
  --port <number>           TAILGROVE_PORT            listen port, 0 = any free port (default 8080)
  --data <dir>              TAILGROVE_DATA            data directory (default ./data)
  --workers <n>             TAILGROVE_WORKERS         worker threads (default: CPU count)
  --secret <string>         TAILGROVE_SECRET          HS256 token secret for tokens without a
                                                      key id (default: generated and kept in
                                                      <data>/secret, development)
  --secrets <kid=s,...>     TAILGROVE_SECRETS         more secrets by key id (token header
                                                      "kid"), for rotation
  -h, --help                                          this text

Limits:
${LIMIT_OPTIONS.map(optionHelp).join('')}`;

export class ConfigError extends Error {}

function integer(key: string, text: string, min: number, max: number): number {
  const value = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`config: ${key} must be an integer from ${min} to ${max}, got "${text}"`);
  }
  return value;
}

function checkSecret(key: string, secret: string): string {
  if (secret.length < SECRET_LENGTH_MIN) throw new ConfigError(`config: ${key} must be at least ${SECRET_LENGTH_MIN} characters`);
  return secret;
}

function parseSecrets(text: string | undefined): Record<string, string> {
  const secrets: Record<string, string> = {};
  if (text === undefined || text === '') return secrets;
  for (const pair of text.split(',')) {
    const separator = pair.indexOf('=');
    if (separator <= 0) throw new ConfigError(`config: secrets must be kid=secret pairs separated by commas, got "${pair}"`);
    secrets[pair.slice(0, separator)] = checkSecret('secrets', pair.slice(separator + 1));
  }
  return secrets;
}

export function parseConfig(argv: string[], env: NodeJS.ProcessEnv): Config | 'help' {
  const options: Record<string, { type: 'string' } | { type: 'boolean'; short: string }> = {
    host: { type: 'string' },
    port: { type: 'string' },
    data: { type: 'string' },
    workers: { type: 'string' },
    secret: { type: 'string' },
    secrets: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  };
  for (const option of LIMIT_OPTIONS) options[option.flag] = { type: 'string' };
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: argv, options, strict: true }).values;
  } catch (error) {
    throw new ConfigError(`config: ${(error as Error).message}`);
  }
  if (values.help) return 'help';
  const pick = (flag: string, name: string): string | undefined => (values[flag] as string | undefined) ?? env[name];
  // An empty TAILGROVE_SECRET is taken as unset (a common way to clear a variable).
  const secretText = (values.secret as string | undefined) ?? (env.TAILGROVE_SECRET || undefined);
  const limits: Limits = { ...DEFAULT_LIMITS };
  for (const option of LIMIT_OPTIONS) {
    const text = pick(option.flag, option.env);
    if (text !== undefined) limits[option.limit] = integer(option.flag, text, option.min, option.max);
  }
  const secrets = parseSecrets(pick('secrets', 'TAILGROVE_SECRETS'));
  if (DEFAULT_KID in secrets) throw new ConfigError(`config: secrets: key id "${DEFAULT_KID}" is the --secret`);
  return {
    host: pick('host', 'TAILGROVE_HOST') ?? '127.0.0.1',
    port: integer('port', pick('port', 'TAILGROVE_PORT') ?? '8080', 0, 65535),
    dataDir: pick('data', 'TAILGROVE_DATA') ?? './data',
    workers: integer('workers', pick('workers', 'TAILGROVE_WORKERS') ?? String(Math.min(availableParallelism(), WORKERS_MAX)), 1, WORKERS_MAX),
    secret: secretText === undefined ? undefined : checkSecret('secret', secretText),
    secrets,
    limits,
    entryBytesMax: limits.entryBytesMax,
    handshakeTimeoutMs: limits.handshakeTimeoutMs,
  };
}

/** The verifier's keys: the main secret under the default key id, plus the rotation secrets. */
export function tokenKeys(secret: string, secrets: Record<string, string>): TokenKeys {
  return { secrets: { ...secrets, [DEFAULT_KID]: secret }, defaultKid: DEFAULT_KID };
}
