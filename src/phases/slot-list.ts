// A growable list of integers over an Int32Array: per-batch scratch lists of slots that are
// cleared, not reallocated, between batches.
export class SlotList {
  items: Int32Array;
  length = 0;

  constructor(capacity: number) {
    this.items = new Int32Array(capacity);
  }

  push(value: number): number {
    if (this.length === this.items.length) {
      const grown = new Int32Array(this.items.length * 2);
      grown.set(this.items);
      this.items = grown;
    }
    this.items[this.length] = value;
    return this.length++;
  }

  clear(): void {
    this.length = 0;
  }
}
