// The native-free transport (src/native-free/transport/uws-compat.ts): the part of the
// uWebSockets.js API tailgrove uses, over node:http and `ws`. Each scenario runs against the
// shim and, when the native module loads here, against uWebSockets.js itself, and what the
// clients and the handlers observed must be the same; the shim's own results are also
// asserted outright. The differences docs/NATIVE-FREE.md ("Transport") lists are asserted as such.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import uWS from 'uWebSockets.js';
import uwsCompat, { type UwsTransport } from '../src/native-free/transport/uws-compat.js';
import { SlowSocket, type CloseInfo } from './helpers/slow-socket.js';

const LISTEN_EXCLUSIVE_PORT = 1;
const CLOSED = 'Invalid access of closed uWS.WebSocket/SSLWebSocket.';
const REQUEST_EXPIRED = 'uWS.HttpRequest must not be accessed after await or route handler return. See documentation for uWS.HttpRequest and consult the user manual.';
const RESPONSE_DISCARDED = 'uWS.HttpResponse must not be accessed after uWS.HttpResponse.onAborted callback, or after a successful response. See documentation for uWS.HttpResponse and consult the user manual.';
const COMPAT_URL = new URL('../src/native-free/transport/uws-compat.ts', import.meta.url);
const REPOSITORY_ROOT = fileURLToPath(new URL('..', import.meta.url));

// The uWebSockets.js package falls back to its own JavaScript version when the addon does
// not load: compare with the native module only.
const nativeLoaded = uWS.App.toString().includes('[native code]');
const transports: [string, UwsTransport][] = [['uws-compat', uwsCompat], ...(nativeLoaded ? [['uWebSockets.js', uWS] as [string, UwsTransport]] : [])];
if (!nativeLoaded) t.comment('uWebSockets.js does not load natively here: the shim is checked alone');

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function errorOf(action: () => unknown): string {
  try {
    action();
    return 'no error';
  } catch (error) {
    return (error as Error).message;
  }
}

interface Server {
  port: number;
  close(): void;
}

function listen(app: uWS.TemplatedApp, port = 0): Promise<uWS.us_listen_socket | false> {
  // The native listen takes (host, port, options, callback); the typings lack that overload.
  const listenExclusive = app.listen as unknown as (host: string, port: number, options: number, callback: (socket: uWS.us_listen_socket | false) => void) => void;
  return new Promise((resolve) => listenExclusive.call(app, '127.0.0.1', port, LISTEN_EXCLUSIVE_PORT, resolve));
}

async function serve(transport: UwsTransport, app: uWS.TemplatedApp): Promise<Server> {
  const socket = await listen(app);
  if (socket === false) throw new Error('cannot listen');
  return { port: transport.us_socket_local_port(socket), close: () => transport.us_listen_socket_close(socket) };
}

interface HttpReply {
  status: number;
  statusText: string;
  headers: IncomingHttpHeaders;
  body: string;
}

function http(port: number, method: string, path: string, body?: Buffer | string): Promise<HttpReply | { error: string }> {
  return new Promise((resolve) => {
    const request = httpRequest({ host: '127.0.0.1', port, method, path, agent: false, headers: { 'x-h': 'Value', connection: 'close' } }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, statusText: response.statusMessage ?? '', headers: response.headers, body: Buffer.concat(chunks).toString() }));
    });
    request.on('error', () => resolve({ error: 'no response' }));
    request.end(body);
  });
}

/** Raw bytes in, what came back within `waitMs`, and whether the server closed the connection. */
function exchange(port: number, text: string, waitMs = 300): Promise<{ data: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    const timer = setTimeout(() => {
      resolve({ data, closed: false });
      socket.destroy();
    }, waitMs);
    socket.on('data', (chunk: Buffer) => (data += chunk.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ data, closed: true });
    });
    socket.write(text);
  });
}

interface Client {
  ws: WebSocket;
  received: { isBinary: boolean; text: string }[];
  pings: number[];
  closed: Promise<{ code: number; reason: string; afterMs: number }>;
}

type Connected = { open: Client } | { refused: { status: number; body: string } } | { failed: true };

