// The SPSC record ring: round trips, wrap-around at the end of the buffer, backpressure,
// publish/refresh visibility, the position counters wrapping at 2^30, and a real producer thread.
import t from 'tap';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { Prng } from '../src/testing/prng.js';
import { Ring, copyRingBytes, createRingArena, createRingBuffer } from '../src/ring/ring.js';
import { fillRecord, recordLength, recordMismatch } from './fixtures/ring-records.js';
import { tsWorker } from './fixtures/ts-worker.js';

// Control word indices in src/ring/ring.ts.
const WRITE_POSITION = 0;
const READ_POSITION = 16;
const LENGTH_BYTES = 4;
// Positions are byte counters modulo 2^30.
const POSITION_WRAP = 2 ** 30;
const position = (n: number): number => n & (POSITION_WRAP - 1);
const align8 = (n: number): number => (n + 7) & ~7;
/** Ring bytes a record of `length` payload bytes takes: its length word and payload, padded. */
const recordBytes = (length: number): number => align8(LENGTH_BYTES + length);

/** A producer and a consumer over one new ring, both positions preset to `start`. */
function ringPair(capacity: number, start = 0): { producer: Ring; consumer: Ring; control: Int32Array } {
  const buffer = createRingBuffer(capacity);
  const control = new Int32Array(buffer, 0, 32);
  Atomics.store(control, WRITE_POSITION, start | 0);
  Atomics.store(control, READ_POSITION, start | 0);
  return { producer: new Ring(buffer), consumer: new Ring(buffer), control };
}

/** Reserve and fill record `seq`; returns the payload offset, or -1 when the ring is full. */
function put(ring: Ring, seq: number, length: number): number {
  const offset = ring.reserve(length);
  if (offset >= 0) fillRecord(ring.bytes, offset, seq, length);
  return offset;
}

/** Read every record up to the last refresh, copying its payload. */
function takeAll(ring: Ring): { length: number; offset: number; payload: Buffer }[] {
  const records = [];
  for (let offset = ring.peek(); offset >= 0; offset = ring.peek()) {
    records.push({ length: ring.recordLength, offset, payload: Buffer.from(ring.bytes.subarray(offset, offset + ring.recordLength)) });
    ring.advance();
  }
  return records;
}

t.test('records round-trip with their content', (t) => {
  const { producer, consumer } = ringPair(1024);
  const payloads = [Buffer.from('hello'), Buffer.alloc(0), Buffer.alloc(100, 0xab), Buffer.alloc(producer.recordBytesMax, 7)];
  for (const payload of payloads) {
    const offset = producer.reserve(payload.length);
    t.equal(producer.recordLength, payload.length, 'reserve() notes the record length');
    payload.copy(producer.bytes, offset);
  }
  producer.publish();
  const total = payloads.reduce((sum, payload) => sum + recordBytes(payload.length), 0);
  t.equal(consumer.refresh(), total, 'refresh() returns the published bytes');
  t.same(
    takeAll(consumer).map((record) => record.payload),
    payloads,
    'the consumer reads the same payloads in order',
  );
  t.equal(consumer.peek(), -1, 'nothing is left');
  t.equal(consumer.readPosition, total, 'the read position is past every record');
  t.equal(producer.occupancy(), total, 'read but unreleased records still occupy the ring');
  consumer.release();
  t.equal(producer.occupancy(), 0, 'release() frees them');
  t.end();
});

t.test('reserved records are invisible until publish()', (t) => {
  const { producer, consumer } = ringPair(256);
  put(producer, 1, 5);
  put(producer, 2, 0);
  t.equal(producer.unpublishedBytes, recordBytes(5) + recordBytes(0), 'unpublishedBytes counts reserved records');
  t.equal(consumer.refresh(), 0, 'the consumer sees no bytes before publish');
  t.equal(consumer.peek(), -1, 'and no record');
  t.equal(producer.occupancy(), 0, 'unpublished records do not count as occupancy');
  producer.publish();
  t.equal(producer.unpublishedBytes, 0, 'publish() leaves nothing unpublished');
  t.equal(consumer.refresh(), recordBytes(5) + recordBytes(0), 'the consumer sees both records after publish');
  t.same(
    takeAll(consumer).map((record) => record.length),
    [5, 0],
  );
  put(producer, 3, 9);
  t.equal(consumer.refresh(), 0, 'a later unpublished record stays invisible');
  t.end();
});

