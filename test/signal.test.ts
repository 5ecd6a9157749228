// Signals and presence against a real server, through the SDK: presence lists handles and
// devices in attach order; joins and leaves are pushed (coalesced per batch); the leader is
// the first attached and the next one leads when it leaves; signals reach the target lease
// with the sender's handle and device; refusals: absent target, no signal right, too large.
import t from 'tap';
import { mintToken } from '../src/auth/token.js';
import { connect, type Attached, type Client, type LeasedLog, type Signal } from '../src/client/index.js';
import { RawClient, frames, OP_ERROR } from './helpers/raw-client.js';
import { removeDataDir, startServer, temporaryDataDir, type ServerProcess } from './helpers/server.js';

function token(server: ServerProcess, device: string, rights = 'rws'): string {
  return mintToken({ sub: `user-${device}`, device, grants: [{ site: 'room', rights }] }, server.secret, { expiresInSeconds: 600 });
}

/** Resolves when `log`'s presence satisfies `check`. */
function presenceWhere(log: LeasedLog, check: (presence: readonly Attached[]) => boolean): Promise<readonly Attached[]> {
  if (check(log.presence)) return Promise.resolve(log.presence);
  return new Promise((resolve) => {
    const stop = log.onPresence((presence) => {
      if (!check(presence)) return;
      stop();
      resolve(presence);
    });
  });
}

function nextSignal(log: LeasedLog): Promise<Signal> {
  return new Promise((resolve) => {
    const stop = log.onSignal((signal) => {
      stop();
      resolve(signal);
    });
  });
}

t.test('presence, leader and signals', async (t) => {
  const dataDir = temporaryDataDir();
  const server = await startServer({ dataDir, args: ['--signal-bytes-max', '1024'] });
  const clients: Client[] = [];
  t.teardown(async () => {
    for (const client of clients) await client.close().catch(() => undefined);
    await server.stop();
    removeDataDir(dataDir);
  });
  const open = async (device: string, rights?: string): Promise<LeasedLog> => {
    const client = await connect(server.url, { token: token(server, device, rights) });
    clients.push(client);
    return client.lease('room', 'call');
  };

  const alice = await open('alice');
  t.same(alice.presence, [{ handle: alice.handle, device: 'alice' }], 'alone: the presence is this lease');
  t.same(alice.leader, { handle: alice.handle, device: 'alice' }, 'alone: it leads');
  t.ok(alice.isLeader, 'isLeader');

  const bob = await open('bob');
  const expected = [
    { handle: alice.handle, device: 'alice' },
    { handle: bob.handle, device: 'bob' },
  ];
  t.same(bob.presence, expected, 'the lease reply lists both, in attach order');
  t.same(await presenceWhere(alice, (p) => p.length === 2), expected, 'the join is pushed to the first device');
  t.equal(bob.leader?.device, 'alice', 'the first attached leads');
  t.notOk(bob.isLeader, 'the second does not lead');

  // A signal both ways, with the sender's handle and device.
  const toBob = nextSignal(bob);
  await alice.signal(bob.handle, new TextEncoder().encode('offer'));
  const received = await toBob;
  t.equal(received.from, alice.handle, 'the signal names the sender handle');
  t.equal(received.device, 'alice', 'and the sender device');
  t.equal(new TextDecoder().decode(received.data), 'offer', 'and carries the bytes');
  const toAlice = nextSignal(alice);
  await bob.signal(received.from, new TextEncoder().encode('answer'));
  t.equal(new TextDecoder().decode((await toAlice).data), 'answer', 'the answer goes back to the sender handle');

  // Refusals.
  await t.rejects(alice.signal(987654, new Uint8Array(1)), { code: 'NOT_ATTACHED' }, 'a handle not attached to the log: NOT_ATTACHED');
  await t.rejects(alice.signal(bob.handle, new Uint8Array(2048)), { code: 'TOO_LARGE' }, 'over signalBytesMax: TOO_LARGE');
  const reader = await open('reader', 'r');
  await t.rejects(reader.signal(alice.handle, new Uint8Array(1)), { code: 'FORBIDDEN' }, 'without the signal right: FORBIDDEN');
  t.equal((await presenceWhere(alice, (p) => p.length === 3)).length, 3, 'a read-only lease is present too');

  // The leader leaves: the next one leads.
  alice.release();
  const afterLeave = await presenceWhere(bob, (p) => p.length === 2);
  t.same(afterLeave.map((a) => a.device), ['bob', 'reader'], 'the leave is pushed');
  t.equal(bob.leader?.device, 'bob', 'the next attached leads');
  t.ok(bob.isLeader, 'and knows it');
  await t.rejects(bob.signal(alice.handle, new Uint8Array(1)), { code: 'NOT_ATTACHED' }, 'a signal to the departed: NOT_ATTACHED');

  // A device that disconnects leaves too.
  await clients[2]!.close();
  t.same((await presenceWhere(bob, (p) => p.length === 1)).map((a) => a.device), ['bob'], 'a disconnect is a leave');
});

t.test('presence changes are coalesced per batch', async (t) => {
  const dataDir = temporaryDataDir();
  const server = await startServer({ dataDir });
  t.teardown(async () => {
    await server.stop();
    removeDataDir(dataDir);
  });
  const watcher = await RawClient.connected(server.url, token(server, 'watcher'));
  const watched = await watcher.lease('room', 'busy', 1);
  // One message of 20 leases from one session: one batch, one _presence for the watcher.
  const crowd = await RawClient.connected(server.url, token(server, 'crowd'));
  crowd.send(...Array.from({ length: 20 }, (_, i) => frames.lease('room', 'busy', 100 + i)));
  for (let i = 0; i < 20; i++) await crowd.next((f) => f.a === 100 + i);
  await new Promise((resolve) => setTimeout(resolve, 200));
  const pushes = watcher.received.filter((f) => f.op === 0x89 && f.a === watched.handle);
  t.ok(pushes.length >= 1 && pushes.length <= 2, `${pushes.length} _presence frame(s) for 20 joins in one message (one per batch it spanned)`);
  t.equal((pushes.at(-1)!.body!.presence as unknown[]).length, 21, 'the last lists all 21 leases');
  t.notOk(watcher.received.some((f) => f.op === OP_ERROR), 'no errors');
  await watcher.close();
  await crowd.close();
});
