// The `tailgrove` command as a user runs it: a child process per call, against a real
// server where the command talks to one.
import t from 'tap';
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTokenVerifier, mintToken } from '../src/auth/token.js';
import { formatStatus } from '../src/cli/stats.js';
import type { StatusSnapshot } from '../src/metrics/status.js';
import { OP_CONNECTED, OP_ERROR } from '../src/net/protocol.js';
import { RawClient, errorName, frames } from './helpers/raw-client.js';
import { repositoryRoot, startServer, removeDataDir } from './helpers/server.js';

const SECRET = 'a-secret-of-enough-length';

interface Outcome {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** `tailgrove …args` to its end; with `until`, SIGINT once stdout matches it (for --watch). */
function run(args: string[], options: { until?: RegExp; env?: Record<string, string>; cwd?: string } = {}): Promise<Outcome> {
  const child = spawn(process.execPath, ['bin/tailgrove.js', ...args], { cwd: options.cwd ?? repositoryRoot, env: { ...process.env, TAILGROVE_SECRET: '', ...options.env } });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    if (options.until?.test(stdout)) child.kill('SIGINT');
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve) => child.once('close', (status) => resolve({ status, stdout, stderr })));
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const SNAPSHOT: StatusSnapshot = {
  at: 1_750_000_000_000,
  uptimeSeconds: 3723.4,
  ready: true,
  workers: 4,
  connections: 12,
  sessions: 10,
  leases: 40,
  tails: 8,
  appendsPerSecond: 12345.6,
  entriesDeliveredPerSecond: 98765,
  batchesPerSecond: 120,
  batchSize: 10.26,
  phaseMs: { ioContributions: 0.123, ioDeletions: 0.01, clientInput: 0.5, catchUp: 0.2, commit: 12.34 },
  topLogs: [
    { site: 'acme', log: 'doc-1', appendsPerSecond: 10000, length: 1234567 },
    { site: 'acme', log: 'chat', appendsPerSecond: 2345.6, length: 99 },
  ],
  totals: { appends: 1234567, entriesDelivered: 7654321, errors: 3, trimmedEntries: 0 },
};

t.test('stats formats a snapshot as a compact table', async (t) => {
  const lines = formatStatus(SNAPSHOT, '127.0.0.1:8080').split('\n');
  t.equal(lines[0], 'tailgrove 127.0.0.1:8080 · up 1h 02m · ready · 4 workers', 'heading: server, uptime, readiness, workers');
  t.match(lines[1], /^ {2}connections +12 +appends\/s +12,346$/, 'gauges beside rates, numbers rounded with separators');
  t.match(lines[2], /^ {2}sessions +10 +delivered\/s +98,765$/);
  t.match(lines[3], /^ {2}leases +40 +batches\/s +120$/);
  t.match(lines[4], /^ {2}tails +8 +batch size +10\.3$/);
  t.equal(lines[1]!.length, lines[4]!.length, 'numbers are right-aligned');
  t.match(lines[5], /^ {2}phase ms +io 0\.12 {2}deletions 0\.01 {2}input 0\.50 {2}catch-up 0\.20 {2}commit 12\.3$/);
  t.match(lines[6], /^ {2}totals +appends 1,234,567 {2}delivered 7,654,321 {2}errors 3 {2}trimmed 0$/);
  t.match(lines[7], /^ {2}top logs$/);
  t.match(lines[8], /^ {4}log +appends\/s +length$/);
  t.match(lines[9], /^ {4}acme\/doc-1 +10,000 +1,234,567$/, 'the busiest log first');
  t.match(lines[10], /^ {4}acme\/chat +2,346 +99$/);
  t.equal(lines[11], '', 'ends with a newline');
  const quiet = formatStatus({ ...SNAPSHOT, ready: false, uptimeSeconds: 5, topLogs: [] }, 'h:1');
  t.match(quiet, /^tailgrove h:1 · up 5s · recovering · 4 workers\n/, 'a recovering server says so');
  t.match(quiet, /\n {2}top logs +none\n$/, 'no busy logs: none');
});

t.test('token mints a token the server accepts, with the grants asked for', async (t) => {
  const result = await run(['token', '--user', 'alice', '--device', 'laptop', '--grant', 'acme:rw', '--grant', 'docs:r', '--secret', SECRET]);
  t.equal(result.status, 0, result.stderr);
  const claims = createTokenVerifier(SECRET).session(result.stdout.trim());
  t.same([claims.sub, claims.device, claims.grants], ['alice', 'laptop', [{ site: 'acme', rights: 'rw' }, { site: 'docs', rights: 'r' }]]);
  t.ok(claims.exp! > Date.now() / 1000 + 86000, 'valid for a day by default');
});

