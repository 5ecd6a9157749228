// Integration: a real server process on 127.0.0.1, a real LMDB in a temp dir, and the plain
// protocol client from test/helpers. Each test starts from what PROTOCOL.md promises.
import t from 'tap';
import WebSocket from 'ws';
import { mintToken, type Grant } from '../src/auth/token.js';
import { ENTRIES_CAUGHT_UP, NACK_AT_MISMATCH, NACK_LSN_GAP, OP_ACKED, OP_ENTRIES, OP_ERROR, OP_NACKED } from '../src/net/protocol.js';
import { RawClient, errorName, frames, type ServerFrame } from './helpers/raw-client.js';
import { removeDataDir, startServer, temporaryDataDir, type ServerProcess } from './helpers/server.js';
import { frame } from '../src/testing/wire.js';

const dataDir = temporaryDataDir();
let server: ServerProcess;

t.before(async () => {
  server = await startServer({ dataDir, workers: 2 });
});
t.teardown(async () => {
  await server.stop();
  removeDataDir(dataDir);
});

function token(device: string, grants: Grant[] = [{ site: 'acme', rights: 'rw' }], exp?: number): string {
  return mintToken({ sub: `user-${device}`, device, grants, ...(exp === undefined ? {} : { exp }) }, server.secret);
}

async function device(name: string, grants?: Grant[]): Promise<RawClient> {
  return RawClient.connected(server.url, token(name, grants));
}

function isError(name: string) {
  return (frame: ServerFrame) => frame.op === OP_ERROR && errorName(frame) === name;
}

t.test('append, read and tail one log', async (t) => {
  const client = await device('d-append');
  const log = await client.lease('acme', 'doc-1', 1, { newWriter: true });
  t.equal(log.tail, 0, 'a new log is empty');
  t.equal(log.nextLsn, 1, 'a new writer starts at lsn 1');
  t.same(log.body.presence, [{ handle: log.handle, device: 'd-append' }], 'presence lists the attached lease: its handle and device');
  t.same(log.body.leader, { handle: log.handle, device: 'd-append' }, 'the first attached lease leads');
  const payloads = Array.from({ length: 50 }, (_, i) => Buffer.from(`entry ${i}`));
  client.send(...payloads.map((data, i) => frames.write(log.shard, log.handle, i + 1, data)));
  for (let lsn = 1; lsn <= 50; lsn++) {
    const outcome = await client.outcome(log.handle, lsn);
    t.equal(outcome.op, OP_ACKED, `lsn ${lsn} acknowledged`);
    t.equal(outcome.position, lsn - 1, `lsn ${lsn} at position ${lsn - 1}`);
  }
  const read = await client.read(log.shard, log.handle, 2, 10, 15);
  t.same(read.map(String), payloads.slice(10, 25).map(String), 'read returns the range');
  client.send(frames.tail(log.shard, log.handle, 45, 77));
  const backlog = await client.next((f) => f.op === OP_ENTRIES && f.b === 77);
  t.equal(backlog.position, 45, 'the backlog starts at from');
  t.same(backlog.entries!.map(String), payloads.slice(45).map(String), 'the backlog is the tail of the log');
  t.ok(backlog.flags & ENTRIES_CAUGHT_UP, 'the backlog ends caught up');
  client.send(frames.write(log.shard, log.handle, 51, Buffer.from('live')));
  const live = await client.next((f) => f.op === OP_ENTRIES && f.b === 77);
  t.equal(live.position, 50, 'the live entry follows without a gap');
  t.same(live.entries!.map(String), ['live']);
  await client.close();
});

