// Micro-benchmarks of the frame codec: the IO thread's checkFrame over a message of 64 write
// frames and frameRid (src/net/frame.ts), the workers' server-frame writers (writeAcked,
// writeEntriesHeader, writeNacked: src/net/server-frames.ts), and the client's decodeFrames
// (src/client/codec.ts), which builds an object per frame by design.
// Run: node --expose-gc --import=tsx bench/micro/frame-codec.ts [--quick]
import { CONTROL_PAYLOAD_BYTES_MAX } from '../../src/constants.js';
import { decodeEntries, decodeFrames } from '../../src/client/codec.js';
import { DEFAULT_LIMITS } from '../../src/limits.js';
import { checkFrame, frameRid, type FrameLimits } from '../../src/net/frame.js';
import { NACK_LSN_GAP } from '../../src/net/protocol.js';
import { ACKED_BYTES, ENTRIES_HEADER_BYTES, ENTRY_LENGTH_BYTES, writeAcked, writeEntriesHeader, writeNacked } from '../../src/net/server-frames.js';
import { frames } from '../../src/testing/wire.js';
import { blackhole, isMain, runStandalone, type MicroCase } from './harness.js';

const LIMITS: FrameLimits = { entryBytesMax: DEFAULT_LIMITS.entryBytesMax, controlBytesMax: CONTROL_PAYLOAD_BYTES_MAX, signalBytesMax: DEFAULT_LIMITS.signalBytesMax };
const WRITES_PER_MESSAGE = 64;
const ENTRY_BYTES = 100;

function checkFrameCase(): MicroCase {
  const payload = Buffer.alloc(ENTRY_BYTES, 0x61);
  const parts: Buffer[] = [];
  for (let i = 0; i < WRITES_PER_MESSAGE; i++) parts.push(frames.write(17, 5, i + 1, payload));
  // As uWS hands it over: a Uint8Array over the message's own ArrayBuffer.
  const message = new Uint8Array(Buffer.concat(parts));
  return {
    name: 'checkFrame, message of 64 writes (100 B)',
    unit: 'frame',
    units: WRITES_PER_MESSAGE,
    fn: () => {
      let offset = 0;
      while (offset < message.length) {
        const size = checkFrame(message, offset, message.length - offset, LIMITS);
        if (size < 0) throw new Error(`checkFrame refused a frame: ${-size}`);
        offset += size;
      }
      blackhole.value ^= offset;
    },
  };
}

function frameRidCase(): MicroCase {
  // Frames with their rid in each place: lease (A), read (B), signal (C), and a write (none).
  const messages = [
    new Uint8Array(frames.lease('site', 'log', 11)),
    new Uint8Array(frames.read(3, 5, 12, 0, 100)),
    new Uint8Array(frames.signal(3, 5, 6, 13, Buffer.from('hi'))),
    new Uint8Array(frames.write(3, 5, 1, Buffer.alloc(ENTRY_BYTES))),
  ];
  let i = 0;
  return {
    name: 'frameRid (lease, read, signal, write in turn)',
    fn: () => {
      blackhole.value ^= frameRid(messages[i]!, 0);
      i = (i + 1) & 3;
    },
  };
}

/** The writers write into an output ring's DataView (a SharedArrayBuffer), at moving offsets. */
function writerCases(): MicroCase[] {
  const view = new DataView(new SharedArrayBuffer(1 << 16));
  const MASK = (1 << 15) - 1;
  let at = 0;
  let lsn = 1;
  return [
    {
      name: 'writeAcked',
      fn: () => {
        at = (at + writeAcked(view, at, 7, lsn, lsn - 1) + 8) & MASK;
        lsn++;
      },
    },
    {
      name: 'writeEntriesHeader',
      fn: () => {
        at = (at + writeEntriesHeader(view, at, 0, 7, 3, 16, lsn, 16 * (ENTRY_LENGTH_BYTES + ENTRY_BYTES)) + 8) & MASK;
        lsn++;
      },
    },
    {
      name: 'writeNacked',
      fn: () => {
        at = (at + writeNacked(view, at, NACK_LSN_GAP, 7, lsn, lsn - 3, lsn + 100) + 8) & MASK;
        lsn++;
      },
    },
  ];
}

/** A server → device message: 64 `_acked` frames (a device's pipelined appends answered). */
function ackedMessage(): Uint8Array {
  const bytes = new Uint8Array(WRITES_PER_MESSAGE * ACKED_BYTES);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < WRITES_PER_MESSAGE; i++) writeAcked(view, i * ACKED_BYTES, 7, i + 1, i);
  return bytes;
}

/** 8 `_entries` frames of 32 entries of 100 B each (a tailer's pushes). */
function entriesMessage(framesCount: number, entriesPerFrame: number): Uint8Array {
  const payload = entriesPerFrame * (ENTRY_LENGTH_BYTES + ENTRY_BYTES);
  const frameBytes = ENTRIES_HEADER_BYTES + payload;
  const bytes = new Uint8Array(framesCount * frameBytes).fill(0x61);
  const view = new DataView(bytes.buffer);
  for (let f = 0; f < framesCount; f++) {
    const start = f * frameBytes;
    writeEntriesHeader(view, start, 0, 7, 3, entriesPerFrame, f * entriesPerFrame, payload);
    for (let e = 0; e < entriesPerFrame; e++) view.setUint32(start + ENTRIES_HEADER_BYTES + e * (ENTRY_LENGTH_BYTES + ENTRY_BYTES), ENTRY_BYTES, true);
  }
  return bytes;
}

function clientCases(): MicroCase[] {
  const acked = ackedMessage();
  const pushes = entriesMessage(8, 32);
  return [
    {
      name: 'client decodeFrames, 64 _acked',
      unit: 'frame',
      units: WRITES_PER_MESSAGE,
      fn: () => {
        blackhole.value ^= decodeFrames(acked).length;
      },
    },
    {
      name: 'client decodeFrames + decodeEntries, 8 _entries x 32',
      unit: 'entry',
      units: 8 * 32,
      fn: () => {
        let count = 0;
        for (const frame of decodeFrames(pushes)) count += decodeEntries(frame.payload, frame.c).length;
        blackhole.value ^= count;
      },
    },
  ];
}

export function frameCodecCases(): MicroCase[] {
  return [checkFrameCase(), frameRidCase(), ...writerCases(), ...clientCases()];
}

if (isMain(import.meta.url)) await runStandalone('frame-codec', frameCodecCases);