t.test('token takes a token id and a key id', async (t) => {
  const result = await run(['token', '--user', 'u', '--device', 'd', '--grant', '*:a', '--secret', SECRET, '--jti', 'token-1', '--kid', 'k2']);
  t.equal(result.status, 0, result.stderr);
  const [header, payload] = result.stdout.trim().split('.').slice(0, 2).map((part) => JSON.parse(Buffer.from(part!, 'base64url').toString()));
  t.equal(header.kid, 'k2', 'the key id is in the header');
  t.equal(payload.jti, 'token-1', 'the token id is a claim');
  t.same(payload.grants, [{ site: '*', rights: 'a' }], 'an admin grant');
});

t.test('token reads the secret from TAILGROVE_SECRET, else the data directory', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tailgrove-cli-'));
  t.teardown(() => removeDataDir(dataDir));
  writeFileSync(join(dataDir, 'secret'), SECRET);
  const fromFile = await run(['token', '--user', 'u', '--device', 'd', '--grant', '*:r', '--data', dataDir]);
  t.equal(fromFile.status, 0, fromFile.stderr);
  t.equal(createTokenVerifier(SECRET).session(fromFile.stdout.trim()).grants[0]!.site, '*');
  const fromEnvironment = await run(['token', '--user', 'u', '--device', 'd', '--grant', '*:r', '--data', dataDir], { env: { TAILGROVE_SECRET: 'the-environment-secret' } });
  t.equal(fromEnvironment.status, 0, fromEnvironment.stderr);
  t.equal(createTokenVerifier('the-environment-secret').session(fromEnvironment.stdout.trim()).sub, 'u', 'the environment wins over the file');
});

