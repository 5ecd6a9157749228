// Security against a real server: the auth matrix (each refused credential with its code),
// grants by site and log prefix, attest, refresh, revocation through the admin API (with
// `_revoke` pushes, persistence across restart), and each limit with its own answer.
import t from 'tap';
import { mintGrant, mintToken, type Grant } from '../src/auth/token.js';
import { OP_CONNECTED, OP_ERROR, OP_OK, OP_REVOKED } from '../src/net/protocol.js';
import { frame, frames } from '../src/testing/wire.js';
import { pack } from 'msgpackr';
import { RawClient, errorName, type ServerFrame } from './helpers/raw-client.js';
import { removeDataDir, startServer, temporaryDataDir, type ServerProcess } from './helpers/server.js';

const ROTATED_SECRET = 'the-rotated-secret-0123456789';
const dataDir = temporaryDataDir();
const serverArgs = ['--secrets', `rotated=${ROTATED_SECRET}`, '--tails-per-session', '2', '--leases-per-session', '4', '--unacked-writes-max', '16', '--violations-max', '3', '--handshake-timeout-ms', '500', '--clock-skew-seconds', '5'];
let server: ServerProcess;

t.before(async () => {
  server = await startServer({ dataDir, workers: 2, args: serverArgs });
});
t.teardown(async () => {
  await server.stop();
  removeDataDir(dataDir);
});

const now = (): number => Math.floor(Date.now() / 1000);

function token(device: string, grants: Grant[] = [{ site: 'acme', rights: 'rw' }], extra: Record<string, unknown> = {}, secret = server.secret, kid?: string): string {
  return mintToken({ sub: `user-${device}`, device, grants, ...extra }, secret, kid === undefined ? {} : { kid });
}

function isError(name: string) {
  return (frame: ServerFrame) => frame.op === OP_ERROR && errorName(frame) === name;
}

/** Open a socket, send connect with `credential`, and return the first answer. */
async function connectWith(credential: string): Promise<{ client: RawClient; answer: ServerFrame }> {
  const client = await RawClient.open(server.url);
  client.send(frames.connect(credential, 7));
  const answer = await client.next((f) => f.op === OP_CONNECTED || f.op === OP_ERROR);
  return { client, answer };
}

async function closed(client: RawClient): Promise<number | undefined> {
  if (client.closeCode !== undefined) return client.closeCode;
  await new Promise<void>((resolve) => client.socket.once('close', () => resolve()));
  return client.closeCode;
}

async function admin(path: string, body?: unknown, credential = token('admin-device', [{ site: '*', rights: 'a' }])): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(`http://127.0.0.1:${server.port}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

t.test('auth matrix: every bad credential is refused with its code and close 4001', async (t) => {
  const cases: [string, string, string][] = [
    ['no token', '', 'BAD_TOKEN'],
    ['malformed', 'not.a.jwt', 'BAD_TOKEN'],
    ['bad signature', token('d1', undefined, {}, 'some-other-secret-entirely'), 'BAD_TOKEN'],
    ['unknown kid', token('d1', undefined, {}, ROTATED_SECRET, 'retired'), 'BAD_TOKEN'],
    ['expired', token('d1', undefined, { exp: now() - 60 }), 'TOKEN_EXPIRED'],
    ['not yet valid (nbf)', token('d1', undefined, { nbf: now() + 600 }), 'TOKEN_NOT_YET_VALID'],
    ['issued in the future (iat)', token('d1', undefined, { iat: now() + 600 }), 'TOKEN_NOT_YET_VALID'],
    ['a grant token as a session token', mintGrant({ grants: [{ site: 'acme', rights: 'r' }] }, server.secret), 'BAD_TOKEN'],
    ['no device claim', mintToken({ sub: 'u', grants: [] } as never, server.secret), 'BAD_TOKEN'],
  ];
  for (const [name, credential, code] of cases) {
    const { client, answer } = await connectWith(credential);
    t.equal(errorName(answer), code, `${name}: ${code}`);
    t.equal(answer.a, 7, `${name}: the error carries the connect's rid`);
    t.equal(await closed(client), 4001, `${name}: closed with 4001`);
  }
  const skewed = await connectWith(token('d-skew', undefined, { nbf: now() + 2 }));
  t.equal(skewed.answer.op, OP_CONNECTED, 'nbf within the clock skew is accepted');
  const rotated = await connectWith(token('d-rotated', undefined, {}, ROTATED_SECRET, 'rotated'));
  t.equal(rotated.answer.op, OP_CONNECTED, 'a token signed with the rotated secret (kid) is accepted');
  await Promise.all([skewed.client.close(), rotated.client.close()]);
});

