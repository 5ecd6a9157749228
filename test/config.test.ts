// Server configuration: defaults, a JSON config file, TAILGROVE_* environment variables and
// flags (flags > env > file > defaults), and a ConfigError naming the key and its source for
// every bad value; the help and docs/CONFIGURATION.md list every option of the schema.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_LIMITS } from '../src/limits.js';
import { ENTRY_BYTES_MAX_DEFAULT } from '../src/constants.js';
import { CONFIG_HELP, ConfigError, effectiveConfig, parseConfig, type Config } from '../src/config.js';
import { NAMED_OPTIONS } from '../src/config/schema.js';
import { repositoryRoot } from './helpers/server.js';

const parse = (argv: string[], env: NodeJS.ProcessEnv = {}): Config => {
  const config = parseConfig(argv, env);
  if (config === 'help') throw new Error('unexpected help');
  return config;
};

/** What `fn` throws (undefined when it returns). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

const messageOf = (fn: () => unknown): string | undefined => (thrown(fn) as Error | undefined)?.message;

const directory = mkdtempSync(join(tmpdir(), 'tailgrove-config-'));
t.teardown(() => rmSync(directory, { recursive: true, force: true }));
let files = 0;

/** A config file holding `content` (an object is written as JSON). */
function configFile(content: unknown, name = `config-${++files}.json`): string {
  const path = join(directory, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

const GOOD_SECRET = 'sixteen-chars-ok';

t.test('defaults', (t) => {
  t.same(parse([]), {
    host: '127.0.0.1',
    port: 8080,
    dataDir: './data',
    workers: Math.max(1, availableParallelism() - 1),
    secret: undefined,
    secrets: {},
    limits: DEFAULT_LIMITS,
    entryBytesMax: ENTRY_BYTES_MAX_DEFAULT,
    handshakeTimeoutMs: 10_000,
    logLevel: 'info',
    logFormat: 'auto',
    slowBatchMs: 50,
    shutdownTimeoutMs: 30_000,
    statusPage: true,
    metrics: true,
    retention: [],
    retentionIntervalMs: 1000,
    retentionBatchEntries: 10_000,
    engine: 'auto',
    segmentBytes: 64 << 20,
    notifications: {
      enabled: true,
      intervalMs: 2000,
      perUserPerHour: 120,
      webPush: true,
      pushSubject: 'mailto:tailgrove@localhost',
      pushTtlSeconds: 86_400,
      pushCaFile: undefined,
      webhookUrl: undefined,
      webhookSecret: undefined,
    },
    configFile: undefined,
  });
  t.equal(parse([], { PATH: '/bin', TAILGROVE_UNKNOWN: 'x' }).port, 8080, 'unrelated variables are ignored');
  t.end();
});

// Each key: its flag, its variable, its file key, and two good values.
const keys: { flag: string; variable: string; fileKey: string; field: keyof Config; env: string; flagValue: string; parsed: [unknown, unknown] }[] = [
  { flag: '--host', variable: 'TAILGROVE_HOST', fileKey: 'host', field: 'host', env: '0.0.0.0', flagValue: '::1', parsed: ['0.0.0.0', '::1'] },
  { flag: '--port', variable: 'TAILGROVE_PORT', fileKey: 'port', field: 'port', env: '9000', flagValue: '0', parsed: [9000, 0] },
  { flag: '--data', variable: 'TAILGROVE_DATA', fileKey: 'dataDir', field: 'dataDir', env: '/var/env', flagValue: '/var/flag', parsed: ['/var/env', '/var/flag'] },
  { flag: '--workers', variable: 'TAILGROVE_WORKERS', fileKey: 'workers', field: 'workers', env: '3', flagValue: '64', parsed: [3, 64] },
  { flag: '--secret', variable: 'TAILGROVE_SECRET', fileKey: 'secret', field: 'secret', env: GOOD_SECRET, flagValue: 'x'.repeat(64), parsed: [GOOD_SECRET, 'x'.repeat(64)] },
  { flag: '--entry-bytes-max', variable: 'TAILGROVE_ENTRY_BYTES_MAX', fileKey: 'entryBytesMax', field: 'entryBytesMax', env: '1', flagValue: String(4 << 20), parsed: [1, 4 << 20] },
  { flag: '--handshake-timeout-ms', variable: 'TAILGROVE_HANDSHAKE_TIMEOUT_MS', fileKey: 'handshakeTimeoutMs', field: 'handshakeTimeoutMs', env: '100', flagValue: '600000', parsed: [100, 600_000] },
  { flag: '--log-level', variable: 'TAILGROVE_LOG_LEVEL', fileKey: 'logLevel', field: 'logLevel', env: 'debug', flagValue: 'silent', parsed: ['debug', 'silent'] },
  { flag: '--log-format', variable: 'TAILGROVE_LOG_FORMAT', fileKey: 'logFormat', field: 'logFormat', env: 'json', flagValue: 'pretty', parsed: ['json', 'pretty'] },
  { flag: '--slow-batch-ms', variable: 'TAILGROVE_SLOW_BATCH_MS', fileKey: 'slowBatchMs', field: 'slowBatchMs', env: '1', flagValue: '60000', parsed: [1, 60_000] },
  { flag: '--shutdown-timeout-ms', variable: 'TAILGROVE_SHUTDOWN_TIMEOUT_MS', fileKey: 'shutdownTimeoutMs', field: 'shutdownTimeoutMs', env: '100', flagValue: '600000', parsed: [100, 600_000] },
  { flag: '--status-page', variable: 'TAILGROVE_STATUS_PAGE', fileKey: 'statusPage', field: 'statusPage', env: 'false', flagValue: 'true', parsed: [false, true] },
  { flag: '--metrics', variable: 'TAILGROVE_METRICS', fileKey: 'metrics', field: 'metrics', env: 'false', flagValue: 'true', parsed: [false, true] },
  { flag: '--retention-interval-ms', variable: 'TAILGROVE_RETENTION_INTERVAL_MS', fileKey: 'retentionIntervalMs', field: 'retentionIntervalMs', env: '100', flagValue: '3600000', parsed: [100, 3_600_000] },
  { flag: '--retention-batch-entries', variable: 'TAILGROVE_RETENTION_BATCH_ENTRIES', fileKey: 'retentionBatchEntries', field: 'retentionBatchEntries', env: '1', flagValue: '1000000', parsed: [1, 1_000_000] },
];

t.test('environment variables set each key, and flags override them', (t) => {
  for (const { flag, variable, field, env, flagValue, parsed } of keys) {
    t.equal(parse([], { [variable]: env })[field], parsed[0], `${variable} sets ${field}`);
    t.equal(parse([flag, flagValue], { [variable]: env })[field], parsed[1], `${flag} wins over ${variable}`);
    t.equal(parse([`${flag}=${flagValue}`])[field], parsed[1], `${flag}=value works too`);
  }
  t.end();
});

t.test('precedence: flag > environment > config file > default', (t) => {
  for (const { flag, variable, fileKey, field, env, flagValue, parsed } of keys) {
    // The file holds the environment's value, so the environment is given something else.
    const file = configFile({ [fileKey]: env });
    const other = field === 'secret' ? 'y'.repeat(32) : flagValue;
    t.equal(parse(['--config', file])[field], parsed[0], `the file's ${fileKey} sets ${field}`);
    t.equal(parse(['--config', file], { [variable]: other })[field], parse([], { [variable]: other })[field], `${variable} wins over the file`);
    t.equal(parse(['--config', file, flag, flagValue], { [variable]: env })[field], parsed[1], `${flag} wins over both`);
  }
  const file = configFile({ port: 1000, host: '10.0.0.1', slowBatchMs: 7 });
  const config = parse(['--config', file, '--port', '3000'], { TAILGROVE_HOST: '10.0.0.2' });
  t.same([config.port, config.host, config.slowBatchMs, config.metrics], [3000, '10.0.0.2', 7, true], 'each key from its highest source, in one parse');
  t.end();
});

t.test('the config file: --config or TAILGROVE_CONFIG (the flag wins), recorded as configFile', (t) => {
  const fromFlag = configFile({ port: 1 });
  const fromEnv = configFile({ port: 2 });
  t.same([parse(['--config', fromFlag]).port, parse(['--config', fromFlag]).configFile], [1, fromFlag]);
  t.same([parse([], { TAILGROVE_CONFIG: fromEnv }).port, parse([], { TAILGROVE_CONFIG: fromEnv }).configFile], [2, fromEnv]);
  t.equal(parse(['--config', fromFlag], { TAILGROVE_CONFIG: fromEnv }).port, 1, '--config wins over TAILGROVE_CONFIG');
  t.equal(parse([], { TAILGROVE_CONFIG: '' }).configFile, undefined, 'an empty TAILGROVE_CONFIG means none');
  t.end();
});

t.test('the config file takes JSON numbers or numeric strings, and booleans', (t) => {
  const config = parse(['--config', configFile({ port: '9000', workers: 2, statusPage: false, metrics: 'false', secrets: { k2: GOOD_SECRET } })]);
  t.same([config.port, config.workers, config.statusPage, config.metrics, config.secrets], [9000, 2, false, false, { k2: GOOD_SECRET }]);
  t.same(parse(['--config', configFile({ secrets: `k3=${GOOD_SECRET}` })]).secrets, { k3: GOOD_SECRET }, 'secrets as kid=secret text too');
  t.end();
});

t.test('a bad value is a ConfigError naming its key and source: flag, environment or file', (t) => {
  const bad: [flag: string, variable: string, fileKey: string, values: unknown[]][] = [
    ['port', 'TAILGROVE_PORT', 'port', ['http', '-1', '65536', '80.5']],
    ['workers', 'TAILGROVE_WORKERS', 'workers', ['0', '65', 'many', '2.5']],
    ['entry-bytes-max', 'TAILGROVE_ENTRY_BYTES_MAX', 'entryBytesMax', ['0', String((4 << 20) + 1), '1MB']],
    ['handshake-timeout-ms', 'TAILGROVE_HANDSHAKE_TIMEOUT_MS', 'handshakeTimeoutMs', ['99', '600001', 'soon']],
    ['secret', 'TAILGROVE_SECRET', 'secret', ['fifteen-chars!!']],
    ['log-level', 'TAILGROVE_LOG_LEVEL', 'logLevel', ['loud', 'INFO', '']],
    ['log-format', 'TAILGROVE_LOG_FORMAT', 'logFormat', ['xml']],
    ['slow-batch-ms', 'TAILGROVE_SLOW_BATCH_MS', 'slowBatchMs', ['0', '60001']],
    ['shutdown-timeout-ms', 'TAILGROVE_SHUTDOWN_TIMEOUT_MS', 'shutdownTimeoutMs', ['99', '600001']],
    ['status-page', 'TAILGROVE_STATUS_PAGE', 'statusPage', ['yes', '1', 'TRUE']],
    ['metrics', 'TAILGROVE_METRICS', 'metrics', ['no', '0']],
    ['retention-interval-ms', 'TAILGROVE_RETENTION_INTERVAL_MS', 'retentionIntervalMs', ['99', '3600001']],
    ['retention-batch-entries', 'TAILGROVE_RETENTION_BATCH_ENTRIES', 'retentionBatchEntries', ['0', '1000001']],
  ];
  for (const [flag, variable, fileKey, values] of bad) {
    for (const value of values) {
      const file = configFile({ [fileKey]: value });
      for (const [where, name, error] of [
        [`--${flag}=${JSON.stringify(value)}`, `--${flag}`, thrown(() => parse([`--${flag}=${value}`]))],
        [`${variable}=${JSON.stringify(value)}`, variable, thrown(() => parse([], { [variable]: String(value) }))],
        [`${fileKey}: ${JSON.stringify(value)} in a file`, `${fileKey} in ${file}`, thrown(() => parse(['--config', file]))],
      ] as const) {
        t.type(error, ConfigError, `${where} is a ConfigError`);
        t.ok((error as Error | undefined)?.message.startsWith(`config: ${name} must`), `naming ${name}: ${(error as Error | undefined)?.message}`);
      }
    }
  }
  t.end();
});

t.test('messages say what is expected and what was given, but never echo a secret', (t) => {
  const file = configFile({ port: 'x' });
  t.equal(messageOf(() => parse(['--config', file])), `config: port in ${file} must be an integer from 0 to 65535, got "x"`);
  t.equal(messageOf(() => parse([], { TAILGROVE_PORT: 'x' })), 'config: TAILGROVE_PORT must be an integer from 0 to 65535, got "x"');
  t.equal(messageOf(() => parse(['--port', 'x'])), 'config: --port must be an integer from 0 to 65535, got "x"');
  const number = configFile({ port: 70000 });
  t.equal(messageOf(() => parse(['--config', number])), `config: port in ${number} must be an integer from 0 to 65535, got 70000`);
  const word = configFile({ metrics: 'on' });
  t.equal(messageOf(() => parse(['--config', word])), `config: metrics in ${word} must be true or false, got "on"`);
  t.equal(messageOf(() => parse(['--log-level', 'loud'])), 'config: --log-level must be one of fatal, error, warn, info, debug, trace, silent, got "loud"');
  const secretMessages = [
    messageOf(() => parse(['--secret', 'short-secret'])),
    messageOf(() => parse(['--secrets', 'k2=short-secret'])),
    messageOf(() => parse(['--secrets', 'short-secret'])),
    messageOf(() => parse(['--config', configFile({ secrets: { k2: 'short-secret' } })])),
  ];
  t.same(secretMessages.slice(0, 3), [
    'config: --secret must be at least 16 characters',
    'config: --secrets.k2 must be at least 16 characters',
    'config: --secrets must be kid=secret pairs separated by commas (pair 1 is not)',
  ]);
  t.match(secretMessages[3], /^config: secrets\.k2 in .* must be at least 16 characters$/);
  t.notOk(secretMessages.some((message) => message?.includes('short-secret')), 'no message holds the secret');
  t.match(messageOf(() => parse(['--secrets', `default=${GOOD_SECRET}`])), /^config: --secrets must not use key id "default"/);
  t.end();
});

t.test('an unreadable, invalid or unknown config file is a ConfigError naming the file', (t) => {
  const missing = join(directory, 'missing.json');
  t.equal(messageOf(() => parse(['--config', missing])), `config: cannot read config file ${missing} (ENOENT)`);
  t.equal(messageOf(() => parse(['--config', directory + '/'])), `config: --config must be the path of a .json file, got "${directory}/"`);
  t.equal(messageOf(() => parse([], { TAILGROVE_CONFIG: 'tailgrove.yaml' })), 'config: TAILGROVE_CONFIG must be the path of a .json file, got "tailgrove.yaml"');
  const invalid = configFile('{ "port": 8080, }');
  t.match(messageOf(() => parse(['--config', invalid])), new RegExp(`^config: config file ${invalid} is not valid JSON: `));
  for (const content of ['[]', '8080', 'null', '"port"']) {
    const path = configFile(content);
    t.equal(messageOf(() => parse(['--config', path])), `config: config file ${path} must hold a JSON object of options`, content);
  }
  t.equal(parse(['--config', configFile('{}')]).port, 8080, 'an empty object is all defaults');
  t.end();
});

t.test('an unknown key in the file is an error that suggests the nearest key', (t) => {
  const cases: [key: string, suggestion: string | undefined][] = [
    ['prot', 'port'],
    ['datadir', 'dataDir'],
    ['data', 'dataDir'],
    ['entry_bytes_max', 'entryBytesMax'],
    ['log-level', 'logLevel'],
    ['statuspage', 'statusPage'],
    ['retentionMaxEntrys', 'retentionMaxEntries'],
    ['config', undefined],
    ['zzzzzz', undefined],
  ];
  for (const [key, suggestion] of cases) {
    const path = configFile({ port: 80, [key]: 1 });
    t.equal(messageOf(() => parse(['--config', path])), `config: unknown key ${key} in ${path}${suggestion === undefined ? '' : ` (did you mean ${suggestion}?)`}`);
  }
  t.end();
});

t.test('retention rules from the file, TAILGROVE_RETENTION or --retention (whole arrays, not merged)', (t) => {
  const rules = [
    { site: 'audit', maxAgeSeconds: 31_536_000 },
    { site: 'team-*', log: 'chat-*', maxEntries: 100_000, maxBytes: '4096' },
    { site: '*', maxBytes: 1 },
  ];
  const parsed = [rules[0], { ...rules[1], maxBytes: 4096 }, rules[2]];
  const file = configFile({ retention: rules });
  t.same(parse(['--config', file]).retention, parsed, 'from the file, in order, numeric strings as numbers');
  t.same(parse([], { TAILGROVE_RETENTION: JSON.stringify(rules) }).retention, parsed, 'from the environment as JSON text');
  const other = [{ site: 'x', maxEntries: 5 }];
  t.same(parse(['--config', file], { TAILGROVE_RETENTION: JSON.stringify(other) }).retention, other, 'the environment replaces the file');
  t.same(parse(['--retention', '[]'], { TAILGROVE_RETENTION: JSON.stringify(other) }).retention, [], 'the flag replaces the environment');
  t.end();
});

t.test('the retention max flags (variables, file keys) add one rule for every site, placed last', (t) => {
  const file = configFile({ retention: [{ site: 'team-*', maxEntries: 10 }] });
  t.same(parse(['--config', file, '--retention-max-entries', '100', '--retention-max-age-seconds', '60']).retention, [
    { site: 'team-*', maxEntries: 10 },
    { site: '*', maxEntries: 100, maxAgeSeconds: 60 },
  ]);
  t.same(parse([], { TAILGROVE_RETENTION_MAX_BYTES: '1024' }).retention, [{ site: '*', maxBytes: 1024 }], 'from the environment, with no other rule');
  t.same(
    parse(['--config', configFile({ retentionMaxAgeSeconds: 60, retention: [{ site: 'a', maxEntries: 1 }] })]).retention,
    [{ site: 'a', maxEntries: 1 }, { site: '*', maxAgeSeconds: 60 }],
    'from the file too, still after its retention rules',
  );
  t.same(
    parse(['--retention-max-bytes', '2048'], { TAILGROVE_RETENTION_MAX_BYTES: '1024', TAILGROVE_RETENTION_MAX_ENTRIES: '7' }).retention,
    [{ site: '*', maxEntries: 7, maxBytes: 2048 }],
    'each limit from its highest source',
  );
  t.match(messageOf(() => parse(['--retention-max-entries', '0'])), /^config: --retention-max-entries must be an integer of at least 1, got "0"$/);
  t.match(messageOf(() => parse([], { TAILGROVE_RETENTION_MAX_AGE_SECONDS: '1d' })), /^config: TAILGROVE_RETENTION_MAX_AGE_SECONDS must be/);
  t.end();
});

t.test('a bad retention rule is an error naming the rule index and the source', (t) => {
  const file = (retention: unknown): string => configFile({ retention });
  const cases: [retention: unknown, message: (source: string) => string][] = [
    [[{ site: '*', maxEntries: 1 }, { site: '*', maxEntries: 1 }, { site: 'a', maxBytez: 5 }], (s) => `unknown key retention[2].maxBytez${s} (did you mean maxBytes?)`],
    [[{ site: 'a', maxEntries: 1, logs: 'x' }], (s) => `unknown key retention[0].logs${s} (did you mean log?)`],
    [[{ site: 'a', maxEntries: 1, keep: 'x' }], (s) => `unknown key retention[0].keep${s}`],
    [[{ site: 'a' }], (s) => `retention[0]${s} needs at least one of maxEntries, maxBytes, maxAgeSeconds`],
    [[{ maxEntries: 1 }], (s) => `retention[0].site${s} must be a site name, a prefix ending in "*", or "*", got nothing`],
    [[{ site: 'a*b', maxEntries: 1 }], (s) => `retention[0].site${s} must be a site name, a prefix ending in "*", or "*", got "a*b"`],
    [[{ site: '', maxEntries: 1 }], (s) => `retention[0].site${s} must be a site name, a prefix ending in "*", or "*", got ""`],
    [[{ site: 'a', log: '**', maxEntries: 1 }], (s) => `retention[0].log${s} must be a log name, a prefix ending in "*", or "*", got "**"`],
    [[{ site: 'a', maxEntries: 0 }], (s) => `retention[0].maxEntries${s} must be an integer of at least 1, got 0`],
    [[{ site: 'a', maxAgeSeconds: 1.5 }], (s) => `retention[0].maxAgeSeconds${s} must be an integer of at least 1, got 1.5`],
    [['a'], (s) => `retention[0]${s} must be a rule like {"site": "*", "maxEntries": 100000}, got "a"`],
    [{ site: '*', maxEntries: 1 }, (s) => `retention${s} must be a JSON array of retention rules, got {"site":"*","maxEntries":1}`],
  ];
  for (const [retention, message] of cases) {
    const path = file(retention);
    t.equal(messageOf(() => parse(['--config', path])), `config: ${message(` in ${path}`)}`, `in a file: ${JSON.stringify(retention)}`);
  }
  t.equal(
    messageOf(() => parse([], { TAILGROVE_RETENTION: '[{"site": "a", "maxBytez": 5}]' })),
    'config: unknown key TAILGROVE_RETENTION[0].maxBytez (did you mean maxBytes?)',
    'from the environment',
  );
  t.equal(messageOf(() => parse(['--retention', '[{"site": "a"}]'])), 'config: --retention[0] needs at least one of maxEntries, maxBytes, maxAgeSeconds', 'from a flag');
  t.equal(messageOf(() => parse([], { TAILGROVE_RETENTION: '[{' })), 'config: TAILGROVE_RETENTION must be a JSON array of retention rules, got "[{"', 'invalid JSON');
  t.end();
});

t.test('an empty secret flag is refused; an empty TAILGROVE_SECRET means unset', (t) => {
  t.match(messageOf(() => parse(['--secret='])), /^config: --secret must/, '--secret "" is refused');
  t.equal(parse([], { TAILGROVE_SECRET: '' }).secret, undefined, 'TAILGROVE_SECRET="" falls back to the data directory secret');
  t.equal(parse(['--config', configFile({ secret: GOOD_SECRET })], { TAILGROVE_SECRET: '' }).secret, GOOD_SECRET, 'or to the config file');
  t.end();
});

t.test('--help and -h return help, whatever else is given', (t) => {
  t.equal(parseConfig(['--help'], {}), 'help');
  t.equal(parseConfig(['-h'], {}), 'help');
  t.equal(parseConfig(['--port', 'bad', '--help'], { TAILGROVE_WORKERS: '0' }), 'help', 'bad values do not matter with --help');
  t.equal(parseConfig(['--help', '--config', join(directory, 'missing.json')], {}), 'help', 'nor a missing config file');
  t.end();
});

t.test('unknown flags, stray arguments and missing values are ConfigErrors', (t) => {
  for (const argv of [['--nope'], ['--port=80', '--verbose'], ['-x'], ['serve'], ['--port']]) {
    t.type(thrown(() => parseConfig(argv, {})), ConfigError, JSON.stringify(argv));
  }
  t.equal(messageOf(() => parseConfig(['--nope'], {})), 'config: unknown option --nope', 'the message names the flag');
  t.equal(messageOf(() => parseConfig(['--prot', '80'], {})), 'config: unknown option --prot (did you mean --port?)');
  t.equal(messageOf(() => parseConfig(['--data-dir=x'], {})), 'config: unknown option --data-dir (did you mean --data?)');
  t.equal(messageOf(() => parseConfig(['--log-levl', 'info'], {})), 'config: unknown option --log-levl (did you mean --log-level?)');
  t.end();
});

t.test('an empty number is a bad value, not 0', (t) => {
  for (const value of ['', ' ']) {
    t.throws(() => parse([], { TAILGROVE_PORT: value }), { message: /^config: TAILGROVE_PORT must/ }, `TAILGROVE_PORT=${JSON.stringify(value)}`);
    t.throws(() => parse(['--port', value]), { message: /^config: --port must/ }, `--port ${JSON.stringify(value)}`);
  }
  t.throws(() => parse([], { TAILGROVE_WORKERS: '' }), { message: /^config: TAILGROVE_WORKERS must/ }, 'an empty worker count is refused (0 is out of range)');
  t.end();
});

t.test('the default worker count is valid on a machine with more than 64 CPUs', async (t) => {
  const { parseConfig: parseOn128Cpus } = await t.mockImport<typeof import('../src/config.js')>('../src/config.js', {
    'node:os': { availableParallelism: () => 128 },
  });
  t.equal((parseOn128Cpus([], { TAILGROVE_WORKERS: '8' }) as Config).workers, 8, 'an explicit worker count works there');
  t.equal((parseOn128Cpus([], {}) as Config).workers, 64, 'the default is capped at 64');
});

t.test('the help lists every option with its flag, variable, file key and default', (t) => {
  t.match(CONFIG_HELP, /^Usage: tailgrove serve/);
  t.same(
    NAMED_OPTIONS.map(({ flag }) => flag).sort(),
    [
      'config', 'host', 'port', 'data', 'workers', 'secret', 'secrets', 'engine', 'segment-bytes', 'shutdown-timeout-ms', 'status-page', 'metrics',
      'log-level', 'log-format', 'slow-batch-ms',
      'retention', 'retention-max-entries', 'retention-max-bytes', 'retention-max-age-seconds', 'retention-interval-ms', 'retention-batch-entries',
      'entry-bytes-max', 'handshake-timeout-ms', 'idle-timeout-seconds', 'leases-per-session', 'tails-per-session', 'unacked-writes-max',
      'connections-max', 'connections-per-address-max', 'frames-per-second', 'frames-burst', 'violations-max', 'socket-buffered-bytes-max', 'clock-skew-seconds', 'signal-bytes-max',
      'notifications', 'notify-interval-ms', 'notify-per-user-per-hour', 'web-push', 'push-subject', 'push-ttl-seconds', 'push-ca-file', 'webhook-url', 'webhook-secret',
    ].sort(),
    'the schema has every option',
  );
  for (const { flag, env, fileKey, option } of NAMED_OPTIONS) {
    const entry = CONFIG_HELP.slice(CONFIG_HELP.indexOf(`  --${flag} `));
    const lines = entry.split('\n').slice(0, 3);
    t.ok(lines[0]?.startsWith(`  --${flag} `), `--${flag} is listed`);
    t.equal(lines[1]?.trim(), fileKey === undefined ? env : `${env}, file: ${fileKey}`, `with ${env}${fileKey === undefined ? '' : ` and ${fileKey}`}`);
    t.match(lines[2], /\(default: .+\)$/, `and its default`);
    if (option.defaultText === undefined && option.default !== undefined) t.ok(lines[2]?.endsWith(`(default: ${String(option.default)})`), `${flag}: ${lines[2]}`);
  }
  t.end();
});

t.test('docs/CONFIGURATION.md lists every option', (t) => {
  const docs = readFileSync(join(repositoryRoot, 'docs', 'CONFIGURATION.md'), 'utf8');
  for (const { flag, env, fileKey } of NAMED_OPTIONS) {
    const row = docs.split('\n').find((line) => line.startsWith('| ') && line.includes(`\`--${flag} `));
    t.ok(row, `--${flag} has a row`);
    t.ok(row?.includes(`\`${env}\``), `with ${env}`);
    t.ok(row?.startsWith(fileKey === undefined ? '| — |' : `| \`${fileKey}\` |`), `and its file key`);
  }
  t.end();
});

t.test('examples/tailgrove.config.json loads', (t) => {
  const path = join(repositoryRoot, 'examples', 'tailgrove.config.json');
  const config = parse(['--config', path]);
  t.equal(config.configFile, path);
  t.same([config.host, config.logFormat, config.retention.length], ['0.0.0.0', 'json', 4]);
  t.same(config.retention[1], { site: 'team-*', log: 'chat-*', maxEntries: 100_000, maxAgeSeconds: 2_592_000 });
  t.end();
});

t.test('notification options: the webhook needs its secret, and the secret is redacted', (t) => {
  t.throws(() => parseConfig(['--webhook-url', 'http://127.0.0.1:9/hook'], {}), { message: /webhookUrl and webhookSecret go together/ });
  t.throws(() => parseConfig(['--webhook-url', 'ftp://x', '--webhook-secret', 'a-long-enough-secret'], {}), { message: /--webhook-url must be an http: or https: URL/ });
  t.throws(() => parseConfig(['--push-subject', 'ops@example.com'], {}), { message: /--push-subject must be a mailto: or https: URL/ });
  const config = parseConfig(['--webhook-url', 'https://hooks.example.com/x', '--webhook-secret', 'a-long-enough-secret', '--notifications', 'false'], {}) as Config;
  t.equal(config.notifications.enabled, false, 'notifications can be turned off');
  t.equal(config.notifications.webhookUrl, 'https://hooks.example.com/x');
  const shown = effectiveConfig(config) as { notifications: { webhookSecret: string } };
  t.equal(shown.notifications.webhookSecret, '[redacted]', 'the webhook secret is redacted in the startup log');
  t.notOk(JSON.stringify(shown).includes('a-long-enough-secret'), 'and appears nowhere');
  t.end();
});

t.test('effectiveConfig is plain JSON data with the secrets redacted', (t) => {
  const config = parse(['--secret', GOOD_SECRET, '--secrets', `k2=${'b'.repeat(20)},k3=${'c'.repeat(20)}`, '--retention-max-entries', '5']);
  const effective = effectiveConfig(config);
  t.same(effective.secret, '[redacted]');
  t.same(effective.secrets, { k2: '[redacted]', k3: '[redacted]' }, 'key ids kept');
  t.notOk(JSON.stringify(effective).includes(GOOD_SECRET) || JSON.stringify(effective).includes('bbbb'), 'no secret anywhere');
  t.same(effective, JSON.parse(JSON.stringify(effective)), 'JSON round-trips unchanged');
  t.same(effective.retention, [{ site: '*', maxEntries: 5 }]);
  t.same(effective.limits, config.limits);
  t.equal(config.secret, GOOD_SECRET, 'the config itself is untouched');
  t.notOk('secret' in effectiveConfig(parse([])), 'no secret configured: none shown');
  t.end();
});