function connect(port: number, path = '/', options: WebSocket.ClientOptions = {}, protocols: string[] = []): Promise<Connected> {
  return new Promise((resolve) => {
    const started = Date.now();
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, protocols, options);
    const received: Client['received'] = [];
    const pings: number[] = [];
    const closed = new Promise<{ code: number; reason: string; afterMs: number }>((done) =>
      ws.on('close', (code, reason) => done({ code, reason: reason.toString(), afterMs: Date.now() - started })),
    );
    ws.on('message', (data: Buffer, isBinary) => received.push({ isBinary, text: isBinary ? data.toString('hex') : data.toString() }));
    ws.on('ping', () => pings.push(Date.now() - started));
    ws.on('open', () => resolve({ open: { ws, received, pings, closed } }));
    ws.on('unexpected-response', (request, response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => {
        resolve({ refused: { status: response.statusCode ?? 0, body } });
        request.destroy();
      });
    });
    ws.on('error', () => resolve({ failed: true }));
  });
}

function opened(connected: Connected): Client {
  if (!('open' in connected)) throw new Error(`the WebSocket did not open: ${JSON.stringify(connected)}`);
  return connected.open;
}

/** What is comparable between the two implementations of one HTTP reply. */
function summary(reply: HttpReply | { error: string }): unknown {
  return 'error' in reply ? reply : { status: reply.status, statusText: reply.statusText, body: reply.body, xa: reply.headers['x-a'] };
}

/** Runs `scenario` on each transport and checks they observed the same; returns the shim's observation. */
async function observeAll<Observed>(t: Test, scenario: (transport: UwsTransport) => Promise<Observed>, parallel = false): Promise<Observed> {
  const observed = parallel
    ? await Promise.all(transports.map(([, transport]) => scenario(transport)))
    : await transports.reduce<Promise<Observed[]>>(async (done, [, transport]) => [...(await done), await scenario(transport)], Promise.resolve([]));
  for (let i = 1; i < transports.length; i++) t.same(observed[i], observed[0], `${transports[i]![0]} observes what ${transports[0]![0]} observes`);
  return observed[0]!;
}

