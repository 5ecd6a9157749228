// The chained hash table: insert/find/remove, collision chains, growth with stable slots,
// free-slot reuse, and a long randomized run against a Map.
import t from 'tap';
import { ChainedTable, hashKey } from '../src/hashtable/chained-table.js';
import { Prng } from '../src/testing/prng.js';

const schema = { value: 'f64', tag: 'u32', signed: 'i32', small: 'u8' } as const;
type Values = { value: number; tag: number; signed: number; small: number };

function setValues(table: ChainedTable<typeof schema>, slot: number, values: Values): void {
  table.columns.value[slot] = values.value;
  table.columns.tag[slot] = values.tag;
  table.columns.signed[slot] = values.signed;
  table.columns.small[slot] = values.small;
}

function getValues(table: ChainedTable<typeof schema>, slot: number): Values {
  const { value, tag, signed, small } = table.columns;
  return { value: value[slot]!, tag: tag[slot]!, signed: signed[slot]!, small: small[slot]! };
}

/** `count` distinct keys in `bucket` of a table of `capacity`: key0 varies when `vary` is 0, else key1. */
function collidingKeys(capacity: number, bucket: number, count: number, vary: 0 | 1, fixed: number): [number, number][] {
  const keys: [number, number][] = [];
  for (let n = 0; keys.length < count; n++) {
    const key: [number, number] = vary === 0 ? [n, fixed] : [fixed, n];
    if ((hashKey(key[0], key[1]) & (capacity - 1)) === bucket) keys.push(key);
  }
  return keys;
}

t.test('insert, find and remove', (t) => {
  const table = new ChainedTable(schema, 16);
  const a = table.insert(1, 2);
  const b = table.insert(2, 1);
  const c = table.insert(0xffffffff, 0xfffffffe);
  t.equal(new Set([a, b, c]).size, 3, 'each key has its own slot');
  t.equal(table.count, 3);
  t.same([table.find(1, 2), table.find(2, 1), table.find(0xffffffff, 0xfffffffe)], [a, b, c], 'find() returns each slot');
  t.equal(table.find(1, 1), -1, 'an absent key is not found');
  t.same([table.key0[c], table.key1[c], table.occupied[c]], [0xffffffff, 0xfffffffe, 1], 'the slot holds its key');
  t.same(getValues(table, a), { value: 0, tag: 0, signed: 0, small: 0 }, 'a new slot has zeroed columns');
  t.throws(() => table.insert(1, 2), 'inserting a present key is refused');

  t.equal(table.remove(1, 2), a, 'remove() returns the former slot');
  t.equal(table.find(1, 2), -1, 'a removed key is gone');
  t.equal(table.occupied[a], 0, 'its slot is unoccupied');
  t.equal(table.remove(1, 2), -1, 'removing it again finds nothing');
  t.equal(table.count, 2);
  t.same([table.find(2, 1), table.find(0xffffffff, 0xfffffffe)], [b, c], 'the other keys stay');
  t.end();
});

t.test('keys that share a bucket chain, and deletes anywhere in the chain keep the rest', (t) => {
  const capacity = 16;
  const bucket = 5;
  // Both words must be compared: half the chain differs only in key0, half only in key1.
  const keys = [...collidingKeys(capacity, bucket, 4, 0, 9), ...collidingKeys(capacity, bucket, 4, 1, 3)];
  const [absent] = collidingKeys(capacity, bucket, 1, 1, 4);
  const table = new ChainedTable(schema, capacity);
  const entries = keys.map(([key0, key1], i) => {
    const slot = table.insert(key0, key1);
    setValues(table, slot, { value: i + 0.5, tag: i, signed: -i, small: i });
    return { name: `(${key0}, ${key1})`, key0, key1, slot };
  });
  t.equal(table.capacity, capacity, 'eight keys fit without growth');
  t.equal(table.longestChain(), 8, 'all eight keys chain in one bucket');
  t.equal(table.find(absent![0], absent![1]), -1, 'an absent key in the same bucket is not found');
  t.equal(table.remove(absent![0], absent![1]), -1, 'nor removed');

  // Remove from the middle, then the head (the last inserted), then the tail (the first).
  const live = new Set(entries);
  for (const entry of [3, 7, 0, 5, 4].map((i) => entries[i]!)) {
    t.equal(table.remove(entry.key0, entry.key1), entry.slot, `remove ${entry.name}`);
    live.delete(entry);
    t.equal(table.find(entry.key0, entry.key1), -1, `${entry.name} is gone`);
    t.same(
      [...live].filter((other) => table.find(other.key0, other.key1) !== other.slot).map((other) => other.name),
      [],
      'every other key still finds its slot',
    );
    t.equal(table.longestChain(), live.size, 'the chain shrinks by one');
  }
  const [key0, key1] = keys[6]!;
  t.same(getValues(table, table.find(key0, key1)), { value: 6.5, tag: 6, signed: -6, small: 6 }, 'a remaining key keeps its columns');
  t.end();
});