t.test('refreshTo() reads only up to the given position', (t) => {
  const { producer, consumer, control } = ringPair(256);
  const published: number[] = [];
  for (const [seq, length] of [[1, 10], [2, 30], [3, 0]] as const) {
    put(producer, seq, length);
    producer.publish();
    published.push(Atomics.load(control, WRITE_POSITION) >>> 0);
  }
  t.equal(consumer.refreshTo(published[0]!), recordBytes(10), 'refreshTo() returns the bytes up to the position');
  t.same(takeAll(consumer).map((record) => record.length), [10], 'only the first record is readable');
  t.equal(consumer.refreshTo(published[2]!), recordBytes(30) + recordBytes(0), 'the rest becomes readable');
  const rest = takeAll(consumer);
  t.same(rest.map((record) => record.length), [30, 0]);
  t.equal(recordMismatch(consumer.bytes, rest[0]!.offset, 2, 30), -1, 'with its content');
  t.end();
});

t.test('a full ring refuses records until the consumer releases', (t) => {
  const { producer, consumer } = ringPair(256);
  t.equal(producer.recordBytesMax, 64, 'a record carries up to a quarter of the ring');
  t.throws(() => producer.reserve(65), 'a record above recordBytesMax is refused outright');
  for (let seq = 0; seq < 4; seq++) t.equal(put(producer, seq, 60), seq * 64 + LENGTH_BYTES, `record ${seq} fits`);
  t.equal(producer.reserve(60), -1, 'a fifth record does not fit');
  t.equal(producer.reserve(0), -1, 'nor does an empty one');
  t.equal(producer.unpublishedBytes, 256, 'a refused reserve() changes nothing');
  producer.publish();
  t.equal(producer.occupancy(), 256, 'the ring is full');

  consumer.refresh();
  t.equal(consumer.peek(), LENGTH_BYTES, 'the consumer reads the first record');
  consumer.advance();
  t.equal(producer.reserve(60), -1, 'a record read but not released still holds its room');
  consumer.release();
  t.equal(producer.occupancy(), 192, 'release() frees the record');
  t.equal(put(producer, 4, 60), LENGTH_BYTES, 'the freed room at the start takes a record');
  t.equal(producer.reserve(0), -1, 'and the ring is full again');
  producer.publish();
  consumer.refresh();
  const records = takeAll(consumer);
  t.same(records.map((record) => record.length), [60, 60, 60, 60]);
  t.equal(recordMismatch(consumer.bytes, records[3]!.offset, 4, 60), -1, 'the record after the wrap has its content');
  t.end();
});

t.test('a record that would straddle the end wraps to offset 0', (t) => {
  const { producer, consumer } = ringPair(256);
  // Records of 24, 64, 64, 64 bytes: the write position is 216, 40 bytes before the end.
  const lengths = [20, 60, 60, 60];
  lengths.forEach((length, seq) => put(producer, seq, length));
  producer.publish();
  consumer.refresh();
  consumer.peek();
  consumer.advance();
  consumer.release();
  // 24 bytes free at the start, 40 at the end.
  t.equal(put(producer, 4, 28), 216 + LENGTH_BYTES, 'a 32-byte record fits before the end');
  // 8 bytes left at the end, 24 free at the start: 32 bytes free, but not in one piece.
  t.equal(producer.reserve(28), -1, 'a 32-byte record that would need the 8 end bytes as padding is refused');
  t.equal(put(producer, 5, 20), LENGTH_BYTES, 'a 24-byte record wraps to offset 0');
  t.equal(producer.reserve(0), -1, 'the padding and the wrapped record fill the ring');
  producer.publish();
  consumer.refresh();
  const records = takeAll(consumer);
  t.same(
    records.map((record) => [record.offset, record.length]),
    [[28, 60], [92, 60], [156, 60], [216 + LENGTH_BYTES, 28], [LENGTH_BYTES, 20]],
    'the consumer skips the padding at the end',
  );
  t.equal(recordMismatch(consumer.bytes, records[3]!.offset, 4, 28), -1, 'the record before the wrap has its content');
  t.equal(recordMismatch(consumer.bytes, records[4]!.offset, 5, 20), -1, 'the wrapped record has its content');
  t.equal(consumer.readPosition, 256 + 24, 'the read position counts the padding');
  t.end();
});

interface Exercise {
  wraps: number;
  refusals: number;
  emptyRecords: number;
  maxRecords: number;
  failures: string[];
}

/**
 * Fill and drain the ring for `cycles` rounds with random record sizes (0 and recordBytesMax
 * among them), random batch sizes and partial reads and releases, checking every step against
 * a model of the documented layout: a record takes align8(4 + length) bytes, and one that would
 * cross the end is preceded by padding up to the end and placed at offset 0.
 */