t.test('routing: methods, static before wildcard, yield, routes added after listen, unmatched requests closed', async (t) => {
  const observed = await observeAll(t, async (transport) => {
    const app = transport.App();
    const errors: string[] = [];
    app.get('/', (res, req) => {
      if (req.getHeader('upgrade') !== '') {
        req.setYield(true);
        return;
      }
      res.end('page');
    });
    app.any('/x', (res, req) => {
      res.end(`any-x ${req.getMethod()}`);
    });
    app.get('/x/*', (res, req) => {
      res.end(`get-x-wild ${req.getUrl()}`);
    });
    app.get('/yield', (_res, req) => {
      req.setYield(true);
    });
    app.get('/headers', (res) => {
      res.writeHeader('x-a', '1').writeStatus('404 Not Found').writeHeader('x-a', '2').end('headers');
    });
    app.get('/request', (res, req) => {
      res.end(JSON.stringify([req.getMethod(), req.getUrl(), req.getQuery(), req.getHeader('x-h'), req.getHeader('absent')]));
    });
    app.get('/expired', (res, req) => {
      res.onAborted(() => {});
      setImmediate(() => {
        errors.push(errorOf(() => req.getUrl()));
        res.cork(() => res.writeStatus('200 OK').end('expired'));
        errors.push(errorOf(() => res.writeHeader('x', 'y')));
      });
    });
    app.any('/*', (res, req) => {
      res.writeStatus('404 Not Found').end(`catch-all ${req.getMethod()} ${req.getUrl()}`);
    });
    const server = await serve(transport, app);
    app.get('/late', (res, req) => {
      res.end(`late ${req.getQuery()}`);
    });
    const replies: Record<string, unknown> = {};
    for (const [method, path] of [
      ['GET', '/'],
      ['GET', '/x'],
      ['POST', '/x'],
      ['GET', '/x/'],
      ['GET', '/x/a/b'],
      ['GET', '/yield'],
      ['GET', '/late?q=1'],
      ['GET', '/nothing?a=b'],
      ['PUT', '/'],
      ['GET', '/headers'],
      ['GET', '/request?k=v'],
      ['GET', '/expired'],
    ] as const) {
      replies[`${method} ${path}`] = summary(await http(server.port, method, path));
    }
    server.close();

    const narrow = transport.App();
    narrow.get('/only', (res) => {
      res.end('only');
    });
    narrow.any('/pass', (_res, req) => {
      req.setYield(true);
    });
    const narrowServer = await serve(transport, narrow);
    const unmatched = await exchange(narrowServer.port, 'GET /other HTTP/1.1\r\nHost: a\r\n\r\n');
    const allYield = await exchange(narrowServer.port, 'GET /pass HTTP/1.1\r\nHost: a\r\n\r\n');
    const unknownMethod = await exchange(narrowServer.port, 'PROPFIND /pass HTTP/1.1\r\nHost: a\r\n\r\n');
    const matched = await exchange(narrowServer.port, 'GET /only HTTP/1.1\r\nHost: a\r\n\r\n');
    narrowServer.close();
    return {
      replies,
      errors,
      unmatched,
      allYield,
      unknownMethod,
      matched: { closed: matched.closed, ok: matched.data.startsWith('HTTP/1.1 200 OK\r\n'), body: matched.data.slice(-4) },
    };
  });
  t.same(observed.replies, {
    'GET /': { status: 200, statusText: 'OK', body: 'page', xa: undefined },
    'GET /x': { status: 200, statusText: 'OK', body: 'any-x get', xa: undefined },
    'POST /x': { status: 200, statusText: 'OK', body: 'any-x post', xa: undefined },
    'GET /x/': { status: 200, statusText: 'OK', body: 'get-x-wild /x/', xa: undefined },
    'GET /x/a/b': { status: 200, statusText: 'OK', body: 'get-x-wild /x/a/b', xa: undefined },
    'GET /yield': { status: 404, statusText: 'Not Found', body: 'catch-all get /yield', xa: undefined },
    'GET /late?q=1': { status: 200, statusText: 'OK', body: 'late q=1', xa: undefined },
    'GET /nothing?a=b': { status: 404, statusText: 'Not Found', body: 'catch-all get /nothing', xa: undefined },
    'PUT /': { status: 404, statusText: 'Not Found', body: 'catch-all put /', xa: undefined },
    'GET /headers': { status: 200, statusText: 'OK', body: 'headers', xa: '1, 2' },
    'GET /request?k=v': { status: 200, statusText: 'OK', body: '["get","/request","k=v","Value",""]', xa: undefined },
    'GET /expired': { status: 200, statusText: 'OK', body: 'expired', xa: undefined },
  }, 'each request reached the handler uWS routes it to; a status after a header is ignored, headers repeat; a route added after listen serves');
  t.same(observed.errors, [REQUEST_EXPIRED, RESPONSE_DISCARDED], 'a request used after its handler returned, and a response used after it ended, throw uWS\'s errors');
  t.same(observed.unmatched, { data: '', closed: true }, 'a request no route matches: the connection closes, no response');
  t.same(observed.allYield, { data: '', closed: true }, 'a request every handler yields: the connection closes');
  t.same(observed.unknownMethod, { data: '', closed: true }, 'any() covers the nine methods uWS knows, not others');
  t.same(observed.matched, { closed: false, ok: true, body: 'only' }, 'a routed request is answered and the connection kept');
});