t.test('RIFL: duplicates return the original position, gaps are nacked, acked lsns are stale', async (t) => {
  const client = await device('d-rifl');
  const log = await client.lease('acme', 'rifl', 1, { newWriter: true });
  client.send(frames.write(log.shard, log.handle, 1, Buffer.from('a')), frames.write(log.shard, log.handle, 2, Buffer.from('b')));
  t.equal((await client.outcome(log.handle, 1)).position, 0);
  t.equal((await client.outcome(log.handle, 2)).position, 1);
  client.send(frames.write(log.shard, log.handle, 1, Buffer.from('a')));
  const duplicate = await client.outcome(log.handle, 1);
  t.equal(duplicate.op, OP_ACKED, 'a duplicate is acknowledged');
  t.equal(duplicate.position, 0, 'with its original position');
  client.send(frames.write(log.shard, log.handle, 5, Buffer.from('e')));
  const gap = await client.outcome(log.handle, 5);
  t.equal(gap.op, OP_NACKED);
  t.equal(gap.flags, NACK_LSN_GAP, 'a gap is nacked');
  t.equal(gap.c, 3, 'naming the lsn the server expects');
  client.send(frames.ack(log.shard, log.handle, 2), frames.write(log.shard, log.handle, 2, Buffer.from('b')));
  const stale = await client.next(isError('STALE_LSN'));
  t.equal(stale.c, 2, 'the error names the lsn');
  t.same((await client.read(log.shard, log.handle, 9, 0, 10)).map(String), ['a', 'b'], 'nothing was written twice');
  await client.close();
});

t.test('the same writer survives a reconnect and a duplicate after it', async (t) => {
  const first = await device('d-reconnect');
  const log = await first.lease('acme', 'reconnect', 1, { newWriter: true });
  first.send(frames.write(log.shard, log.handle, 1, Buffer.from('x')));
  t.equal((await first.outcome(log.handle, 1)).position, 0);
  await first.close();
  const second = await device('d-reconnect');
  const again = await second.lease('acme', 'reconnect', 1, { writerEpoch: log.writerEpoch });
  t.equal(again.writerEpoch, log.writerEpoch, 'the writer epoch is kept');
  t.equal(again.nextLsn, 2, 'the server expects the next lsn');
  second.send(frames.write(again.shard, again.handle, 1, Buffer.from('x')));
  t.equal((await second.outcome(again.handle, 1)).position, 0, 'a retry after reconnect returns the original position');
  await second.close();
});

t.test('a new writer epoch fences the zombie session', async (t) => {
  const zombie = await device('d-fence');
  const old = await zombie.lease('acme', 'fence', 1, { newWriter: true });
  const fresh = await device('d-fence');
  const renewed = await fresh.lease('acme', 'fence', 1, { newWriter: true });
  t.equal(renewed.writerEpoch, old.writerEpoch + 1, 'a new epoch opened');
  zombie.send(frames.write(old.shard, old.handle, 1, Buffer.from('zombie')));
  const fenced = await zombie.next(isError('FENCED'));
  t.equal(fenced.body!.writerEpoch, renewed.writerEpoch, 'fenced by the new epoch');
  fresh.send(frames.write(renewed.shard, renewed.handle, 1, Buffer.from('fresh')));
  t.equal((await fresh.outcome(renewed.handle, 1)).op, OP_ACKED, 'the new epoch writes');
  const stale = await RawClient.connected(server.url, token('d-fence'));
  stale.send(frames.lease('acme', 'fence', 5, { writerEpoch: old.writerEpoch }));
  t.ok(await stale.next(isError('FENCED')), 'leasing with the old epoch is fenced');
  await Promise.all([zombie.close(), fresh.close(), stale.close()]);
});

t.test('two writers racing with the same `at` never both win', async (t) => {
  const alice = await device('d-alice');
  const bob = await device('d-bob');
  const a = await alice.lease('acme', 'race', 1, { newWriter: true });
  const b = await bob.lease('acme', 'race', 1, { newWriter: true });
  let tail = 0;
  for (let round = 1; round <= 40; round++) {
    alice.send(frames.write(a.shard, a.handle, round, Buffer.from(`alice ${round}`), tail));
    bob.send(frames.write(b.shard, b.handle, round, Buffer.from(`bob ${round}`), tail));
    const [fromAlice, fromBob] = await Promise.all([alice.outcome(a.handle, round), bob.outcome(b.handle, round)]);
    const winners = [fromAlice, fromBob].filter((f) => f.op === OP_ACKED);
    t.equal(winners.length, 1, `round ${round}: exactly one write wins`);
    t.equal(winners[0]!.position, tail, `round ${round}: at the expected position`);
    const loser = [fromAlice, fromBob].find((f) => f.op === OP_NACKED)!;
    t.equal(loser.flags, NACK_AT_MISMATCH, `round ${round}: the other is refused`);
    t.equal(loser.position, tail + 1, `round ${round}: with the new tail`);
    tail++;
  }
  t.equal((await alice.read(a.shard, a.handle, 3, 0, 100)).length, 40, 'one entry per round');
  await Promise.all([alice.close(), bob.close()]);
});

