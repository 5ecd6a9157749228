// The client against a real server: round trips, exactly-once appends and gap-free tails
// across forced reconnects and server restarts, and the errors callers see.
import { execFile } from 'node:child_process';
import { createConnection, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import WebSocket, { WebSocketServer } from 'ws';
import { mintGrant, mintToken, type Grant } from '../src/auth/token.js';
import { backoffDelay } from '../src/client/backoff.js';
import { decodeFrames, type Frame } from '../src/client/codec.js';
import { connect, type Client, type ConnectOptions, type Entry, type LeasedLog } from '../src/client/index.js';
import { ERROR_NAMES, LEASE_NEW_WRITER, OP_ATTEST, OP_ERROR, OP_LEASE, OP_REFRESH, OP_REVOKED, OP_WRITE } from '../src/net/protocol.js';
import { removeDataDir, repositoryRoot, startServer, type ServerProcess } from './helpers/server.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bytes = (text: string): Uint8Array => encoder.encode(text);
const text = (data: Uint8Array): string => decoder.decode(data);
type Assert = Pick<typeof t, 'same' | 'equal'>;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function token(server: ServerProcess, device = 'device-1', grants: Grant[] = [{ site: 'acme', rights: 'rw' }], exp?: number): string {
  return mintToken({ sub: 'user-1', device, grants, ...(exp === undefined ? {} : { exp }) }, server.secret);
}

const inSeconds = (seconds: number): number => Math.floor(Date.now() / 1000) + seconds;

/** POST /admin/revoke with an admin token; resolves with the HTTP status. */
async function revoke(server: ServerProcess, body: { device: string } | { jti: string } | { user: string }): Promise<number> {
  const admin = mintToken({ sub: 'admin', device: 'admin', grants: [{ site: '*', rights: 'a' }] }, server.secret);
  const response = await fetch(`http://127.0.0.1:${server.port}/admin/revoke`, {
    method: 'POST',
    headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  await response.arrayBuffer();
  return response.status;
}

/**
 * A `ws` WebSocket that records its instances and every message the client sends, so tests
 * can cut connections and count frames; `drop` removes frames on their way out (a lost frame).
 */
function trackedWebSocket(drop: (frame: Frame) => boolean = () => false): {
  sockets: WebSocket[];
  sent: Uint8Array[];
  /** The header fields of every frame that reached the client. */
  received: ReceivedFrame[];
  /** Sockets whose incoming messages never reach the client (answers lost on the way). */
  deaf: Set<WebSocket>;
  WebSocket: NonNullable<ConnectOptions['WebSocket']>;
} {
  const sockets: WebSocket[] = [];
  const sent: Uint8Array[] = [];
  const received: ReceivedFrame[] = [];
  const deaf = new Set<WebSocket>();
  class Tracked extends WebSocket {
    constructor(url: string) {
      super(url);
      sockets.push(this);
    }
    override emit(event: string | symbol, ...args: unknown[]): boolean {
      if (event === 'message' && deaf.has(this)) return false;
      if (event === 'message' && args[0] instanceof ArrayBuffer) {
        for (const { op, word, a, b, c } of decodeFrames(new Uint8Array(args[0]))) received.push({ op, word, a, b, c });
      }
      return super.emit(event, ...args);
    }
    override send(data: Uint8Array): void {
      sent.push(data.slice());
      const kept: Uint8Array[] = [];
      const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
      for (let offset = 0; offset < data.byteLength; ) {
        const end = offset + 8 + view.getUint16(offset, true) + view.getUint32(offset + 2, true);
        const frame = data.subarray(offset, end);
        if (!drop(decodeFrames(frame)[0]!)) kept.push(frame);
        offset = end;
      }
      if (kept.length > 0) super.send(Buffer.concat(kept));
    }
  }
  return { sockets, sent, received, deaf, WebSocket: Tracked };
}

type ReceivedFrame = Pick<Frame, 'op' | 'word' | 'a' | 'b' | 'c'>;

/** The `_error` frames named `name` among `received`. */
function errorsNamed(received: ReceivedFrame[], name: string): number {
  return received.filter((frame) => frame.op === OP_ERROR && ERROR_NAMES[frame.word] === name).length;
}

/** The frames of `op` among the messages a tracked client sent. */
function sentFrames(messages: Uint8Array[], op: number): Frame[] {
  return messages.flatMap((message) => decodeFrames(message)).filter((frame) => frame.op === op);
}

/**
 * A TCP relay on a fixed port to wherever `target()` says the server is now. A restarted
 * server listens on a new port: re-listening on the old one fails while the previous
 * process's closed connections sit in TIME_WAIT.
 */
async function startRelay(target: () => number): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const relay = createServer((inbound) => {
    const outbound = createConnection(target(), '127.0.0.1');
    for (const [from, to] of [
      [inbound, outbound],
      [outbound, inbound],
    ] as const) {
      sockets.add(from);
      from.pipe(to);
      from.on('error', () => to.destroy());
      from.on('close', () => {
        sockets.delete(from);
        to.destroy();
      });
    }
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  const { port } = relay.address() as { port: number };
  return {
    url: `ws://127.0.0.1:${port}/`,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => relay.close(resolve));
    },
  };
}

function writeFramesIn(messages: Uint8Array[]): number {
  let count = 0;
  for (const message of messages) for (const frame of decodeFrames(message)) if (frame.op === OP_WRITE) count++;
  return count;
}

/** The one open socket of a tracked client (the last one opened). */
function current(sockets: WebSocket[]): WebSocket {
  return sockets[sockets.length - 1]!;
}

/** Every append resolved exactly once, and the positions are 0..n-1 without holes or repeats. */
function checkDense(t: Assert, positions: number[], first = 0): void {
  const sorted = [...positions].sort((a, b) => a - b);
  t.same(
    sorted,
    sorted.map((_, i) => first + i),
    `${positions.length} positions are dense and unique from ${first}`,
  );
}

/** The log holds each payload exactly once, at the position its append returned. */
async function checkLog(t: Assert, log: LeasedLog, expected: Map<string, number>): Promise<void> {
  const entries: Entry[] = [];
  for (let page = await log.read(0, 200); page.length > 0; page = await log.read(entries.length, 200)) entries.push(...page);
  t.equal(entries.length, expected.size, 'the log holds exactly the appended entries');
  const seen = new Map(entries.map((entry) => [text(entry.data), entry.position]));
  t.equal(seen.size, entries.length, 'no payload appears twice');
  const mismatched = [...expected].filter(([payload, position]) => seen.get(payload) !== position);
  t.same(mismatched, [], 'each append resolved with the position its entry holds');
}

t.test('backoff grows exponentially to 5 s with jitter', async (t) => {
  t.equal(backoffDelay(0, () => 0), 50);
  t.equal(backoffDelay(0, () => 1), 100);
  t.equal(backoffDelay(3, () => 1), 800);
  t.equal(backoffDelay(30, () => 0), 2500, 'capped, never below half the cap');
  t.equal(backoffDelay(30, () => 1), 5000);
  const spread = new Set(Array.from({ length: 20 }, () => backoffDelay(4)));
  t.ok(spread.size > 10, 'delays are jittered');
});

t.test('a connection attempt that hangs is abandoned', async (t) => {
  // One listener never completes the WebSocket upgrade, the other never answers connect.
  const blackHole = createServer(() => {});
  await new Promise<void>((resolve) => blackHole.listen(0, '127.0.0.1', resolve));
  const silent = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise((resolve) => silent.once('listening', resolve));
  t.teardown(() => {
    blackHole.close();
    for (const client of silent.clients) client.terminate();
    silent.close();
  });
  const started = Date.now();
  const attempts = [blackHole.address(), silent.address()].map((address) =>
    t.rejects(connect(`ws://127.0.0.1:${(address as { port: number }).port}/`, { token: 'x' }), { code: 'DISCONNECTED' }),
  );
  await Promise.all(attempts);
  const elapsed = Date.now() - started;
  t.ok(elapsed >= 9_000 && elapsed < 15_000, `both gave up after about 10 s (${elapsed} ms)`);
});

t.test('against one server', async (t) => {
  // A small clock skew, so short-lived test tokens expire (close 4003) soon after their exp.
  const server = await startServer({ args: ['--clock-skew-seconds', '1'] });
  t.teardown(async () => {
    await server.stop();
    removeDataDir(server.dataDir);
  });
  const clients: Client[] = [];
  const open = async (options: Partial<ConnectOptions> & { device?: string } = {}): Promise<Client> => {
    const client = await connect(server.url, { token: token(server, options.device), ...options });
    clients.push(client);
    return client;
  };
  t.teardown(() => Promise.all(clients.map((client) => client.close())));

  t.test('lease, append, read and tail round-trip', async (t) => {
    const tracked = trackedWebSocket();
    const client = await open({ WebSocket: tracked.WebSocket });
    t.equal(client.session?.device, 'device-1');
    const log = await client.lease('acme', 'round-trip');
    t.equal(log.position, 0, 'a new log is empty');
    t.ok(log.epoch > 0, 'the log has an epoch');
    t.same(log.leader, { handle: log.handle, device: 'device-1' });
    t.same(log.presence, [{ handle: log.handle, device: 'device-1' }]);
    t.ok(log.isLeader, 'the only lease leads');
    t.equal(await client.lease('acme', 'round-trip'), log, 'leasing again returns the same log');

    const sentBefore = tracked.sent.length;
    const positions = await Promise.all(['a', 'b', 'c'].map((payload) => log.append(bytes(payload))));
    t.same(positions, [0, 1, 2]);
    const burst = tracked.sent.slice(sentBefore).find((message) => writeFramesIn([message]) > 0)!;
    t.equal(writeFramesIn([burst]), 3, 'appends of one tick leave in one message');

    const all = await log.read(0, 10);
    t.same(
      all.map((entry) => [entry.position, text(entry.data)]),
      [
        [0, 'a'],
        [1, 'b'],
        [2, 'c'],
      ],
    );
    t.same(
      (await log.read(1, 1)).map((entry) => text(entry.data)),
      ['b'],
      'a read stops at its limit',
    );
    t.same(await log.read(3, 5), [], 'a read at the tail is empty');
    t.same(await log.read(0, 0), [], 'limit 0');
    await t.rejects(log.read(-1, 5), RangeError);

    const delivered: Entry[] = [];
    let caughtUp = 0;
    const tail = log.tail(1, (entries) => delivered.push(...entries), { onCaughtUp: () => caughtUp++ });
    t.throws(() => log.tail(0, () => {}), /already tailed/, 'one tail per log');
    await until(() => caughtUp === 1, 'the tail to catch up');
    t.same(
      delivered.map((entry) => text(entry.data)),
      ['b', 'c'],
      'the backlog from the tail position',
    );
    await log.append(bytes('d'));
    await log.append(bytes('e'));
    await until(() => delivered.length === 4, 'live entries');
    t.same(
      delivered.map((entry) => [entry.position, text(entry.data)]),
      [
        [1, 'b'],
        [2, 'c'],
        [3, 'd'],
        [4, 'e'],
      ],
    );
    t.equal(tail.next, 5);
    tail.close();
    await log.append(bytes('f'));
    await sleep(100);
    t.equal(delivered.length, 4, 'a closed tail delivers nothing');

    let emptyCaughtUp = false;
    const atEnd = log.tail(6, () => t.fail('nothing to deliver'), { onCaughtUp: () => (emptyCaughtUp = true) });
    await until(() => emptyCaughtUp, 'a tail at the end to catch up');
    atEnd.close();
  });

  t.test('a conditional append succeeds only at the tail', async (t) => {
    const client = await open();
    const log = await client.lease('acme', 'conditional');
    t.equal(await log.append(bytes('first'), { at: 0 }), 0);
    const refused = await log.append(bytes('stale'), { at: 0 }).catch((error: unknown) => error);
    t.match(refused, { code: 'AT_MISMATCH', tail: 1 }, 'refused with the tail');
    t.ok(refused instanceof Error);
    t.equal(await log.append(bytes('second'), { at: 1 }), 1);
    t.equal(await log.append(bytes('plain')), 2, 'the refused lsn does not stall later appends');
    const race = await Promise.allSettled([log.append(bytes('x'), { at: 3 }), log.append(bytes('y'), { at: 3 })]);
    t.same(
      race.map((outcome) => outcome.status),
      ['fulfilled', 'rejected'],
      'of two appends at the same tail, one wins',
    );
    t.same(
      (await log.read(0, 10)).map((entry) => text(entry.data)),
      ['first', 'second', 'plain', 'x'],
    );
  });

  t.test('pipelined appends are exactly-once across cut connections', async (t) => {
    const tracked = trackedWebSocket();
    const client = await open({ WebSocket: tracked.WebSocket });
    const log = await client.lease('acme', 'exactly-once');
    const expected = new Map<string, number>();
    let settled = 0;
    const append = (payload: string): Promise<void> =>
      log.append(bytes(payload)).then((position) => {
        t.notOk(expected.has(payload), `${payload} resolves once`);
        expected.set(payload, position);
        settled++;
      });
    // Settles when the log is leased on a session again (a read waits for the lease).
    const reattached = async (): Promise<void> => void (await log.read(0, 1));

    // Wave 1: the server writes some appends but their answers are lost with the connection.
    const observer = await open({ device: 'observer' });
    let observed = 0;
    (await observer.lease('acme', 'exactly-once')).tail(0, (entries) => (observed += entries.length));
    tracked.deaf.add(current(tracked.sockets));
    const padding = 'p'.repeat(8000);
    const wave1 = Array.from({ length: 1000 }, (_, i) => append(`one-${i}-${padding}`));
    await until(() => observed >= 300, 'the server to write some of wave 1');
    t.equal(settled, 0, 'no answer reached the client');
    current(tracked.sockets).terminate();
    await Promise.all(wave1);
    t.equal(tracked.sockets.length, 2, 'one reconnect');

    // Wave 2: cut right after the frames leave, so the server may have some, all or none.
    await reattached();
    const wave2 = Array.from({ length: 400 }, (_, i) => append(`two-${i}`));
    setImmediate(() => current(tracked.sockets).terminate());
    // Wave 3: appends made while disconnected wait for the next session.
    await until(() => client.session === undefined, 'the disconnect');
    const wave3 = Array.from({ length: 100 }, (_, i) => append(`three-${i}`));
    await Promise.all([...wave2, ...wave3]);

    t.equal(tracked.sockets.length, 3, 'reconnected again');
    const writes = writeFramesIn(tracked.sent);
    t.ok(writes > 1500, `unanswered appends were sent again (${writes} write frames for 1500 appends)`);
    checkDense(t, [...expected.values()]);
    await checkLog(t, log, expected);
  });

  t.test('a tail resumes after reconnects without gaps or duplicates', async (t) => {
    const writer = await open({ device: 'writer' });
    const writerLog = await writer.lease('acme', 'resumed-tail');
    const padding = 'x'.repeat(2000);
    await Promise.all(Array.from({ length: 1500 }, (_, i) => writerLog.append(bytes(`${i}:${padding}`))));

    const tracked = trackedWebSocket();
    const reader = await open({ device: 'reader', WebSocket: tracked.WebSocket });
    const log = await reader.lease('acme', 'resumed-tail');
    const delivered: number[] = [];
    let caughtUp = 0;
    let deliveredAtCut = 0;
    log.tail(
      0,
      (entries) => {
        for (const entry of entries) {
          t.equal(text(entry.data).split(':')[0], String(entry.position), 'data matches its position');
          delivered.push(entry.position);
        }
        // Cut in the middle of the backlog (3 MB; the server sends about 1 MB per batch).
        if (deliveredAtCut === 0) {
          deliveredAtCut = delivered.length;
          current(tracked.sockets).terminate();
        }
      },
      { onCaughtUp: () => caughtUp++ },
    );
    await until(() => caughtUp === 1, 'catching up after the reconnect');
    t.ok(deliveredAtCut < 1500, `cut after ${deliveredAtCut} of 1500 backlog entries`);
    t.equal(tracked.sockets.length, 2, 'reconnected once');
    t.equal(delivered.length, 1500);

    // Cut while live, and write while the reader is away.
    current(tracked.sockets).terminate();
    await Promise.all(Array.from({ length: 200 }, (_, i) => writerLog.append(bytes(`${1500 + i}:`))));
    await until(() => caughtUp === 2, 'catching up after the second reconnect');
    await Promise.all(Array.from({ length: 50 }, (_, i) => writerLog.append(bytes(`${1700 + i}:`))));
    await until(() => delivered.length >= 1750, 'live entries after the reconnect');
    await sleep(50);
    t.same(
      delivered,
      Array.from({ length: 1750 }, (_, i) => i),
      'every position once, in order',
    );
    t.ok(tracked.sockets.length >= 3, 'reconnected twice');
  });

  t.test('a lost write is sent again from the lsn the server expects', async (t) => {
    let dropped = 0;
    const tracked = trackedWebSocket((frame) => {
      const lose = frame.op === OP_WRITE && frame.b === 3 && dropped === 0;
      if (lose) dropped++;
      return lose;
    });
    const client = await open({ WebSocket: tracked.WebSocket });
    const log = await client.lease('acme', 'lost-write');
    const positions = await Promise.all(Array.from({ length: 10 }, (_, i) => log.append(bytes(`w${i}`))));
    t.equal(dropped, 1, 'lsn 3 was lost once');
    t.same(
      positions,
      Array.from({ length: 10 }, (_, i) => i),
    );
    t.same(
      (await log.read(0, 20)).map((entry) => text(entry.data)),
      Array.from({ length: 10 }, (_, i) => `w${i}`),
      'in append order',
    );
    t.equal(writeFramesIn(tracked.sent), 10 + 8, 'one resend of lsn 3..10, not one per refused write');
    t.equal(tracked.sockets.length, 1, 'without a reconnect');
  });

  t.test('reads longer than one request, and across a reconnect', async (t) => {
    const tracked = trackedWebSocket();
    const client = await open({ WebSocket: tracked.WebSocket });
    const log = await client.lease('acme', 'long-read');
    await Promise.all(Array.from({ length: 2500 }, (_, i) => log.append(bytes(String(i)))));
    const all = await log.read(0, 3000);
    t.equal(all.length, 2500, 'more than the server limit per request');
    t.ok(
      all.every((entry, i) => entry.position === i && text(entry.data) === String(i)),
      'in order',
    );
    const reading = log.read(100, 2000);
    current(tracked.sockets).terminate();
    const part = await reading;
    t.equal(part.length, 2000);
    t.ok(
      part.every((entry, i) => entry.position === 100 + i && text(entry.data) === String(100 + i)),
      'a read cut by a reconnect completes without holes or repeats',
    );
  });

  t.test('a read longer than the server byte limit per answer resolves in full', async (t) => {
    const client = await open();
    const log = await client.lease('acme', 'byte-capped');
    const big = new Uint8Array(64 * 1024);
    await Promise.all(Array.from({ length: 100 }, () => log.append(big)));
    const outcome = await Promise.race([log.read(0, 100).then((entries) => entries.length), sleep(5000).then(() => 'no answer')]);
    t.equal(outcome, 100, 'read(0, 100) of 6.4 MB answered with all 100 entries');
  });

  t.test('errors reach the call they belong to', async (t) => {
    const client = await open();
    await t.rejects(client.lease('elsewhere', 'log'), { code: 'FORBIDDEN' }, 'no grant for the site');

    const writable = await client.lease('acme', 'read-only');
    await writable.append(bytes('kept'));
    const readOnly = await connect(server.url, { token: token(server, 'viewer', [{ site: 'acme', rights: 'r' }]) });
    clients.push(readOnly);
    const viewed = await readOnly.lease('acme', 'read-only');
    await t.rejects(viewed.append(bytes('nope')), { code: 'FORBIDDEN' }, 'a read-only grant cannot append');
    t.same(
      (await viewed.read(0, 10)).map((entry) => text(entry.data)),
      ['kept'],
      'but reads',
    );
    await t.rejects(readOnly.lease('acme', 'not-there'), { code: 'FORBIDDEN' }, 'nor create a log');

    // A second client object of the same device opens a new writer epoch: the first is fenced.
    const twin = await open();
    const first = await client.lease('acme', 'fenced');
    await first.append(bytes('before'));
    const second = await twin.lease('acme', 'fenced');
    await t.rejects(first.append(bytes('zombie')), { code: 'FENCED' }, 'the replaced writer is fenced');
    t.equal(await second.append(bytes('after')), 1, 'the new writer appends');
    t.same(
      (await first.read(0, 10)).map((entry) => text(entry.data)),
      ['before', 'after'],
      'a fenced writer still reads',
    );

    await t.rejects(connect(server.url, { token: 'not-a-token' }), { code: 'BAD_TOKEN' });
    await t.rejects(connect(server.url, { token: token(server, 'late', undefined, Math.floor(Date.now() / 1000) - 60) }), { code: 'TOKEN_EXPIRED' });
    await t.rejects(connect('ws://127.0.0.1:1/', { token: 'x' }), { code: 'DISCONNECTED' }, 'nothing listening');
    const big = new Uint8Array(client.session!.entryBytesMax + 1);
    await t.rejects(writable.append(big), { code: 'TOO_LARGE' }, 'refused before sending');
    t.equal(await writable.append(bytes('still fine')), 1, 'and no lsn was used up');
  });

  t.test('a stored writer epoch continues the writer in a new client object', async (t) => {
    const stored = new Map<string, number>();
    const writerEpochs = { get: (site: string, log: string) => stored.get(`${site}/${log}`), set: (site: string, log: string, epoch: number) => void stored.set(`${site}/${log}`, epoch) };
    const first = trackedWebSocket();
    const before = await connect(server.url, { token: token(server, 'stored'), writerEpochs, WebSocket: first.WebSocket });
    t.equal(await (await before.lease('acme', 'stored-epoch')).append(bytes('a')), 0);
    await before.close();
    const epoch = stored.get('acme/stored-epoch');
    t.type(epoch, 'number', 'the lease stored its writer epoch');

    const second = trackedWebSocket();
    const after = await open({ device: 'stored', writerEpochs, WebSocket: second.WebSocket });
    const log = await after.lease('acme', 'stored-epoch');
    t.equal(await log.append(bytes('b')), 1);
    const lease = second.sent.flatMap((message) => decodeFrames(message)).find((frame) => frame.op === OP_LEASE)!;
    t.same([lease.flags & LEASE_NEW_WRITER, lease.b], [0, epoch], 'leased with the stored epoch, not as a new writer');
    t.equal(stored.get('acme/stored-epoch'), epoch, 'the same epoch');
  });

  t.test('the native WebSocket path (Node --experimental-websocket, as in browsers)', async (t) => {
    const script = `
      const { connect } = await import(${JSON.stringify(pathToFileURL(join(repositoryRoot, 'src/client/index.ts')).href)});
      if (typeof globalThis.WebSocket !== 'function') throw new Error('no native WebSocket');
      const client = await connect(process.env.URL, { token: process.env.TOKEN });
      const log = await client.lease('acme', 'native');
      const positions = await Promise.all([1, 2, 3].map((i) => log.append(new Uint8Array([i]))));
      const entries = await log.read(0, 10);
      await client.close();
      console.log(JSON.stringify({ positions, entries: entries.map((e) => [e.position, [...e.data]]) }));
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ['--experimental-websocket', '--no-warnings', '--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: repositoryRoot,
      env: { ...process.env, URL: server.url, TOKEN: token(server, 'browser-like') },
    });
    t.same(JSON.parse(stdout), {
      positions: [0, 1, 2],
      entries: [
        [0, [1]],
        [1, [2]],
        [2, [3]],
      ],
    });
  });

  t.test('close rejects pending work and later calls', async (t) => {
    const client = await connect(server.url, { token: token(server) });
    const log = await client.lease('acme', 'closing');
    let tailError: Error | undefined;
    log.tail(0, () => {}, { onError: (error) => (tailError = error) });
    // Expectations are attached before the close, since the close rejects at once.
    const outcomes = [
      t.rejects(log.append(bytes('in flight')), { code: 'CLOSED' }),
      t.rejects(client.lease('acme', 'closing-2'), { code: 'CLOSED' }),
      log.read(0, 10).then(
        (entries) => t.ok(entries.length <= 1, 'a read answered before the close'),
        (error: unknown) => t.match(error, { code: 'CLOSED' }),
      ),
    ];
    await client.close();
    await Promise.all(outcomes);
    t.match(tailError, { code: 'CLOSED' }, 'the tail hears why it stopped');
    await t.rejects(client.lease('acme', 'closing'), { code: 'CLOSED' });
    await t.rejects(log.append(bytes('after')), { code: 'CLOSED' });
    await client.close();
  });

  t.test('a released log can be leased again and continues its writer', async (t) => {
    const tracked = trackedWebSocket();
    const client = await open({ WebSocket: tracked.WebSocket });
    const log = await client.lease('acme', 'released');
    t.equal(await log.append(bytes('one')), 0);
    log.release();
    await t.rejects(log.append(bytes('two')), { code: 'RELEASED' });
    const again = await client.lease('acme', 'released');
    t.not(again, log, 'a fresh log object');
    t.equal(again.position, 1);
    t.equal(await again.append(bytes('two')), 1);
    const leases = tracked.sent.flatMap((message) => decodeFrames(message)).filter((frame) => frame.op === OP_LEASE);
    t.same(
      leases.map((frame) => frame.flags),
      [1, 0],
      'only the first lease asks for a new writer epoch',
    );
  });

  t.test('a getToken token is refreshed on the live connection', async (t) => {
    const tracked = trackedWebSocket();
    let issued = 0;
    const client = await open({
      device: 'refreshing',
      WebSocket: tracked.WebSocket,
      // Each token lives 2-3 s: without a refresh the server closes the socket (4003) within 3 s.
      token: () => {
        issued++;
        return token(server, 'refreshing', undefined, inSeconds(3));
      },
    });
    const firstExpiry = client.session!.expiresAt;
    const log = await client.lease('acme', 'refreshed');
    const delivered: string[] = [];
    let tailError: Error | undefined;
    log.tail(0, (entries) => delivered.push(...entries.map((entry) => text(entry.data))), { onError: (error) => (tailError = error) });
    const positions: number[] = [];
    for (const deadline = Date.now() + 7000; Date.now() < deadline; await sleep(100)) positions.push(await log.append(bytes(`r${positions.length}`)));

    t.equal(tracked.sockets.length, 1, 'one connection throughout, past the expiry of several tokens');
    const refreshes = sentFrames(tracked.sent, OP_REFRESH).length;
    t.ok(refreshes >= 2, `refreshed on it (${refreshes} refreshes)`);
    t.equal(tracked.received.filter((frame) => frame.op === OP_ERROR).length, 0, 'no refresh (nor anything else) was refused');
    t.equal(issued, refreshes + 1, 'a fresh token for the connect and for each refresh');
    t.ok(client.session!.expiresAt > firstExpiry, 'the session reports the expiry of its latest token');
    t.same(
      positions,
      positions.map((_, i) => i),
      `${positions.length} appends in order across the refreshes`,
    );
    await until(() => delivered.length === positions.length, 'the tail to deliver every append');
    t.same(
      delivered,
      positions.map((_, i) => `r${i}`),
      'the tail lived through the refreshes',
    );
    t.equal(tailError, undefined);
  });

  t.test('a refused refresh falls back to a new connection with a new token', async (t) => {
    const tracked = trackedWebSocket();
    let issued = 0;
    const client = await open({
      device: 'refused-refresh',
      WebSocket: tracked.WebSocket,
      // The second token names another device: the server refuses that refresh (FORBIDDEN).
      token: () => (++issued === 2 ? token(server, 'another-device') : token(server, 'refused-refresh', undefined, inSeconds(issued === 1 ? 2 : 600))),
    });
    const log = await client.lease('acme', 'refused-refresh');
    const delivered: number[] = [];
    log.tail(0, (entries) => delivered.push(...entries.map((entry) => entry.position)));
    t.equal(await log.append(bytes('before')), 0);
    await until(() => tracked.sockets.length === 2 && client.session !== undefined, 'the reconnect', 5000);
    t.equal(sentFrames(tracked.sent, OP_REFRESH).length, 1, 'one refresh was tried');
    t.equal(errorsNamed(tracked.received, 'FORBIDDEN'), 1, 'and refused');
    t.equal(issued, 3, 'the new connection asked for a new token');
    t.equal(await log.append(bytes('after')), 1, 'the log goes on, on the new connection');
    await until(() => delivered.length === 2, 'the tail');
    t.same(delivered, [0, 1], 'the tail resumed without a gap or a repeat');
  });

  t.test('a string token is never refreshed', async (t) => {
    const tracked = trackedWebSocket();
    const client = await open({ WebSocket: tracked.WebSocket, token: token(server, 'fixed-token', undefined, inSeconds(2)) });
    await until(() => tracked.sockets.length > 1, 'the server to close the expired session (4003) and the client to reconnect', 5000);
    t.equal(sentFrames(tracked.sent, OP_REFRESH).length, 0, 'no refresh was sent');
    await client.close();
  });

  t.test('attest grants a site the token lacks, on this and later sessions', async (t) => {
    const tracked = trackedWebSocket();
    const client = await open({ device: 'attester', WebSocket: tracked.WebSocket });
    await t.rejects(client.lease('vault', 'secrets'), { code: 'FORBIDDEN' }, 'the token has no grant for the site');
    const exp = inSeconds(600);
    const grant = (claims: { device?: string } = {}): string => mintGrant({ grants: [{ site: 'vault', rights: 'rw' }], exp, ...claims }, server.secret);
    await t.rejects(client.attest(grant({ device: 'another-device' })), { code: 'FORBIDDEN' }, 'a grant bound to another device is refused');
    await t.rejects(client.attest(token(server, 'attester')), { code: 'BAD_TOKEN' }, 'a session token is not a grant');
    const accepted = grant({ device: 'attester' });
    t.same(await client.attest(accepted), { expiresAt: exp }, 'the grant is attested, with its expiry');
    const log = await client.lease('vault', 'secrets');
    t.equal(await log.append(bytes('one')), 0, 'the site opens');

    current(tracked.sockets).terminate();
    t.equal(await log.append(bytes('two')), 1, 'the log is leased again on the next session');
    t.equal(tracked.sockets.length, 2);
    const attests = sentFrames(tracked.sent, OP_ATTEST);
    t.equal(attests.length, 4, 'the accepted grant was attested again on the new session, the refused ones not');
    t.same(
      (await log.read(0, 10)).map((entry) => text(entry.data)),
      ['one', 'two'],
    );
  });

  t.test('a lease whose attested grant expires is revoked', async (t) => {
    const tracked = trackedWebSocket();
    const client = await open({ device: 'short-grant', WebSocket: tracked.WebSocket });
    await client.attest(mintGrant({ grants: [{ site: 'vault', rights: 'rw' }], exp: inSeconds(2) }, server.secret));
    const log = await client.lease('vault', 'short-grant');
    let tailError: Error | undefined;
    log.tail(0, () => {}, { onError: (error) => (tailError = error) });
    t.equal(await log.append(bytes('while granted')), 0);
    await until(() => tailError !== undefined, 'the grant to expire', 5000);
    t.equal(tracked.received.filter((frame) => frame.op === OP_REVOKED).length, 1, 'the server revoked the lease');
    t.match(tailError, { code: 'REVOKED' }, "the tail's onError fires with REVOKED");
    await t.rejects(log.append(bytes('too late')), { code: 'REVOKED' }, 'appends reject with REVOKED');
    await t.rejects(log.read(0, 1), { code: 'REVOKED' }, 'and reads');

    current(tracked.sockets).terminate();
    await until(() => tracked.sockets.length === 2 && client.session !== undefined, 'the reconnect');
    await t.rejects(client.lease('vault', 'short-grant'), { code: 'FORBIDDEN' }, 'the expired grant is not attested again');
    t.equal(sentFrames(tracked.sent, OP_ATTEST).length, 1);
    t.equal(sentFrames(tracked.sent, OP_LEASE).length, 2, 'the revoked log was not leased again on the new session');
  });

  t.test('a device revoked through the admin API: its logs fail with REVOKED', async (t) => {
    const tracked = trackedWebSocket();
    const victim = await open({ device: 'victim', WebSocket: tracked.WebSocket });
    const log = await victim.lease('acme', 'revoked');
    t.equal(await log.append(bytes('before')), 0);
    let tailError: Error | undefined;
    log.tail(0, () => {}, { onError: (error) => (tailError = error) });
    const bystander = await open({ device: 'bystander' });
    const shared = await bystander.lease('acme', 'revoked');

    // Appends in flight while the revocation lands: each rejects with REVOKED, none hangs.
    const inFlight = Array.from({ length: 20 }, (_, i) => log.append(bytes(`in flight ${i}`)).catch((error: unknown) => error));
    t.equal(await revoke(server, { device: 'victim' }), 200);
    const outcomes = await Promise.all(inFlight);
    t.ok(
      outcomes.every((outcome) => typeof outcome === 'number' || (outcome as { code?: string }).code === 'REVOKED'),
      'appends in flight either landed before the revocation or reject with REVOKED',
    );
    await t.rejects(log.append(bytes('after')), { code: 'REVOKED' }, 'later appends reject with REVOKED');
    await until(() => tailError !== undefined, "the tail's onError");
    t.match(tailError, { code: 'REVOKED' });
    await t.rejects(victim.lease('acme', 'revoked'), { code: 'REVOKED' }, 'the session is refused until a refresh');
    t.equal(tracked.sockets.length, 1, 'the string token cannot refresh; the client does not loop on reconnects');
    const landed = outcomes.filter((outcome) => typeof outcome === 'number').length;
    t.equal(await shared.append(bytes('bystander')), 1 + landed, 'another device is untouched');
  });

  t.test('a revoked token id: getToken refreshes the session on the same connection', async (t) => {
    const tracked = trackedWebSocket();
    let issued = 0;
    const client = await open({
      device: 'rejoin',
      WebSocket: tracked.WebSocket,
      token: () => mintToken({ sub: 'user-1', device: 'rejoin', grants: [{ site: 'acme', rights: 'rw' }] }, server.secret, { jti: `rejoin-${++issued}` }),
    });
    const log = await client.lease('acme', 'rejoin');
    t.equal(await log.append(bytes('a')), 0);
    t.equal(await revoke(server, { jti: 'rejoin-1' }), 200);
    await t.rejects(log.append(bytes('b')), { code: 'REVOKED' }, 'the lease was revoked');
    // The first op the revoked session refuses makes the client refresh with a new token.
    let again: LeasedLog | undefined;
    for (let attempt = 0; again === undefined; attempt++) {
      again = await client.lease('acme', 'rejoin').catch((error: { code?: string }) => {
        if (error.code !== 'REVOKED' || attempt > 20) throw error;
        return sleep(50).then(() => undefined);
      });
    }
    t.not(again, log, 'a new log object');
    t.equal(await again.append(bytes('c')), 1, 'the new lease appends, continuing the writer');
    t.equal(issued, 2, 'one new token');
    t.equal(sentFrames(tracked.sent, OP_REFRESH).length, 1, 'refreshed');
    t.equal(tracked.sockets.length, 1, 'on the same connection');
  });
});

t.test('the client rides out server restarts', async (t) => {
  let server = await startServer();
  const dataDir = server.dataDir;
  const relay = await startRelay(() => server.port);
  t.teardown(async () => {
    await relay.close();
    await server.kill();
    removeDataDir(dataDir);
  });
  let tokens = 0;
  const client = await connect(relay.url, {
    token: () => {
      tokens++;
      return token(server);
    },
  });
  t.teardown(() => client.close());
  const log = await client.lease('acme', 'restarts');
  const expected = new Map<string, number>();
  const append = (payload: string): Promise<void> => log.append(bytes(payload)).then((position) => void expected.set(payload, position));
  await Promise.all(Array.from({ length: 100 }, (_, i) => append(`before-${i}`)));
  const delivered: number[] = [];
  let caughtUp = 0;
  log.tail(0, (entries) => delivered.push(...entries.map((entry) => entry.position)), { onCaughtUp: () => caughtUp++ });
  await until(() => caughtUp === 1, 'the tail');

  // A clean stop, with appends made while the server is away.
  await server.stop();
  const whileDown = Promise.all(Array.from({ length: 50 }, (_, i) => append(`down-${i}`)));
  await until(() => client.session === undefined, 'the client to notice');
  await sleep(300);
  t.equal(expected.size, 100, 'appends wait while the server is down');
  server = await startServer({ dataDir });
  await whileDown;
  t.ok(tokens >= 2, `a fresh token for each connect (${tokens})`);

  // A crash in the middle of pipelined appends.
  const crashed = Promise.all(Array.from({ length: 300 }, (_, i) => append(`crash-${i}`)));
  await until(() => expected.size > 150 + 100, 'some appends of the last wave');
  await server.kill();
  server = await startServer({ dataDir });
  await crashed;

  checkDense(t, [...expected.values()]);
  await checkLog(t, log, expected);
  await until(() => delivered.length >= 450, 'the tail to deliver everything');
  t.same(
    delivered,
    Array.from({ length: 450 }, (_, i) => i),
    'the tail delivered every position once, in order',
  );
  t.ok(caughtUp >= 3, `the tail caught up after each restart (${caughtUp})`);
});

t.test('a rate-limited client gets every append exactly once, only slower', async (t) => {
  // 2 frames per 10 ms after a burst of 20: a wave of appends overdraws it, and the messages
  // after it are refused (RATE_LIMITED) until it refills.
  const server = await startServer({ args: ['--frames-per-second', '200', '--frames-burst', '20'] });
  t.teardown(async () => {
    await server.stop();
    removeDataDir(server.dataDir);
  });
  const tracked = trackedWebSocket();
  const client = await connect(server.url, { token: token(server), WebSocket: tracked.WebSocket });
  t.teardown(() => client.close());
  const log = await client.lease('acme', 'rate-limited');
  const delivered: number[] = [];
  log.tail(0, (entries) => delivered.push(...entries.map((entry) => entry.position)));
  const expected = new Map<string, number>();
  const append = (payload: string): Promise<void> =>
    log.append(bytes(payload)).then((position) => {
      t.notOk(expected.has(payload), `${payload} resolves once`);
      expected.set(payload, position);
    });
  const started = Date.now();
  let second: Promise<LeasedLog> | undefined;
  // Waves of appends, each sent when the one before resolved: each needs the budget again.
  // The server lets a message through while the budget is above 0 and charges all its
  // frames, so the first wave of 40 overdraws it.
  for (let wave = 0; wave < 27; wave++) {
    const appends = Array.from({ length: wave === 0 ? 40 : 10 }, (_, i) => append(`${wave}-${i}`));
    // Right behind the first wave, while the budget is overdrawn: this lease is refused.
    second ??= client.lease('acme', 'rate-limited-2');
    await Promise.all(appends);
  }
  const elapsed = Date.now() - started;

  const limited = errorsNamed(tracked.received, 'RATE_LIMITED');
  t.ok(limited > 0, `the server dropped messages (${limited} RATE_LIMITED)`);
  // Every wave but the last is paid for before the next gets through: 300 writes and their acks.
  t.ok(elapsed > 1000, `slower: 300 appends took ${elapsed} ms at 200 frames/s`);
  t.equal(tracked.sockets.length, 1, 'without reconnecting');
  checkDense(t, [...expected.values()]);
  await checkLog(t, log, expected);
  const leases = sentFrames(tracked.sent, OP_LEASE).length;
  t.ok(leases > 2, `the refused lease was sent again (${leases} lease frames for 2 logs)`);
  t.equal((await second!).name, 'rate-limited-2', 'and resolved');
  await until(() => delivered.length >= 300, 'the tail to deliver every append');
  t.same(
    delivered,
    Array.from({ length: 300 }, (_, i) => i),
    'the tail delivered every position once, in order',
  );
});

t.test('a writer over the unacked limit acks and sends again', async (t) => {
  const server = await startServer({ args: ['--unacked-writes-max', '16'] });
  t.teardown(async () => {
    await server.stop();
    removeDataDir(server.dataDir);
  });
  const tracked = trackedWebSocket();
  const client = await connect(server.url, { token: token(server), WebSocket: tracked.WebSocket });
  t.teardown(() => client.close());
  const log = await client.lease('acme', 'unacked');
  const expected = new Map<string, number>();
  await Promise.all(Array.from({ length: 200 }, (_, i) => log.append(bytes(`u${i}`)).then((position) => void expected.set(`u${i}`, position))));
  const refused = errorsNamed(tracked.received, 'UNACKED_LIMIT');
  t.ok(refused > 0, `the server refused writes over the limit (${refused} UNACKED_LIMIT)`);
  t.equal(tracked.sockets.length, 1, 'without reconnecting');
  checkDense(t, [...expected.values()]);
  await checkLog(t, log, expected);
  const writes = writeFramesIn(tracked.sent);
  t.ok(writes < 200 * 20, `without a storm of resends (${writes} write frames)`);
});
