// Crash test: a real server process under pipelined load is killed with SIGKILL at random
// moments, several times. After each restart every acknowledged append is at its
// acknowledged position, positions are dense, nothing is stored twice; then the devices
// resend what was never acknowledged (RIFL) and still nothing is stored twice.
import t, { type Test } from 'tap';
import { randomInt } from 'node:crypto';
import { mintToken } from '../src/auth/token.js';
import { OP_ACKED, OP_NACKED } from '../src/net/protocol.js';
import { RawClient, frames, type ServerFrame } from './helpers/raw-client.js';
import { removeDataDir, startServer, temporaryDataDir, type ServerProcess } from './helpers/server.js';

const ROUNDS = 5;
const IN_FLIGHT = 200;
const DEVICES = [
  { device: 'crash-a', log: 'shared' },
  { device: 'crash-b', log: 'shared' },
  { device: 'crash-c', log: 'alone' },
];

interface DeviceState {
  device: string;
  log: string;
  writerEpoch: number;
  nextLsn: number;
  acked: Map<number, number>; // lsn → position
}

const states: DeviceState[] = DEVICES.map(({ device, log }) => ({ device, log, writerEpoch: 0, nextLsn: 1, acked: new Map() }));
const dataDir = temporaryDataDir();
t.teardown(() => removeDataDir(dataDir));

function payload(state: DeviceState, lsn: number): Buffer {
  return Buffer.from(`${state.device}|${lsn}`);
}

/**
 * Lease, resend everything unacknowledged, then (with `writeMore`) keep IN_FLIGHT new writes
 * in flight, until stopped.
 */
async function drive(server: ServerProcess, state: DeviceState, stopped: () => boolean, writeMore: boolean): Promise<void> {
  const token = mintToken({ sub: 'crash', device: state.device, grants: [{ site: 'crash', rights: 'rw' }] }, server.secret);
  let client: RawClient;
  let lease;
  try {
    client = await RawClient.connected(server.url, token);
    lease = await client.lease('crash', state.log, 1, { newWriter: state.writerEpoch === 0, writerEpoch: state.writerEpoch });
  } catch {
    return; // killed before the lease: nothing to do this round
  }
  state.writerEpoch = lease.writerEpoch;
  const record = (frame: ServerFrame): void => {
    if (frame.op === OP_ACKED && frame.a === lease.handle) {
      const previous = state.acked.get(frame.b);
      if (previous !== undefined && previous !== frame.position) throw new Error(`${state.device} lsn ${frame.b} acked at ${previous} and ${frame.position}`);
      state.acked.set(frame.b, frame.position);
    }
    if (frame.op === OP_NACKED) throw new Error(`${state.device} unexpected nack ${JSON.stringify(frame)}`);
  };
  let lowestUnacked = 1;
  const send = (lsn: number): void => {
    if (client.socket.readyState === client.socket.OPEN) client.send(frames.write(lease.shard, lease.handle, lsn, payload(state, lsn)));
  };
  for (let lsn = 1; lsn < state.nextLsn; lsn++) if (!state.acked.has(lsn)) send(lsn);
  while (!stopped() && client.socket.readyState === client.socket.OPEN) {
    while (writeMore && state.nextLsn - lowestUnacked < IN_FLIGHT) send(state.nextLsn++);
    try {
      record(await client.next((f) => f.op === OP_ACKED || f.op === OP_NACKED, 2000));
    } catch (error) {
      if (client.socket.readyState !== client.socket.OPEN) break;
      if (!(error instanceof Error && error.message.startsWith('timed out'))) throw error;
    }
    for (const frame of client.received.splice(0)) record(frame);
    const before = lowestUnacked;
    while (state.acked.has(lowestUnacked)) lowestUnacked++;
    // Acknowledge outcomes received, as a real client does, so the server can drop their records.
    if (lowestUnacked > before && client.socket.readyState === client.socket.OPEN) client.send(frames.ack(lease.shard, lease.handle, lowestUnacked - 1));
  }
  await client.close();
}

/** Read the whole log and check it against every acknowledgement ever received. */
async function verify(t: Test, server: ServerProcess, round: number): Promise<void> {
  const token = mintToken({ sub: 'check', device: 'checker', grants: [{ site: 'crash', rights: 'rw' }] }, server.secret);
  const client = await RawClient.connected(server.url, token);
  for (const name of new Set(DEVICES.map((d) => d.log))) {
    const lease = await client.lease('crash', name, 1);
    const entries: Buffer[] = [];
    while (entries.length < lease.tail) entries.push(...(await client.read(lease.shard, lease.handle, 2, entries.length, 1000)));
    t.equal(entries.length, lease.tail, `round ${round} ${name}: positions 0..${lease.tail - 1} are all there`);
    const tags = entries.map(String);
    t.equal(new Set(tags).size, tags.length, `round ${round} ${name}: no entry is stored twice`);
    for (const state of states.filter((s) => s.log === name)) {
      let missing = 0;
      for (const [lsn, position] of state.acked) if (tags[position] !== payload(state, lsn).toString()) missing++;
      t.equal(missing, 0, `round ${round} ${name}: all ${state.acked.size} acks of ${state.device} are at their positions`);
    }
  }
  await client.close();
}

t.test(`SIGKILL under load, ${ROUNDS} times`, async (t) => {
  for (let round = 1; round <= ROUNDS; round++) {
    const server = await startServer({ dataDir, workers: 2 });
    await verify(t, server, round);
    let stop = false;
    const running = states.map((state) => drive(server, state, () => stop, true));
    await new Promise((resolve) => setTimeout(resolve, randomInt(300, 1500)));
    await server.kill();
    stop = true;
    await Promise.all(running);
    t.comment(`round ${round}: killed with ${states.map((s) => `${s.device} ${s.acked.size} acked of ${s.nextLsn - 1}`).join(', ')}`);
  }
  // A last clean run: every write ever sent gets its outcome, exactly once.
  const server = await startServer({ dataDir, workers: 2 });
  let stop = false;
  const pending = () => states.some((state) => state.acked.size < state.nextLsn - 1);
  const running = states.map((state) => drive(server, state, () => stop || !pending(), false));
  for (let waited = 0; pending() && waited < 200; waited++) await new Promise((resolve) => setTimeout(resolve, 50));
  stop = true;
  await Promise.all(running);
  for (const state of states) t.equal(state.acked.size, state.nextLsn - 1, `${state.device}: every write sent across ${ROUNDS} crashes was acknowledged`);
  await verify(t, server, ROUNDS + 1);
  t.equal(await server.stop(), 0);
});