t.test('request bodies through onData; onAborted when the client goes away', async (t) => {
  const large = randomBytes(300_000);
  const observed = await observeAll(t, async (transport) => {
    const app = transport.App();
    const aborts: string[] = [];
    app.post('/echo', (res) => {
      const chunks: Buffer[] = [];
      const flags: boolean[] = [];
      res.onAborted(() => {});
      res.onData((chunk, isLast) => {
        chunks.push(Buffer.from(chunk.slice(0)));
        flags.push(isLast);
        if (!isLast) return;
        const body = Buffer.concat(chunks);
        res.end(JSON.stringify({ length: body.length, sha256: createHash('sha256').update(body).digest('hex'), lastFlagOnlyOnTheLastChunk: flags.indexOf(true) === flags.length - 1 }));
      });
    });
    app.get('/no-body', (res) => {
      res.onAborted(() => {});
      res.onData((chunk, isLast) => res.end(`${chunk.byteLength} ${isLast}`));
    });
    app.post('/abandoned', (res) => {
      res.onAborted(() => {
        aborts.push('aborted');
        aborts.push(errorOf(() => res.end('too late')));
      });
      res.onData(() => {});
    });
    const server = await serve(transport, app);
    const replies = [];
    for (const body of ['hello', '', large]) replies.push(summary(await http(server.port, 'POST', '/echo', body)));
    replies.push(summary(await http(server.port, 'GET', '/no-body')));
    const socket = net.connect(server.port, '127.0.0.1');
    socket.on('error', () => {});
    socket.write('POST /abandoned HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n0123456789');
    await sleep(50);
    socket.destroy();
    await until(() => aborts.length === 2, 'the abort handler');
    server.close();
    return { replies, aborts };
  });
  const digest = (bytes: Buffer | string): string => createHash('sha256').update(bytes).digest('hex');
  t.same(
    observed.replies.map((reply) => (reply as { body: string }).body),
    [
      JSON.stringify({ length: 5, sha256: digest('hello'), lastFlagOnlyOnTheLastChunk: true }),
      JSON.stringify({ length: 0, sha256: digest(''), lastFlagOnlyOnTheLastChunk: true }),
      JSON.stringify({ length: large.length, sha256: digest(large), lastFlagOnlyOnTheLastChunk: true }),
      '0 true',
    ],
    'the body arrives whole, the last chunk flagged; no body: one empty last chunk',
  );
  t.same(observed.aborts, ['aborted', RESPONSE_DISCARDED], 'onAborted runs when the client leaves mid-body; the response is then unusable');
});

t.test('WebSocket upgrades: refused while recovering (503), passed on when ready, accepted or refused by the upgrade handler', async (t) => {
  const observed = await observeAll(t, async (transport) => {
    const app = transport.App();
    let ready = false;
    // Like src/io-thread/http-routes.ts: the catch-all refuses while recovering, then yields upgrades.
    app.any('/*', (res, req) => {
      if (!ready) {
        res.writeStatus('503 Service Unavailable').writeHeader('retry-after', '1').end('recovering');
        return;
      }
      if (req.getMethod() === 'get' && req.getHeader('upgrade').toLowerCase() === 'websocket') {
        req.setYield(true);
        return;
      }
      res.writeStatus('404 Not Found').end('not found');
    });
    const server = await serve(transport, app);
    const recovering = await connect(server.port);
    ready = true;
    const withoutRoute = await connect(server.port);
    const users: unknown[] = [];
    app.ws<{ path: string; address: string }>('/*', {
      upgrade: (res, req, context) => {
        const address = Buffer.from(res.getRemoteAddressAsText()).toString();
        if (req.getUrl() === '/full') {
          res.writeStatus('503 Service Unavailable').writeHeader('content-type', 'text/plain').end('connection limit reached');
          return;
        }
        res.upgrade({ path: req.getUrl(), address }, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context);
      },
      open: (ws) => {
        users.push({ path: ws.getUserData().path, address: ws.getUserData().address });
      },
    });
    const full = await connect(server.port, '/full');
    const client = opened(await connect(server.port, '/room?x=1', {}, ['p1', 'p2']));
    const plain = summary(await http(server.port, 'GET', '/room'));
    client.ws.close(1000);
    await client.closed;
    server.close();
    return { recovering, withoutRoute, full, users, protocol: client.ws.protocol, plain };
  });
  t.same(observed.recovering, { refused: { status: 503, body: 'recovering' } }, 'while recovering the catch-all refuses the upgrade with 503');
  t.same(observed.withoutRoute, { failed: true }, 'ready but no ws route yet: the yielded upgrade finds no handler, the connection closes');
  t.same(observed.full, { refused: { status: 503, body: 'connection limit reached' } }, 'an upgrade handler that ends the response refuses the upgrade with it');
  t.same(observed.users, [{ path: '/room', address: '127.0.0.1' }], 'open sees the user data given to upgrade (remote address as text)');
  t.equal(observed.protocol, 'p1', 'the first offered protocol is selected');
  t.same(observed.plain, { status: 404, statusText: 'Not Found', body: 'not found', xa: undefined }, 'a plain GET passes the ws route by');
});

