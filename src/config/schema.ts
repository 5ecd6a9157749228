// The configuration schema: one row per option, keyed by its config-file key. Its flag, its
// environment variable, its parsing, default, bounds and help text all derive from the row.
import { availableParallelism } from 'node:os';
import { DEFAULT_LIMITS, type Limits } from '../limits.js';
import { retentionRules, type RetentionRule } from './retention.js';
import { boolean, integer, jsonFile, oneOf, secret, secrets, text, type Kind } from './values.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export const ENGINES = ['auto', 'native', 'native-free'] as const;
export type EngineChoice = (typeof ENGINES)[number];
export type LogFormat = (typeof LOG_FORMATS)[number];

const WORKERS_MAX = 64;

export interface Option<T> {
  kind: Kind<T>;
  default: T;
  help: string;
  /** The default as the help shows it, when the value alone would mislead. */
  defaultText?: string;
  /** Overrides of the derived names (key `entryBytesMax`: `--entry-bytes-max`, `TAILGROVE_ENTRY_BYTES_MAX`). */
  flag?: string;
  env?: string;
  /** False for an option a config file cannot set. */
  inFile?: false;
  /** An empty environment variable counts as unset (a common way to clear one). */
  emptyEnvIsUnset?: true;
  /** The field of Limits this option sets. */
  limit?: keyof Limits;
  /** Starts a section of the help. */
  heading?: string;
}

function option<T>(kind: Kind<T>, defaultValue: T, help: string, more: Omit<Option<T>, 'kind' | 'default' | 'help'> = {}): Option<T> {
  return { kind, default: defaultValue, help, ...more };
}

function limit(field: keyof Limits, min: number, max: number, help: string, more: Omit<Option<number>, 'kind' | 'default' | 'help'> = {}): Option<number> {
  return option(integer(min, max), DEFAULT_LIMITS[field], help, { limit: field, ...more });
}

// Any of these adds one rule for every site after all others: the default of the logs no other rule matches.
function defaultRuleLimit(field: string): Option<number | undefined> {
  return option<number | undefined>(integer(1), undefined, `${field} of a last rule { site: "*" }`);
}