t.test('bad invocations exit 2 with a reason and the usage', async (t) => {
  const cases: [string[], RegExp, RegExp][] = [
    [['token', '--device', 'd', '--grant', 'a:r', '--secret', SECRET], /--user and --device are required/, /Usage: tailgrove token/],
    [['token', '--user', 'u', '--device', 'd', '--secret', SECRET], /at least one --grant is required/, /Usage: tailgrove token/],
    [['token', '--user', 'u', '--device', 'd', '--grant', 'acme:rx', '--secret', SECRET], /grant "acme:rx" is not site:rights/, /Usage: tailgrove token/],
    [['token', '--user', 'u', '--device', 'd', '--grant', 'acme', '--secret', SECRET], /grant "acme" is not site:rights/, /Usage: tailgrove token/],
    [['token', '--user', 'u', '--device', 'd', '--grant', 'a:r', '--secret', 'short'], /at least 16 characters/, /Usage: tailgrove token/],
    [['token', '--user', 'u', '--device', 'd', '--grant', 'a:r', '--data', '/nonexistent'], /no secret/, /Usage: tailgrove token/],
    [['token', '--user', 'u', '--device', 'd', '--grant', 'a:r', '--secret', SECRET, '--expires-in', '0'], /--expires-in must be an integer ≥ 1/, /Usage: tailgrove token/],
    [['token', '--colour'], /Unknown option '--colour'/, /Usage: tailgrove token/],
    [['revoke', '--secret', SECRET], /give exactly one of --jti, --device or --user/, /Usage: tailgrove revoke/],
    [['revoke', '--jti', 'a', '--device', 'b', '--secret', SECRET], /give exactly one of --jti, --device or --user/, /Usage: tailgrove revoke/],
    [['revoke', '--list', '--user', 'u', '--secret', SECRET], /--list takes no --jti, --device, --user or --seconds/, /Usage: tailgrove revoke/],
    [['revoke', '--user', 'u', '--seconds', 'soon', '--secret', SECRET], /--seconds must be an integer ≥ 1 \(got "soon"\)/, /Usage: tailgrove revoke/],
    [['revoke', '--user', 'u', '--url', 'nowhere', '--secret', SECRET], /--url "nowhere" is not a URL/, /Usage: tailgrove revoke/],
    [['revoke', '--user', 'u', '--data', '/nonexistent'], /no secret/, /Usage: tailgrove revoke/],
    [['revoke', '--everyone'], /Unknown option '--everyone'/, /Usage: tailgrove revoke/],
    [['stats', '--watch', '0'], /--watch must be an integer ≥ 1/, /Usage: tailgrove stats/],
    [['stats', '--url', 'ftp://x'], /must be http:\/\//, /Usage: tailgrove stats/],
    [['stats', 'now'], /Unexpected argument 'now'/, /Usage: tailgrove stats/],
    [['bench', '--turbo'], /Unknown option '--turbo'/, /--connections N/],
    [['frobnicate'], /unknown command "frobnicate"/, /Usage: tailgrove <command>/],
    [['constructor'], /unknown command "constructor"/, /Usage: tailgrove <command>/],
    [[], /a command is required/, /Usage: tailgrove <command>/],
    [['serve', '--port', 'eighty'], /config: .*port must be an integer/, /Usage: tailgrove serve/],
  ];
  for (const [args, reason, usage] of cases) {
    const result = await run(args);
    t.equal(result.status, 2, `tailgrove ${args.join(' ')} exits 2`);
    t.match(result.stderr, reason, 'and says why');
    t.match(result.stderr, usage, "with the command's usage");
  }
});

t.test('help is on stdout and exits 0, for each command', async (t) => {
  const top = await run(['--help']);
  t.equal(top.status, 0);
  for (const command of ['serve', 'token', 'revoke', 'stats', 'bench']) t.match(top.stdout, new RegExp(`^ {2}${command} `, 'm'), `tailgrove --help lists ${command}`);
  const cases: [string[], RegExp][] = [
    [['serve', '--help'], /Usage: tailgrove serve/],
    [['token', '--help'], /Usage: tailgrove token[^]*--grant <site:rights>/],
    [['revoke', '-h'], /Usage: tailgrove revoke[^]*--jti <id>[^]*--list[^]*--token <token>/],
    [['stats', '--help'], /Usage: tailgrove stats[^]*--json[^]*--watch \[seconds\]/],
    [['bench', '--help'], /Usage: tailgrove bench[^]*Load generator for tailgrove[^]*--connections N/],
  ];
  for (const [args, help] of cases) {
    const result = await run(args);
    t.equal(result.status, 0, `tailgrove ${args.join(' ')}`);
    t.match(result.stdout, help, 'prints its usage');
    t.equal(result.stderr, '', 'and nothing on stderr');
  }
});

t.test('revoke and stats against a real server', async (t) => {
  const server = await startServer({ workers: 1 });
  const http = `http://127.0.0.1:${server.port}`;
  const deviceToken = mintToken({ sub: 'carol', device: 'phone', grants: [{ site: 'acme', rights: 'rw' }] }, server.secret, { jti: 'cli-token-1' });
  const live = await RawClient.connected(server.url, deviceToken);
  t.teardown(async () => {
    await live.close();
    await server.stop();
    removeDataDir(server.dataDir);
  });

  const revoked = await run(['revoke', '--jti', 'cli-token-1', '--url', http, '--data', server.dataDir]);
  t.equal(revoked.status, 0, revoked.stderr);
  t.match(revoked.stdout, /^revoked token id "cli-token-1" until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n1 live session affected\n$/, 'says what was revoked and that the live session was hit');

  const refused = await RawClient.open(server.url);
  refused.send(frames.connect(deviceToken, 3));
  const answer = await refused.next((f) => f.op === OP_CONNECTED || f.op === OP_ERROR);
  t.equal(errorName(answer), 'REVOKED', 'connecting with the revoked token is refused');
  await new Promise((resolve) => (refused.closeCode === undefined ? refused.socket.once('close', resolve) : resolve(undefined)));
  t.equal(refused.closeCode, 4001, 'and the socket closed with 4001');

  const byDevice = await run(['revoke', '--device', 'tablet', '--seconds', '3600', '--url', server.url], { env: { TAILGROVE_SECRET: server.secret } });
  t.equal(byDevice.status, 0, byDevice.stderr);
  t.match(byDevice.stdout, /^revoked device "tablet" until .*\n0 live sessions affected\n$/, 'a ws:// URL and the secret from the environment work too');
  const expiresAt = Date.parse(/until (\S+)/.exec(byDevice.stdout)![1]!) / 1000;
  t.ok(Math.abs(expiresAt - (Date.now() / 1000 + 3600)) < 60, '--seconds sets how long it lasts');

  const list = await run(['revoke', '--list', '--url', http, '--secret', server.secret]);
  t.equal(list.status, 0, list.stderr);
  const rows = list.stdout.trimEnd().split('\n');
  t.match(rows[0], /^kind +value +revoked at +expires at$/, 'a table with a heading');
  t.ok(rows.some((row) => /^token id +cli-token-1 +\d{4}-/.test(row)), 'lists the revoked token id');
  t.ok(rows.some((row) => /^device +tablet +\d{4}-/.test(row)), 'and the revoked device');

  const adminToken = mintToken({ sub: 'ops', device: 'console', grants: [{ site: '*', rights: 'a' }] }, server.secret);
  const withToken = await run(['revoke', '--user', 'mallory', '--url', http, '--token', adminToken]);
  t.equal(withToken.status, 0, withToken.stderr);
  t.match(withToken.stdout, /^revoked user "mallory"/, 'an admin token given with --token works');

  const notAdmin = await run(['revoke', '--user', 'dave', '--url', http, '--token', mintToken({ sub: 'u', device: 'd', grants: [{ site: '*', rights: 'a' }] }, 'another-secret-of-enough-length')]);
  const forbidden = await run(['revoke', '--user', 'dave', '--url', http, '--token', mintToken({ sub: 'u', device: 'd', grants: [{ site: 'acme', rights: 'rwa' }] }, server.secret)]);
  t.equal(notAdmin.status, 1, 'a token signed with another secret: exit 1');
  t.match(notAdmin.stderr, /\/admin\/revoke: the server answered 401 Unauthorized: token refused/, "with the server's error");
  t.equal(forbidden.status, 1, 'a token without the admin grant: exit 1');
  t.match(forbidden.stderr, /the server answered 403 Forbidden: this token has no admin grant/, "with the server's error");

  const port = await closedPort();
  for (const args of [['revoke', '--user', 'u', '--secret', SECRET], ['revoke', '--list', '--secret', SECRET], ['stats']]) {
    const unreachable = await run([...args, '--url', `http://127.0.0.1:${port}`]);
    t.equal(unreachable.status, 1, `${args.join(' ')} with no server: exit 1`);
    t.match(unreachable.stderr, new RegExp(`the server is not reachable at http://127\\.0\\.0\\.1:${port} \\(connect ECONNREFUSED`), 'says the server is not reachable at the URL');
  }

  const json = await run(['stats', '--json', '--url', http]);
  t.equal(json.status, 0, json.stderr);
  const snapshot = JSON.parse(json.stdout) as StatusSnapshot;
  t.same(Object.keys(snapshot).sort(), Object.keys(SNAPSHOT).sort(), '--json prints the snapshot with its fields');
  t.equal(snapshot.ready, true, 'a ready server');
  t.ok(snapshot.connections >= 1 && snapshot.sessions >= 1, 'counting the live session');
  t.same(Object.keys(snapshot.phaseMs).sort(), Object.keys(SNAPSHOT.phaseMs).sort(), 'with the phase times');
  t.same(Object.keys(snapshot.totals).sort(), Object.keys(SNAPSHOT.totals).sort(), 'and the totals');

  const table = await run(['stats', '--url', http]);
  t.equal(table.status, 0, table.stderr);
  t.match(table.stdout, new RegExp(`^tailgrove 127\\.0\\.0\\.1:${server.port} · up \\d+s · ready · 1 worker\\n  connections +\\d+ +appends/s +\\d+\\n`), 'stats prints the table');
  t.match(table.stdout, /\n {2}totals +appends \d+/);

  const watched = await run(['stats', '--watch', '--url', http], { until: /(tailgrove 127[^]*){2}/ });
  t.equal((watched.stdout.match(/^tailgrove 127/gm) ?? []).length >= 2, true, '--watch prints the table again each second');
  t.equal(watched.stderr, '', 'until Ctrl-C, quietly');
});

t.test('bench runs the load script with the given arguments', async (t) => {
  const result = await run(['bench', '--connections', '1', '--tailers', '0', '--logs', '1', '--size', '8', '--pipeline', '1', '--workers', '1', '--warmup', '0', '--seconds', '0.3']);
  t.equal(result.status, 0, result.stderr);
  t.match(result.stdout, /^tailgrove load: 1 writers over 1 logs, 0 tailers, 8 B entries/m, 'its table');
  const report = JSON.parse(result.stdout.trimEnd().split('\n').at(-1)!) as { ok: boolean; appendsPerSec: number };
  t.equal(report.ok, true, 'and its result line: a clean run');
  t.ok(report.appendsPerSec > 0, 'with appends');
});

t.test('bench says so when the load script is absent (an npm-installed copy has no bench/)', async (t) => {
  const installed = mkdtempSync(join(tmpdir(), 'tailgrove-installed-'));
  t.teardown(() => removeDataDir(installed));
  mkdirSync(join(installed, 'dist'));
  writeFileSync(join(installed, 'package.json'), '{ "type": "module" }');
  cpSync(join(repositoryRoot, 'bin'), join(installed, 'bin'), { recursive: true });
  cpSync(join(repositoryRoot, 'dist', 'cli.js'), join(installed, 'dist', 'cli.js'));
  cpSync(join(repositoryRoot, 'dist', 'msgpack-pure.js'), join(installed, 'dist', 'msgpack-pure.js'));
  cpSync(join(repositoryRoot, 'dist', 'cli'), join(installed, 'dist', 'cli'), { recursive: true });
  for (const args of [['bench'], ['bench', '--help']]) {
    const result = await run(args, { cwd: installed });
    t.equal(result.status, 2, `tailgrove ${args.join(' ')} exits 2`);
    t.match(result.stderr, /the load script .*bench\/load\.js is absent: it ships with the source repository, not with the npm package/, 'and says why');
  }
});