t.test('refusals: each bad input gets its documented answer and the session goes on', async (t) => {
  const before = await RawClient.open(server.url);
  before.send(frames.read(0, 1, 1, 0, 1));
  t.ok(await before.next(isError('NOT_CONNECTED')), 'ops before connect');
  before.send(frames.connect(token('d-version'), 1, 2));
  t.ok(await before.next(isError('BAD_VERSION')), 'another protocol version');
  await t.resolves(waitClosed(before), 'closed after a refused connect');
  t.equal(before.closeCode, 4001);

  const forged = await RawClient.open(server.url);
  forged.send(frames.connect(mintToken({ sub: 'u', device: 'd', grants: [] }, 'another-secret-entirely')));
  t.ok(await forged.next(isError('BAD_TOKEN')), 'a token with a bad signature');
  const expired = await RawClient.open(server.url);
  expired.send(frames.connect(token('d-expired', undefined, Math.floor(Date.now() / 1000) - 60)));
  t.ok(await expired.next(isError('TOKEN_EXPIRED')), 'an expired token');

  const client = await device('d-refusals', [{ site: 'acme', rights: 'r' }]);
  client.send(frames.lease('other-site', 'x', 1));
  t.ok(await client.next(isError('FORBIDDEN')), 'a site without a grant');
  client.send(frames.lease('acme', 'never-created', 2));
  t.ok(await client.next(isError('FORBIDDEN')), 'creating a log without the write right');
  const wrongShard = frames.lease('acme', 'doc-1', 3);
  wrongShard.writeUInt16LE((wrongShard.readUInt16LE(6) + 1) % 1024, 6);
  client.send(wrongShard);
  t.ok(await client.next(isError('WRONG_SHARD')), 'a lease on the wrong shard');
  const readOnly = await client.lease('acme', 'doc-1', 4);
  client.send(frames.write(readOnly.shard, readOnly.handle, 1, Buffer.from('no')));
  t.ok(await client.next(isError('FORBIDDEN')), 'a write with a read-only grant');
  client.send(frames.read(readOnly.shard, 999_999, 5, 0, 1));
  t.ok(await client.next(isError('UNKNOWN_HANDLE')), 'a handle this session never leased');
  client.send(frame(0x42, 8, 0, {}));
  t.ok(await client.next(isError('UNKNOWN_OP')), 'an unknown op');
  const lying = frames.read(readOnly.shard, readOnly.handle, 6, 0, 1);
  lying.writeUInt32LE(1000, 2);
  client.send(lying);
  t.ok(await client.next(isError('BAD_FRAME')), 'a payload length beyond the message');
  client.send(frames.lease('acme', 'doc-1', 7).subarray(0, 20));
  t.ok(await client.next(isError('BAD_FRAME')), 'a truncated frame');
  client.send(frames.connect(token('d-refusals')));
  t.ok(await client.next(isError('ALREADY_CONNECTED')), 'a second connect');
  const entries = await client.read(readOnly.shard, readOnly.handle, 8, 0, 1000);
  t.ok(entries.length > 0, 'the session still works after all that');
  client.socket.send('text is not allowed');
  await waitClosed(client);
  t.equal(client.closeCode, 4000, 'a text message closes with 4000');
  await Promise.all([forged.close(), expired.close()]);
});

