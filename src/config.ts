// Server configuration from one schema (config/schema.ts), read from flags, TAILGROVE_*
// environment variables and a JSON config file, in that order of precedence, over defaults.
// A bad value is a startup error naming its key and where it came from.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DEFAULT_KID, type TokenKeys } from './auth/token.js';
import { DEFAULT_LIMITS, type Limits } from './limits.js';
import { withDefaultRule, type RetentionRule } from './config/retention.js';
import type { NotificationOptions } from './notify/notifications.js';
import { NAMED_OPTIONS, named, type EngineChoice, type LogFormat, type LogLevel, type NamedOption, type OptionValues } from './config/schema.js';
import { ConfigError, didYouMean, isObject } from './config/values.js';

export { ConfigError } from './config/values.js';
export { CONFIG_HELP, type LogFormat, type LogLevel } from './config/schema.js';
export type { RetentionRule } from './config/retention.js';

export interface Config {
  host: string;
  port: number;
  dataDir: string;
  workers: number;
  /** Which engine runs (docs/NATIVE-FREE.md); `auto` is resolved at startup. */
  engine: EngineChoice;
  /** native-free: segment file size. */
  segmentBytes: number;
  /** The HS256 secret; undefined means "generate one in the data dir" (development). */
  secret: string | undefined;
  /** More secrets by key id (`kid` in the token header), for rotation. */
  secrets: Record<string, string>;
  limits: Limits;
  /** Kept at the top level for callers that only need these two. */
  entryBytesMax: number;
  handshakeTimeoutMs: number;
  logLevel: LogLevel;
  /** `auto` is resolved by the caller: pretty on a TTY, else JSON. */
  logFormat: LogFormat;
  /** Batches slower than this are logged. */
  slowBatchMs: number;
  /** A graceful shutdown is forced after this. */
  shutdownTimeoutMs: number;
  /** Serve the status page `/` and `GET /stats`. */
  statusPage: boolean;
  /** Serve `GET /metrics`. */
  metrics: boolean;
  /** In order: the first rule matching a log's site and name applies to it. */
  retention: RetentionRule[];
  retentionIntervalMs: number;
  /** Most entries trimmed per log per sweep. */
  retentionBatchEntries: number;
  /** Offline notifications (docs/NOTIFICATIONS.md). */
  notifications: Omit<NotificationOptions, 'dataDir'> & { enabled: boolean };
  /** The config file read, if any. */
  configFile: string | undefined;
}

type Flags = Record<string, string | boolean | undefined>;

interface ConfigFile {
  path: string;
  values: Record<string, unknown>;
}

function parseFlags(argv: string[]): Flags {
  const options: Record<string, { type: 'string' } | { type: 'boolean'; short: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const { flag } of NAMED_OPTIONS) options[flag] = { type: 'string' };
  try {
    return parseArgs({ args: argv, options, strict: true }).values;
  } catch (error) {
    const { code, message } = error as NodeJS.ErrnoException;
    const unknown = code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? /'(-[^']*)'/.exec(message)?.[1] : undefined;
    if (unknown === undefined) throw new ConfigError(`config: ${message}`);
    const candidates = NAMED_OPTIONS.flatMap(({ key, flag }) => [[flag, `--${flag}`], [key, `--${flag}`]] as const);
    throw new ConfigError(`config: unknown option ${unknown}${didYouMean(unknown.replace(/^-+/, ''), candidates)}`);
  }
}

function readConfigFile(path: string): ConfigFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const { code, message } = error as NodeJS.ErrnoException;
    throw new ConfigError(`config: cannot read config file ${path} (${code ?? message})`);
  }
  let values: unknown;
  try {
    values = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`config: config file ${path} is not valid JSON: ${(error as Error).message}`);
  }
  if (!isObject(values)) throw new ConfigError(`config: config file ${path} must hold a JSON object of options`);
  const fileKeys = new Set(NAMED_OPTIONS.map(({ fileKey }) => fileKey));
  for (const key of Object.keys(values)) {
    if (fileKeys.has(key)) continue;
    // A flag name written as a key (`data`) is close to its file key (`dataDir`) too.
    const candidates = NAMED_OPTIONS.flatMap(({ fileKey, flag }) => (fileKey === undefined ? [] : [[fileKey, fileKey], [flag, fileKey]] as const));
    throw new ConfigError(`config: unknown key ${key} in ${path}${didYouMean(key, candidates)}`);
  }
  return { path, values };
}