function exercise(producer: Ring, consumer: Ring, start: number, seed: number, cycles: number): Exercise {
  const prng = new Prng(seed);
  const { capacity } = producer;
  const max = producer.recordBytesMax;
  const result: Exercise = { wraps: 0, refusals: 0, emptyRecords: 0, maxRecords: 0, failures: [] };
  const expect = (actual: unknown, expected: unknown, what: string): void => {
    if (actual !== expected && result.failures.length < 10) result.failures.push(`${what}: got ${String(actual)}, expected ${String(expected)}`);
  };
  // Records written and not yet read: their sequence number, length and end position.
  const pending: { seq: number; length: number; end: number }[] = [];
  let written = position(start);
  let published = written;
  let read = written;
  let released = written;
  let publishedRecords = 0;
  let seq = 0;
  for (let cycle = 0; cycle < cycles; cycle++) {
    const batch = 1 + prng.below(12);
    for (let i = 0; i < batch; i++) {
      const length = prng.chance(0.1) ? 0 : prng.chance(0.1) ? max : prng.below(max + 1);
      const needed = recordBytes(length);
      const offset = written & (capacity - 1);
      const padding = capacity - offset < needed ? capacity - offset : 0;
      const fits = position(written - released) + padding + needed <= capacity;
      const reserved = put(producer, seq, length);
      if (!fits) {
        expect(reserved, -1, `cycle ${cycle}: reserve(${length}) in a full ring`);
        result.refusals++;
        break;
      }
      expect(reserved, (padding > 0 ? 0 : offset) + LENGTH_BYTES, `cycle ${cycle}: reserve(${length}) offset`);
      if (padding > 0) result.wraps++;
      if (length === 0) result.emptyRecords++;
      if (length === max) result.maxRecords++;
      written = position(written + padding + needed);
      pending.push({ seq: seq++, length, end: written });
    }
    expect(producer.unpublishedBytes, position(written - published), `cycle ${cycle}: unpublishedBytes`);
    if (prng.chance(0.8)) {
      producer.publish();
      published = written;
      publishedRecords = pending.length;
    }
    expect(producer.occupancy(), position(published - released), `cycle ${cycle}: occupancy after publish`);

    expect(consumer.refresh(), position(published - read), `cycle ${cycle}: refresh() returns the unread published bytes`);
    const readAll = prng.chance(0.3);
    const reads = readAll ? publishedRecords : prng.below(publishedRecords + 1);
    for (let i = 0; i < reads; i++) {
      const record = pending.shift()!;
      publishedRecords--;
      const offset = consumer.peek();
      expect(offset >= 0, true, `cycle ${cycle}: record ${record.seq} is readable`);
      expect(consumer.recordLength, record.length, `cycle ${cycle}: record ${record.seq} length`);
      expect(recordMismatch(consumer.bytes, offset, record.seq, record.length), -1, `cycle ${cycle}: record ${record.seq} content mismatch at`);
      consumer.advance();
      read = record.end;
      expect(consumer.readPosition, read, `cycle ${cycle}: read position after record ${record.seq}`);
    }
    if (readAll) expect(consumer.peek(), -1, `cycle ${cycle}: nothing left after reading everything published`);
    if (prng.chance(0.7)) {
      consumer.release();
      released = read;
    }
    expect(producer.occupancy(), position(published - released), `cycle ${cycle}: occupancy after release`);
  }
  return result;
}

t.test('fill/drain cycles with varied record sizes wrap around many times', (t) => {
  const { producer, consumer } = ringPair(1024);
  const result = exercise(producer, consumer, 0, 1, 5000);
  t.same(result.failures, [], 'every reserve, read and position matches the model');
  t.ok(result.wraps > 200, `records wrapped to offset 0 (${result.wraps} times)`);
  t.ok(result.refusals > 200, `the ring was full (${result.refusals} times)`);
  t.ok(result.emptyRecords > 100 && result.maxRecords > 100, 'empty and maximal records were among them');
  t.end();
});

