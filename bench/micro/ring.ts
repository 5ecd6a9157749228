// Micro-benchmarks of the SPSC ring (src/ring/ring.ts): the producer's reserve + publish, the
// consumer's peek + advance + release, a wrap-around-heavy round trip, and copyRingBytes.
// Run: node --expose-gc --import=tsx bench/micro/ring.ts [--quick]
//
// The producer cases need a consumer that frees space and the consumer cases a producer that
// refills; both are done in O(1) through the control words, so that only the measured side's
// work is timed. The layout is the documented one (docs/ARCHITECTURE.md, "Memory layouts"):
// write position at int32 0, read position at int32 16 of a ring's control block.
import { copyRingBytes, createRingArena, createRingBuffer, Ring } from '../../src/ring/ring.js';
import { blackhole, isMain, runStandalone, type MicroCase } from './harness.js';

const WRITE_POSITION = 0;
const READ_POSITION = 16;
const POSITION_MASK = (1 << 30) - 1;

/** The bench's consumer: everything published is read and freed at once. */
function freeAll(ring: Ring): void {
  Atomics.store(ring.control, READ_POSITION, Atomics.load(ring.control, WRITE_POSITION));
}

/** The bench's producer: publish one more lap of the records already in the ring (they tile it exactly). */
function republishLap(ring: Ring): void {
  Atomics.store(ring.control, WRITE_POSITION, (Atomics.load(ring.control, WRITE_POSITION) + ring.capacity) & POSITION_MASK);
}

function producerCase(name: string, payload: Uint8Array, copyPayload: boolean): MicroCase {
  const ring = new Ring(createRingBuffer(1 << 20));
  const length = payload.length;
  let counter = 0;
  return {
    name,
    fn: copyPayload
      ? () => {
          let offset = ring.reserve(length);
          if (offset < 0) {
            freeAll(ring);
            offset = ring.reserve(length);
          }
          ring.bytes.set(payload, offset);
          ring.publish();
        }
      : () => {
          let offset = ring.reserve(length);
          if (offset < 0) {
            freeAll(ring);
            offset = ring.reserve(length);
          }
          // A small record written field by field, as the phases do (4 × u32).
          const view = ring.view;
          view.setUint32(offset, counter, true);
          view.setUint32(offset + 4, counter, true);
          view.setUint32(offset + 8, counter, true);
          view.setUint32(offset + 12, counter, true);
          counter = (counter + 1) | 0;
          ring.publish();
        },
  };
}

/** A ring tiled exactly by records of `payload` bytes (8-byte slots, no wrap markers), full. */
function filledRing(payload: number): { producer: Ring; consumer: Ring } {
  const buffer = createRingBuffer(64 << 10);
  const producer = new Ring(buffer);
  const consumer = new Ring(buffer);
  for (let i = 0; ; i++) {
    const offset = producer.reserve(payload);
    if (offset < 0) break;
    producer.view.setUint32(offset, i, true);
  }
  producer.publish();
  if (producer.occupancy() !== producer.capacity) throw new Error(`records of ${payload} B do not tile the ring`);
  consumer.refresh();
  return { producer, consumer };
}

function consumerCase(name: string, payload: number, releaseEvery: number): MicroCase {
  const { producer, consumer } = filledRing(payload);
  let read = 0;
  return {
    name,
    fn: () => {
      let offset = consumer.peek();
      if (offset < 0) {
        consumer.release();
        republishLap(producer);
        consumer.refresh();
        offset = consumer.peek();
      }
      blackhole.value ^= consumer.view.getUint32(offset, true);
      consumer.advance();
      if (++read === releaseEvery) {
        read = 0;
        consumer.release();
      }
    },
  };
}

/** Producer and consumer in turn, one record in flight. */
function roundTripCase(name: string, capacity: number, payload: number, wrapsExpected: boolean): MicroCase {
  const buffer = createRingBuffer(capacity);
  const producer = new Ring(buffer);
  const consumer = new Ring(buffer);
  let counter = 0;
  const fn = (): void => {
    const offset = producer.reserve(payload);
    producer.view.setUint32(offset, counter, true);
    counter = (counter + 1) | 0;
    producer.publish();
    consumer.refresh();
    const at = consumer.peek();
    blackhole.value ^= consumer.view.getUint32(at, true);
    consumer.advance();
    consumer.release();
  };
  // Check the shape: with a 64-byte ring and 16-byte records (24-byte slots), every second
  // record is preceded by a wrap marker, so the write position moves by more than one slot.
  const slot = (4 + payload + 7) & ~7;
  let wraps = 0;
  for (let i = 0; i < 64; i++) {
    const before = Atomics.load(producer.control, WRITE_POSITION);
    fn();
    if (((Atomics.load(producer.control, WRITE_POSITION) - before) & POSITION_MASK) > slot) wraps++;
  }
  if (wrapsExpected && wraps < 30) throw new Error(`the wrap-heavy case wrapped only ${wraps} times in 64 records`);
  return { name, fn };
}

/** `sourceShift` / `targetShift`: byte offsets added to 8-aligned positions (relative alignment matters). */
function copyCase(name: string, length: number, oneArena: boolean, sourceShift = 0, targetShift = 0): MicroCase {
  let source: Ring;
  let target: Ring;
  if (oneArena) {
    const { buffer, regions } = createRingArena([1 << 16, 1 << 16]);
    source = new Ring(buffer, regions[0]);
    target = new Ring(buffer, regions[1]);
  } else {
    source = new Ring(createRingBuffer(1 << 16));
    target = new Ring(createRingBuffer(1 << 16));
  }
  source.bytes.fill(0x61);
  let at = 0;
  return {
    name,
    fn: () => {
      copyRingBytes(source, at + sourceShift, target, at + targetShift, length);
      at = (at + 2048) & 0x7fff;
    },
  };
}

/** A plain (non-shared) buffer copied into a ring at `shift` past 8-aligned offsets. */
function setIntoRingCase(name: string, length: number, shift: number): MicroCase {
  const ring = new Ring(createRingBuffer(1 << 16));
  const payload = new Uint8Array(length).fill(0x61);
  let at = 0;
  return {
    name,
    fn: () => {
      ring.bytes.set(payload, at + shift);
      at = (at + 2048) & 0x7fff;
    },
  };
}

export function ringCases(): MicroCase[] {
  return [
    producerCase('reserve+publish 16 B', new Uint8Array(16), false),
    producerCase('reserve+publish 1 KiB (payload copied in)', new Uint8Array(1024).fill(0x61), true),
    consumerCase('peek+advance+release 24 B, release per record', 24, 1),
    consumerCase('peek+advance 24 B, release per 64 records', 24, 64),
    roundTripCase('round trip 16 B, 1 MiB ring (rare wraps)', 1 << 20, 16, false),
    roundTripCase('round trip 16 B, 64 B ring (wrap every 2nd record)', 64, 16, true),
    copyCase('copyRingBytes 100 B, one arena', 100, true),
    copyCase('copyRingBytes 1 KiB, one arena', 1024, true),
    copyCase('copyRingBytes 1 KiB, one arena, offsets 4 apart mod 8', 1024, true, 4, 0),
    copyCase('copyRingBytes 1 KiB, two buffers (fallback)', 1024, false),
    setIntoRingCase('TypedArray#set 1 KiB plain -> ring, 8-aligned', 1024, 0),
    setIntoRingCase('TypedArray#set 1 KiB plain -> ring, at 4 mod 8', 1024, 4),
  ];
}

if (isMain(import.meta.url)) await runStandalone('ring', ringCases);
