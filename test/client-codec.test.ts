// The client's frame codec against docs/PROTOCOL.md: byte layout, round trips in both
// directions, several frames per message, and the server's own inbound validator.
import t from 'tap';
import { pack } from 'msgpackr';
import { ENTRY_BYTES_MAX_DEFAULT, CONTROL_PAYLOAD_BYTES_MAX, PROTOCOL_VERSION, SHARD_COUNT } from '../src/constants.js';
import { checkFrame } from '../src/net/frame.js';
import {
  ENTRIES_CAUGHT_UP,
  ENTRIES_READ_REPLY,
  ERROR,
  LEASE_NEW_WRITER,
  OP_ACK,
  OP_ACKED,
  OP_CONNECT,
  OP_ENTRIES,
  OP_ERROR,
  OP_LEASE,
  OP_LEASED,
  OP_READ,
  OP_RELEASE,
  OP_TAIL,
  OP_UNTAIL,
  OP_WRITE,
  WRITE_HAS_AT,
  shardOf,
} from '../src/net/protocol.js';
import {
  ackFrame,
  connectFrame,
  decodeEntries,
  decodeFrames,
  encodeFrame,
  leaseFrame,
  readFrame,
  releaseFrame,
  tailFrame,
  untailFrame,
  writeFrame,
} from '../src/client/codec.js';
import { errorFromPayload } from '../src/client/errors.js';
import { unpack } from 'msgpackr';

const limits = { entryBytesMax: ENTRY_BYTES_MAX_DEFAULT, controlBytesMax: CONTROL_PAYLOAD_BYTES_MAX, signalBytesMax: 64 << 10 };

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.byteLength, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}

function entriesPayload(entries: Uint8Array[]): Uint8Array {
  return concat(
    ...entries.flatMap((entry) => {
      const length = new Uint8Array(4);
      new DataView(length.buffer).setUint32(0, entry.byteLength, true);
      return [length, entry];
    }),
  );
}

t.test('a write frame has the byte layout of PROTOCOL.md', async (t) => {
  const data = new Uint8Array([1, 2, 3, 4, 5]);
  const frame = writeFrame(777, 0x01020304, 42, 2 ** 40 + 3, data);
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  t.equal(frame.byteLength, 8 + 24 + 5);
  t.equal(view.getUint16(0, true), 24, 'headerLength');
  t.equal(view.getUint32(2, true), 5, 'payloadLength');
  t.equal(view.getUint16(6, true), 777, 'shard');
  t.equal(view.getUint8(8), OP_WRITE, 'op');
  t.equal(view.getUint8(9), WRITE_HAS_AT, 'flags');
  t.equal(view.getUint16(10, true), 0, 'word');
  t.equal(view.getUint32(12, true), 0x01020304, 'A = handle');
  t.equal(view.getUint32(16, true), 42, 'B = lsn');
  t.equal(view.getFloat64(24, true), 2 ** 40 + 3, 'POSITION = at');
  t.same([...frame.subarray(32)], [1, 2, 3, 4, 5], 'payload');
  t.equal(writeFrame(1, 1, 1, undefined, data)[9], 0, 'no HAS_AT without at');
});

