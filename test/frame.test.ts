// The frame codec: the inbound validator's every error path, the little-endian readers and
// the prefix writer; the server's outbound frame encoders read back by the test-side decoder
// written from docs/PROTOCOL.md; and shardOf against an independent FNV-1a.
import t from 'tap';
import { unpack } from 'msgpackr';
import { PREFIX_BYTES, SHARD_COUNT } from '../src/constants.js';
import { checkFrame, frameBytes, frameOp, frameShard, readUint16, readUint32, writePrefix } from '../src/net/frame.js';
import {
  ENTRIES_CAUGHT_UP,
  ENTRIES_READ_REPLY,
  ERROR,
  HEADER_BYTES,
  NACK_AT_MISMATCH,
  OP_ACK,
  OP_ACKED,
  OP_CONNECT,
  OP_ENTRIES,
  OP_ERROR,
  OP_LEASE,
  OP_LEASED,
  OP_NACKED,
  OP_READ,
  OP_RELEASE,
  OP_TAIL,
  OP_UNTAIL,
  OP_WRITE,
  shardOf,
} from '../src/net/protocol.js';
import {
  ACKED_BYTES,
  ENTRIES_HEADER_BYTES,
  NACKED_BYTES,
  controlPayload,
  errorPayload,
  writeAcked,
  writeEntriesHeader,
  writeError,
  writeLeased,
  writeNacked,
} from '../src/net/server-frames.js';
import { Prng } from '../src/testing/prng.js';
import { decodeFrames, frame, frames } from '../src/testing/wire.js';

const limits = { entryBytesMax: 100, controlBytesMax: 20, signalBytesMax: 50 };
const DEVICE_OPS = [OP_CONNECT, OP_LEASE, OP_WRITE, OP_ACK, OP_READ, OP_TAIL, OP_UNTAIL, OP_RELEASE];
const check = (bytes: Uint8Array, offset = 0, available = bytes.length - offset): number => checkFrame(bytes, offset, available, limits);

/** A frame of `op` with its documented header length, `payloadLength` zero bytes and `shard`. */
const deviceFrame = (op: number, payloadLength = 0, shard = 0): Buffer => frame(op, HEADER_BYTES[op]!, shard, {}, new Uint8Array(payloadLength));

t.test('checkFrame accepts each device op and returns the frame length', (t) => {
  for (const op of DEVICE_OPS) {
    const bytes = deviceFrame(op, op === OP_WRITE ? 50 : 10, SHARD_COUNT - 1);
    t.equal(check(bytes), bytes.length, `op 0x${op.toString(16)}`);
  }
  const connect = frames.connect('token');
  t.equal(check(connect), connect.length, 'a connect frame from the wire helpers');
  t.end();
});

t.test('checkFrame walks a message of several frames', (t) => {
  const parts = [
    deviceFrame(OP_CONNECT, 12),
    frames.lease('acme', 'chat', 7),
    frames.write(3, 1, 1, Buffer.from('entry')),
    frames.write(3, 1, 2, Buffer.alloc(0), 4),
    frames.ack(3, 1, 2),
    frames.read(3, 1, 8, 0, 10),
    frames.tail(3, 1, 0, 2),
    frames.untail(3, 1),
    frames.release(3, 1),
  ];
  // Some unrelated bytes before the message, so offsets are not zero-based.
  const message = Buffer.concat([Buffer.alloc(5, 0xee), ...parts]);
  const walked: { op: number; shard: number; length: number }[] = [];
  for (let offset = 5; offset < message.length; ) {
    const length = check(message, offset);
    if (length <= 0) break;
    walked.push({ op: frameOp(message, offset), shard: frameShard(message, offset), length });
    offset += length;
  }
  t.same(
    walked,
    parts.map((part) => ({ op: part[8], shard: part.readUInt16LE(6), length: part.length })),
    'every frame is found with its op, shard and length',
  );
  t.end();
});