t.test('positions wrap past 2^30 without losing records', (t) => {
  // The last start is a control word with the top bits set, which the ring reads modulo 2^30.
  for (const start of [POSITION_WRAP - 4096, POSITION_WRAP - 32, POSITION_WRAP - 8, 0xfffff000 | 0]) {
    const { producer, consumer, control } = ringPair(1024, start);
    const result = exercise(producer, consumer, start, start, 500);
    t.same(result.failures, [], `from 0x${(start >>> 0).toString(16)}: every reserve, read and position matches the model`);
    t.ok(Atomics.load(control, WRITE_POSITION) < position(start), 'the write counter wrapped');
    t.ok(Atomics.load(control, READ_POSITION) < position(start), 'the read counter wrapped');
  }

  const { producer, consumer, control } = ringPair(64, POSITION_WRAP - 16);
  t.equal(put(producer, 0, 12), 48 + LENGTH_BYTES, 'the first record goes at the preset position');
  t.equal(put(producer, 1, 12), LENGTH_BYTES, 'the second crosses the counter wrap and offset 0 together');
  t.equal(producer.unpublishedBytes, 32, 'unpublishedBytes spans the counter wrap');
  producer.publish();
  t.equal(Atomics.load(control, WRITE_POSITION), 16, 'the published position wrapped to 16');
  t.equal(producer.occupancy(), 32, 'occupancy spans the counter wrap');
  t.equal(consumer.refresh(), 32, 'refresh() spans the counter wrap');
  const records = takeAll(consumer);
  t.same(records.map((record) => record.offset), [52, LENGTH_BYTES]);
  t.equal(recordMismatch(consumer.bytes, records[1]!.offset, 1, 12), -1, 'the record past the wrap has its content');
  t.equal(consumer.readPosition, 16, 'the read position wrapped too');
  t.end();
});

t.test('rings laid out in one arena are independent, and copyRingBytes copies between rings', (t) => {
  const { buffer, regions } = createRingArena([256, 1024]);
  const [small, large] = regions.map((region) => ({ producer: new Ring(buffer, region), consumer: new Ring(buffer, region) }));
  t.equal(small.producer.capacity, 256);
  t.equal(large.producer.capacity, 1024);
  for (let seq = 0; seq < 4; seq++) put(small.producer, seq, 60);
  small.producer.publish();
  t.equal(small.producer.reserve(0), -1, 'the small ring is full');
  t.equal(large.consumer.refresh(), 0, 'the large ring sees none of its records');
  t.equal(large.producer.occupancy(), 0);

  small.consumer.refresh();
  const source = small.consumer.peek();
  const target = large.producer.reserve(60);
  copyRingBytes(small.consumer, source, large.producer, target, 60);
  const separate = ringPair(256);
  const separateTarget = separate.producer.reserve(60);
  copyRingBytes(small.consumer, source, separate.producer, separateTarget, 60);
  t.equal(recordMismatch(large.producer.bytes, target, 0, 60), -1, 'a copy within the arena carries the record');
  t.equal(recordMismatch(separate.producer.bytes, separateTarget, 0, 60), -1, 'a copy to another buffer carries the record');
  t.end();
});

t.test('a producer thread passes 200k records to this thread in order', async (t) => {
  const count = 200_000;
  const pauseEvery = 50_000;
  const buffer = createRingBuffer(1 << 14);
  const stats = new SharedArrayBuffer(4);
  const fullCount = new Int32Array(stats);
  const worker = tsWorker(new URL('./fixtures/ring-producer.ts', import.meta.url), { buffer, count, stats });
  let failure: string | undefined;
  worker.on('error', (error) => (failure = `producer failed: ${error.stack}`));
  const exited = new Promise<number>((resolve) => worker.on('exit', resolve));

  const consumer = new Ring(buffer);
  const max = consumer.recordBytesMax;
  let seq = 0;
  let pauses = 0;
  while (seq < count && failure === undefined) {
    if (seq === pauses * pauseEvery) {
      // Stop reading until the producer finds the ring full again, so it sleeps in waitForRoom.
      const fullBefore = Atomics.load(fullCount, 0);
      while (Atomics.load(fullCount, 0) === fullBefore && failure === undefined) await yieldToEventLoop();
      pauses++;
    }
    if (consumer.refresh() === 0) {
      await yieldToEventLoop();
      continue;
    }
    for (let offset = consumer.peek(); offset >= 0 && seq < pauses * pauseEvery; offset = consumer.peek()) {
      const length = recordLength(seq, max);
      if (consumer.recordLength !== length) failure = `record ${seq}: length ${consumer.recordLength}, expected ${length}`;
      else if (recordMismatch(consumer.bytes, offset, seq, length) >= 0) failure = `record ${seq}: content differs`;
      if (failure !== undefined) break;
      consumer.advance();
      seq++;
    }
    consumer.release();
  }
  t.equal(failure, undefined, 'every record arrives with its length and content, in order');
  t.equal(seq, count, 'every record arrives');
  t.equal(await exited, 0, 'the producer exits cleanly');
  t.equal(consumer.refresh(), 0, 'nothing follows the last record');
  t.ok(Atomics.load(fullCount, 0) >= count / pauseEvery, 'the producer found the ring full and waited for room');
});