t.test('grants: sites, site prefixes, log prefixes and rights; handles are per session', async (t) => {
  const client = await RawClient.connected(server.url, token('d-grants', [
    { site: 'team-*', rights: 'rw' },
    { site: 'docs', rights: 'rw', logs: ['public/'] },
    { site: 'wiki', rights: 'r' },
  ]));
  t.ok(await client.lease('team-blue', 'x', 1), 'a site prefix grant covers team-blue');
  client.send(frames.lease('teams', 'x', 2));
  t.ok(await client.next(isError('FORBIDDEN')), 'but not "teams"');
  t.ok(await client.lease('docs', 'public/readme', 3), 'a log prefix grant covers public/readme');
  client.send(frames.lease('docs', 'private/keys', 4));
  const hidden = await client.next(isError('FORBIDDEN'));
  client.send(frames.lease('docs', 'private/never-created', 5));
  const missing = await client.next(isError('FORBIDDEN'));
  t.equal(hidden.body!.message, String(missing.body!.message).replace('never-created', 'keys'), 'an existing and a missing log look the same without a grant');

  const writer = await RawClient.connected(server.url, token('d-wiki-writer', [{ site: 'wiki', rights: 'rw' }]));
  const wikiPage = await writer.lease('wiki', 'page', 1, { newWriter: true });
  writer.send(frames.write(wikiPage.shard, wikiPage.handle, 1, Buffer.from('hello')));
  await writer.outcome(wikiPage.handle, 1);
  const readOnly = await client.lease('wiki', 'page', 6);
  t.same((await client.read(readOnly.shard, readOnly.handle, 7, 0, 10)).map(String), ['hello'], 'a read grant reads');
  client.send(frames.write(readOnly.shard, readOnly.handle, 1, Buffer.from('nope')));
  t.ok(await client.next(isError('FORBIDDEN')), 'but cannot write');
  writer.send(frames.read(readOnly.shard, readOnly.handle, 8, 0, 10));
  t.ok(await writer.next(isError('UNKNOWN_HANDLE')), "another session's handle is unknown");

  const writeOnly = await RawClient.connected(server.url, token('d-write-only', [{ site: 'wiki', rights: 'w' }]));
  const blind = await writeOnly.lease('wiki', 'page', 1, { newWriter: true });
  writeOnly.send(frames.read(blind.shard, blind.handle, 2, 0, 10));
  t.ok(await writeOnly.next(isError('FORBIDDEN')), 'a write-only grant cannot read');
  writeOnly.send(frames.tail(blind.shard, blind.handle, 0, 1));
  t.ok(await writeOnly.next(isError('FORBIDDEN')), 'nor tail');
  await Promise.all([client.close(), writer.close(), writeOnly.close()]);
});

t.test('attest adds a grant to the session; bound grants check the device', async (t) => {
  const client = await RawClient.connected(server.url, token('d-attest', [{ site: 'acme', rights: 'rw' }]));
  client.send(frames.lease('vault', 'a', 1));
  t.ok(await client.next(isError('FORBIDDEN')), 'no grant yet');
  client.send(frame(0x09, 8, 0, { a: 2 }, pack({ token: mintGrant({ grants: [{ site: 'vault', rights: 'rw' }], device: 'd-attest' }, server.secret) })));
  const ok = await client.next((f) => (f.op === OP_OK || f.op === OP_ERROR) && f.a === 2);
  t.equal(ok.op, OP_OK, 'the grant is attested');
  t.ok(await client.lease('vault', 'a', 3, { newWriter: true }), 'and the site opens');
  client.send(frame(0x09, 8, 0, { a: 4 }, pack({ token: mintGrant({ grants: [{ site: 'other', rights: 'rw' }], device: 'someone-else' }, server.secret) })));
  t.ok(await client.next(isError('FORBIDDEN')), 'a grant bound to another device is refused');
  client.send(frame(0x09, 8, 0, { a: 5 }, pack({ token: token('d-attest') })));
  t.ok(await client.next(isError('BAD_TOKEN')), 'a session token is not a grant');
  await client.close();
});