t.test('checkFrame error paths', (t) => {
  const bad = -ERROR.BAD_FRAME;
  const connect = deviceFrame(OP_CONNECT);

  t.equal(check(connect, 0, PREFIX_BYTES + 3), bad, 'fewer than prefix + 4 bytes is a bad frame');
  t.equal(check(connect.subarray(0, 11)), bad, 'a message cut inside the op header word is a bad frame');
  t.equal(check(connect, 0, PREFIX_BYTES + 4), bad, 'a header cut short by the message is a bad frame');

  for (const op of [0x00, 0x12, 0x7f, 0x81, 0x83, 0x86, 0xff]) {
    t.equal(check(frame(op, 8, 0, {})), -ERROR.UNKNOWN_OP, `op 0x${op.toString(16)} is not a device op`);
  }

  for (const op of DEVICE_OPS) {
    const expected = HEADER_BYTES[op]!;
    for (const headerLength of [0, 4, expected - 4, expected + 1, expected + 4, 64]) {
      // Enough bytes follow for any of these header lengths: only the length itself is wrong.
      const bytes = Buffer.concat([deviceFrame(op), Buffer.alloc(64)]);
      bytes.writeUInt16LE(headerLength, 0);
      t.equal(check(bytes), bad, `op 0x${op.toString(16)} with header length ${headerLength} (expected ${expected})`);
    }
  }

  t.equal(check(deviceFrame(OP_ACK, 0, SHARD_COUNT - 1)), PREFIX_BYTES + 12, `shard ${SHARD_COUNT - 1} is the last shard`);
  for (const shard of [SHARD_COUNT, SHARD_COUNT + 1, 0xffff]) {
    t.equal(check(deviceFrame(OP_ACK, 0, shard)), -ERROR.WRONG_SHARD, `shard ${shard} is out of range`);
  }

  const write = (length: number): Buffer => deviceFrame(OP_WRITE, length);
  t.equal(check(write(limits.entryBytesMax)), PREFIX_BYTES + 24 + limits.entryBytesMax, 'a write payload at entryBytesMax is accepted');
  t.equal(check(write(limits.entryBytesMax + 1)), -ERROR.TOO_LARGE, 'a write payload above entryBytesMax is too large');
  for (const op of DEVICE_OPS.filter((op) => op !== OP_WRITE)) {
    const name = `op 0x${op.toString(16)}`;
    t.equal(check(deviceFrame(op, limits.controlBytesMax)), PREFIX_BYTES + HEADER_BYTES[op]! + limits.controlBytesMax, `${name}: a payload at controlBytesMax is accepted`);
    t.equal(check(deviceFrame(op, limits.controlBytesMax + 1)), -ERROR.TOO_LARGE, `${name}: a payload above controlBytesMax is too large`);
  }
  // The limit is checked on the declared length, before the bytes need to be there.
  const huge = deviceFrame(OP_WRITE);
  huge.writeUInt32LE(0xffffffff, 2);
  t.equal(check(huge), -ERROR.TOO_LARGE, 'a declared 4 GiB payload is too large');

  const cut = write(10);
  t.equal(check(cut, 0, cut.length - 1), bad, 'a payload that runs past the available bytes is a bad frame');
  t.equal(check(cut.subarray(0, cut.length - 1)), bad, 'and past the end of the message');
  const two = Buffer.concat([frames.ack(0, 1, 1), write(10)]);
  t.equal(check(two, 20, two.length - 20 - 1), bad, 'the available count is measured from the offset');
  t.end();
});

