// The Web Push sink against a real push service on 127.0.0.1: an HTTPS server with a
// self-signed certificate (made with the openssl CLI for this run, trusted through the
// sink's caFile option) that checks the headers and the VAPID JWT (ES256, verified with
// node:crypto against the sink's public key) and decrypts each message with the browser
// side's keys (http_ece), like a browser's push service and service worker would.
// The sink runs its sends on a piscina thread that loads the compiled dist/notify/push-task.js,
// so this test imports the sink from dist/ as well: run `npm run build` first (`npm test` does).
import { createECDH, createPublicKey, verify } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { WebPushSink } from '../dist/notify/web-push-sink.js';
import type { Notification } from '../src/notify/types.js';
import { browserSubscription, decryptPush, startPushService, type Browser } from './helpers/push-service.js';

const SUBJECT = 'mailto:ops@example.com';
const TTL_SECONDS = 60;
const logger = pino({ level: 'silent' });

// The push service answers by the endpoint's id: `gone` 410, `missing` 404, `broken` 500,
// anything else 201 Created (as real push services do).
const pushService = await startPushService({ gone: 410, missing: 404, broken: 500 });
t.teardown(() => pushService.close());
const { origin, caFile } = pushService;

function browser(id: string, pushOrigin = origin): Browser {
  return browserSubscription(pushOrigin, id);
}

/** The last request the push service received for `id`. */
function lastReceived(id: string): { headers: Record<string, string | string[] | undefined>; body: Buffer } | undefined {
  return pushService.received.get(id)?.at(-1);
}

function notification(changes: Notification['changes']): Notification {
  return { type: 'tailgrove.notification', user: 'alice', changes, at: Date.now() };
}

/** Check `authorization: vapid t=<JWT>, k=<key>`: the sink's key, an ES256 JWT for the push service's origin signed by it. */
function checkVapid(t: Test, authorization: string | undefined, publicKey: string): void {
  const match = /^vapid t=([\w-]+)\.([\w-]+)\.([\w-]+), k=([\w-]+)$/.exec(authorization ?? '');
  if (match === null) {
    t.fail(`authorization header is not a VAPID one: ${authorization}`);
    return;
  }
  const [, header, claims, signature, key] = match as unknown as [string, string, string, string, string];
  t.equal(key, publicKey, 'k is the sink public key');
  t.match(JSON.parse(Buffer.from(header, 'base64url').toString()), { typ: 'JWT', alg: 'ES256' });
  const { aud, sub, exp } = JSON.parse(Buffer.from(claims, 'base64url').toString()) as { aud: string; sub: string; exp: number };
  t.equal(aud, origin, 'aud is the push service origin');
  t.equal(sub, SUBJECT);
  const now = Date.now() / 1000;
  t.ok(exp > now && exp <= now + 24 * 3600, 'expires within 24 hours');
  const point = Buffer.from(key, 'base64url');
  const verifier = createPublicKey({
    key: { kty: 'EC', crv: 'P-256', x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33, 65).toString('base64url') },
    format: 'jwk',
  });
  const signed = verify('sha256', Buffer.from(`${header}.${claims}`), { key: verifier, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature, 'base64url'));
  t.ok(signed, 'JWT signature verifies with the VAPID public key');
}

/** What the push service received for `id`, decrypted with the browser's keys. */
function decrypted(id: string, browser: Browser): unknown {
  const message = lastReceived(id);
  if (message === undefined) throw new Error(`the push service received nothing for ${id}`);
  return decryptPush(message, browser);
}

async function openSink(t: Test, options: { dataDir?: string; caFile?: string } = { caFile }): Promise<WebPushSink> {
  const sink = await WebPushSink.open({ dataDir: options.dataDir ?? t.testdir(), subject: SUBJECT, ttlSeconds: TTL_SECONDS, logger, caFile: options.caFile });
  t.teardown(() => sink.close());
  return sink;
}

t.test('delivers an encrypted notification with a VAPID signature to each subscription', async (t) => {
  const sink = await openSink(t);
  t.match(sink.publicKey, /^[\w-]{87}$/, 'public key: 65 bytes of base64url');
  const browsers = [browser('phone'), browser('laptop')];
  const sent = notification([{ site: 'team', log: 'chat', length: 12 }, { site: 'team', log: 'todo', length: 3 }]);
  const outcomes = await sink.send(browsers.map((b) => b.subscription), sent);
  t.same(outcomes, [
    { endpoint: `${origin}/push/phone`, ok: true, status: 201, gone: false },
    { endpoint: `${origin}/push/laptop`, ok: true, status: 201, gone: false },
  ]);
  for (const [index, id] of ['phone', 'laptop'].entries()) {
    const { headers } = lastReceived(id)!;
    t.equal(headers['content-encoding'], 'aes128gcm');
    t.equal(headers.ttl, String(TTL_SECONDS));
    t.equal(headers.urgency, 'normal');
    checkVapid(t, headers.authorization as string | undefined, sink.publicKey);
    t.same(decrypted(id, browsers[index]!), sent, `${id} decrypts to the notification`);
  }
});

