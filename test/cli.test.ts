// The `tailgrove` command as a user runs it: a child process per call.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTokenVerifier } from '../src/auth/token.js';
import { repositoryRoot } from './helpers/server.js';

const SECRET = 'a-secret-of-enough-length';

function run(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, ['bin/tailgrove.js', ...args], { cwd: repositoryRoot, encoding: 'utf8', env: { ...process.env, TAILGROVE_SECRET: '' } });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

t.test('token mints a token the server accepts, with the grants asked for', async (t) => {
  const result = run('token', '--user', 'alice', '--device', 'laptop', '--grant', 'acme:rw', '--grant', 'docs:r', '--secret', SECRET);
  t.equal(result.status, 0, result.stderr);
  const claims = createTokenVerifier(SECRET).session(result.stdout.trim());
  t.same([claims.sub, claims.device, claims.grants], ['alice', 'laptop', [{ site: 'acme', rights: 'rw' }, { site: 'docs', rights: 'r' }]]);
  t.ok(claims.exp! > Date.now() / 1000 + 86000, 'valid for a day by default');
});

t.test('token takes a token id and a key id', async (t) => {
  const result = run('token', '--user', 'u', '--device', 'd', '--grant', '*:a', '--secret', SECRET, '--jti', 'token-1', '--kid', 'k2');
  t.equal(result.status, 0, result.stderr);
  const [header, payload] = result.stdout.trim().split('.').slice(0, 2).map((part) => JSON.parse(Buffer.from(part!, 'base64url').toString()));
  t.equal(header.kid, 'k2', 'the key id is in the header');
  t.equal(payload.jti, 'token-1', 'the token id is a claim');
  t.same(payload.grants, [{ site: '*', rights: 'a' }], 'an admin grant');
});

t.test('token reads the development secret from the data directory', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tailgrove-cli-'));
  writeFileSync(join(dataDir, 'secret'), SECRET);
  const result = run('token', '--user', 'u', '--device', 'd', '--grant', '*:r', '--data', dataDir);
  t.equal(result.status, 0, result.stderr);
  t.equal(createTokenVerifier(SECRET).session(result.stdout.trim()).grants[0]!.site, '*');
});

t.test('bad invocations exit 2 with a reason and the usage', async (t) => {
  const cases: [string[], RegExp][] = [
    [['token', '--device', 'd', '--grant', 'a:r', '--secret', SECRET], /--user and --device are required/],
    [['token', '--user', 'u', '--device', 'd', '--secret', SECRET], /at least one --grant is required/],
    [['token', '--user', 'u', '--device', 'd', '--grant', 'acme:rx', '--secret', SECRET], /grant "acme:rx" is not site:rights/],
    [['token', '--user', 'u', '--device', 'd', '--grant', 'acme', '--secret', SECRET], /grant "acme" is not site:rights/],
    [['token', '--user', 'u', '--device', 'd', '--grant', 'a:r', '--secret', 'short'], /at least 16 characters/],
    [['token', '--user', 'u', '--device', 'd', '--grant', 'a:r', '--data', '/nonexistent'], /no secret/],
    [['frobnicate'], /unknown command "frobnicate"/],
    [[], /a command is required/],
    [['serve', '--port', 'eighty'], /config: port must be an integer/],
  ];
  for (const [args, reason] of cases) {
    const result = run(...args);
    t.equal(result.status, 2, `tailgrove ${args.join(' ')} exits 2`);
    t.match(result.stderr, reason, `and says why`);
    t.match(result.stderr, /Usage: tailgrove/, 'with the usage');
  }
});

t.test('help is on stdout and exits 0', async (t) => {
  for (const args of [['--help'], ['token', '--help'], ['serve', '--help']]) {
    const result = run(...args);
    t.equal(result.status, 0, `tailgrove ${args.join(' ')}`);
    t.match(result.stdout, /Usage: tailgrove/);
  }
});
