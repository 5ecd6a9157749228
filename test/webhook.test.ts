// The webhook sink against real local receivers (node:http on 127.0.0.1): the signed request
// and its headers, retries (receiver down then up, 5xx, 429 with retry-after, timeouts), no
// retry on 400, the bounded queue dropping its oldest, and close flushing or abandoning.
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino, { type Logger } from 'pino';
import t from 'tap';
import { signPayload, verifySignature } from '../src/notify/signature.js';
import type { Notification } from '../src/notify/types.js';
import { WebhookSink } from '../src/notify/webhook-sink.js';

const SECRET = 'webhook-test-secret';
const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface Received {
  at: number;
  method: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** What the receiver answers to its `index`-th request; 'hang' holds the response until `release`. */
type Answer = (index: number) => { status: number; headers?: Record<string, string> } | 'hang';

interface Receiver {
  port: number;
  url: string;
  requests: Received[];
  /** Answer the held requests, and every later one, 200. */
  release(): void;
  close(): Promise<void>;
}

async function startReceiver(answer: Answer, port = 0): Promise<Receiver> {
  const requests: Received[] = [];
  const held: ServerResponse[] = [];
  let released = false;
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const index = requests.push({ at: Date.now(), method: request.method ?? '', headers: request.headers, body: Buffer.concat(chunks).toString() }) - 1;
      const reply = answer(index);
      if (reply === 'hang' && !released) held.push(response);
      else if (reply === 'hang') response.end();
      else response.writeHead(reply.status, reply.headers).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const bound = (server.address() as AddressInfo).port;
  return {
    port: bound,
    url: `http://127.0.0.1:${bound}/hook`,
    requests,
    release() {
      released = true;
      for (const response of held.splice(0)) response.end();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A port nothing listens on (it was just bound, then closed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function capturedLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}

function notification(user: string, length = 1): Notification {
  return { type: 'tailgrove.notification', user, changes: [{ site: 'site-a', log: 'log-1', length }], at: Date.now() };
}

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

t.test('posts the notification as signed JSON with its headers', async (t) => {
  const receiver = await startReceiver(() => ({ status: 204 }));
  const { logger } = capturedLogger();
  const sink = new WebhookSink({ url: receiver.url, secret: SECRET, logger });
  t.teardown(async () => {
    await sink.close(0);
    await receiver.close();
  });

  const sent = notification('alice', 42);
  sink.enqueue(sent);
  await until('the delivery', () => sink.stats().delivered === 1);
  t.equal(receiver.requests.length, 1, 'one request');
  const [request] = receiver.requests;
  t.equal(request.method, 'POST');
  t.equal(request.headers['content-type'], 'application/json');
  t.equal(request.headers['user-agent'], `tailgrove/${VERSION}`);
  t.match(request.headers['tailgrove-delivery'], UUID, 'tailgrove-delivery is a uuid');
  t.same(JSON.parse(request.body), sent, 'the body is the notification');

  const signature = request.headers['tailgrove-signature'] as string;
  t.ok(verifySignature(SECRET, request.body, signature, 300), 'verifySignature accepts the request');
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(signature);
  t.ok(match, 'the header is t=<seconds>,v1=<hex>');
  const timestamp = Number(match?.[1]);
  t.ok(Math.abs(timestamp - Date.now() / 1000) < 5, 't is the current unix time in seconds');
  t.equal(match?.[2], createHmac('sha256', SECRET).update(`${timestamp}.${request.body}`).digest('hex'), 'v1 is the HMAC-SHA256 of "<t>.<body>"');
  t.same(sink.stats(), { queued: 0, inFlight: 0, delivered: 1, failed: 0, dropped: 0, retries: 0 });
});

t.test('the verifier refuses a wrong secret, a changed body, a stale timestamp and malformed headers', async (t) => {
  const body = JSON.stringify(notification('bob'));
  const now = 1_700_000_000;
  const header = signPayload(SECRET, body, now);
  t.ok(verifySignature(SECRET, body, header, 300, now), 'the right secret and body verify');
  t.ok(verifySignature(SECRET, Buffer.from(body), header, 300, now + 300), 'bytes verify too, at the edge of the tolerance');
  t.notOk(verifySignature('wrong-secret', body, header, 300, now), 'a wrong secret fails');
  t.notOk(verifySignature(SECRET, body.replace('bob', 'eve'), header, 300, now), 'a changed body fails');
  t.notOk(verifySignature(SECRET, body, header, 300, now + 301), 'a timestamp older than the tolerance fails (replay)');
  t.notOk(verifySignature(SECRET, body, header.replace(`t=${now}`, `t=${now + 1}`), 300, now), 'a changed timestamp fails');
  t.ok(verifySignature(SECRET, body, `${signPayload('old-secret', body, now)},v1=${header.split('v1=')[1]}`, 300, now), 'any one of several v1 digests may match');
  for (const malformed of [undefined, '', 't=1', `v1=${'0'.repeat(64)}`, 'garbage', `t=abc,${header.split(',')[1]}`, `t=${now},v1=zz`]) {
    t.notOk(verifySignature(SECRET, body, malformed, 300, now), `malformed header ${JSON.stringify(malformed)} fails`);
  }
});

t.test('a receiver that is down, then up on the same port, gets the retried delivery', async (t) => {
  const port = await closedPort();
  const { logger, lines } = capturedLogger();
  const sink = new WebhookSink({ url: `http://127.0.0.1:${port}/hook`, secret: SECRET, logger, attemptsMax: 100, backoffBaseMs: 20, backoffMaxMs: 100 });
  let receiver: Receiver | undefined;
  t.teardown(async () => {
    await sink.close(0);
    await receiver?.close();
  });

  sink.enqueue(notification('carol'));
  await until('two failed attempts', () => sink.stats().retries >= 2);
  t.equal(sink.stats().delivered, 0, 'nothing delivered while the receiver is down');
  t.equal(sink.stats().inFlight, 1, 'the notification is in flight (in backoff)');
  receiver = await startReceiver(() => ({ status: 200 }), port);
  await until('the delivery', () => sink.stats().delivered === 1);

  t.equal(receiver.requests.length, 1, 'the receiver got it once');
  const id = receiver.requests[0].headers['tailgrove-delivery'];
  const retried = lines.filter((line) => line.msg === 'webhook delivery will be retried');
  t.ok(retried.length >= 2, 'each retry was logged');
  t.ok(retried.every((line) => line.delivery === id), 'the retried attempts carried the delivered tailgrove-delivery id');
  t.ok(verifySignature(SECRET, receiver.requests[0].body, receiver.requests[0].headers['tailgrove-signature'] as string, 300), 'the retried request is signed');
  t.equal(sink.stats().retries, retried.length, 'retries counted');
});

t.test('500 twice then 200: delivered on the third attempt with the same delivery id', async (t) => {
  const receiver = await startReceiver((index) => ({ status: index < 2 ? 500 : 200 }));
  const { logger } = capturedLogger();
  const sink = new WebhookSink({ url: receiver.url, secret: SECRET, logger, backoffBaseMs: 10, backoffMaxMs: 50 });
  t.teardown(async () => {
    await sink.close(0);
    await receiver.close();
  });

  sink.enqueue(notification('dave'));
  await until('the delivery', () => sink.stats().delivered === 1);
  t.equal(receiver.requests.length, 3, 'three attempts');
  const ids = new Set(receiver.requests.map((request) => request.headers['tailgrove-delivery']));
  t.equal(ids.size, 1, 'one tailgrove-delivery id across the attempts');
  t.ok(receiver.requests.every((request) => verifySignature(SECRET, request.body, request.headers['tailgrove-signature'] as string, 300)), 'every attempt is signed');
  t.same(sink.stats(), { queued: 0, inFlight: 0, delivered: 1, failed: 0, dropped: 0, retries: 2 });
});

t.test('429 with retry-after waits that long; a long retry-after is capped at backoffMaxMs', async (t) => {
  const receiver = await startReceiver((index) => (index === 0 ? { status: 429, headers: { 'retry-after': '1' } } : { status: 200 }));
  const { logger } = capturedLogger();
  const sink = new WebhookSink({ url: receiver.url, secret: SECRET, logger, backoffBaseMs: 5, backoffMaxMs: 5_000 });
  const capped = await startReceiver((index) => (index === 0 ? { status: 429, headers: { 'retry-after': '120' } } : { status: 200 }));
  const cappedSink = new WebhookSink({ url: capped.url, secret: SECRET, logger, backoffBaseMs: 5, backoffMaxMs: 200 });
  t.teardown(async () => {
    await sink.close(0);
    await cappedSink.close(0);
    await receiver.close();
    await capped.close();
  });

  sink.enqueue(notification('erin'));
  cappedSink.enqueue(notification('frank'));
  await until('the capped delivery', () => cappedSink.stats().delivered === 1, 5_000);
  t.equal(capped.requests.length, 2, 'retry-after: 120 was cut to backoffMaxMs (200 ms)');
  await until('the delivery', () => sink.stats().delivered === 1);
  t.equal(receiver.requests.length, 2, 'two attempts');
  const waited = receiver.requests[1].at - receiver.requests[0].at;
  t.ok(waited >= 900, `the retry came after retry-after: 1 (${waited} ms), not after the 5 ms backoff`);
  t.equal(sink.stats().retries, 1);
});

t.test('400 is refused for good: no retry, logged once', async (t) => {
  const receiver = await startReceiver(() => ({ status: 400 }));
  const { logger, lines } = capturedLogger();
  const sink = new WebhookSink({ url: receiver.url, secret: SECRET, logger, backoffBaseMs: 5, backoffMaxMs: 10 });
  t.teardown(async () => {
    await sink.close(0);
    await receiver.close();
  });

  sink.enqueue(notification('grace'));
  await until('the failure', () => sink.stats().failed === 1);
  await delay(200); // any retry would have come by now
  t.equal(receiver.requests.length, 1, 'one attempt');
  t.same(sink.stats(), { queued: 0, inFlight: 0, delivered: 0, failed: 1, dropped: 0, retries: 0 });
  const refusals = lines.filter((line) => line.msg === 'webhook refused the notification: not retried');
  t.equal(refusals.length, 1, 'logged once');
  t.equal(refusals[0].status, 400);
  t.equal(refusals[0].user, 'grace');
});

t.test('5xx and timeouts are retried until attemptsMax, then the notification fails', async (t) => {
  const unavailable = await startReceiver(() => ({ status: 503 }));
  const hanging = await startReceiver(() => 'hang');
  const { logger, lines } = capturedLogger();
  const sink = new WebhookSink({ url: unavailable.url, secret: SECRET, logger, attemptsMax: 3, backoffBaseMs: 5, backoffMaxMs: 10 });
  const slowSink = new WebhookSink({ url: hanging.url, secret: SECRET, logger, attemptsMax: 2, backoffBaseMs: 5, backoffMaxMs: 10, timeoutMs: 150 });
  t.teardown(async () => {
    await sink.close(0);
    await slowSink.close(0);
    await unavailable.close();
    await hanging.close();
  });

  sink.enqueue(notification('heidi'));
  slowSink.enqueue(notification('ivan'));
  await until('both failures', () => sink.stats().failed === 1 && slowSink.stats().failed === 1);
  t.equal(unavailable.requests.length, 3, '503: three attempts');
  t.same(sink.stats(), { queued: 0, inFlight: 0, delivered: 0, failed: 1, dropped: 0, retries: 2 });
  t.equal(hanging.requests.length, 2, 'timeout: two attempts');
  t.same(slowSink.stats(), { queued: 0, inFlight: 0, delivered: 0, failed: 1, dropped: 0, retries: 1 });
  const exhausted = lines.filter((line) => line.msg === 'webhook delivery failed: out of attempts');
  t.same(exhausted.map((line) => [line.user, line.attempts]).sort(), [['heidi', 3], ['ivan', 2]], 'each failure logged once with its attempts');
  t.match(exhausted.find((line) => line.user === 'ivan')?.reason, /timed out/, 'the timeout is the reason');
});

t.test('a full queue drops its oldest waiting notification', async (t) => {
  const receiver = await startReceiver(() => 'hang');
  const { logger, lines } = capturedLogger();
  const sink = new WebhookSink({ url: receiver.url, secret: SECRET, logger, queueMax: 3, concurrency: 1 });
  t.teardown(async () => {
    await sink.close(0);
    await receiver.close();
  });

  sink.enqueue(notification('blocker'));
  await until('the blocker to reach the receiver', () => receiver.requests.length === 1);
  for (const user of ['u0', 'u1', 'u2', 'u3', 'u4']) sink.enqueue(notification(user));
  t.same(sink.stats(), { queued: 3, inFlight: 1, delivered: 0, failed: 0, dropped: 2, retries: 0 });
  const warnings = lines.filter((line) => line.msg === 'webhook queue full: dropped the oldest notifications');
  t.equal(warnings.length, 1, 'one warning for both drops (at most one per 10 s)');
  t.equal(warnings[0].dropped, 1, 'the warning has the count');

  receiver.release();
  await until('the deliveries', () => sink.stats().delivered === 4);
  const users = receiver.requests.map((request) => (JSON.parse(request.body) as Notification).user);
  t.same(users, ['blocker', 'u2', 'u3', 'u4'], 'u0 and u1, the oldest waiting, were dropped');
  t.equal(new Set(receiver.requests.map((request) => request.headers['tailgrove-delivery'])).size, 4, 'each notification has its own delivery id');
});

t.test('close delivers what is queued, then takes nothing more', async (t) => {
  const receiver = await startReceiver(() => ({ status: 200 }));
  const { logger, lines } = capturedLogger();
  const sink = new WebhookSink({ url: receiver.url, secret: SECRET, logger, concurrency: 2 });
  t.teardown(() => receiver.close());

  for (let index = 0; index < 10; index++) sink.enqueue(notification(`user-${index}`));
  await sink.close(5_000);
  t.same(sink.stats(), { queued: 0, inFlight: 0, delivered: 10, failed: 0, dropped: 0, retries: 0 }, 'all ten delivered before close resolved');
  t.equal(new Set(receiver.requests.map((request) => request.headers['tailgrove-delivery'])).size, 10, 'ten distinct deliveries');

  sink.enqueue(notification('late'));
  await delay(50);
  t.equal(receiver.requests.length, 10, 'nothing is sent after close');
  t.equal(sink.stats().dropped, 1, 'a notification enqueued after close is dropped');
  t.ok(lines.some((line) => line.msg === 'webhook sink closed'), 'close logs a summary');
});

t.test('close gives up after its timeout and logs the abandoned notifications', async (t) => {
  const receiver = await startReceiver(() => 'hang');
  const { logger, lines } = capturedLogger();
  const sink = new WebhookSink({ url: receiver.url, secret: SECRET, logger, concurrency: 1 });
  t.teardown(() => receiver.close());

  for (const user of ['a', 'b', 'c']) sink.enqueue(notification(user));
  await until('the first request', () => receiver.requests.length === 1);
  const started = Date.now();
  await sink.close(200);
  const took = Date.now() - started;
  t.ok(took >= 150 && took < 2_000, `close waited for its timeout (${took} ms), not for the 10 s request timeout`);
  t.same(sink.stats(), { queued: 0, inFlight: 0, delivered: 0, failed: 0, dropped: 3, retries: 0 }, 'the abandoned count as dropped');
  const abandoned = lines.find((line) => line.msg === 'webhook sink closed before delivering everything: notifications abandoned');
  t.equal(abandoned?.abandoned, 3, 'the log says how many were abandoned');
});