t.test('every device op round-trips and passes the server validator', async (t) => {
  const shard = shardOf('acme', 'doc-1', SHARD_COUNT);
  const cases: { name: string; frame: Uint8Array; op: number; headerLength: number; check: (f: ReturnType<typeof decodeFrames>[0]) => void }[] = [
    {
      name: 'connect',
      frame: connectFrame(9, 'tok.en'),
      op: OP_CONNECT,
      headerLength: 8,
      check: (f) => {
        t.equal(f.shard, 0);
        t.equal(f.word, PROTOCOL_VERSION);
        t.equal(f.a, 9);
        t.same(unpack(f.payload), { token: 'tok.en' });
      },
    },
    {
      name: 'lease (new writer)',
      frame: leaseFrame(shard, 10, undefined, 'acme', 'doc-1'),
      op: OP_LEASE,
      headerLength: 12,
      check: (f) => {
        t.equal(f.flags, LEASE_NEW_WRITER);
        t.equal(f.a, 10);
        t.equal(f.b, 0);
        t.same(unpack(f.payload), ['acme', 'doc-1']);
      },
    },
    {
      name: 'lease (known writer)',
      frame: leaseFrame(shard, 11, 7, 'acme', 'doc-1'),
      op: OP_LEASE,
      headerLength: 12,
      check: (f) => {
        t.equal(f.flags, 0);
        t.equal(f.b, 7);
      },
    },
    {
      name: 'write',
      frame: writeFrame(shard, 3, 5, undefined, new Uint8Array([9, 8])),
      op: OP_WRITE,
      headerLength: 24,
      check: (f) => {
        t.equal(f.flags, 0);
        t.equal(f.a, 3);
        t.equal(f.b, 5);
        t.same([...f.payload], [9, 8]);
      },
    },
    { name: 'ack', frame: ackFrame(shard, 3, 4), op: OP_ACK, headerLength: 12, check: (f) => t.same([f.a, f.b, f.payload.byteLength], [3, 4, 0]) },
    {
      name: 'read',
      frame: readFrame(shard, 3, 12, 2 ** 50, 1000),
      op: OP_READ,
      headerLength: 24,
      check: (f) => t.same([f.a, f.b, f.c, f.position], [3, 12, 1000, 2 ** 50]),
    },
    { name: 'tail', frame: tailFrame(shard, 3, 17), op: OP_TAIL, headerLength: 24, check: (f) => t.same([f.a, f.position], [3, 17]) },
    { name: 'untail', frame: untailFrame(shard, 3), op: OP_UNTAIL, headerLength: 8, check: (f) => t.equal(f.a, 3) },
    { name: 'release', frame: releaseFrame(shard, 3), op: OP_RELEASE, headerLength: 8, check: (f) => t.equal(f.a, 3) },
  ];
  for (const { name, frame, op, headerLength, check } of cases) {
    const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    t.equal(checkFrame(frame, 0, frame.byteLength, limits), frame.byteLength, `${name}: the server's validator accepts it`);
    const decoded = decodeFrames(frame);
    t.equal(decoded.length, 1, name);
    const [f] = decoded;
    t.equal(f!.op, op, `${name}: op`);
    t.equal(view.getUint16(0, true), headerLength, `${name}: header length`);
    if (op !== OP_CONNECT) t.equal(f!.shard, shard, `${name}: shard`);
    check(f!);
  }
});

t.test('several frames in one message decode in order, payloads as views', async (t) => {
  const entries = [new Uint8Array([1]), new Uint8Array(0), new Uint8Array([2, 3, 4])];
  const message = concat(
    encodeFrame(OP_ACKED, 0, { a: 5, b: 1, position: 0 }),
    encodeFrame(OP_ENTRIES, 0, { flags: ENTRIES_CAUGHT_UP | ENTRIES_READ_REPLY, a: 5, b: 77, c: 3, position: 10 }, entriesPayload(entries)),
    encodeFrame(OP_LEASED, 0, { a: 2, b: 5, c: 1, position: 12, d: 1 }, pack({ site: 's', log: 'l', epoch: 99, leader: 'd1', presence: ['d1'] })),
    encodeFrame(OP_ACKED, 0, { a: 5, b: 2, position: 2 ** 53 - 1 }),
  );
  const frames = decodeFrames(message);
  t.same(
    frames.map((f) => f.op),
    [OP_ACKED, OP_ENTRIES, OP_LEASED, OP_ACKED],
  );
  t.same([frames[0]!.a, frames[0]!.b, frames[0]!.position], [5, 1, 0]);
  const batch = frames[1]!;
  t.same([batch.flags, batch.a, batch.b, batch.c, batch.position], [ENTRIES_CAUGHT_UP | ENTRIES_READ_REPLY, 5, 77, 3, 10]);
  t.same(
    decodeEntries(batch.payload, batch.c).map((entry) => [...entry]),
    [[1], [], [2, 3, 4]],
  );
  t.equal(batch.payload.buffer, message.buffer, 'payload is a view into the message');
  const leased = frames[2]!;
  t.same([leased.a, leased.b, leased.c, leased.position, leased.d], [2, 5, 1, 12, 1]);
  t.same(unpack(leased.payload), { site: 's', log: 'l', epoch: 99, leader: 'd1', presence: ['d1'] });
  t.equal(frames[3]!.position, 2 ** 53 - 1, 'positions are exact float64 integers');

  // The same frames inside a larger buffer (a Node Buffer slice, for instance).
  const padded = new Uint8Array(message.byteLength + 7);
  padded.set(message, 3);
  t.same(
    decodeFrames(padded.subarray(3, 3 + message.byteLength)).map((f) => [f.op, f.a, f.b]),
    frames.map((f) => [f.op, f.a, f.b]),
  );
});