t.test('readUint16 and readUint32 read little-endian unsigned values', (t) => {
  const prng = new Prng(7);
  const bytes = Buffer.from(Array.from({ length: 4096 }, () => prng.below(256)));
  bytes.set([0xff, 0xff, 0xff, 0xff], 100);
  const failures: number[] = [];
  for (let offset = 0; offset + 4 <= bytes.length; offset++) {
    if (readUint16(bytes, offset) !== bytes.readUInt16LE(offset) || readUint32(bytes, offset) !== bytes.readUInt32LE(offset)) failures.push(offset);
  }
  t.same(failures, [], 'they agree with Buffer at every offset');
  t.equal(readUint32(bytes, 100), 0xffffffff, 'the top bit makes no negative number');
  t.equal(readUint16(bytes, 100), 0xffff);
  t.end();
});

t.test('writePrefix writes the prefix at an offset and nothing else', (t) => {
  const bytes = Buffer.alloc(24, 0xaa);
  writePrefix(new DataView(bytes.buffer, bytes.byteOffset, bytes.length), 8, 0xfffe, 0xfffffffd, SHARD_COUNT - 1);
  t.equal(bytes.readUInt16LE(8), 0xfffe, 'header length');
  t.equal(bytes.readUInt32LE(10), 0xfffffffd, 'payload length');
  t.equal(bytes.readUInt16LE(14), SHARD_COUNT - 1, 'shard');
  t.same([...bytes.subarray(0, 8), ...bytes.subarray(16)], Array(16).fill(0xaa), 'the bytes around are untouched');
  t.equal(frameBytes(12, 100), PREFIX_BYTES + 12 + 100, 'frameBytes adds the prefix');
  t.end();
});

t.test('server frames decode to what was encoded', (t) => {
  const bytes = Buffer.alloc(1024);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const start = 3; // frames need not start aligned
  const starts: number[] = [];
  let offset = start;
  const next = (length: number): void => {
    starts.push(offset);
    offset += length;
  };

  t.equal(writeAcked(view, offset, 0xffffffff, 42, 2 ** 53 - 1), ACKED_BYTES, '_ack length');
  next(ACKED_BYTES);
  t.equal(writeNacked(view, offset, NACK_AT_MISMATCH, 5, 9, 7, 1234.5), NACKED_BYTES, '_nack length');
  next(NACKED_BYTES);

  const entries = [Buffer.from('first'), Buffer.alloc(0), Buffer.from('third entry')];
  const entriesPayload = Buffer.concat(entries.flatMap((entry) => [Buffer.from(Uint32Array.of(entry.length).buffer), entry]));
  t.equal(writeEntriesHeader(view, offset, ENTRIES_CAUGHT_UP | ENTRIES_READ_REPLY, 11, 12, entries.length, 100, entriesPayload.length), ENTRIES_HEADER_BYTES, '_entries header length');
  entriesPayload.copy(bytes, offset + ENTRIES_HEADER_BYTES);
  next(ENTRIES_HEADER_BYTES + entriesPayload.length);

  const leasedBody = { site: 'acme', log: 'chat', epoch: 3, leader: 'device-1', presence: ['device-1', 'device-2'] };
  const leasedPayload = controlPayload(leasedBody);
  const leasedLength = writeLeased(view, bytes, offset, 21, 22, 23, 2 ** 40, 24, leasedPayload);
  t.equal(leasedLength, PREFIX_BYTES + HEADER_BYTES[OP_LEASED]! + leasedPayload.length, '_leased length');
  next(leasedLength);

  const errorBody = errorPayload(ERROR.GONE, 'trimmed', { earliest: 17 });
  const errorLength = writeError(view, bytes, offset, ERROR.GONE, 31, 32, 33, errorBody);
  t.equal(errorLength, PREFIX_BYTES + HEADER_BYTES[OP_ERROR]! + errorBody.length, '_error length');
  next(errorLength);

  const decoded = decodeFrames(bytes.subarray(start, offset));
  const fields = decoded.map(({ op, flags, word, a, b, c, position, d }) => ({ op, flags, word, a, b, c, position, d }));
  t.same(fields, [
    { op: OP_ACKED, flags: 0, word: 0, a: 0xffffffff, b: 42, c: 0, position: 2 ** 53 - 1, d: 0 },
    { op: OP_NACKED, flags: NACK_AT_MISMATCH, word: 0, a: 5, b: 9, c: 7, position: 1234.5, d: 0 },
    { op: OP_ENTRIES, flags: ENTRIES_CAUGHT_UP | ENTRIES_READ_REPLY, word: 0, a: 11, b: 12, c: 3, position: 100, d: 0 },
    { op: OP_LEASED, flags: 0, word: 0, a: 21, b: 22, c: 23, position: 2 ** 40, d: 24 },
    { op: OP_ERROR, flags: 0, word: ERROR.GONE, a: 31, b: 32, c: 33, position: 0, d: 0 },
  ]);
  t.same(decoded[2]!.entries, entries, '_entries carries its entries');
  t.same(decoded[3]!.body, leasedBody, '_leased carries its msgpack body');
  t.same(decoded[4]!.body, { code: ERROR.GONE, name: 'GONE', message: 'trimmed', earliest: 17 }, '_error carries code, name, message and details');
  t.same(unpack(errorBody), decoded[4]!.body, 'the error payload is plain msgpack');

  t.same(
    starts.map((at) => ({ headerLength: bytes.readUInt16LE(at), shard: bytes.readUInt16LE(at + 6) })),
    decoded.map((f) => ({ headerLength: HEADER_BYTES[f.op], shard: 0 })),
    'each prefix carries the op header length and shard 0',
  );
  t.end();
});