t.test('growth keeps slots and column values', (t) => {
  const table = new ChainedTable(schema, 8);
  const count = 20_000;
  const capacities = [table.capacity];
  const keyOf = (i: number): [number, number] => [Math.imul(i, 7919) >>> 0, i];
  const slots: number[] = [];
  const failures: string[] = [];
  for (let i = 0; i < count; i++) {
    const slot = table.insert(...keyOf(i));
    slots.push(slot);
    setValues(table, slot, { value: i / 4, tag: i, signed: -i, small: i & 0xff });
    if (table.count * 4 > table.capacity * 3) failures.push(`over 3/4 full at ${table.count} keys`);
    if (table.capacity !== capacities.at(-1)) {
      capacities.push(table.capacity);
      // After each growth, every key so far still finds the slot it was given.
      for (let j = 0; j <= i; j++) if (table.find(...keyOf(j)) !== slots[j]) failures.push(`key ${j} moved when growing to ${table.capacity}`);
    }
  }
  t.same(failures, [], 'the table grows before it is over 3/4 full, and slots never move');
  t.same(capacities, [8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768], 'the capacity doubles each time');
  t.equal(table.count, count);
  t.equal(table.slotsUsed, count, 'slots are handed out densely');
  const wrong = slots.filter((slot, i) => {
    const values = getValues(table, slot);
    return values.value !== i / 4 || values.tag !== i || values.signed !== -i || values.small !== (i & 0xff);
  });
  t.equal(wrong.length, 0, 'every column value survives growth');
  t.end();
});

t.test('freed slots are reused, with zeroed columns', (t) => {
  const table = new ChainedTable(schema, 16);
  const slots = Array.from({ length: 10 }, (_, i) => {
    const slot = table.insert(i, 0);
    setValues(table, slot, { value: 1, tag: 1, signed: 1, small: 1 });
    return slot;
  });
  const freed = [2, 5, 8].map((i) => table.remove(i, 0));
  t.same(freed, [slots[2], slots[5], slots[8]]);
  const reused = [100, 101, 102].map((key0) => table.insert(key0, 0));
  const ascending = (a: number, b: number): number => a - b;
  t.same([...reused].sort(ascending), [...freed].sort(ascending), 'new keys take the freed slots');
  t.equal(table.slotsUsed, 10, 'no new slot was used');
  t.same(reused.map((slot) => getValues(table, slot)), Array(3).fill({ value: 0, tag: 0, signed: 0, small: 0 }), 'reused slots start zeroed');
  t.equal(table.insert(103, 0), 10, 'with no free slot left, the next slot is new');
  t.end();
});