t.test('messages: binary echo, text flagged, nothing after end(); the socket is unusable from its close handler on', async (t) => {
  const observed = await observeAll(t, async (transport) => {
    const app = transport.App();
    const seen: unknown[] = [];
    const closes: unknown[] = [];
    let closedSocket: uWS.WebSocket<{ name: string }> | undefined;
    app.ws<{ name: string }>('/*', {
      upgrade: (res, req, context) => res.upgrade({ name: 'device' }, req.getHeader('sec-websocket-key'), '', '', context),
      message: (ws, message, isBinary) => {
        seen.push([isBinary, message instanceof ArrayBuffer, Buffer.from(message).toString('hex')]);
        if (!isBinary && Buffer.from(message).toString() === 'end') {
          ws.end(4000, 'bye');
          closes.push(['after end()', errorOf(() => ws.send('x')), ws.getUserData().name]);
          return;
        }
        ws.send(message, isBinary);
      },
      close: (ws, code, message) => {
        closedSocket = ws;
        closes.push(['close handler', code, Buffer.from(message).toString(), errorOf(() => ws.getBufferedAmount()), ws.getUserData().name]);
      },
    });
    const server = await serve(transport, app);
    const client = opened(await connect(server.port));
    client.ws.send(Buffer.from([1, 2, 3]));
    client.ws.send('hi');
    client.ws.send('end');
    client.ws.send('after');
    const closed = await client.closed;
    await sleep(20);
    const later = [errorOf(() => closedSocket!.send('x')), errorOf(() => closedSocket!.end()), errorOf(() => closedSocket!.cork(() => {})), closedSocket!.getUserData().name];
    server.close();
    return { seen, received: client.received, closes, closed: { code: closed.code, reason: closed.reason }, later };
  });
  t.same(observed.seen, [
    [true, true, '010203'],
    [false, true, Buffer.from('hi').toString('hex')],
    [false, true, Buffer.from('end').toString('hex')],
  ], 'ArrayBuffers, isBinary true for binary and false for text; the message after end() is not delivered');
  t.same(observed.received, [{ isBinary: true, text: '010203' }, { isBinary: false, text: 'hi' }], 'echoes keep their kind');
  t.same(observed.closes, [['close handler', 4000, 'bye', CLOSED, 'device'], ['after end()', CLOSED, 'device']], 'end() runs the close handler before returning; from there on only getUserData works');
  t.same(observed.closed, { code: 4000, reason: 'bye' }, 'the client gets the code and reason');
  t.same(observed.later, [CLOSED, CLOSED, CLOSED, 'device'], 'later use throws too (tailgrove never does it; it does not crash the shim)');
});

t.test('refused frames: a message over maxPayloadLength, a text message that is not UTF-8, drop the connection', async (t) => {
  const clientCodes = new Map<UwsTransport, number[]>();
  const observed = await observeAll(t, async (transport) => {
    const app = transport.App();
    const closes: unknown[] = [];
    app.ws('/*', {
      maxPayloadLength: 1024,
      message: (ws, message, isBinary) => {
        ws.send(message, isBinary);
      },
      close: (_ws, code, message) => closes.push([code, Buffer.from(message).toString()]),
    });
    const server = await serve(transport, app);
    const large = opened(await connect(server.port));
    large.ws.send(Buffer.alloc(1024, 7));
    await until(() => large.received.length === 1, 'the echo');
    large.ws.send(Buffer.alloc(1025, 7));
    const malformed = opened(await connect(server.port));
    malformed.ws.send(Buffer.from([0xff, 0xfe]), { binary: false });
    clientCodes.set(transport, [(await large.closed).code, (await malformed.closed).code]);
    server.close();
    return { echoed: large.received[0]!.text.length / 2, closes };
  });
  t.same(observed, { echoed: 1024, closes: [[1006, 'Received too big message'], [1006, 'Received invalid UTF-8']] }, 'exactly maxPayloadLength passes; one byte more, or invalid UTF-8: close handler 1006');
  t.same(clientCodes.get(uwsCompat), [1009, 1007], 'the shim\'s clients get ws\'s close frames 1009 and 1007 before the drop (docs: uWS just drops the connection)');
  if (nativeLoaded) t.same(clientCodes.get(uWS), [1006, 1006], 'uWS\'s clients see the connection drop (1006)');
});

