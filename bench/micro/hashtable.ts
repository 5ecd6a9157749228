// Micro-benchmarks of ChainedTable (src/hashtable/chained-table.ts): find (hit and miss),
// insert + remove, at a few fill levels of one table, and growth.
// Run: node --expose-gc --import=tsx bench/micro/hashtable.ts [--quick]
//
// Keys look like the logs table's: (logId = sequence × 1024 + shard, 0). The table has 64 Ki
// slots and grows at 3/4 load (49 152 records); the fill levels stay below that. Insert and
// remove are measured as a pair (a new key in, the oldest out) because either alone would
// move the fill level while benny runs it millions of times.
import { ChainedTable } from '../../src/hashtable/chained-table.js';
import { blackhole, isMain, runStandalone, type MicroCase } from './harness.js';

// A schema shaped like the logs table's (a few f64, u32 and i32 columns).
const SCHEMA = { tail: 'f64', committed: 'f64', epoch: 'u32', firstLease: 'i32', tailers: 'u32' } as const;
const CAPACITY = 1 << 16;
const PROBES = 4096;

// Sequences wrap at 2^20, so keys stay below 2^30 (small integers in V8, as real ids are):
// a u32 key of 2^31 or more is a heap number, boxed when passed to insert() or remove().
const SEQUENCE_MASK = (1 << 20) - 1;

function logId(sequence: number, high = 0): number {
  // Shards spread like shardOf's hash would (an odd multiplier), sequence in the high bits.
  return (high | (sequence << 10) | (Math.imul(sequence, 0x9e3779b1) >>> 22)) >>> 0;
}

interface Filled {
  table: ChainedTable<typeof SCHEMA>;
  /** Keys present, in insertion order (a FIFO for insert + remove). */
  present: Uint32Array;
  /** The next sequence never inserted. */
  nextSequence: number;
}

function filled(count: number, high = 0): Filled {
  const table = new ChainedTable(SCHEMA, CAPACITY);
  const present = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    present[i] = logId(i + 1, high);
    table.insert(present[i]!, 0);
  }
  if (table.capacity !== CAPACITY) throw new Error('the fill level made the table grow');
  return { table, present, nextSequence: count + 1 };
}

function findHitCase(label: string, count: number): MicroCase {
  const { table, present } = filled(count);
  // Probe keys spread over the whole table, visited in a fixed pseudo-random order.
  const probes = new Uint32Array(PROBES);
  for (let i = 0; i < PROBES; i++) probes[i] = present[(Math.imul(i + 1, 2654435761) >>> 0) % count]!;
  let i = 0;
  return {
    name: `find hit @ ${label}`,
    fn: () => {
      blackhole.value ^= table.find(probes[i]!, 0);
      i = (i + 1) & (PROBES - 1);
    },
  };
}

function findMissCase(label: string, count: number): MicroCase {
  const { table, nextSequence } = filled(count);
  const probes = new Uint32Array(PROBES);
  for (let i = 0; i < PROBES; i++) probes[i] = logId(nextSequence + 1 + i * 7);
  for (let i = 0; i < PROBES; i++) if (table.find(probes[i]!, 0) !== -1) throw new Error('a miss probe is present');
  let i = 0;
  return {
    name: `find miss @ ${label}`,
    fn: () => {
      blackhole.value ^= table.find(probes[i]!, 0);
      i = (i + 1) & (PROBES - 1);
    },
  };
}

/** `high`: bits or-ed into every key (1 << 31: keys a u32 can hold but a small integer cannot). */
function insertRemoveCase(label: string, count: number, high = 0): MicroCase {
  const state = filled(count, high);
  const { table, present } = state;
  let oldest = 0;
  let sequence = state.nextSequence;
  return {
    name: `insert+remove (fill held) @ ${label}${high === 0 ? '' : ', keys >= 2^31'}`,
    unit: 'pair',
    fn: () => {
      const key = logId(sequence, high);
      sequence = (sequence + 1) & SEQUENCE_MASK;
      if (sequence === 0) sequence = 1;
      const slot = table.insert(key, 0);
      table.columns.tail[slot] = 1;
      table.remove(present[oldest]!, 0);
      present[oldest] = key;
      oldest = oldest + 1 === count ? 0 : oldest + 1;
    },
  };
}

/** A table built from capacity 8 to 4096 records: 9 doublings, per insert. */
function growthCase(): MicroCase {
  const RECORDS = 4096;
  const keys = new Uint32Array(RECORDS);
  for (let i = 0; i < RECORDS; i++) keys[i] = logId(i + 1);
  return {
    name: 'growth: insert 4096 from capacity 8 (10 doublings)',
    unit: 'insert',
    units: RECORDS,
    fn: () => {
      const table = new ChainedTable(SCHEMA, 8);
      for (let i = 0; i < RECORDS; i++) table.insert(keys[i]!, 0);
      blackhole.value ^= table.capacity;
    },
  };
}

export function hashtableCases(): MicroCase[] {
  const levels: [string, number][] = [
    ['25%', CAPACITY / 4],
    ['50%', CAPACITY / 2],
    ['74%', Math.floor(CAPACITY * 0.74)],
  ];
  return [
    ...levels.map(([label, count]) => findHitCase(label, count)),
    ...levels.map(([label, count]) => findMissCase(label, count)),
    ...levels.map(([label, count]) => insertRemoveCase(label, count)),
    insertRemoveCase('50%', CAPACITY / 2, 2 ** 31),
    growthCase(),
  ];
}

if (isMain(import.meta.url)) await runStandalone('hashtable', hashtableCases);