t.test('refresh keeps leases and tails; it must keep the user and device', async (t) => {
  const client = await RawClient.connected(server.url, token('d-refresh', undefined, { exp: now() + 3 }));
  const log = await client.lease('acme', 'refreshed', 1, { newWriter: true });
  client.send(frames.tail(log.shard, log.handle, 0, 9));
  await client.next((f) => f.b === 9);
  client.send(frame(0x0a, 8, 0, { a: 2 }, pack({ token: token('d-refresh', undefined, { exp: now() + 600 }) })));
  const ok = await client.next((f) => (f.op === OP_OK || f.op === OP_ERROR) && f.a === 2);
  t.equal(ok.op, OP_OK, 'refreshed');
  t.ok((ok.body!.expiresAt as number) > now() + 500, 'with the new expiry');
  await new Promise((resolve) => setTimeout(resolve, 4000));
  t.equal(client.closeCode, undefined, 'still open after the first token expired');
  client.send(frames.write(log.shard, log.handle, 1, Buffer.from('after refresh')));
  const pushed = await client.next((f) => f.b === 9 && f.c === 1);
  t.same(pushed.entries!.map(String), ['after refresh'], 'the lease and the tail lived through the refresh');
  client.send(frame(0x0a, 8, 0, { a: 3 }, pack({ token: token('somebody-else') })));
  t.ok(await client.next(isError('FORBIDDEN')), 'a refresh for another device is refused');
  await client.close();
});

t.test('an expired token closes its socket with 4003', async (t) => {
  const client = await RawClient.connected(server.url, token('d-expiring', undefined, { exp: now() + 1 }));
  t.equal(await closed(client), 4003);
});

t.test('revocation: admin API, _revoke per lease, refused until refresh, kept across restart', async (t) => {
  t.equal((await admin('/admin/revoke', { device: 'x' }, 'not-a-token')).status, 401, 'no admin token: 401');
  t.equal((await admin('/admin/revoke', { device: 'x' }, token('d-not-admin'))).status, 403, 'a token without the admin right: 403');
  t.equal((await admin('/admin/revoke', { device: '' })).status, 400, 'a bad request: 400');

  const victim = await RawClient.connected(server.url, token('d-victim'));
  const first = await victim.lease('acme', 'revoke-1', 1, { newWriter: true });
  const second = await victim.lease('acme', 'revoke-2', 2, { newWriter: true });
  const bystander = await RawClient.connected(server.url, token('d-bystander'));
  const untouched = await bystander.lease('acme', 'revoke-1', 1, { newWriter: true });
  const revoked = await admin('/admin/revoke', { device: 'd-victim' });
  t.equal(revoked.status, 200);
  t.equal(revoked.json.sessions, 1, 'one live session was hit');
  const pushes = [await victim.next((f) => f.op === OP_REVOKED), await victim.next((f) => f.op === OP_REVOKED)];
  t.same(pushes.map((f) => f.a).sort(), [first.handle, second.handle].sort(), '_revoke for each lease');
  victim.send(frames.read(first.shard, first.handle, 3, 0, 1));
  t.ok(await victim.next(isError('REVOKED')), 'ops are refused while revoked');
  bystander.send(frames.write(untouched.shard, untouched.handle, 1, Buffer.from('still here')));
  t.equal((await bystander.outcome(untouched.handle, 1)).position, 0, "another device's session is untouched");

  const reused = await connectWith(token('d-victim'));
  t.equal(errorName(reused.answer), 'REVOKED', 'a token issued before the revocation is refused');
  await new Promise((resolve) => setTimeout(resolve, 1100));
  victim.send(frame(0x0a, 8, 0, { a: 4 }, pack({ token: token('d-victim') })));
  t.equal((await victim.next((f) => (f.op === OP_OK || f.op === OP_ERROR) && f.a === 4)).op, OP_OK, 'a token issued after it refreshes the session');
  t.equal((await victim.lease('acme', 'revoke-1', 5)).body.site, 'acme', 'which can lease again');

  const byJti = await admin('/admin/revoke', { jti: 'token-17' });
  t.equal(byJti.status, 200);
  const listed = await admin('/admin/revocations');
  t.equal((listed.json.revocations as unknown[]).length, 2, 'the list holds both revocations');
  await Promise.all([victim.close(), bystander.close()]);
  t.equal(await server.stop(), 0);
  server = await startServer({ dataDir, workers: 2, args: serverArgs });
  const afterRestart = await connectWith(mintToken({ sub: 'u', device: 'd-jti', grants: [] }, server.secret, { jti: 'token-17' }));
  t.equal(errorName(afterRestart.answer), 'REVOKED', 'a revoked token id is still refused after a restart');
});