t.test('end(1001) sends what is buffered, then the close frame', async (t) => {
  const observed = await observeAll(t, async (transport) => {
    const app = transport.App();
    const sockets: uWS.WebSocket<unknown>[] = [];
    const closes: unknown[] = [];
    app.ws('/*', {
      maxBackpressure: 64 << 20,
      open: (ws) => {
        sockets.push(ws);
      },
      close: (_ws, code, message) => closes.push([code, Buffer.from(message).toString()]),
    });
    const server = await serve(transport, app);
    const received: number[] = [];
    let clientClose: CloseInfo | undefined;
    const slow = await SlowSocket.connect(`ws://127.0.0.1:${server.port}/`, { onMessage: (bytes, start) => received.push(bytes.readUInt32BE(start)), onClose: (info) => (clientClose = info) });
    await until(() => sockets.length === 1, 'open');
    slow.pauseReading();
    await sleep(20);
    const ws = sockets[0]!;
    const codes = new Set<number>();
    for (let i = 0; i < 200; i++) {
      const message = Buffer.alloc(64 * 1024);
      message.writeUInt32BE(i);
      codes.add(ws.send(message, true));
    }
    const bufferedBeforeEnd = ws.getBufferedAmount();
    ws.end(1001, 'server shutting down');
    const closedWithinEnd = closes.length;
    slow.resumeReading();
    await until(() => clientClose !== undefined, 'the client to close', 20_000);
    server.close();
    return {
      backpressureBuilt: codes.has(0) && bufferedBeforeEnd > 0,
      droppedNone: !codes.has(2),
      closedWithinEnd,
      closes,
      clientClose: { code: clientClose!.code, reason: clientClose!.reason },
      allInOrder: received.length === 200 && received.every((value, i) => value === i),
    };
  });
  t.same(observed, {
    backpressureBuilt: true,
    droppedNone: true,
    closedWithinEnd: 1,
    closes: [[1001, 'server shutting down']],
    clientClose: { code: 1001, reason: 'server shutting down' },
    allInOrder: true,
  }, 'the client reads all 200 buffered messages in order, then the close frame');
});

interface BackpressureRun {
  pattern: string;
  bufferedGrew: boolean;
  overLimitWhenDropped: boolean;
  lastAccepted: number;
}

/** A client that stops reading; sends of 64 KiB until one is dropped (over maxBackpressure). */
async function fillUntilDropped(ws: uWS.WebSocket<unknown>, maxBackpressure: number): Promise<BackpressureRun> {
  let pattern = '';
  let bufferedGrew = true;
  let previous = 0;
  let overLimitWhenDropped = false;
  let lastAccepted = -1;
  for (let i = 0; i < 2000; i++) {
    const message = Buffer.alloc(64 * 1024);
    message.writeUInt32BE(i);
    const before = ws.getBufferedAmount();
    const code = ws.send(message, true);
    const letter = ['b', 's', 'd'][code]!;
    if (!pattern.endsWith(letter)) pattern += letter;
    if (code === 2) {
      overLimitWhenDropped = before > maxBackpressure;
      break;
    }
    lastAccepted = i;
    const buffered = ws.getBufferedAmount();
    if (code === 0 && (buffered === 0 || buffered < previous)) bufferedGrew = false;
    previous = buffered;
  }
  return { pattern, bufferedGrew, overLimitWhenDropped, lastAccepted };
}

t.test('backpressure: send returns 1, then 0 while buffered bytes grow, then 2 over maxBackpressure; drain when the client reads again', async (t) => {
  const maxBackpressure = 1 << 20;
  const observed = await observeAll(t, async (transport) => {
    const app = transport.App();
    const sockets: uWS.WebSocket<unknown>[] = [];
    const drains: number[] = [];
    app.ws('/*', {
      maxBackpressure,
      open: (ws) => {
        sockets.push(ws);
      },
      drain: (ws) => drains.push(ws.getBufferedAmount()),
    });
    const server = await serve(transport, app);
    const received: number[] = [];
    const slow = await SlowSocket.connect(`ws://127.0.0.1:${server.port}/`, { onMessage: (bytes, start) => received.push(bytes.readUInt32BE(start)) });
    await until(() => sockets.length === 1, 'open');
    slow.pauseReading();
    await sleep(20);
    const ws = sockets[0]!;
    const run = await fillUntilDropped(ws, maxBackpressure);
    slow.resumeReading();
    await until(() => received.length === run.lastAccepted + 1 && drains.at(-1) === 0, 'the client to read everything and the socket to drain');
    await sleep(50);
    const { lastAccepted, ...shape } = run;
    const result = {
      ...shape,
      drained: drains.length > 0,
      lastDrainBuffered: drains.at(-1),
      buffered: ws.getBufferedAmount(),
      deliveredAreTheAccepted: received.length === lastAccepted + 1 && received.every((value, i) => value === i),
    };
    await slow.close();
    server.close();
    return result;
  });
  t.same(observed, {
    pattern: 'sbd',
    bufferedGrew: true,
    overLimitWhenDropped: true,
    drained: true,
    lastDrainBuffered: 0,
    buffered: 0,
    deliveredAreTheAccepted: true,
  }, 'success, backpressure, dropped; drain down to 0; the client got exactly the accepted messages');
});