t.test('one outcome per subscription, in order: gone, failed and unreachable endpoints do not throw', async (t) => {
  const sink = await openSink(t);
  const closed = createTcpServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const closedPort = (closed.address() as AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const ids = ['fine', 'gone', 'missing', 'broken'];
  const subscriptions = [...ids.map((id) => browser(id).subscription), browser('nobody', `https://127.0.0.1:${closedPort}`).subscription];
  const outcomes = await sink.send(subscriptions, notification([{ site: 's', log: 'l', length: 1 }]));
  t.match(outcomes, [
    { endpoint: `${origin}/push/fine`, ok: true, status: 201, gone: false },
    { endpoint: `${origin}/push/gone`, ok: false, status: 410, gone: true },
    { endpoint: `${origin}/push/missing`, ok: false, status: 404, gone: true },
    { endpoint: `${origin}/push/broken`, ok: false, status: 500, gone: false },
    { endpoint: `https://127.0.0.1:${closedPort}/push/nobody`, ok: false, status: 0, gone: false, error: /ECONNREFUSED/ },
  ]);
  t.equal(outcomes.length, 5);
});

t.test('without caFile the self-signed push service is not trusted', async (t) => {
  const sink = await openSink(t, {});
  const [outcome] = await sink.send([browser('untrusted').subscription], notification([]));
  t.match(outcome, { ok: false, status: 0, gone: false, error: /self[- ]signed/i });
  t.notOk(pushService.received.has('untrusted'), 'nothing was delivered');
});

t.test('VAPID keys are generated once into <dataDir>/vapid.json (mode 0600) and loaded later', async (t) => {
  const dataDir = t.testdir();
  const file = join(dataDir, 'vapid.json');
  const first = await WebPushSink.open({ dataDir, subject: SUBJECT, ttlSeconds: TTL_SECONDS, logger, caFile });
  await first.close();
  t.equal(statSync(file).mode & 0o777, 0o600);
  const stored = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  t.match(stored, { publicKey: first.publicKey, privateKey: /^[\w-]{43}$/, createdAt: String });
  const second = await openSink(t, { dataDir, caFile });
  t.equal(second.publicKey, first.publicKey, 'the same key on the next open');
  const b = browser('again');
  t.match(await second.send([b.subscription], notification([])), [{ ok: true }]);
  checkVapid(t, lastReceived('again')!.headers.authorization as string | undefined, first.publicKey);

  writeFileSync(file, '{"publicKey": "trunc');
  await t.rejects(WebPushSink.open({ dataDir, subject: SUBJECT, ttlSeconds: TTL_SECONDS, logger }), { message: new RegExp(`${file}.*corrupt`) });
  t.equal(readFileSync(file, 'utf8'), '{"publicKey": "trunc', 'a corrupt file is left alone, not regenerated');
  writeFileSync(file, JSON.stringify({ ...stored, publicKey: createECDH('prime256v1').generateKeys('base64url') }));
  await t.rejects(WebPushSink.open({ dataDir, subject: SUBJECT, ttlSeconds: TTL_SECONDS, logger }), { message: /does not belong to privateKey/ });
});

t.test('a notification too big for a push message keeps the first changes that fit and counts the rest', async (t) => {
  const sink = await openSink(t);
  const changes = Array.from({ length: 300 }, (_, i) => ({ site: `site-${i % 7}`, log: `a-rather-long-log-name-${i}`, length: i * 1000 }));
  const sent = notification(changes);
  const b = browser('big');
  t.match(await sink.send([b.subscription], sent), [{ ok: true, status: 201 }]);
  t.ok(lastReceived('big')!.body.length <= 4096, 'the encrypted body is within the 4 KiB Web Push limit');
  const body = decrypted('big', b) as Notification & { truncated: number };
  t.ok(body.changes.length > 10 && body.changes.length < changes.length, `kept ${body.changes.length} changes`);
  t.same(body, { ...sent, changes: changes.slice(0, body.changes.length), truncated: changes.length - body.changes.length });
  const oneMore = JSON.stringify({ ...sent, changes: changes.slice(0, body.changes.length + 1), truncated: changes.length - body.changes.length - 1 });
  t.ok(Buffer.byteLength(oneMore) > 3900, 'one more change would not have fit');
});