t.test('fields beyond an op header are absent', async (t) => {
  const frame = encodeFrame(OP_ACK, 1, { a: 1, b: 2, c: 3, position: 4, d: 5 });
  t.equal(frame.byteLength, 8 + 12);
  const [f] = decodeFrames(frame);
  t.same([f!.a, f!.b, f!.c, f!.position, f!.d], [1, 2, 0, 0, 0]);
  t.throws(() => encodeFrame(0x7f, 0, {}), RangeError, 'an unknown op cannot be encoded');
});

t.test('malformed messages are refused; unknown ops pass through', async (t) => {
  const ack = encodeFrame(OP_ACKED, 0, { a: 1, b: 1 });
  t.throws(() => decodeFrames(ack.subarray(0, ack.byteLength - 1)), RangeError, 'truncated header');
  t.throws(() => decodeFrames(concat(ack, new Uint8Array(5))), RangeError, 'trailing bytes shorter than a prefix');
  const withPayload = encodeFrame(OP_ERROR, 0, { word: 1 }, new Uint8Array(10));
  t.throws(() => decodeFrames(withPayload.subarray(0, withPayload.byteLength - 1)), RangeError, 'truncated payload');
  const wrongHeader = ack.slice();
  new DataView(wrongHeader.buffer).setUint16(0, 20, true);
  t.throws(() => decodeFrames(concat(wrongHeader, new Uint8Array(4))), /header/, 'a known op with the wrong header length');

  // A future server op 0x90 with a 6-byte header and a 2-byte payload.
  const future = new Uint8Array(8 + 6 + 2);
  const view = new DataView(future.buffer);
  view.setUint16(0, 6, true);
  view.setUint32(2, 2, true);
  view.setUint8(8, 0x90);
  const frames = decodeFrames(concat(future, ack));
  t.same(
    frames.map((f) => f.op),
    [0x90, OP_ACKED],
    'the frame after an unknown op is still read',
  );
  t.equal(frames[0]!.a, 0, 'A lies beyond a 6-byte header');
});

t.test('entries payloads must match their count', async (t) => {
  const payload = entriesPayload([new Uint8Array([1, 2]), new Uint8Array([3])]);
  t.same(
    decodeEntries(payload, 2).map((e) => [...e]),
    [[1, 2], [3]],
  );
  t.same(decodeEntries(new Uint8Array(0), 0), []);
  t.throws(() => decodeEntries(payload, 3), RangeError, 'fewer entries than the count');
  t.throws(() => decodeEntries(payload, 1), RangeError, 'bytes left over');
  t.throws(() => decodeEntries(payload.subarray(0, payload.byteLength - 1), 2), RangeError, 'an entry past the end');
});

t.test('an _error payload becomes a coded error with its details', async (t) => {
  const gone = errorFromPayload(ERROR.GONE, pack({ code: ERROR.GONE, name: 'GONE', message: 'trimmed', earliest: 40 }));
  t.equal(gone.code, 'GONE');
  t.equal(gone.message, 'trimmed');
  t.equal(gone.earliest, 40);
  t.ok(gone instanceof Error);
  const bare = errorFromPayload(ERROR.FENCED, new Uint8Array(0));
  t.equal(bare.code, 'FENCED', 'the name comes from the wire code when the payload has none');
  const hostile = errorFromPayload(ERROR.FORBIDDEN, pack({ name: 'FORBIDDEN', message: 'no', code: 8 }));
  t.equal(hostile.code, 'FORBIDDEN', 'the numeric code in the payload does not replace the name');
  t.equal(errorFromPayload(200, new Uint8Array([0xc1])).code, 'ERROR_200', 'garbage payload, unknown code');
  t.equal(errorFromPayload(ERROR.GONE, new Uint8Array([0x81])).code, 'GONE', 'a truncated map');
  t.equal(errorFromPayload(ERROR.GONE, pack('GONE?')).code, 'GONE', 'not a map');
});