t.test('closeOnBackpressureLimit: a dropped send drops the connection, soon after', async (t) => {
  const maxBackpressure = 1 << 20;
  const observed = await observeAll(t, async (transport) => {
    const app = transport.App();
    const sockets: uWS.WebSocket<unknown>[] = [];
    const closes: unknown[] = [];
    app.ws('/*', {
      maxBackpressure,
      closeOnBackpressureLimit: 1,
      open: (ws) => {
        sockets.push(ws);
      },
      close: (_ws, code, message) => closes.push([code, Buffer.from(message).toString()]),
    });
    const server = await serve(transport, app);
    let received = 0;
    let clientClose: CloseInfo | undefined;
    const slow = await SlowSocket.connect(`ws://127.0.0.1:${server.port}/`, { onMessage: () => received++, onClose: (info) => (clientClose = info) });
    await until(() => sockets.length === 1, 'open');
    slow.pauseReading();
    await sleep(20);
    const ws = sockets[0]!;
    const run = await fillUntilDropped(ws, maxBackpressure);
    const closedWithinSend = closes.length;
    const usableAfterDrop = ws.getBufferedAmount() > maxBackpressure;
    await until(() => closes.length === 1, 'the close handler');
    const afterClose = errorOf(() => ws.send('x'));
    slow.resumeReading();
    await until(() => clientClose !== undefined, 'the client to see the connection close');
    server.close();
    return { pattern: run.pattern, closedWithinSend, usableAfterDrop, closes, afterClose, clientCode: clientClose!.code, lostBuffered: received < run.lastAccepted + 1 };
  });
  t.same(observed, {
    pattern: 'sbd',
    closedWithinSend: 0,
    usableAfterDrop: true,
    closes: [[1006, '']],
    afterClose: CLOSED,
    clientCode: 1006,
    lostBuffered: true,
  }, 'the close handler runs after send returned 2 (1006); the client sees the connection drop, buffered messages lost');
});

t.test('idleTimeout: a client that answers no ping is closed; one that answers stays', async (t) => {
  // uWS times out in 4 s steps whose phase depends on the process, so its timing is only
  // bounded loosely; the shim's is checked closely (1 s steps from the first open).
  const timings = new Map<UwsTransport, { pingMs: number; closeMs: number }>();
  const observed = await observeAll(
    t,
    async (transport) => {
      const app = transport.App();
      const closes: unknown[] = [];
      app.ws<{ path: string }>('/*', {
        idleTimeout: 8,
        sendPingsAutomatically: true,
        upgrade: (res, req, context) => res.upgrade({ path: req.getUrl() }, req.getHeader('sec-websocket-key'), '', '', context),
        close: (ws, code, message) => closes.push([ws.getUserData().path, code, Buffer.from(message).toString()]),
      });
      const server = await serve(transport, app);
      const silent = opened(await connect(server.port, '/silent', { autoPong: false }));
      const alive = opened(await connect(server.port, '/alive'));
      await sleep(9_500);
      const silentClosed = await Promise.race([silent.closed, sleep(0).then(() => undefined)]);
      timings.set(transport, { pingMs: silent.pings[0] ?? -1, closeMs: silentClosed?.afterMs ?? -1 });
      const result = {
        silentPinged: silent.pings.length > 0,
        silentClosed: silentClosed === undefined ? 'open' : { code: silentClosed.code, afterThePing: silentClosed.afterMs > (silent.pings[0] ?? Infinity) },
        alivePinged: alive.pings.length > 0,
        aliveOpen: alive.ws.readyState === WebSocket.OPEN,
        closes: [...closes],
      };
      alive.ws.close(1000);
      await alive.closed;
      server.close();
      return result;
    },
    true,
  );
  t.same(observed, {
    silentPinged: true,
    silentClosed: { code: 1006, afterThePing: true },
    alivePinged: true,
    aliveOpen: true,
    closes: [['/silent', 1006, 'WebSocket timed out from inactivity']],
  }, 'a silent client is pinged, then dropped (1006) when no pong comes; the answering client stays');
  const shim = timings.get(uwsCompat)!;
  t.ok(shim.pingMs > 3_500 && shim.pingMs < 4_700, `the shim pings after 8 - 4 s of silence (${shim.pingMs} ms)`);
  t.ok(shim.closeMs > 7_500 && shim.closeMs < 9_000, `and drops the connection 4 s later (${shim.closeMs} ms)`);
  if (nativeLoaded) t.ok(timings.get(uWS)!.closeMs > 3_000, `uWS drops it within its 4 s steps (${timings.get(uWS)!.closeMs} ms)`);
});