t.test('limits: each with its own code', async (t) => {
  const client = await RawClient.connected(server.url, token('d-limits'));
  const leases = [];
  for (let i = 0; i < 4; i++) leases.push(await client.lease('acme', `limit-${i}`, i + 1, { newWriter: true }));
  client.send(frames.lease('acme', 'limit-5', 9));
  t.equal((await client.next(isError('LEASE_LIMIT'))).body!.max, 4, 'leases per session');
  client.send(frames.tail(leases[0]!.shard, leases[0]!.handle, 0, 1), frames.tail(leases[1]!.shard, leases[1]!.handle, 0, 2), frames.tail(leases[2]!.shard, leases[2]!.handle, 0, 3));
  const refusedTail = await client.next(isError('TAIL_LIMIT'));
  t.ok([leases[0]!.handle, leases[1]!.handle, leases[2]!.handle].includes(refusedTail.b), 'tails per session: one of the three is refused (workers count together)');
  t.equal(refusedTail.body!.max, 2);
  const log = leases[3]!;
  client.send(...Array.from({ length: 17 }, (_, i) => frames.write(log.shard, log.handle, i + 1, Buffer.from(`w${i}`))));
  const unacked = await client.next(isError('UNACKED_LIMIT'));
  t.same([unacked.b, unacked.c], [log.handle, 17], 'unacknowledged writes per writer, naming the write');
  for (let lsn = 1; lsn <= 16; lsn++) await client.outcome(log.handle, lsn);
  client.send(frames.ack(log.shard, log.handle, 16), frames.write(log.shard, log.handle, 17, Buffer.from('w16')));
  t.equal((await client.outcome(log.handle, 17)).position, 16, 'after an ack the same lsn is accepted');

  const noisy = await RawClient.connected(server.url, token('d-noisy'));
  for (let i = 0; i < 4; i++) noisy.send(frame(0x42, 8, 0, {}));
  t.equal(await closed(noisy), 4004, 'repeated malformed frames close the socket with 4004');
  const silent = await RawClient.open(server.url);
  t.equal(await closed(silent), 4002, 'no connect within the handshake timeout: 4002');
  await client.close();
});

t.test('rate and connection limits', async (t) => {
  const limitedDir = temporaryDataDir();
  const limited = await startServer({ dataDir: limitedDir, workers: 1, args: ['--frames-per-second', '100', '--frames-burst', '10', '--connections-per-address-max', '2'] });
  const credential = mintToken({ sub: 'u', device: 'd-rate', grants: [{ site: 'acme', rights: 'rw' }] }, limited.secret);
  const client = await RawClient.connected(limited.url, credential);
  const log = await client.lease('acme', 'rate', 1, { newWriter: true });
  client.send(...Array.from({ length: 20 }, (_, i) => frames.write(log.shard, log.handle, i + 1, Buffer.from('x'))));
  client.send(frames.write(log.shard, log.handle, 21, Buffer.from('x')));
  const limitedAnswer = await client.next(isError('RATE_LIMITED'));
  t.ok(limitedAnswer, 'a session over its frame rate gets RATE_LIMITED');
  await new Promise((resolve) => setTimeout(resolve, 300));
  client.send(frames.write(log.shard, log.handle, 21, Buffer.from('x')));
  t.equal((await client.outcome(log.handle, 21)).op !== OP_ERROR, true, 'and is served again once the bucket refills');
  const second = await RawClient.open(limited.url);
  const third = await RawClient.open(limited.url).then(
    () => 'opened',
    (error: Error) => error.message,
  );
  t.match(third, /503/, 'a third connection from the same address is refused at the upgrade (503)');
  await Promise.all([client.close(), second.close()]);
  await limited.stop();
  removeDataDir(limitedDir);
});

