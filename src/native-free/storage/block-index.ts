// The entry index of one log: its blocks (runs of consecutive positions stored together),
// sorted by position, each an item of ITEM_FIELDS numbers in one array. A read finds the
// block of a position by binary search and reads that block (≤ BLOCK_BYTES_MAX plus one
// entry); the entries inside are walked, not indexed — 40 bytes per block, not per entry.
// The array is a plain array of doubles, not a Float64Array: most logs have a few blocks,
// and a typed array costs ~200 bytes more per log (its ArrayBuffer and backing store).
import { invariant } from '../../invariant.js';

const ITEM_FIELDS = 5;
const FIRST = 0; // first position
const BYTES_BEFORE = 1; // bytes of the log before the first entry
const PLACE = 2; // stream location of the block (format.ts location())
const BYTE_LENGTH = 3; // the block's bytes on disk, entry headers included
const COUNT = 4; // entries

/** Told of each block that leaves the index (trimmed, or replaced by a copy). */
export interface BlockRemoval {
  blockRemoved(place: number, byteLength: number): void;
}

export class BlockIndex {
  private items: number[] = [];
  /** Items [start, end) are live; those before `start` were dropped from the front. */
  start = 0;
  end = 0;

  firstPosition(item: number): number {
    return this.items[item * ITEM_FIELDS + FIRST]!;
  }

  bytesBefore(item: number): number {
    return this.items[item * ITEM_FIELDS + BYTES_BEFORE]!;
  }

  place(item: number): number {
    return this.items[item * ITEM_FIELDS + PLACE]!;
  }

  byteLength(item: number): number {
    return this.items[item * ITEM_FIELDS + BYTE_LENGTH]!;
  }

  count(item: number): number {
    return this.items[item * ITEM_FIELDS + COUNT]!;
  }

  /** The item holding `position`, or -1. */
  find(position: number): number {
    let low = this.start;
    let high = this.end;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.items[middle * ITEM_FIELDS + FIRST]! <= position) low = middle + 1;
      else high = middle;
    }
    const item = low - 1;
    if (item < this.start || position >= this.firstPosition(item) + this.count(item)) return -1;
    return item;
  }

  /**
   * Index a block of `count` entries from `first`. Items overlapping its positions are
   * replaced (a copy carried forward by compaction supersedes the original; the original of
   * a copy seen again, after a crash kept both, is superseded the same way).
   */
  put(first: number, count: number, bytesBefore: number, place: number, byteLength: number, removal: BlockRemoval): void {
    invariant(count > 0, 'a block holds entries');
    if (this.end === this.start) {
      // The first block: an array of exactly one item (growing one by push over-allocates 3×).
      this.items = [first, bytesBefore, place, byteLength, count];
      this.start = 0;
      this.end = 1;
      return;
    }
    const last = this.end - 1;
    let at = this.end;
    if (first < this.firstPosition(last) + this.count(last)) {
      // Out of order: remove the overlapped items [low, high), insert at low.
      const low = this.firstEndingAfter(first);
      let high = low;
      while (high < this.end && this.firstPosition(high) < first + count) {
        removal.blockRemoved(this.place(high), this.byteLength(high));
        high++;
      }
      this.items.copyWithin(low * ITEM_FIELDS, high * ITEM_FIELDS, this.end * ITEM_FIELDS);
      this.end -= high - low;
      this.items.length = this.end * ITEM_FIELDS;
      at = low;
    }
    const fromStart = at - this.start;
    this.makeRoom();
    at = this.start + fromStart;
    for (let field = 0; field < ITEM_FIELDS; field++) this.items.push(0);
    this.items.copyWithin((at + 1) * ITEM_FIELDS, at * ITEM_FIELDS, this.end * ITEM_FIELDS);
    const base = at * ITEM_FIELDS;
    this.items[base + FIRST] = first;
    this.items[base + BYTES_BEFORE] = bytesBefore;
    this.items[base + PLACE] = place;
    this.items[base + BYTE_LENGTH] = byteLength;
    this.items[base + COUNT] = count;
    this.end++;
  }

  /** The first item whose entries reach past `position` (items are sorted and disjoint). */
  private firstEndingAfter(position: number): number {
    let low = this.start;
    let high = this.end;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.firstPosition(middle) + this.count(middle) <= position) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /** Drop the items whose entries all lie below `position` (retention). */
  dropBelow(position: number, removal: BlockRemoval): void {
    while (this.start < this.end && this.firstPosition(this.start) + this.count(this.start) <= position) {
      removal.blockRemoved(this.place(this.start), this.byteLength(this.start));
      this.start++;
    }
    if (this.start === this.end) {
      this.start = this.end = 0;
      this.items.length = 0;
    }
  }

  /** Room for one more item at the end: reuse the dropped front once it is most of the array. */
  private makeRoom(): void {
    if (this.start === 0 || this.start < this.end - this.start) return;
    this.items.copyWithin(0, this.start * ITEM_FIELDS, this.end * ITEM_FIELDS);
    this.end -= this.start;
    this.start = 0;
    this.items.length = this.end * ITEM_FIELDS;
  }
}