/** The value of one option from the first source that sets it, else its default. */
function resolve({ flag, env: variable, fileKey, option }: NamedOption, flags: Flags, env: NodeJS.ProcessEnv, file: ConfigFile | undefined): unknown {
  const { kind } = option;
  if (flags[flag] !== undefined) return kind.parse(flags[flag], (part = '') => `--${flag}${part}`);
  const text = env[variable];
  if (text !== undefined && !(text === '' && option.emptyEnvIsUnset)) return kind.parse(text, (part = '') => `${variable}${part}`);
  if (file !== undefined && fileKey !== undefined && Object.hasOwn(file.values, fileKey)) {
    return kind.parse(file.values[fileKey], (part = '') => `${fileKey}${part} in ${file.path}`);
  }
  return option.default;
}

export function parseConfig(argv: string[], env: NodeJS.ProcessEnv): Config | 'help' {
  const flags = parseFlags(argv);
  if (flags.help) return 'help';
  const path = resolve(named('config'), flags, env, undefined) as string | undefined;
  const file = path === undefined ? undefined : readConfigFile(path);
  const resolved: Record<string, unknown> = {};
  const limits: Limits = { ...DEFAULT_LIMITS };
  for (const option of NAMED_OPTIONS) {
    resolved[option.key] = resolve(option, flags, env, file);
    if (option.option.limit !== undefined) limits[option.option.limit] = resolved[option.key] as number;
  }
  const values = resolved as OptionValues;
  if ((values.webhookUrl === undefined) !== (values.webhookSecret === undefined)) {
    throw new ConfigError('config: webhookUrl and webhookSecret go together: receivers check the signature made with the secret');
  }
  return {
    host: values.host,
    port: values.port,
    dataDir: values.dataDir,
    workers: values.workers,
    engine: values.engine,
    segmentBytes: values.segmentBytes,
    secret: values.secret,
    secrets: { ...values.secrets },
    limits,
    entryBytesMax: limits.entryBytesMax,
    handshakeTimeoutMs: limits.handshakeTimeoutMs,
    logLevel: values.logLevel,
    logFormat: values.logFormat,
    slowBatchMs: values.slowBatchMs,
    shutdownTimeoutMs: values.shutdownTimeoutMs,
    statusPage: values.statusPage,
    metrics: values.metrics,
    retention: withDefaultRule(values.retention, {
      maxEntries: values.retentionMaxEntries,
      maxBytes: values.retentionMaxBytes,
      maxAgeSeconds: values.retentionMaxAgeSeconds,
    }),
    retentionIntervalMs: values.retentionIntervalMs,
    notifications: {
      enabled: values.notifications,
      intervalMs: values.notifyIntervalMs,
      perUserPerHour: values.notifyPerUserPerHour,
      webPush: values.webPush,
      pushSubject: values.pushSubject,
      pushTtlSeconds: values.pushTtlSeconds,
      pushCaFile: values.pushCaFile,
      webhookUrl: values.webhookUrl,
      webhookSecret: values.webhookSecret,
    },
    retentionBatchEntries: values.retentionBatchEntries,
    configFile: values.config,
  };
}

const REDACTED = '[redacted]';

/** The config as plain JSON data for the startup log, secrets redacted (their key ids kept). */
export function effectiveConfig(config: Config): Record<string, unknown> {
  const secrets = Object.fromEntries(Object.keys(config.secrets).map((kid) => [kid, REDACTED]));
  const redact = (value: string | undefined): string | undefined => (value === undefined ? undefined : REDACTED);
  const notifications = { ...config.notifications, webhookSecret: redact(config.notifications.webhookSecret) };
  return JSON.parse(JSON.stringify({ ...config, secret: redact(config.secret), secrets, notifications })) as Record<string, unknown>;
}

/** The verifier's keys: the main secret under the default key id, plus the rotation secrets. */
export function tokenKeys(secret: string, secrets: Record<string, string>): TokenKeys {
  return { secrets: { ...secrets, [DEFAULT_KID]: secret }, defaultKid: DEFAULT_KID };
}
