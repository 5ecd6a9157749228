// Offline notifications end to end: a real server, a real local push service (HTTPS, the
// test decrypts each message with the subscription's keys) and a real webhook receiver (the
// test checks the HMAC signature). Members of a site with no device connected hear of its
// changes, coalesced; muted members, online members and logs outside a member's read grant
// are left out; a webhook receiver that is down gets the notification once it is up; a
// subscription the push service calls gone is forgotten; leave ends it; the hourly cap holds.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { mintToken, type Grant } from '../src/auth/token.js';
import { connect, type Client } from '../src/client/index.js';
import { verifySignature } from '../src/notify/signature.js';
import type { Notification } from '../src/notify/types.js';
import { browserSubscription, decryptPush, startPushService } from './helpers/push-service.js';
import { removeDataDir, startServer, temporaryDataDir, type ServerProcess } from './helpers/server.js';

const WEBHOOK_SECRET = 'webhook-secret-for-the-test';
const INTERVAL_MS = 200;

interface Hook {
  user: string;
  notification: Notification;
  delivery: string;
}

/** A webhook receiver on `port` (0: any) that checks every signature. */
async function startReceiver(hooks: Hook[], badSignatures: string[], port = 0): Promise<Server> {
  const server = createServer((request: IncomingMessage, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks);
      if (!verifySignature(WEBHOOK_SECRET, body, request.headers['tailgrove-signature'] as string | undefined, 300)) badSignatures.push(body.toString());
      const notification = JSON.parse(body.toString()) as Notification;
      hooks.push({ user: notification.user, notification, delivery: request.headers['tailgrove-delivery'] as string });
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return server;
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

async function until(what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** The latest length per log over all the changes `user` was told of. */
function lengthsFor(hooks: Hook[], user: string): Record<string, number> {
  const lengths: Record<string, number> = {};
  for (const hook of hooks.filter((h) => h.user === user)) for (const change of hook.notification.changes) lengths[`${change.site}/${change.log}`] = change.length;
  return lengths;
}

t.test('offline members are notified through Web Push and the webhook', async (t) => {
  const pushService = await startPushService({ gone: 410 });
  const hooks: Hook[] = [];
  const badSignatures: string[] = [];
  let receiver = await startReceiver(hooks, badSignatures);
  const webhookPort = (receiver.address() as AddressInfo).port;
  const dataDir = temporaryDataDir();
  const server: ServerProcess = await startServer({
    dataDir,
    args: [
      '--notify-interval-ms', String(INTERVAL_MS), '--notify-per-user-per-hour', '6',
      '--push-ca-file', pushService.caFile,
      '--webhook-url', `http://127.0.0.1:${webhookPort}/hook`, '--webhook-secret', WEBHOOK_SECRET,
    ],
  });
  const clients: Client[] = [];
  t.teardown(async () => {
    for (const client of clients) await client.close().catch(() => undefined);
    await server.stop();
    removeDataDir(dataDir);
    pushService.close();
    await closeServer(receiver);
  });
  const open = async (user: string, grants: Grant[] = [{ site: 'team', rights: 'rw' }]): Promise<Client> => {
    const client = await connect(server.url, { token: mintToken({ sub: user, device: `${user}-phone`, grants }, server.secret, { expiresInSeconds: 600 }) });
    clients.push(client);
    return client;
  };

  // bob: a member with a push subscription (and one the push service says is gone), offline.
  const bob = await open('bob');
  t.match(bob.session?.pushPublicKey, /^[\w-]{87}$/, '_connected carries the VAPID public key');
  await bob.join('team');
  const bobPhone = browserSubscription(pushService.origin, 'bob');
  await bob.subscribePush(bobPhone.subscription);
  await bob.subscribePush(browserSubscription(pushService.origin, 'gone').subscription);
  await t.rejects(bob.subscribePush({ endpoint: 'http://insecure/push', keys: { p256dh: 'x', auth: 'y' } }), { code: 'BAD_REQUEST' }, 'a subscription that is no https endpoint with P-256 keys is refused');
  await bob.close();
  // carol: a member who muted the site. erin: may read only logs public-*. dave: stays online.
  const carol = await open('carol');
  await carol.join('team');
  await carol.mute('team', 3600);
  await carol.close();
  const erin = await open('erin', [{ site: 'team', rights: 'r', logs: ['public-'] }]);
  await erin.join('team');
  await erin.close();
  const dave = await open('dave');
  await dave.join('team');
  const outsider = await open('outsider', [{ site: 'other', rights: 'r' }]);
  await t.rejects(outsider.join('team'), { code: 'FORBIDDEN' }, 'joining a site without a read grant on it is FORBIDDEN');

  // alice writes while they are away.
  const alice = await open('alice');
  const chat = await alice.lease('team', 'chat');
  const news = await alice.lease('team', 'public-news');
  for (let i = 0; i < 3; i++) await chat.append(new TextEncoder().encode(`message ${i}`));
  await news.append(new TextEncoder().encode('headline'));

  await until('bob and erin to be notified by webhook', () => lengthsFor(hooks, 'bob')['team/public-news'] === 1 && lengthsFor(hooks, 'bob')['team/chat'] === 3 && lengthsFor(hooks, 'erin')['team/public-news'] === 1);
  t.same(lengthsFor(hooks, 'bob'), { 'team/chat': 3, 'team/public-news': 1 }, 'bob hears of both logs with their new lengths');
  t.same(lengthsFor(hooks, 'erin'), { 'team/public-news': 1 }, 'erin hears only of the log her grant lets her read');
  t.ok(hooks.filter((h) => h.user === 'bob').length <= 2, 'the changes were coalesced (at most one notification per interval they spanned)');
  t.same(badSignatures, [], 'every webhook request carries a valid HMAC signature');
  t.ok(hooks.every((h) => /^[0-9a-f-]{36}$/.test(h.delivery)), 'each carries a delivery id');

  await until('the push message for bob', () => (pushService.received.get('bob')?.length ?? 0) > 0);
  const pushed = decryptPush(pushService.received.get('bob')!.at(-1)!, bobPhone) as Notification;
  t.equal(pushed.type, 'tailgrove.notification', 'the decrypted push message is a notification');
  t.equal(pushed.user, 'bob', 'for bob');
  t.ok(pushed.changes.every((change) => change.site === 'team'), 'about the site he joined');
  await until('the gone subscription to be tried', () => (pushService.received.get('gone')?.length ?? 0) >= 1);
  t.pass('the gone subscription was tried too (the push service answered 410)');

  // Nothing for the muted, the online, or the outsider.
  await new Promise((resolve) => setTimeout(resolve, INTERVAL_MS * 3));
  const users = new Set(hooks.map((h) => h.user));
  t.notOk(users.has('carol'), 'a muted member gets nothing');
  t.notOk(users.has('dave'), 'an online member gets nothing');
  t.notOk(users.has('alice') || users.has('outsider'), 'non-members get nothing');

  // The webhook receiver goes down; a change happens; it comes back: the retry delivers.
  await closeServer(receiver);
  const before = hooks.length;
  await chat.append(new TextEncoder().encode('while the receiver was down'));
  await new Promise((resolve) => setTimeout(resolve, INTERVAL_MS * 3));
  t.equal(hooks.length, before, 'nothing arrives while the receiver is down');
  receiver = await startReceiver(hooks, badSignatures, webhookPort);
  await until('the retried delivery', () => lengthsFor(hooks, 'bob')['team/chat'] === 4);
  t.pass('a receiver that was down gets the notification when it is up again');

  // The gone subscription was forgotten: later notifications do not try it again.
  const goneTries = pushService.received.get('gone')!.length;
  const bobPushes = pushService.received.get('bob')!.length;
  await chat.append(new TextEncoder().encode('later'));
  await until('the next push for bob', () => pushService.received.get('bob')!.length > bobPushes);
  t.equal(pushService.received.get('gone')!.length, goneTries, 'a subscription the push service called gone is not used again');

  // bob comes back online: nothing more for him; then he leaves the site, goes offline: still nothing.
  const bobAgain = await open('bob');
  const hooksForBob = hooks.filter((h) => h.user === 'bob').length;
  await chat.append(new TextEncoder().encode('bob is here'));
  await new Promise((resolve) => setTimeout(resolve, INTERVAL_MS * 3));
  t.equal(hooks.filter((h) => h.user === 'bob').length, hooksForBob, 'nothing while one of his devices is connected');
  await bobAgain.leave('team');
  await bobAgain.close();
  await chat.append(new TextEncoder().encode('after bob left'));
  await new Promise((resolve) => setTimeout(resolve, INTERVAL_MS * 3));
  t.equal(hooks.filter((h) => h.user === 'bob').length, hooksForBob, 'after leave, nothing');

  // The hourly cap: erin (public-news only) gets at most 6 per hour.
  for (let i = 0; i < 10; i++) {
    await news.append(new TextEncoder().encode(`news ${i}`));
    await new Promise((resolve) => setTimeout(resolve, INTERVAL_MS + 50));
  }
  await new Promise((resolve) => setTimeout(resolve, INTERVAL_MS * 2));
  const erinCount = hooks.filter((h) => h.user === 'erin').length;
  t.equal(erinCount, 6, `erin got exactly the cap of 6 notifications this hour (of 11 intervals with changes)`);
  const metrics = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
  t.match(metrics, /tailgrove_notifications_rate_limited_total [1-9]/, 'the dropped ones are counted');
  t.match(metrics, /tailgrove_push_gone_total 1\b/, 'the gone subscription is counted once');
  t.match(metrics, /tailgrove_webhook_retries_total [1-9]/, 'the webhook retries are counted');
});