t.test('large entries: 1 MiB round-trips, larger is refused', async (t) => {
  const client = await device('d-large');
  const log = await client.lease('acme', 'large', 1, { newWriter: true });
  const big = Buffer.alloc(1 << 20, 7);
  big.write('start', 0);
  client.send(frames.write(log.shard, log.handle, 1, big));
  t.equal((await client.outcome(log.handle, 1)).position, 0, 'a 1 MiB entry is appended');
  const [read] = await client.read(log.shard, log.handle, 2, 0, 1);
  t.ok(read!.equals(big), 'and read back intact');
  client.send(frames.write(log.shard, log.handle, 2, Buffer.alloc((1 << 20) + 1)));
  const tooLarge = await client.next(isError('TOO_LARGE'));
  t.same([tooLarge.b, tooLarge.c], [log.handle, 2], 'one byte more is refused, naming the write by handle and lsn');
  await client.close();
});

t.test('restart: tails, epochs, writers and RIFL state are recovered', async (t) => {
  const before = await device('d-restart');
  const log = await before.lease('acme', 'restart', 1, { newWriter: true });
  before.send(...Array.from({ length: 20 }, (_, i) => frames.write(log.shard, log.handle, i + 1, Buffer.from(`r${i}`))));
  for (let lsn = 1; lsn <= 20; lsn++) await before.outcome(log.handle, lsn);
  before.send(frames.ack(log.shard, log.handle, 10));
  // A log holding a single entry, at position 0 (the edge of the recovery's backwards scan).
  const single = await before.lease('acme', 'restart-single', 1, { newWriter: true });
  before.send(frames.write(single.shard, single.handle, 1, Buffer.from('only')));
  t.equal((await before.outcome(single.handle, 1)).position, 0, 'the single entry is at position 0');
  await before.close();
  t.equal(await server.stop(), 0, 'SIGTERM stops the server with exit code 0');
  server = await startServer({ dataDir, workers: 2 });
  t.match(server.output(), /recovered \d+ logs, \d+ entries/, 'the server reports what it recovered');
  const after = await device('d-restart');
  const again = await after.lease('acme', 'restart', 1, { writerEpoch: log.writerEpoch });
  t.equal(again.tail, 20, 'the tail is recovered');
  t.equal(again.body.epoch, log.body.epoch, 'the log epoch is unchanged');
  t.equal(again.nextLsn, 21, 'the writer continues after its last lsn');
  after.send(frames.write(again.shard, again.handle, 15, Buffer.from('r14')));
  t.equal((await after.outcome(again.handle, 15)).position, 14, 'an unacknowledged lsn still returns its position');
  after.send(frames.write(again.shard, again.handle, 5, Buffer.from('r4')));
  t.ok(await after.next(isError('STALE_LSN')), 'an acknowledged lsn is stale');
  t.same((await after.read(again.shard, again.handle, 2, 0, 100)).map(String), Array.from({ length: 20 }, (_, i) => `r${i}`), 'every entry is back');
  t.same((await after.read(again.shard, again.handle, 3, 7, 5)).map(String), Array.from({ length: 5 }, (_, i) => `r${i + 7}`), 'a read from the middle returns exactly its range');
  const singleAgain = await after.lease('acme', 'restart-single', 1, { newWriter: true });
  t.equal(singleAgain.tail, 1, 'a log with one entry recovers its tail');
  after.send(frames.write(singleAgain.shard, singleAgain.handle, 1, Buffer.from('second')));
  t.equal((await after.outcome(singleAgain.handle, 1)).position, 1, 'the next entry lands after it, not on it');
  t.same((await after.read(singleAgain.shard, singleAgain.handle, 4, 0, 10)).map(String), ['only', 'second'], 'both are there');
  await after.close();
});

t.test('a second server on the same data directory or port refuses to start', async (t) => {
  await t.rejects(startServer({ dataDir, workers: 1 }), /data directory .* is in use by process \d+/, 'it names the running server');
  const otherDir = temporaryDataDir();
  await t.rejects(startServer({ dataDir: otherDir, workers: 1, port: server.port }), /cannot start: cannot listen on 127\.0\.0\.1:\d+/, 'the port is not shared');
  removeDataDir(otherDir);
  const client = await device('d-still-there');
  t.ok(await client.lease('acme', 'doc-1', 1), 'the first server is unaffected');
  await client.close();
});

function waitClosed(client: RawClient): Promise<void> {
  if (client.socket.readyState === WebSocket.CLOSED) return Promise.resolve();
  return new Promise((resolve) => client.socket.once('close', () => resolve()));
}