export const OPTIONS = {
  config: option<string | undefined>(jsonFile, undefined, 'read options from this JSON file', { inFile: false, emptyEnvIsUnset: true, heading: 'Server' }),
  host: option(text('<address>'), '127.0.0.1', 'listen address'),
  port: option(integer(0, 65535), 8080, 'listen port, 0 = any free port'),
  dataDir: option(text('<dir>'), './data', 'data directory', { flag: 'data', env: 'TAILGROVE_DATA' }),
  // The IO thread keeps a core busy of its own: workers get the others (measured on 2 cores:
  // 1 worker commits ~1.5× the appends of 2, docs/BENCHMARKS.md).
  workers: option(integer(1, WORKERS_MAX), Math.min(Math.max(1, availableParallelism() - 1), WORKERS_MAX), 'worker threads', { defaultText: `the CPU count less one (for the IO thread), at least 1, at most ${WORKERS_MAX}` }),
  secret: option<string | undefined>(secret, undefined, 'HS256 secret of tokens without a key id', {
    defaultText: 'generated into <data>/secret',
    emptyEnvIsUnset: true,
  }),
  secrets: option(secrets, {}, 'more secrets by key id (token header "kid"), for rotation', { defaultText: 'none' }),
  engine: option(oneOf(ENGINES), 'auto', 'native: uWebSockets.js + LMDB; native-free: node:http + ws + segment files, no native addon; auto: native, else native-free when an addon cannot load (docs/NATIVE-FREE.md)'),
  segmentBytes: option(integer(1 << 20, 1 << 30), 64 << 20, 'native-free engine: a new segment file starts at this size (smaller: space of trimmed entries comes back sooner)'),
  shutdownTimeoutMs: option(integer(100, 600_000), 30_000, 'force the exit when a graceful shutdown takes longer'),
  statusPage: option(boolean, true, 'serve the status page / and GET /stats'),
  metrics: option(boolean, true, 'serve GET /metrics'),
  logLevel: option(oneOf(LOG_LEVELS), 'info', 'least severe level logged', { heading: 'Logging' }),
  logFormat: option(oneOf(LOG_FORMATS), 'auto', 'log format; auto: pretty on a terminal, else json'),
  slowBatchMs: option(integer(1, 60_000), 50, 'log batches slower than this'),
  retention: option<RetentionRule[]>(retentionRules, [], 'rules, a JSON array; the first that matches a log applies', {
    defaultText: 'none',
    heading: 'Retention (docs/CONFIGURATION.md)',
  }),
  retentionMaxEntries: defaultRuleLimit('maxEntries'),
  retentionMaxBytes: defaultRuleLimit('maxBytes'),
  retentionMaxAgeSeconds: defaultRuleLimit('maxAgeSeconds'),
  retentionIntervalMs: option(integer(100, 3_600_000), 1000, 'how often the retention sweep runs'),
  retentionBatchEntries: option(integer(1, 1_000_000), 10_000, 'most entries trimmed per log per sweep'),
  entryBytesMax: limit('entryBytesMax', 1, 4 << 20, 'largest entry in bytes', { heading: 'Limits' }),
  handshakeTimeoutMs: limit('handshakeTimeoutMs', 100, 600_000, 'close sockets that send no connect within this time'),
  idleTimeoutSeconds: limit('idleTimeoutSeconds', 8, 960, 'close silent sockets (the server pings first)'),
  leasesPerSession: limit('leasesPerSession', 1, 1 << 20, 'leases one session may hold'),
  tailsPerSession: limit('tailsPerSession', 1, 1 << 20, 'tails one session may run'),
  unackedWritesMax: limit('unackedWritesPerWriter', 16, 1 << 24, 'writes of one writer without an ack'),
  connectionsMax: limit('connectionsMax', 1, 65_000, 'connections in all'),
  connectionsPerAddressMax: limit('connectionsPerAddressMax', 1, 65_000, 'connections from one IP address'),
  framesPerSecond: limit('framesPerSecond', 1, 100_000_000, 'sustained frames per second per session'),
  framesBurst: limit('framesBurst', 1, 100_000_000, 'frames per session above the sustained rate'),
  violationsMax: limit('violationsMax', 1, 1_000_000, 'malformed frames before a socket is closed (4004)'),
  socketBufferedBytesMax: limit('socketBufferedBytesMax', 65_536, 1 << 30, 'bytes buffered per socket before its tails pause'),
  clockSkewSeconds: limit('clockSkewSeconds', 0, 3600, 'tolerance for token exp/nbf/iat'),
  signalBytesMax: limit('signalBytesMax', 1, 1 << 20, 'largest signal payload in bytes (WebRTC offers, answers, ICE candidates)'),
  notifications: option(boolean, true, 'offline notifications: members of a site with no device connected hear of its changes', { heading: 'Notifications (docs/NOTIFICATIONS.md)' }),
  notifyIntervalMs: option(integer(100, 3_600_000), 2000, 'changes are coalesced per user over this interval'),
  notifyPerUserPerHour: option(integer(1, 1_000_000), 120, 'most notifications per user per hour; more are dropped'),
  webPush: option(boolean, true, 'send notifications through Web Push (VAPID keys are generated into <data>/vapid.json)'),
  pushSubject: option(text('<url>', 'a mailto: or https: URL', (value) => /^(mailto:|https:\/\/)/.test(value)), 'mailto:tailgrove@localhost', 'VAPID subject: where push services can reach the operator'),
  pushTtlSeconds: option(integer(0, 2_419_200), 86_400, 'how long a push service keeps a notification for an offline device'),
  pushCaFile: option<string | undefined>(text('<file>'), undefined, 'PEM file of extra CAs for push services behind a private CA', { emptyEnvIsUnset: true }),
  webhookUrl: option<string | undefined>(text('<url>', 'an http: or https: URL', (value) => /^https?:\/\//.test(value)), undefined, 'POST each notification here (docs/WEBHOOKS.md)', { emptyEnvIsUnset: true }),
  webhookSecret: option<string | undefined>(secret, undefined, 'HMAC secret of the webhook signature (required with --webhook-url)', { emptyEnvIsUnset: true }),
};

export type OptionKey = keyof typeof OPTIONS;
export type OptionValues = { [K in OptionKey]: (typeof OPTIONS)[K] extends Option<infer T> ? T : never };

/** An option with its derived names; `fileKey` is undefined when a config file cannot set it. */
export interface NamedOption {
  key: OptionKey;
  flag: string;
  env: string;
  fileKey: string | undefined;
  option: Option<unknown>;
}

export function named(key: OptionKey): NamedOption {
  const option: Option<unknown> = OPTIONS[key];
  const kebab = key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
  return {
    key,
    flag: option.flag ?? kebab,
    env: option.env ?? `TAILGROVE_${kebab.toUpperCase().replaceAll('-', '_')}`,
    fileKey: option.inFile === false ? undefined : key,
    option,
  };
}

export const NAMED_OPTIONS: readonly NamedOption[] = (Object.keys(OPTIONS) as OptionKey[]).map(named);

function optionHelp({ flag, env, fileKey, option }: NamedOption): string {
  const heading = option.heading === undefined ? '' : `\n${option.heading}:\n`;
  const defaultText = option.defaultText ?? (option.default === undefined ? 'none' : String(option.default));
  const names = fileKey === undefined ? env : `${env}, file: ${fileKey}`;
  return `${heading}  --${flag} ${option.kind.arg}\n      ${names}\n      ${option.help} (default: ${defaultText})\n`;
}

export const CONFIG_HELP = `Usage: tailgrove serve [options]   (or: node server.js [options])

Each option is a flag, an environment variable, or a key of the --config file (JSON),
in that order of precedence over the defaults; see docs/CONFIGURATION.md.
  -h, --help
      this text
${NAMED_OPTIONS.map(optionHelp).join('')}`;
