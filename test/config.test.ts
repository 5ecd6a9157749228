// Server configuration: defaults, TAILGROVE_* environment variables, flags over env, and a
// ConfigError naming the key for every bad value.
import t from 'tap';
import { DEFAULT_LIMITS } from '../src/limits.js';
import { availableParallelism } from 'node:os';
import { ENTRY_BYTES_MAX_DEFAULT } from '../src/constants.js';
import { ConfigError, parseConfig, type Config } from '../src/config.js';

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

const GOOD_SECRET = 'sixteen-chars-ok';

t.test('defaults', (t) => {
  t.same(parse([]), {
    host: '127.0.0.1',
    port: 8080,
    dataDir: './data',
    workers: availableParallelism(),
    secret: undefined,
    secrets: {},
    limits: DEFAULT_LIMITS,
    entryBytesMax: ENTRY_BYTES_MAX_DEFAULT,
    handshakeTimeoutMs: 10_000,
  });
  t.equal(parse([], { PATH: '/bin', TAILGROVE_UNKNOWN: 'x' }).port, 8080, 'unrelated variables are ignored');
  t.end();
});

// Each key: its flag, its variable, and two good values.
const keys: { flag: string; variable: string; field: keyof Config; env: string; flagValue: string; parsed: [unknown, unknown] }[] = [
  { flag: '--host', variable: 'TAILGROVE_HOST', field: 'host', env: '0.0.0.0', flagValue: '::1', parsed: ['0.0.0.0', '::1'] },
  { flag: '--port', variable: 'TAILGROVE_PORT', field: 'port', env: '9000', flagValue: '0', parsed: [9000, 0] },
  { flag: '--data', variable: 'TAILGROVE_DATA', field: 'dataDir', env: '/var/env', flagValue: '/var/flag', parsed: ['/var/env', '/var/flag'] },
  { flag: '--workers', variable: 'TAILGROVE_WORKERS', field: 'workers', env: '3', flagValue: '64', parsed: [3, 64] },
  { flag: '--secret', variable: 'TAILGROVE_SECRET', field: 'secret', env: GOOD_SECRET, flagValue: 'x'.repeat(64), parsed: [GOOD_SECRET, 'x'.repeat(64)] },
  { flag: '--entry-bytes-max', variable: 'TAILGROVE_ENTRY_BYTES_MAX', field: 'entryBytesMax', env: '1', flagValue: String(4 << 20), parsed: [1, 4 << 20] },
  { flag: '--handshake-timeout-ms', variable: 'TAILGROVE_HANDSHAKE_TIMEOUT_MS', field: 'handshakeTimeoutMs', env: '100', flagValue: '600000', parsed: [100, 600_000] },
];

t.test('environment variables set each key, and flags override them', (t) => {
  for (const { flag, variable, field, env, flagValue, parsed } of keys) {
    t.equal(parse([], { [variable]: env })[field], parsed[0], `${variable} sets ${field}`);
    t.equal(parse([flag, flagValue], { [variable]: env })[field], parsed[1], `${flag} wins over ${variable}`);
    t.equal(parse([`${flag}=${flagValue}`])[field], parsed[1], `${flag}=value works too`);
  }
  t.end();
});

t.test('a bad value is a ConfigError naming its key, from a flag or the environment', (t) => {
  const bad: [string, string, string[]][] = [
    ['port', 'TAILGROVE_PORT', ['http', '-1', '65536', '80.5']],
    ['workers', 'TAILGROVE_WORKERS', ['0', '65', 'many', '2.5']],
    ['entry-bytes-max', 'TAILGROVE_ENTRY_BYTES_MAX', ['0', String((4 << 20) + 1), '1MB']],
    ['handshake-timeout-ms', 'TAILGROVE_HANDSHAKE_TIMEOUT_MS', ['99', '600001', 'soon']],
    ['secret', 'TAILGROVE_SECRET', ['fifteen-chars!!']],
  ];
  for (const [key, variable, values] of bad) {
    const names = new RegExp(`^config: ${key} must`);
    for (const value of values) {
      for (const [where, error] of [
        [`--${key}=${JSON.stringify(value)}`, thrown(() => parse([`--${key}=${value}`]))],
        [`${variable}=${JSON.stringify(value)}`, thrown(() => parse([], { [variable]: value }))],
      ] as const) {
        t.type(error, ConfigError, `${where} is a ConfigError`);
        t.match((error as Error | undefined)?.message, names, `naming ${key}`);
      }
    }
  }
  t.end();
});

t.test('an empty secret flag is refused; an empty TAILGROVE_SECRET means unset', (t) => {
  t.match((thrown(() => parse(['--secret='])) as Error | undefined)?.message, /^config: secret must/, '--secret "" is refused');
  t.equal((parse([], { TAILGROVE_SECRET: '' }) as Config).secret, undefined, 'TAILGROVE_SECRET="" falls back to the data directory secret');
  t.end();
});

t.test('--help and -h return help, whatever else is given', (t) => {
  t.equal(parseConfig(['--help'], {}), 'help');
  t.equal(parseConfig(['-h'], {}), 'help');
  t.equal(parseConfig(['--port', 'bad', '--help'], { TAILGROVE_WORKERS: '0' }), 'help', 'bad values do not matter with --help');
  t.end();
});

t.test('unknown flags, stray arguments and missing values are ConfigErrors', (t) => {
  for (const argv of [['--nope'], ['--port=80', '--verbose'], ['-x'], ['serve'], ['--port']]) {
    t.type(thrown(() => parseConfig(argv, {})), ConfigError, JSON.stringify(argv));
  }
  t.match((thrown(() => parseConfig(['--nope'], {})) as Error).message, /^config: .*--nope/, 'the message names the flag');
  t.end();
});

t.test('an empty number is a bad value, not 0', (t) => {
  for (const value of ['', ' ']) {
    t.throws(() => parse([], { TAILGROVE_PORT: value }), { message: /^config: port must/ }, `TAILGROVE_PORT=${JSON.stringify(value)}`);
    t.throws(() => parse(['--port', value]), { message: /^config: port must/ }, `--port ${JSON.stringify(value)}`);
  }
  t.throws(() => parse([], { TAILGROVE_WORKERS: '' }), { message: /^config: workers must/ }, 'an empty worker count is refused (0 is out of range)');
  t.end();
});

t.test('the default worker count is valid on a machine with more than 64 CPUs', async (t) => {
  const { parseConfig: parseOn128Cpus } = await t.mockImport<typeof import('../src/config.js')>('../src/config.js', {
    'node:os': { availableParallelism: () => 128 },
  });
  t.equal((parseOn128Cpus([], { TAILGROVE_WORKERS: '8' }) as Config).workers, 8, 'an explicit worker count works there');
  t.doesNotThrow(() => parseOn128Cpus([], {}), 'parsing with no options succeeds');
});
