// The shared-memory doorbell (ring / wait / waitAsync / sequence) and the fork-join barrier,
// across real worker threads.
import t from 'tap';
import { once } from 'node:events';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { DOORBELL_INT32S, Doorbell } from '../src/ring/doorbell.js';
import { BARRIER_INT32S, Barrier } from '../src/workers/barrier.js';
import { runParty, type Party } from './fixtures/barrier-party.js';
import { tsWorker } from './fixtures/ts-worker.js';

// Word offsets within a doorbell and a barrier (src/ring/doorbell.ts, src/workers/barrier.ts).
const SLEEPERS = 1;
const ARRIVED = 0;
const GENERATION = 1;

/** Shared words with one doorbell at `base`, with a spare word on either side. */
function doorbellWords(): { words: Int32Array; bell: Doorbell; base: number } {
  const base = 1;
  const words = new Int32Array(new SharedArrayBuffer((base + DOORBELL_INT32S + 1) * 4));
  return { words, bell: new Doorbell(words, base), base };
}

async function exitCode(worker: ReturnType<typeof tsWorker>): Promise<number> {
  const [code] = (await once(worker, 'exit')) as [number];
  return code;
}

t.test('doorbell: ring() bumps the sequence and touches only its own words', (t) => {
  const { words, bell, base } = doorbellWords();
  t.equal(DOORBELL_INT32S, 2);
  t.equal(bell.sequence(), 0);
  for (let i = 0; i < 3; i++) bell.ring();
  t.equal(bell.sequence(), 3, 'each ring bumps the sequence');
  t.equal(words[base + SLEEPERS], 0, 'nobody sleeps');
  t.same([words[0], words[base + DOORBELL_INT32S]], [0, 0], 'the neighbouring words are untouched');
  t.end();
});

t.test('doorbell: wait() returns the new sequence at once when it already moved, or the old one at its timeout', (t) => {
  const { words, bell, base } = doorbellWords();
  const seen = bell.sequence();
  bell.ring();
  t.equal(bell.wait(seen, Infinity), seen + 1, 'a ring before wait() is not missed');
  t.equal(bell.wait(seen + 1, 1), seen + 1, 'without a ring, wait() returns the unchanged sequence at its timeout');
  t.equal(words[base + SLEEPERS], 0, 'wait() leaves no sleeper behind');
  t.end();
});

t.test('doorbell: ring() wakes a worker sleeping in wait()', async (t) => {
  const { words, bell, base } = doorbellWords();
  const worker = tsWorker(new URL('./fixtures/doorbell-thread.ts', import.meta.url), { words: words.buffer, base, mode: 'sleep' });
  const reply = once(worker, 'message');
  const exited = exitCode(worker);
  // The worker counts itself as a sleeper right before Atomics.wait (after its spin).
  while (Atomics.load(words, base + SLEEPERS) === 0) await yieldToEventLoop();
  bell.ring();
  const [message] = (await reply) as [{ woke: number }];
  t.equal(message.woke, 1, 'the worker wakes with the rung sequence');
  t.equal(await exited, 0);
  t.equal(Atomics.load(words, base + SLEEPERS), 0, 'the worker no longer counts as a sleeper');
});

t.test('doorbell: waitAsync() returns undefined when the sequence already differs', (t) => {
  const { words, bell, base } = doorbellWords();
  const seen = bell.sequence();
  bell.ring();
  t.equal(bell.waitAsync(seen, Infinity), undefined);
  t.equal(words[base + SLEEPERS], 0, 'and leaves no sleeper behind');
  t.end();
});

t.test('doorbell: waitAsync() resolves when another thread rings', async (t) => {
  const { words, bell, base } = doorbellWords();
  const waiting = bell.waitAsync(bell.sequence(), Infinity);
  t.type(waiting, Promise, 'an unchanged sequence gives a promise');
  t.equal(Atomics.load(words, base + SLEEPERS), 1, 'the waiter counts as a sleeper, so ring() notifies');
  const exited = exitCode(tsWorker(new URL('./fixtures/doorbell-thread.ts', import.meta.url), { words: words.buffer, base, mode: 'ring' }));
  await waiting;
  t.equal(bell.sequence(), 1, 'the promise resolved on the ring');
  t.equal(Atomics.load(words, base + SLEEPERS), 0, 'the waiter is no longer a sleeper');
  t.equal(await exited, 0);
});

t.test('doorbell: waitAsync() resolves at its timeout without a ring', async (t) => {
  const { words, bell, base } = doorbellWords();
  // A pending Atomics.waitAsync does not keep Node's event loop alive; this timer does.
  const keepAlive = setTimeout(() => {}, 60_000);
  await bell.waitAsync(bell.sequence(), 1);
  clearTimeout(keepAlive);
  t.equal(bell.sequence(), 0, 'nothing rang');
  t.equal(words[base + SLEEPERS], 0, 'the timed-out waiter is no longer a sleeper');
});

t.test('barrier: a single party never waits and always is the last to arrive', (t) => {
  const words = new Int32Array(new SharedArrayBuffer(BARRIER_INT32S * 4));
  const barrier = new Barrier(words, 0, 1);
  t.same([barrier.arrive(), barrier.arrive(), barrier.arrive()], [true, true, true]);
  t.equal(words[GENERATION], 3, 'each arrival completes a generation');
  t.throws(() => new Barrier(words, 0, 0), 'a barrier needs at least one party');
  t.end();
});

t.test('barrier: three workers and the main thread move in lockstep for 1000 rounds', async (t) => {
  const parties = 4;
  const rounds = 1000;
  const base = 2;
  const shared: Omit<Party, 'index'> = {
    words: new SharedArrayBuffer((base + BARRIER_INT32S + 1) * 4),
    base,
    parties,
    rounds,
    counters: new SharedArrayBuffer(parties * 4),
    trues: new SharedArrayBuffer(2 * rounds * 4),
    mismatches: new SharedArrayBuffer(4),
  };
  const workers = [1, 2, 3].map((index) => tsWorker(new URL('./fixtures/barrier-party.ts', import.meta.url), { ...shared, index }));
  const exited = Promise.all(workers.map(exitCode));
  // Start only when every worker runs, so a worker that fails to load cannot leave this thread blocked.
  await Promise.all(workers.map((worker) => once(worker, 'message')));
  runParty({ ...shared, index: 0 });
  t.same(await exited, [0, 0, 0], 'every worker finishes');

  t.equal(new Int32Array(shared.mismatches)[0], 0, 'after every barrier, every party is on the same round');
  t.same([...new Int32Array(shared.counters)], [rounds, rounds, rounds, rounds], 'every party ran every round');
  const trues = [...new Int32Array(shared.trues)];
  t.equal(trues.length, 2 * rounds);
  t.same(
    trues.flatMap((count, generation) => (count === 1 ? [] : [{ generation, count }])),
    [],
    'arrive() returned true in exactly one thread per generation',
  );
  const words = new Int32Array(shared.words);
  t.equal(words[base + GENERATION], 2 * rounds, 'the generation counts every barrier');
  t.equal(words[base + ARRIVED], 0, 'no arrival is left over');
  t.same([words[0], words[1], words[base + BARRIER_INT32S]], [0, 0, 0], 'the neighbouring words are untouched');
});
