// A chained hash table over SharedArrayBuffers, keyed by two u32 words, with struct-of-arrays
// value columns. A record is an integer slot: callers keep slots, never objects. Slots are
// stable for a record's life, including across growth, so one table's slot can be stored
// in another table's column. Growth doubles every array (amortized, off the steady state);
// column arrays are replaced then, so read `table.columns.x` after any insert.
import { invariant } from '../invariant.js';

export type ColumnKind = 'u8' | 'u32' | 'i32' | 'f64';
export type Schema = Record<string, ColumnKind>;
type ColumnArray<K extends ColumnKind> = K extends 'u8'
  ? Uint8Array
  : K extends 'u32'
    ? Uint32Array
    : K extends 'i32'
      ? Int32Array
      : Float64Array;
export type Columns<S extends Schema> = { [N in keyof S]: ColumnArray<S[N]> };

const NONE = -1;

function allocate(kind: ColumnKind, capacity: number): Uint8Array | Uint32Array | Int32Array | Float64Array {
  switch (kind) {
    case 'u8':
      return new Uint8Array(new SharedArrayBuffer(capacity));
    case 'u32':
      return new Uint32Array(new SharedArrayBuffer(capacity * 4));
    case 'i32':
      return new Int32Array(new SharedArrayBuffer(capacity * 4));
    case 'f64':
      return new Float64Array(new SharedArrayBuffer(capacity * 8));
  }
}

export function hashKey(key0: number, key1: number): number {
  let h = Math.imul(key0 ^ 0x9e3779b9, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h ^ key1, 0xc2b2ae35);
  h ^= h >>> 16;
  // 30 bits: a small integer (Smi) in V8, so returning it never allocates a heap number.
  return h & 0x3fffffff;
}

export class ChainedTable<S extends Schema> {
  readonly schema: S;
  capacity: number;
  count = 0;
  /** One past the highest slot ever used: iterate slots in [0, slotsUsed). */
  slotsUsed = 0;
  private buckets: Int32Array;
  private next: Int32Array;
  key0: Uint32Array;
  key1: Uint32Array;
  occupied: Uint8Array;
  columns: Columns<S>;
  private freeHead = NONE;

  constructor(schema: S, capacity: number) {
    invariant(capacity >= 8 && (capacity & (capacity - 1)) === 0, 'table capacity is a power of two');
    this.schema = schema;
    this.capacity = capacity;
    this.buckets = new Int32Array(new SharedArrayBuffer(capacity * 4)).fill(NONE);
    this.next = new Int32Array(new SharedArrayBuffer(capacity * 4));
    this.key0 = new Uint32Array(new SharedArrayBuffer(capacity * 4));
    this.key1 = new Uint32Array(new SharedArrayBuffer(capacity * 4));
    this.occupied = new Uint8Array(new SharedArrayBuffer(capacity));
    const columns: Record<string, unknown> = {};
    for (const name of Object.keys(schema)) columns[name] = allocate(schema[name]!, capacity);
    this.columns = columns as Columns<S>;
  }

  /** The slot holding (key0, key1), or -1. */
  find(key0: number, key1: number): number {
    key0 >>>= 0;
    key1 >>>= 0;
    let slot = this.buckets[hashKey(key0, key1) & (this.capacity - 1)]!;
    while (slot !== NONE) {
      if (this.key0[slot] === key0 && this.key1[slot] === key1) return slot;
      slot = this.next[slot]!;
    }
    return NONE;
  }

  /** Insert a key that is not present; returns its slot with zeroed columns. */
  insert(key0: number, key1: number): number {
    invariant(this.find(key0, key1) === NONE, 'inserted key is new');
    if ((this.count + 1) * 4 > this.capacity * 3) this.grow();
    let slot: number;
    if (this.freeHead !== NONE) {
      slot = this.freeHead;
      this.freeHead = this.next[slot]!;
    } else {
      slot = this.slotsUsed++;
    }
    invariant(this.occupied[slot] === 0, 'a free slot is unoccupied');
    this.key0[slot] = key0 >>> 0;
    this.key1[slot] = key1 >>> 0;
    this.occupied[slot] = 1;
    for (const name in this.columns) this.columns[name][slot] = 0;
    const bucket = hashKey(key0 >>> 0, key1 >>> 0) & (this.capacity - 1);
    this.next[slot] = this.buckets[bucket]!;
    this.buckets[bucket] = slot;
    this.count++;
    return slot;
  }

  /** Remove (key0, key1); returns its former slot, or -1 when absent. */
  remove(key0: number, key1: number): number {
    const bucket = hashKey(key0 >>> 0, key1 >>> 0) & (this.capacity - 1);
    let previous = NONE;
    let slot = this.buckets[bucket]!;
    while (slot !== NONE) {
      if (this.key0[slot] === key0 >>> 0 && this.key1[slot] === key1 >>> 0) {
        if (previous === NONE) this.buckets[bucket] = this.next[slot]!;
        else this.next[previous] = this.next[slot]!;
        this.occupied[slot] = 0;
        this.next[slot] = this.freeHead;
        this.freeHead = slot;
        this.count--;
        return slot;
      }
      previous = slot;
      slot = this.next[slot]!;
    }
    return NONE;
  }

  /** Length of the longest chain: a health check for the hash. */
  longestChain(): number {
    let longest = 0;
    for (let bucket = 0; bucket < this.capacity; bucket++) {
      let length = 0;
      for (let slot = this.buckets[bucket]!; slot !== NONE; slot = this.next[slot]!) length++;
      if (length > longest) longest = length;
    }
    return longest;
  }

  private grow(): void {
    const capacity = this.capacity * 2;
    const copy = <T extends Uint8Array | Uint32Array | Int32Array | Float64Array>(from: T, kind: ColumnKind): T => {
      const to = allocate(kind, capacity) as T;
      to.set(from);
      return to;
    };
    this.key0 = copy(this.key0, 'u32');
    this.key1 = copy(this.key1, 'u32');
    this.occupied = copy(this.occupied, 'u8');
    const next = new Int32Array(new SharedArrayBuffer(capacity * 4));
    next.set(this.next);
    this.next = next;
    for (const name in this.columns) {
      this.columns[name] = copy(this.columns[name], this.schema[name]!) as Columns<S>[typeof name];
    }
    this.capacity = capacity;
    this.buckets = new Int32Array(new SharedArrayBuffer(capacity * 4)).fill(NONE);
    for (let slot = 0; slot < this.slotsUsed; slot++) {
      if (this.occupied[slot] === 0) continue;
      const bucket = hashKey(this.key0[slot]!, this.key1[slot]!) & (capacity - 1);
      this.next[slot] = this.buckets[bucket]!;
      this.buckets[bucket] = slot;
    }
  }
}