t.test('listen: exclusive, a busy port is refused (false); local port; closing the listen socket frees the port', async (t) => {
  const held = await listen(uwsCompat.App());
  if (held === false) throw new Error('cannot listen');
  const port = uwsCompat.us_socket_local_port(held);
  t.ok(port > 0, 'us_socket_local_port gives the port');
  t.equal(await listen(uwsCompat.App(), port), false, 'a second exclusive listen on the port fails');
  const threeArguments = await new Promise<unknown>((resolve) => uwsCompat.App().listen('127.0.0.1', port, resolve));
  t.equal(threeArguments, false, 'the (host, port, callback) form fails too (Node never shares a port)');
  if (nativeLoaded) {
    t.equal(await listen(uWS.App(), port), false, 'uWS cannot take the shim\'s port either');
    const native = await listen(uWS.App());
    if (native === false) throw new Error('cannot listen');
    t.equal(await listen(uwsCompat.App(), uWS.us_socket_local_port(native)), false, 'nor the shim uWS\'s');
    uWS.us_listen_socket_close(native);
  }
  uwsCompat.us_listen_socket_close(held);
  t.equal(uwsCompat.us_socket_local_port(held), -1, 'a closed listen socket has no port (-1, like uWS)');
  const again = await listen(uwsCompat.App(), port);
  t.not(again, false, 'the port is free again');
  if (again !== false) uwsCompat.us_listen_socket_close(again);
});

t.test('no native module: the shim serves with every dlopen failing', async (t) => {
  const script = `
    const attempted = [];
    process.dlopen = (_module, filename) => {
      attempted.push(filename);
      throw new Error('native addons are off here: ' + filename);
    };
    const { default: uWS } = await import(${JSON.stringify(COMPAT_URL.href)});
    const { default: WebSocket } = await import('ws');
    const app = uWS.App();
    app.ws('/*', { message: (ws, message, isBinary) => ws.send(message, isBinary) });
    const port = await new Promise((resolve) => app.listen(0, (socket) => resolve(uWS.us_socket_local_port(socket))));
    const client = new WebSocket('ws://127.0.0.1:' + port);
    await new Promise((resolve) => client.on('open', resolve));
    client.send(Buffer.from('echo me'));
    const echoed = await new Promise((resolve) => client.on('message', (data) => resolve(data.toString())));
    console.log(JSON.stringify({ echoed, attempted }));
    process.exit(0);
  `;
  const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '--eval', script], { cwd: REPOSITORY_ROOT, encoding: 'utf8', timeout: 30_000 });
  t.equal(child.status, 0, `the child exits 0 ${child.stderr}`);
  const report = JSON.parse(child.stdout.trim().split('\n').at(-1) ?? '{}') as { echoed?: string; attempted?: string[] };
  t.equal(report.echoed, 'echo me', 'the echo app works');
  t.same(
    (report.attempted ?? []).filter((file) => !/[\\/]bufferutil[\\/]/.test(file)),
    [],
    `nothing but ws's optional bufferutil (whose failure ws ignores) tried to load: ${JSON.stringify(report.attempted)}`,
  );
});