/** FNV-1a 32, written independently of shardOf: BigInt arithmetic over the documented byte string. */
function fnv1a(bytes: Uint8Array): number {
  let hash = 0x811c9dc5n;
  for (const byte of bytes) hash = ((hash ^ BigInt(byte)) * 0x01000193n) & 0xffffffffn;
  return Number(hash);
}

const documentedShard = (site: string, log: string): number =>
  fnv1a(Buffer.concat([Buffer.from(site, 'utf8'), Buffer.of(0), Buffer.from(log, 'utf8')])) & (SHARD_COUNT - 1);

t.test('shardOf is FNV-1a 32 over site, a 0 byte and log, masked to the shard count', (t) => {
  // Known values, computed outside JavaScript.
  t.equal(shardOf('', '', SHARD_COUNT), 0x050c5d1f & 1023);
  t.equal(shardOf('site', 'log', SHARD_COUNT), 0x52195020 & 1023);
  t.equal(shardOf('acme', 'chat/general', SHARD_COUNT), 0x5d1f82dc & 1023);
  t.equal(shardOf('café', '日本語', SHARD_COUNT), 0xfcc19cd5 & 1023);
  t.equal(shardOf('🌲', 'grove', SHARD_COUNT), 0x5d421fe9 & 1023);

  const prng = new Prng(2024);
  const alphabet = ['a', 'z', 'A', '0', '/', '-', '_', ' ', '\u0000', 'é', 'ß', 'Ж', '日', '本', '🌲', '👩‍💻', '\u{10ffff}'];
  const name = (): string => Array.from({ length: prng.below(24) }, () => prng.pick(alphabet)).join('');
  const mismatches: string[] = [];
  const shards = new Set<number>();
  for (let i = 0; i < 5000; i++) {
    const [site, log] = [name(), name()];
    const shard = shardOf(site, log, SHARD_COUNT);
    shards.add(shard);
    if (shard !== documentedShard(site, log) || shard < 0 || shard >= SHARD_COUNT) mismatches.push(JSON.stringify([site, log]));
  }
  t.same(mismatches.slice(0, 5), [], 'random names, ASCII and not, agree with the independent hash and stay below 1024');
  t.ok(shards.size > 900, `the names spread over the shards (${shards.size} of ${SHARD_COUNT})`);
  t.not(shardOf('ab', 'c', SHARD_COUNT), shardOf('a', 'bc', SHARD_COUNT), 'the 0 byte separates site from log');
  t.end();
});