t.test('100k random operations agree with a Map', (t) => {
  const prng = new Prng(42);
  const table = new ChainedTable(schema, 8);
  const model = new Map<string, { key0: number; key1: number; slot: number; values: Values }>();
  const failures: string[] = [];
  const fail = (message: string): void => {
    if (failures.length < 10) failures.push(message);
  };
  const randomValues = (): Values => ({ value: prng.next() * 1e6, tag: prng.below(2 ** 32), signed: prng.below(2 ** 32) | 0, small: prng.below(256) });
  const verifyAll = (step: number): void => {
    const slots = new Set<number>();
    for (const [name, entry] of model) {
      if (table.find(entry.key0, entry.key1) !== entry.slot) fail(`step ${step}: ${name} not at slot ${entry.slot}`);
      else if (JSON.stringify(getValues(table, entry.slot)) !== JSON.stringify(entry.values)) fail(`step ${step}: ${name} columns differ`);
      slots.add(entry.slot);
    }
    if (slots.size !== model.size) fail(`step ${step}: live keys share slots`);
    let occupied = 0;
    for (let slot = 0; slot < table.slotsUsed; slot++) occupied += table.occupied[slot]!;
    if (occupied !== model.size) fail(`step ${step}: ${occupied} occupied slots for ${model.size} keys`);
  };

  let inserts = 0;
  let removes = 0;
  let maxCount = 0;
  for (let step = 0; step < 100_000; step++) {
    // A small key space, so operations often hit present keys; now and then a full-range key.
    const key0 = prng.chance(0.05) ? prng.below(2 ** 32) : prng.below(3000);
    const key1 = prng.below(4);
    const name = `${key0},${key1}`;
    const entry = model.get(name);
    const found = table.find(key0, key1);
    if (found !== (entry?.slot ?? -1)) fail(`step ${step}: find(${name}) = ${found}, expected ${entry?.slot ?? -1}`);
    // Phases of mostly inserting and mostly removing, so the table grows and shrinks.
    const insertChance = Math.floor(step / 20_000) % 2 === 0 ? 0.7 : 0.3;
    if (entry === undefined && prng.chance(insertChance)) {
      const slot = table.insert(key0, key1);
      const values = randomValues();
      setValues(table, slot, values);
      model.set(name, { key0, key1, slot, values });
      inserts++;
    } else if (entry !== undefined && prng.chance(1 - insertChance)) {
      if (table.remove(key0, key1) !== entry.slot) fail(`step ${step}: remove(${name}) returned the wrong slot`);
      model.delete(name);
      removes++;
    } else if (entry !== undefined) {
      entry.values = randomValues();
      setValues(table, entry.slot, entry.values);
    }
    if (table.count !== model.size) fail(`step ${step}: count ${table.count}, expected ${model.size}`);
    maxCount = Math.max(maxCount, model.size);
    if (step % 5000 === 0) verifyAll(step);
  }
  verifyAll(100_000);
  t.same(failures, [], 'find, remove, count, slots and columns match the model throughout');
  t.ok(inserts > 20_000 && removes > 20_000, `many inserts (${inserts}) and removes (${removes})`);
  t.ok(table.slotsUsed <= maxCount, 'freed slots were reused: never more slots than the most keys at once');
  t.end();
});

t.test('chains stay short for sequential keys', (t) => {
  const patterns: [string, (i: number) => [number, number]][] = [
    ['(i, 0)', (i) => [i, 0]],
    ['(7, i)', (i) => [7, i]],
    ['(i << 16, i >>> 16)', (i) => [(i << 16) >>> 0, i >>> 16]],
  ];
  for (const [name, keyOf] of patterns) {
    const table = new ChainedTable({}, 1 << 12);
    for (let i = 0; i < 100_000; i++) table.insert(...keyOf(i));
    t.ok(table.longestChain() <= 12, `${name}: the longest chain is ${table.longestChain()}`);
  }
  t.end();
});

t.test('find() accepts keys spelled as signed int32, like insert() and remove()', (t) => {
  const table = new ChainedTable(schema, 16);
  const slot = table.insert(-1, 7);
  t.equal(table.key0[slot], 0xffffffff, 'insert() stores -1 as 0xffffffff');
  t.equal(table.find(0xffffffff, 7), slot, 'find() with the u32 spelling finds it');
  t.equal(table.remove(-1, 7), slot, 'remove() with the int32 spelling finds it');
  table.insert(-1, 7);
  t.equal(table.find(-1, 7), slot, 'find() with the int32 spelling finds it too');
  t.throws(() => table.insert(-1, 7), 'so inserting the same key again is refused');
  t.equal(table.count, 1, 'and the key is in the table once');
  t.end();
});
