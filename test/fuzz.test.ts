// Property-based fuzzing of the wire protocol against a real server (2 workers).
//
// A well-behaved device appends to a log (pipelined, lsn 1, 2, 3, …) and tails it from 0 for
// the whole test (and re-tails it from 0 now and then, so backlogs come from storage). Meanwhile
// fast-check drives hostile devices, each on its own WebSocket, sending generated messages:
// random bytes, truncated and lying frames, unknown ops, garbage headers and payloads, ops
// before connect, second connects, ops on other sessions' and released handles, absurd lsns and
// positions, text and over-size messages, good and bad tokens, attest and refresh.
//
// The oracle is docs/PROTOCOL.md, as a small model of each hostile session (SessionModel): it
// parses the frame prefixes of every message as the document describes and predicts which
// frames are processed, refused (with which error codes and echoed request ids) or dropped,
// which requests must get exactly one answer, and when the server must close the socket.
// After every run: the server is alive and accepts a fresh connect, nothing hung, every answer
// is one the protocol allows, no hostile session saw or touched another session's log, and the
// good device's acks and tail are intact. At the end the good log must hold exactly the good
// device's appends, in order.
//
// The test prints fast-check's seed. Replay a failure with it (and the path fast-check prints):
//   TAILGROVE_FUZZ_SEED=<seed> [TAILGROVE_FUZZ_PATH=<path>] [TAILGROVE_FUZZ_RUNS=<n>] npx tap test/fuzz.test.ts
import t from 'tap';
import fc from 'fast-check';
import WebSocket from 'ws';
import { pack } from 'msgpackr';
import { createSigner } from 'fast-jwt';
import { mintGrant, mintToken, type Grant } from '../src/auth/token.js';
import { DEFAULT_LIMITS } from '../src/limits.js';
import * as constants from '../src/constants.js';
import * as protocol from '../src/net/protocol.js';
import {
  ENTRIES_CAUGHT_UP,
  ENTRIES_READ_END,
  ENTRIES_READ_REPLY,
  ERROR,
  ERROR_NAMES,
  HEADER_BYTES,
  OP_ACK,
  OP_ACKED,
  OP_ATTEST,
  OP_CONNECT,
  OP_CONNECTED,
  OP_ENTRIES,
  OP_ERROR,
  OP_LEASE,
  OP_LEASED,
  OP_NACKED,
  OP_OK,
  OP_READ,
  OP_REFRESH,
  OP_RELEASE,
  OP_REVOKED,
  OP_PRESENCE,
  OP_SIGNAL,
  IO_THREAD_OPS,
  OP_TAIL,
  OP_UNTAIL,
  OP_WRITE,
  shardOf,
} from '../src/net/protocol.js';
import { decodeFrames, frame, frames, type ServerFrame } from '../src/testing/wire.js';
import { RawClient } from './helpers/raw-client.js';
import { removeDataDir, startServer, temporaryDataDir, type ServerProcess } from './helpers/server.js';

// ---------------------------------------------------------------------------------------------
// Settings

const SEED = process.env.TAILGROVE_FUZZ_SEED ? Number(process.env.TAILGROVE_FUZZ_SEED) : Date.now() % 2 ** 31;
const PATH = process.env.TAILGROVE_FUZZ_PATH || undefined;
const RUNS = Number(process.env.TAILGROVE_FUZZ_RUNS ?? 1200); // about 35 s on 2 cores
/** An answer (or the documented close) that takes longer than this is a hang. */
const ANSWER_TIMEOUT_MS = 5000;

const GOOD_SITE = 'good';
const GOOD_LOG = 'stream';
const GOOD_DEVICE = 'good-device';
const GOOD_TAIL_ID = 0x600d;
const GOOD_WINDOW = 4; // writes in flight
const GOOD_ACK_EVERY = 32;
/** The good client also re-tails its log from 0 this often on a second lease: a backlog read from storage while appends go on. */
const GOOD_RETAIL_MS = 1500;
/** Hostile sessions may read the good log but hold no write grant on it. */
const HOSTILE_GRANTS: Grant[] = [
  { site: 'acme', rights: 'rw' },
  { site: GOOD_SITE, rights: 'r' },
];
/** Request ids the test assigns (unique per session; fuzzed garbage rarely lands here). */
const RID_BASE = 0x5a000000;
/** Never leased: handles are sequence * workers + worker index, from sequence 1. */
const PROBE_HANDLE = 0xffffffff;

// ---------------------------------------------------------------------------------------------
// Protocol facts, taken from src/net/protocol.ts so the test follows the constants.

const SHARD_COUNT = constants.SHARD_COUNT;
const ENTRY_BYTES_MAX = constants.ENTRY_BYTES_MAX_DEFAULT; // the server runs with the default
const CONTROL_BYTES_MAX = constants.CONTROL_PAYLOAD_BYTES_MAX;
const MESSAGE_BYTES_MAX = DEFAULT_LIMITS.messageBytesMax;
const VIOLATIONS_MAX = DEFAULT_LIMITS.violationsMax;

/** Device ops (below 0x80) and their header lengths. */
const DEVICE_HEADER_BYTES = new Map(
  Object.entries(HEADER_BYTES)
    .map(([op, length]) => [Number(op), length] as const)
    .filter(([op]) => op < 0x80),
);
// The ops whose answers this model predicts. Signals and notification preferences have
// their own tests (test/signal.test.ts, test/notifications.test.ts).
const MODELED_OPS = [OP_CONNECT, OP_LEASE, OP_WRITE, OP_ACK, OP_READ, OP_TAIL, OP_UNTAIL, OP_RELEASE, OP_ATTEST, OP_REFRESH];
const UNMODELED_OPS = new Set([...DEVICE_HEADER_BYTES.keys()].filter((op) => !MODELED_OPS.includes(op)));
const ERROR_CODES = new Set<number>(Object.values(ERROR));
function errorCodes(...names: string[]): Set<number> {
  const table = ERROR as Readonly<Record<string, number>>;
  return new Set(names.map((name) => table[name]).filter((code): code is number => code !== undefined));
}
/** Answered by the IO thread itself, in message order, before anything reaches a worker. */
const IO_ONLY_ERRORS = errorCodes('BAD_FRAME', 'UNKNOWN_OP', 'TOO_LARGE', 'ALREADY_CONNECTED', 'NOT_CONNECTED', 'BAD_VERSION', 'BAD_TOKEN', 'TOKEN_EXPIRED', 'TOKEN_NOT_YET_VALID');
const LEASE_ERRORS = errorCodes('BAD_REQUEST', 'WRONG_SHARD', 'FORBIDDEN', 'FENCED', 'LEASE_LIMIT', 'RATE_LIMITED');
const READ_ERRORS = errorCodes('UNKNOWN_HANDLE', 'FORBIDDEN', 'BAD_REQUEST', 'GONE', 'REVOKED', 'RATE_LIMITED');
/** attest and refresh: _ok, or one of these (PROTOCOL.md, refresh and attest). */
const SESSION_OP_ERRORS = errorCodes('BAD_TOKEN', 'TOKEN_EXPIRED', 'TOKEN_NOT_YET_VALID', 'REVOKED', 'FORBIDDEN', 'RATE_LIMITED');
/** Anything a request with a rid (lease, read, connect, attest, refresh) may get. */
const RID_REQUEST_ERRORS = new Set([...LEASE_ERRORS, ...READ_ERRORS, ...SESSION_OP_ERRORS, ERROR.ALREADY_CONNECTED]);
/** The answer that means success, by request op. */
const SUCCESS_ANSWER: Readonly<Record<number, number>> = { [OP_LEASE]: OP_LEASED, [OP_READ]: OP_ENTRIES, [OP_ATTEST]: OP_OK, [OP_REFRESH]: OP_OK };
const HANDLE_OP_ERRORS = errorCodes('UNKNOWN_HANDLE', 'FORBIDDEN', 'FENCED', 'STALE_LSN', 'BAD_REQUEST', 'GONE', 'UNACKED_LIMIT', 'TAIL_LIMIT', 'REVOKED', 'RATE_LIMITED');
/** What an op on a handle this session does not hold may get: nothing about that log. */
const FOREIGN_HANDLE_ERRORS = errorCodes('UNKNOWN_HANDLE', 'BAD_REQUEST', 'RATE_LIMITED');
/** Close codes: normal (1000), shutdown (1001), over-size (1009), and the 4xxx of src/net/protocol.ts. */
const DOCUMENTED_CLOSES = new Set<number>([
  1000,
  1001,
  1009,
  ...Object.entries(protocol)
    .filter(([name, value]) => name.startsWith('CLOSE_') && typeof value === 'number')
    .map(([, value]) => value as number),
]);
/** Closes the model predicts (a text message, a refused connect, too many malformed frames, over-size, token expiry): never unexplained. */
const CAUSED_CLOSES = new Set([protocol.CLOSE_PROTOCOL, protocol.CLOSE_AUTH, protocol.CLOSE_VIOLATIONS, protocol.CLOSE_TOKEN_EXPIRED, 1009]);

const errorName = (code: number): string => ERROR_NAMES[code] ?? `code ${code}`;
const codeNames = (codes: Iterable<number>): string => [...codes].map(errorName).join('|');

function goodPayload(lsn: number): Buffer {
  return Buffer.from(`good ${lsn}${'.'.repeat(lsn % 23)}`);
}

// ---------------------------------------------------------------------------------------------
// Generated values: plain data, printable by fast-check, turned into bytes at run time (handles
// and request ids are only known then).

type TokenKind = 'valid' | 'noGrants' | 'wrongSite' | 'sharedDevice' | 'oddDevice' | 'garbage' | 'forged' | 'expired' | 'notYetValid' | 'badClaims';
interface TokenSpec {
  kind: TokenKind;
  /** The odd device name, the garbage token text, or the bad claim's value. */
  text: string;
}
const ACCEPTED_TOKENS = new Set<TokenKind>(['valid', 'noGrants', 'wrongSite', 'sharedDevice', 'oddDevice']);

/** A handle to aim at: the good device's, this session's own, one it released, its read-only lease on the good log, one of a closed session, or any number. */
type HandleRef = 'good' | 'own' | 'released' | 'goodRead' | { stale: number } | { literal: number };
/** The shard to put in the frame: the handle's log's shard, a shard of the other worker, another shard of the same worker, or any u16. */
type ShardRef = 'log' | 'otherWorker' | 'sameWorker' | { literal: number };

type ConnectPayload = { token: TokenSpec } | { value: unknown } | { raw: Uint8Array } | { oversized: true };
/** A grant token for attest: valid, bound to another device, expired, a session token instead, or not one. */
type GrantKind = 'grant' | 'boundGrant' | 'expiredGrant' | 'sessionToken' | 'forgedGrant';
type AttestPayload = { grant: GrantKind } | { token: TokenSpec } | { value: unknown } | { raw: Uint8Array };
type LeaseNames = { site: string; log: string } | { value: unknown } | { raw: Uint8Array };

type OpSpec =
  | { op: 'connect'; version: number; payload: ConnectPayload }
  | { op: 'refresh'; payload: ConnectPayload }
  | { op: 'attest'; payload: AttestPayload }
  | { op: 'lease'; names: LeaseNames; shard: 'names' | { literal: number }; newWriter: boolean; writerEpoch: number }
  | { op: 'write'; handle: HandleRef; shard: ShardRef; lsn: number; at: number | undefined; data: Uint8Array | 'oversized' }
  | { op: 'writeRun'; handle: HandleRef; shard: ShardRef; firstLsn: number; count: number; data: Uint8Array }
  | { op: 'ack'; handle: HandleRef; shard: ShardRef; lsn: number }
  | { op: 'read'; handle: HandleRef; shard: ShardRef; from: number; limit: number }
  | { op: 'tail'; handle: HandleRef; shard: ShardRef; from: number; tailId: number }
  | { op: 'untail' | 'release'; handle: HandleRef; shard: ShardRef }
  | { op: 'unknownOp'; code: number; headerLength: number; shard: number; payload: Uint8Array }
  | { op: 'garbageHeader'; code: number; header: Uint8Array; shard: number; payload: Uint8Array };

type Mutation =
  | { kind: 'none' }
  | { kind: 'truncate'; keepPerMille: number }
  | { kind: 'headerLength'; value: number }
  | { kind: 'payloadLength'; lie: 'shorter' | 'longer' | number }
  | { kind: 'shard'; value: number }
  | { kind: 'opByte'; value: number }
  | { kind: 'flip'; atPerMille: number; mask: number };

type PartSpec = { kind: 'op'; op: OpSpec; mutation: Mutation } | { kind: 'noise'; bytes: Uint8Array };
type MessageSpec = { kind: 'frames'; parts: PartSpec[] } | { kind: 'text'; text: string } | { kind: 'oversized' };
type SetupKind = 'valid' | 'noGrants' | 'wrongSite' | 'sharedDevice' | { oddDevice: string };
interface SessionSpec {
  /** Connect (and lease a few logs) before the fuzzed messages, or start unconnected. */
  setup: SetupKind | 'none';
  messages: MessageSpec[];
  /** Milliseconds between messages; 0 sends them all at once (one TCP burst). */
  paceMs: number;
}

const u32 = () => fc.oneof(fc.constantFrom(0, 1, 2, 3, 0x7fffffff, 0x80000000, 0xffffffff), fc.integer({ min: 0, max: 0xffffffff }));
const u16 = () => fc.oneof(fc.constantFrom(0, 1, 1023, 1024, 0x8000, 0xffff), fc.integer({ min: 0, max: 0xffff }));

/** Mostly the next few lsns of a fresh writer (so writes land, repeat and gap), sometimes anything. */
function lsnValue(): fc.Arbitrary<number> {
  return fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 1, max: 4 }) }, { weight: 2, arbitrary: fc.integer({ min: 0, max: 12 }) }, { weight: 1, arbitrary: u32() });
}

/** from / at: integers, and everything a float64 can hold that is not a position. */
function positionValue(): fc.Arbitrary<number> {
  return fc.oneof(
    fc.constantFrom(NaN, -1, -0, 0.5, Infinity, -Infinity, 2 ** 53, 2 ** 53 - 1, 2 ** 60, Number.MAX_VALUE, Number.MIN_VALUE),
    fc.integer({ min: 0, max: 40 }),
    fc.double(),
  );
}

function readLimit(): fc.Arbitrary<number> {
  return fc.oneof(fc.constantFrom(0, 1, 1000, 1001, 0xffffffff), fc.integer({ min: 0, max: 2000 }));
}

function entryData(): fc.Arbitrary<Uint8Array | 'oversized'> {
  return fc.oneof({ weight: 60, arbitrary: fc.uint8Array({ maxLength: 48 }) }, { weight: 1, arbitrary: fc.constant('oversized' as const) });
}

function handleRef(): fc.Arbitrary<HandleRef> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.constant('good' as const) },
    { weight: 4, arbitrary: fc.constant('own' as const) },
    { weight: 2, arbitrary: fc.constant('goodRead' as const) },
    { weight: 1, arbitrary: fc.constant('released' as const) },
    { weight: 1, arbitrary: fc.record({ stale: fc.nat(1000) }) },
    { weight: 1, arbitrary: fc.record({ literal: u32() }) },
  );
}

function shardRef(): fc.Arbitrary<ShardRef> {
  return fc.oneof(
    { weight: 8, arbitrary: fc.constant('log' as const) },
    { weight: 1, arbitrary: fc.constant('otherWorker' as const) },
    { weight: 1, arbitrary: fc.constant('sameWorker' as const) },
    { weight: 1, arbitrary: fc.record({ literal: u16() }) },
  );
}

/** Names a lease must refuse: NUL, too long (in characters or UTF-8 bytes), empty, or anything. */
function oddName(): fc.Arbitrary<string> {
  return fc.oneof(fc.constantFrom('', 'a\0b', '\0', 'x'.repeat(257), 'é'.repeat(129)), fc.string({ unit: 'binary', maxLength: 12 }));
}

function siteName(): fc.Arbitrary<string> {
  return fc.oneof({ weight: 6, arbitrary: fc.constantFrom('acme', 'acme', GOOD_SITE, 'elsewhere') }, { weight: 1, arbitrary: oddName() });
}

function logName(): fc.Arbitrary<string> {
  return fc.oneof({ weight: 6, arbitrary: fc.oneof(fc.constant(GOOD_LOG), fc.nat(9).map((n) => `fz-${n}`)) }, { weight: 1, arbitrary: oddName() });
}

/** Lease payloads of the wrong msgpack shape: numbers, maps, nested arrays, wrong arity, anything. */
function wrongLeaseValue(): fc.Arbitrary<unknown> {
  return fc.oneof(
    fc.integer(),
    fc.double(),
    fc.string({ maxLength: 20 }),
    fc.constant(null),
    fc.record({ site: fc.string(), log: fc.string() }),
    fc.tuple(fc.array(fc.string(), { maxLength: 2 }), fc.array(fc.string(), { maxLength: 2 })),
    fc.array(fc.string({ maxLength: 8 }), { maxLength: 4 }),
    fc.tuple(fc.integer(), fc.integer()),
    fc.tuple(fc.constant('acme'), fc.integer()),
    fc.anything({ maxDepth: 3 }),
  );
}

function leaseNames(): fc.Arbitrary<LeaseNames> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.record({ site: siteName(), log: logName() }) },
    { weight: 2, arbitrary: fc.record({ value: wrongLeaseValue() }) },
    { weight: 1, arbitrary: fc.record({ raw: fc.uint8Array({ maxLength: 24 }) }) },
  );
}

function tokenSpec(): fc.Arbitrary<TokenSpec> {
  return fc.record({
    kind: fc.constantFrom<TokenKind>('valid', 'noGrants', 'wrongSite', 'sharedDevice', 'oddDevice', 'garbage', 'forged', 'expired', 'notYetValid', 'badClaims'),
    text: fc.string({ unit: 'binary', minLength: 1, maxLength: 32 }),
  });
}

/** Connect payloads: tokens good and bad, the wrong msgpack shape, not msgpack, above the control payload limit. */
function connectPayload(): fc.Arbitrary<ConnectPayload> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.record({ token: tokenSpec() }) },
    {
      weight: 2,
      arbitrary: fc.record({
        value: fc.oneof(
          fc.record({ token: fc.oneof(fc.integer(), fc.constant(null), fc.array(fc.string(), { maxLength: 3 }), fc.dictionary(fc.string(), fc.string()), fc.string({ maxLength: 300 })) }),
          fc.anything({ maxDepth: 2 }),
        ),
      }),
    },
    { weight: 1, arbitrary: fc.record({ raw: fc.uint8Array({ maxLength: 24 }) }) },
    { weight: 1, arbitrary: fc.constant({ oversized: true as const }) },
  );
}

function connectOp(): fc.Arbitrary<OpSpec> {
  return fc.record({ op: fc.constant('connect' as const), version: fc.oneof({ weight: 5, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: u16() }), payload: connectPayload() });
}

/** refresh and attest, the session ops: tokens good and bad, grant tokens good and bad, wrong payloads. */
function sessionOp(): fc.Arbitrary<OpSpec> {
  return fc.oneof(
    fc.record({ op: fc.constant('refresh' as const), payload: connectPayload() }),
    fc.record({
      op: fc.constant('attest' as const),
      payload: fc.oneof(
        { weight: 3, arbitrary: fc.record({ grant: fc.constantFrom<GrantKind>('grant', 'boundGrant', 'expiredGrant', 'sessionToken', 'forgedGrant') }) },
        { weight: 1, arbitrary: fc.record({ token: tokenSpec() }) },
        { weight: 1, arbitrary: fc.record({ value: fc.anything({ maxDepth: 2 }) }) },
        { weight: 1, arbitrary: fc.record({ raw: fc.uint8Array({ maxLength: 24 }) }) },
      ),
    }),
  );
}

function leaseOp(): fc.Arbitrary<OpSpec> {
  return fc.record({
    op: fc.constant('lease' as const),
    names: leaseNames(),
    shard: fc.oneof({ weight: 5, arbitrary: fc.constant('names' as const) }, { weight: 1, arbitrary: fc.record({ literal: u16() }) }),
    newWriter: fc.boolean(),
    writerEpoch: fc.oneof(fc.constantFrom(0, 0, 1, 2), u32()),
  });
}

function handleOp(): fc.Arbitrary<OpSpec> {
  const target = { handle: handleRef(), shard: shardRef() };
  return fc.oneof(
    { weight: 5, arbitrary: fc.record({ op: fc.constant('write' as const), ...target, lsn: lsnValue(), at: fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: positionValue() }), data: entryData() }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('ack' as const), ...target, lsn: lsnValue() }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant('read' as const), ...target, from: positionValue(), limit: readLimit() }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('tail' as const), ...target, from: positionValue(), tailId: u32() }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constantFrom('untail' as const, 'release' as const), ...target }) },
  );
}

/** An op byte that is no device op (server ops included). */
function unknownOpCode(): fc.Arbitrary<number> {
  return fc.integer({ min: 0, max: 255 }).filter((op) => !DEVICE_HEADER_BYTES.has(op));
}

/** A correct prefix and op byte, then garbage in the rest of the op header (ops this model follows). */
function garbageHeaderOp(): fc.Arbitrary<OpSpec> {
  return fc
    .record({ code: fc.constantFrom(...MODELED_OPS), seed: fc.uint8Array({ minLength: 32, maxLength: 32 }), shard: fc.oneof(fc.nat(SHARD_COUNT - 1), u16()), payload: fc.uint8Array({ maxLength: 24 }) })
    .map(({ code, seed, shard, payload }) => ({ op: 'garbageHeader' as const, code, header: seed.subarray(0, DEVICE_HEADER_BYTES.get(code)! - 1), shard, payload }));
}

/** Pipelined writes with consecutive lsns, mostly on the session's own log (appends, retries, gaps). */
function writeRun(): fc.Arbitrary<OpSpec> {
  return fc.record({
    op: fc.constant('writeRun' as const),
    handle: fc.oneof({ weight: 6, arbitrary: fc.constant('own' as const) }, { weight: 1, arbitrary: handleRef() }),
    shard: fc.oneof({ weight: 8, arbitrary: fc.constant('log' as const) }, { weight: 1, arbitrary: shardRef() }),
    firstLsn: fc.integer({ min: 1, max: 8 }),
    count: fc.integer({ min: 1, max: 6 }),
    data: fc.uint8Array({ maxLength: 16 }),
  });
}

function opSpec(): fc.Arbitrary<OpSpec> {
  return fc.oneof(
    { weight: 12, arbitrary: handleOp() },
    { weight: 3, arbitrary: writeRun() },
    { weight: 3, arbitrary: leaseOp() },
    { weight: 1, arbitrary: connectOp() },
    { weight: 1, arbitrary: sessionOp() },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('unknownOp' as const), code: unknownOpCode(), headerLength: fc.oneof(fc.constantFrom(8, 12, 24), fc.nat(40)), shard: fc.nat(SHARD_COUNT - 1), payload: fc.uint8Array({ maxLength: 16 }) }) },
    { weight: 1, arbitrary: garbageHeaderOp() },
  );
}

/** How to damage a frame: cut it, lie about its lengths or shard, change its op, flip a byte. */
function mutation(): fc.Arbitrary<Mutation> {
  return fc.oneof(
    { weight: 12, arbitrary: fc.constant({ kind: 'none' as const }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), keepPerMille: fc.nat(999) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('headerLength' as const), value: u16() }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('payloadLength' as const), lie: fc.oneof(fc.constantFrom('shorter' as const, 'longer' as const), fc.constantFrom(0xffffffff, 0x80000000, ENTRY_BYTES_MAX + 1, CONTROL_BYTES_MAX + 1), u32()) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('shard' as const), value: u16() }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('opByte' as const), value: fc.integer({ min: 0, max: 255 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('flip' as const), atPerMille: fc.nat(999), mask: fc.integer({ min: 1, max: 255 }) }) },
  );
}

/** Bytes with no structure, or shaped like a prefix with arbitrary lengths. */
function noise(): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    fc.uint8Array({ maxLength: 40 }),
    fc.tuple(fc.nat(40), fc.nat(64), u16(), fc.uint8Array({ maxLength: 40 })).map(([headerLength, payloadLength, shard, rest]) => {
      const bytes = Buffer.alloc(8 + rest.length);
      bytes.writeUInt16LE(headerLength, 0);
      bytes.writeUInt32LE(payloadLength, 2);
      bytes.writeUInt16LE(shard, 6);
      bytes.set(rest, 8);
      return new Uint8Array(bytes);
    }),
  );
}

function partSpec(): fc.Arbitrary<PartSpec> {
  return fc.oneof({ weight: 9, arbitrary: fc.record({ kind: fc.constant('op' as const), op: opSpec(), mutation: mutation() }) }, { weight: 1, arbitrary: fc.record({ kind: fc.constant('noise' as const), bytes: noise() }) });
}

function messageSpec(): fc.Arbitrary<MessageSpec> {
  return fc.oneof(
    { weight: 40, arbitrary: fc.record({ kind: fc.constant('frames' as const), parts: fc.array(partSpec(), { minLength: 1, maxLength: 4 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('text' as const), text: fc.string({ maxLength: 16 }) }) },
    { weight: 1, arbitrary: fc.constant({ kind: 'oversized' as const }) },
  );
}

function setupKind(): fc.Arbitrary<SetupKind | 'none'> {
  return fc.oneof(
    { weight: 8, arbitrary: fc.constant('valid' as const) },
    { weight: 1, arbitrary: fc.constantFrom('noGrants' as const, 'wrongSite' as const) },
    { weight: 2, arbitrary: fc.constant('sharedDevice' as const) },
    { weight: 1, arbitrary: fc.record({ oddDevice: fc.string({ unit: 'binary', minLength: 1, maxLength: 32 }) }) },
    { weight: 3, arbitrary: fc.constant('none' as const) },
  );
}

function sessionSpec(): fc.Arbitrary<SessionSpec> {
  // Now and then a long session, long enough to pass the limit of malformed frames (close 4004).
  const messages = fc.oneof({ weight: 15, arbitrary: fc.array(messageSpec(), { minLength: 1, maxLength: 6 }) }, { weight: 1, arbitrary: fc.array(messageSpec(), { minLength: VIOLATIONS_MAX, maxLength: VIOLATIONS_MAX + 8 }) });
  return fc.record({ setup: setupKind(), messages, paceMs: fc.constantFrom(0, 0, 1, 3) });
}

/** One run: one to three hostile sessions at once. */
function scenario(): fc.Arbitrary<SessionSpec[]> {
  return fc.array(sessionSpec(), { minLength: 1, maxLength: 3 });
}

// ---------------------------------------------------------------------------------------------
// Tokens

class Tokens {
  private devices = 0;
  constructor(private readonly secret: string) {}

  mint(spec: TokenSpec): string {
    const device = `hostile-${++this.devices}`;
    const now = Math.floor(Date.now() / 1000);
    switch (spec.kind) {
      case 'valid':
        return mintToken({ sub: 'hostile', device, grants: HOSTILE_GRANTS }, this.secret);
      case 'noGrants':
        return mintToken({ sub: 'hostile', device, grants: [] }, this.secret);
      case 'wrongSite':
        return mintToken({ sub: 'hostile', device, grants: [{ site: 'elsewhere', rights: 'rw' }] }, this.secret);
      case 'sharedDevice':
        return mintToken({ sub: 'hostile', device: 'hostile-shared', grants: HOSTILE_GRANTS }, this.secret);
      case 'oddDevice':
        return mintToken({ sub: 'hostile', device: spec.text, grants: HOSTILE_GRANTS }, this.secret);
      case 'garbage':
        return spec.text;
      case 'forged':
        return mintToken({ sub: 'hostile', device, grants: HOSTILE_GRANTS }, 'not-the-server-secret-at-all-0123456789');
      case 'expired':
        return mintToken({ sub: 'hostile', device, grants: HOSTILE_GRANTS, exp: now - 3600 }, this.secret);
      case 'notYetValid':
        return createSigner({ key: this.secret, algorithm: 'HS256' })({ sub: 'hostile', device, grants: HOSTILE_GRANTS, exp: now + 7200, nbf: now + 3600 });
      case 'badClaims':
        // Signed by the server's secret, but no `sub` and grants that are not an array.
        return createSigner({ key: this.secret, algorithm: 'HS256' })({ device: spec.text, grants: spec.text, exp: now + 3600 });
    }
  }

  grant(kind: GrantKind): string {
    const now = Math.floor(Date.now() / 1000);
    // Never a grant on the good site: with one, writing the good log would be legitimate.
    const grants: Grant[] = [
      { site: 'acme', rights: 'rw' },
      { site: 'elsewhere', rights: 'r' },
    ];
    switch (kind) {
      case 'grant':
        return mintGrant({ grants }, this.secret);
      case 'boundGrant':
        return mintGrant({ grants, sub: 'someone-else', device: 'another-device' }, this.secret);
      case 'expiredGrant':
        return mintGrant({ grants, exp: now - 3600 }, this.secret);
      case 'sessionToken':
        return mintToken({ sub: 'hostile', device: 'hostile-attest', grants }, this.secret);
      case 'forgedGrant':
        return mintGrant({ grants }, 'not-the-server-secret-at-all-0123456789');
    }
  }

  static grantOutcome(kind: GrantKind): 'accepted' | Set<number> {
    if (kind === 'grant') return 'accepted';
    if (kind === 'boundGrant') return errorCodes('FORBIDDEN');
    if (kind === 'expiredGrant') return errorCodes('TOKEN_EXPIRED');
    return errorCodes('BAD_TOKEN');
  }

  /** What the server must answer a connect with this token: accepted, or one of these codes. */
  static outcome(kind: TokenKind): 'accepted' | Set<number> {
    if (ACCEPTED_TOKENS.has(kind)) return 'accepted';
    if (kind === 'expired') return errorCodes('TOKEN_EXPIRED');
    if (kind === 'notYetValid') return errorCodes('TOKEN_NOT_YET_VALID');
    return errorCodes('BAD_TOKEN');
  }
}

function setupToken(kind: SetupKind): TokenSpec {
  return typeof kind === 'string' ? { kind, text: '' } : { kind: 'oddDevice', text: kind.oddDevice };
}

// ---------------------------------------------------------------------------------------------
// Building messages from specs

interface Target {
  handle: number;
  shard: number;
}

/** What the test knows about a frame it built (absent for garbage, or once mutated). */
interface FrameDesc {
  op: number;
  rid?: number;
  /** For handle ops: the handle, and why the server must not treat it as this session's (per PROTOCOL.md). */
  handle?: number;
  foreign?: 'handle' | 'shard';
  connect?: 'accepted' | Set<number>;
  /** attest / refresh: whether _ok may answer, and which error codes. */
  answer?: { ok: boolean; codes: Set<number> };
}

interface BuiltPart {
  start: number;
  end: number;
  /** Frames in the part (a write run has several). */
  frames?: number;
  /** The frame as built, if no mutation changed its bytes. */
  desc?: FrameDesc;
  /** Request id the part was built with (even if mutated), to check dropped frames stay unanswered. */
  rid?: number;
}

type BuiltMessage = { kind: 'binary'; bytes: Buffer; parts: BuiltPart[]; fuzzed: boolean } | { kind: 'text'; text: string } | { kind: 'oversized' };

const OVERSIZED_MESSAGE = Buffer.alloc(MESSAGE_BYTES_MAX + 16, 0xab);
const OVERSIZED_ENTRY = Buffer.alloc(ENTRY_BYTES_MAX + 1, 0xcd);
/** Handles of hostile sessions that have closed, for ops on stale handles. */
const staleHandles: Target[] = [];
/** Names the setup's logs apart. */
let hostileLogs = 0;

class SessionContext {
  own: Target | undefined;
  released: Target | undefined;
  goodRead: Target | undefined;
  private rid = RID_BASE;
  constructor(
    readonly good: Target,
    readonly tokens: Tokens,
  ) {}

  nextRid(): number {
    return ++this.rid;
  }

  /** The handle to use and the shard of its log, and whether it is this session's. */
  resolve(ref: HandleRef): Target & { held: boolean } {
    if (ref === 'good') return { ...this.good, held: false };
    if (ref === 'own') return this.own ? { ...this.own, held: true } : { handle: 3, shard: 1, held: false };
    if (ref === 'goodRead') return this.goodRead ? { ...this.goodRead, held: true } : { ...this.good, held: false };
    if (ref === 'released') return this.released ? { ...this.released, held: false } : { handle: 2, shard: 0, held: false };
    if ('stale' in ref) return staleHandles.length > 0 ? { ...staleHandles[ref.stale % staleHandles.length]!, held: false } : { handle: 5, shard: 1, held: false };
    return { handle: ref.literal, shard: ref.literal % SHARD_COUNT, held: this.isHeld(ref.literal) };
  }

  private isHeld(handle: number): boolean {
    return handle === this.own?.handle || handle === this.goodRead?.handle;
  }
}

function shardFor(ref: ShardRef, logShard: number): number {
  if (ref === 'log') return logShard;
  if (ref === 'otherWorker') return logShard ^ 1;
  if (ref === 'sameWorker') return (logShard + 2) % SHARD_COUNT;
  return ref.literal;
}

function packSafely(value: unknown): Buffer {
  try {
    return pack(value);
  } catch {
    return Buffer.from([0xc1]); // a byte msgpack never uses
  }
}

function rawFrame(op: number, headerLength: number, shard: number, headerRest: Uint8Array, payload: Uint8Array): Buffer {
  const bytes = Buffer.alloc(8 + Math.max(headerLength, 1) + payload.length);
  bytes.writeUInt16LE(headerLength, 0);
  bytes.writeUInt32LE(payload.length, 2);
  bytes.writeUInt16LE(shard, 6);
  bytes[8] = op; // with a header length of 0 this is the payload's first byte: a lie as good as any
  bytes.set(headerRest.subarray(0, Math.max(0, headerLength - 1)), 9);
  bytes.set(payload, 8 + Math.max(headerLength, 1));
  return bytes.subarray(0, 8 + headerLength + payload.length);
}

/** The bytes of an op (one frame, or `frames` of them for a write run) and what the test knows about it. */
function buildOp(spec: OpSpec, context: SessionContext): { bytes: Buffer; desc?: FrameDesc; frames?: number } {
  switch (spec.op) {
    case 'connect': {
      const rid = context.nextRid();
      const payload = spec.payload;
      let bytes: Buffer;
      let outcome: 'accepted' | Set<number>;
      if ('token' in payload) {
        bytes = pack({ token: context.tokens.mint(payload.token) });
        outcome = Tokens.outcome(payload.token.kind);
      } else {
        bytes = 'value' in payload ? packSafely(payload.value) : 'raw' in payload ? Buffer.from(payload.raw) : pack({ token: 'x'.repeat(CONTROL_BYTES_MAX + 1) });
        outcome = errorCodes('BAD_TOKEN');
      }
      if (spec.version !== 1) outcome = new Set([ERROR.BAD_VERSION, ...(outcome === 'accepted' ? [] : outcome)]);
      return { bytes: frame(OP_CONNECT, 8, 0, { word: spec.version, a: rid }, bytes), desc: { op: OP_CONNECT, rid, connect: outcome } };
    }
    case 'refresh':
    case 'attest': {
      const rid = context.nextRid();
      const payload = spec.payload;
      const token = 'grant' in payload ? context.tokens.grant(payload.grant) : 'token' in payload ? context.tokens.mint(payload.token) : undefined;
      const bytes = token !== undefined ? pack({ token }) : 'value' in payload ? packSafely(payload.value) : 'raw' in payload ? Buffer.from(payload.raw) : pack({ token: 'x'.repeat(CONTROL_BYTES_MAX + 1) });
      const op = spec.op === 'refresh' ? OP_REFRESH : OP_ATTEST;
      return { bytes: frame(op, 8, 0, { a: rid }, bytes), desc: { op, rid, answer: sessionOpAnswer(spec.op, payload) } };
    }
    case 'lease': {
      const rid = context.nextRid();
      const names = spec.names;
      const payload = 'site' in names ? pack([names.site, names.log]) : 'value' in names ? packSafely(names.value) : Buffer.from(names.raw);
      const shard = spec.shard !== 'names' ? spec.shard.literal : 'site' in names ? shardOf(names.site, names.log, SHARD_COUNT) : 0;
      return { bytes: frame(OP_LEASE, 12, shard, { flags: spec.newWriter ? 1 : 0, a: rid, b: spec.writerEpoch }, payload), desc: { op: OP_LEASE, rid } };
    }
    case 'unknownOp':
      return { bytes: rawFrame(spec.code, spec.headerLength, spec.shard, new Uint8Array(0), spec.payload) };
    case 'garbageHeader':
      return { bytes: rawFrame(spec.code, DEVICE_HEADER_BYTES.get(spec.code)!, spec.shard, spec.header, spec.payload) };
    default: {
      const target = context.resolve(spec.handle);
      const shard = shardFor(spec.shard, target.shard);
      // PROTOCOL.md: UNKNOWN_HANDLE when "the handle is not leased by this session (or on another shard)".
      const foreign = !target.held ? ('handle' as const) : shard !== target.shard ? ('shard' as const) : undefined;
      const desc = (op: number, rid?: number): FrameDesc => ({ op, handle: target.handle, ...(rid === undefined ? {} : { rid }), ...(foreign ? { foreign } : {}) });
      switch (spec.op) {
        case 'write':
          return { bytes: frames.write(shard, target.handle, spec.lsn, spec.data === 'oversized' ? OVERSIZED_ENTRY : spec.data, spec.at), desc: desc(OP_WRITE) };
        case 'writeRun': {
          const run = Array.from({ length: spec.count }, (_, i) => frames.write(shard, target.handle, spec.firstLsn + i, spec.data));
          return { bytes: Buffer.concat(run), frames: spec.count };
        }
        case 'ack':
          return { bytes: frames.ack(shard, target.handle, spec.lsn), desc: desc(OP_ACK) };
        case 'read': {
          const rid = context.nextRid();
          return { bytes: frames.read(shard, target.handle, rid, spec.from, spec.limit), desc: desc(OP_READ, rid) };
        }
        case 'tail':
          return { bytes: frames.tail(shard, target.handle, spec.from, spec.tailId), desc: desc(OP_TAIL) };
        case 'untail':
          return { bytes: frames.untail(shard, target.handle), desc: desc(OP_UNTAIL) };
        case 'release':
          return { bytes: frames.release(shard, target.handle), desc: desc(OP_RELEASE) };
      }
    }
  }
}

/** What refresh / attest must answer (PROTOCOL.md): _ok, or which error codes. */
function sessionOpAnswer(op: 'refresh' | 'attest', payload: ConnectPayload | AttestPayload): { ok: boolean; codes: Set<number> } {
  if ('grant' in payload) {
    const outcome = Tokens.grantOutcome(payload.grant);
    return outcome === 'accepted' ? { ok: true, codes: new Set() } : { ok: false, codes: outcome };
  }
  if (!('token' in payload)) return { ok: false, codes: errorCodes('BAD_TOKEN') };
  const outcome = Tokens.outcome(payload.token.kind);
  if (outcome !== 'accepted') return { ok: false, codes: outcome };
  // A session token is no grant token. A refresh token must name the session's user and device:
  // the ones minted here rarely do (shared devices do), so _ok or FORBIDDEN.
  return op === 'attest' ? { ok: false, codes: errorCodes('BAD_TOKEN') } : { ok: true, codes: errorCodes('FORBIDDEN') };
}

function mutate(original: Buffer, mutation: Mutation): Buffer {
  const bytes = Buffer.from(original);
  switch (mutation.kind) {
    case 'none':
      return bytes;
    case 'truncate':
      return bytes.subarray(0, Math.floor((mutation.keepPerMille / 1000) * bytes.length));
    case 'headerLength':
      bytes.writeUInt16LE(mutation.value, 0);
      return bytes;
    case 'payloadLength': {
      const actual = bytes.readUInt32LE(2);
      const lie = mutation.lie === 'shorter' ? Math.max(0, actual - 1) : mutation.lie === 'longer' ? actual + 1 : mutation.lie;
      bytes.writeUInt32LE(lie >>> 0, 2);
      return bytes;
    }
    case 'shard':
      bytes.writeUInt16LE(mutation.value, 6);
      return bytes;
    case 'opByte':
      bytes[8] = mutation.value;
      return bytes;
    case 'flip':
      bytes[Math.floor((mutation.atPerMille / 1000) * bytes.length)]! ^= mutation.mask;
      return bytes;
  }
}

function buildMessage(spec: MessageSpec, context: SessionContext): BuiltMessage {
  if (spec.kind !== 'frames') return spec;
  const chunks: Buffer[] = [];
  const parts: BuiltPart[] = [];
  let offset = 0;
  for (const part of spec.parts) {
    const built: { bytes: Buffer; desc?: FrameDesc; frames?: number } = part.kind === 'noise' ? { bytes: Buffer.from(part.bytes) } : buildOp(part.op, context);
    const bytes = part.kind === 'noise' ? built.bytes : mutate(built.bytes, part.mutation);
    // What the test knows about the frame holds only while its bytes are as built.
    const desc = bytes.equals(built.bytes) ? built.desc : undefined;
    parts.push({ start: offset, end: offset + bytes.length, frames: built.frames ?? 1, ...(desc ? { desc } : {}), ...(built.desc?.rid === undefined ? {} : { rid: built.desc.rid }) });
    chunks.push(bytes);
    offset += bytes.length;
  }
  return { kind: 'binary', bytes: Buffer.concat(chunks), parts, fuzzed: true };
}

/** A well-formed message of frames the test builds itself (setup, probes): not counted as fuzzed. */
function plainMessage(...built: { bytes: Buffer; desc?: FrameDesc }[]): BuiltMessage {
  const parts: BuiltPart[] = [];
  let offset = 0;
  for (const { bytes, desc } of built) {
    parts.push({ start: offset, end: offset + bytes.length, ...(desc ? { desc } : {}), ...(desc?.rid === undefined ? {} : { rid: desc.rid }) });
    offset += bytes.length;
  }
  return { kind: 'binary', bytes: Buffer.concat(built.map((part) => part.bytes)), parts, fuzzed: false };
}

function describeMessage(message: BuiltMessage): string {
  if (message.kind === 'text') return `text ${JSON.stringify(message.text)}`;
  if (message.kind === 'oversized') return `binary message of ${OVERSIZED_MESSAGE.length} bytes`;
  const hex = message.bytes.toString('hex');
  return `${message.fuzzed ? 'fuzzed' : 'plain'} ${message.bytes.length} bytes: ${hex.length > 400 ? `${hex.slice(0, 400)}…` : hex}`;
}

// ---------------------------------------------------------------------------------------------
// The model: what PROTOCOL.md says the server answers to the messages of one session.

/** A refusal the IO thread must send, in message order. */
interface IoExpectation {
  codes: Set<number>;
  what: string;
  /** Echoed request id (A), when the rid field is in the message. */
  rid?: number;
  /** A refused write with its header present is named by handle (B) and lsn (C). */
  write?: { handle: number; lsn: number };
}

interface RequestExpectation {
  op: number;
  /** A success answer (_leased, _entries, _ok) is allowed, and these error codes. */
  ok: boolean;
  codes: Set<number>;
  handle?: number;
  foreign?: 'handle' | 'shard';
  /** The message that carried it. */
  message: string;
}

/** What a processed request may be answered with, by op (PROTOCOL.md). */
function requestExpectation(op: number, desc: FrameDesc | undefined, message: string): RequestExpectation {
  const foreign = desc?.foreign ? { foreign: desc.foreign, handle: desc.handle! } : {};
  if (op === OP_LEASE) return { op, ok: true, codes: LEASE_ERRORS, message };
  if (op === OP_READ) return { op, ok: true, codes: READ_ERRORS, ...foreign, message };
  if (op === OP_CONNECT) return { op, ok: false, codes: errorCodes('ALREADY_CONNECTED'), message };
  return { op, ...(desc?.answer ?? { ok: true, codes: SESSION_OP_ERRORS }), message };
}

type Verdict = { size: number } | { codes: Set<number> };

/** The prefix rules of PROTOCOL.md for the frame at `offset`: its size, or the codes that may refuse it. */
function prefixVerdict(message: Buffer, offset: number): Verdict {
  const available = message.length - offset;
  const codes = new Set<number>();
  if (available < 16) codes.add(ERROR.BAD_FRAME); // shorter than the smallest device frame
  if (available < 9) return { codes };
  const headerLength = message.readUInt16LE(offset);
  const payloadLength = message.readUInt32LE(offset + 2);
  const shard = message.readUInt16LE(offset + 6);
  const op = message[offset + 8]!;
  const expected = DEVICE_HEADER_BYTES.get(op);
  if (expected === undefined) codes.add(ERROR.UNKNOWN_OP);
  else if (headerLength !== expected) codes.add(ERROR.BAD_FRAME);
  if (shard >= SHARD_COUNT) codes.add(ERROR.WRONG_SHARD);
  if (expected !== undefined && payloadLength > (op === OP_WRITE ? ENTRY_BYTES_MAX : CONTROL_BYTES_MAX)) codes.add(ERROR.TOO_LARGE);
  if (8 + headerLength + payloadLength > available) codes.add(ERROR.BAD_FRAME);
  return codes.size > 0 ? { codes } : { size: 8 + headerLength + payloadLength };
}

/** The request id field of a frame (PROTOCOL.md: the IO thread's ops and lease: A; read: B; signal: C), if the message holds it. */
function ridField(message: Buffer, offset: number): number | undefined {
  if (message.length < offset + 9) return undefined;
  const op = message[offset + 8]!;
  const at = IO_THREAD_OPS.includes(op) || op === OP_LEASE ? 4 : op === OP_READ ? 8 : op === OP_SIGNAL ? 12 : -1;
  if (at < 0 || message.length < offset + 8 + at + 4) return undefined;
  return message.readUInt32LE(offset + 8 + at);
}

class SessionModel {
  state: 'unconnected' | 'connected' | 'closed' | 'unknown' = 'unconnected';
  /** Why the model stopped following the session ('unknown'). */
  unknownBecause = '';
  readonly io: IoExpectation[] = [];
  /** Processed requests by rid: each must get exactly one terminal answer. */
  readonly requests = new Map<number, RequestExpectation[]>();
  /** rids of frames the server must drop unanswered. */
  readonly dropped = new Set<number>();
  /** rids of connects that must be answered by _connected. */
  readonly connects: number[] = [];
  expectedClose: { codes: number[]; why: string } | undefined;
  /** Processed requests with rid 0 (from garbage): their answers look like other ops' errors. */
  ridZeroRequests = 0;
  /** Frames refused on their prefix: past VIOLATIONS_MAX the server closes with 4004. */
  violations = 0;

  get following(): boolean {
    return this.state === 'unconnected' || this.state === 'connected';
  }

  apply(message: BuiltMessage): void {
    if (!this.following) return;
    if (message.kind === 'text') {
      this.close([protocol.CLOSE_PROTOCOL], 'a text message');
      return;
    }
    if (message.kind === 'oversized') {
      // PROTOCOL.md: uWS drops the connection, so the device sees 1006 (1009 would be the standard close).
      this.close([1006, 1009], 'a message above the size limit');
      return;
    }
    const bytes = message.bytes;
    if (bytes.length === 0) {
      // No frame at all: malformed (SECURITY.md: "not empty (BAD_FRAME)").
      this.io.push({ codes: new Set([ERROR.BAD_FRAME]), what: `an empty message (state ${this.state})` });
      if (++this.violations > VIOLATIONS_MAX) this.close([protocol.CLOSE_VIOLATIONS], `${this.violations} malformed frames`);
      return;
    }
    const processed = new Set<number>();
    let refusedAt = -1;
    for (let offset = 0; offset < bytes.length; ) {
      const verdict = prefixVerdict(bytes, offset);
      if (bytes.length > offset + 8 && UNMODELED_OPS.has(bytes[offset + 8]!)) {
        // A mutation made a frame of an op this model does not predict (signal, notification preferences).
        this.state = 'unknown';
        this.unknownBecause = `a frame of op 0x${bytes[offset + 8]!.toString(16)}, which this model does not follow, at byte ${offset}`;
        return;
      }
      if ('codes' in verdict) {
        this.io.push(this.refusal(bytes, offset, verdict.codes, `the malformed frame at byte ${offset} of ${describeMessage(message)}`, true));
        refusedAt = offset;
        if (++this.violations > VIOLATIONS_MAX) this.close([protocol.CLOSE_VIOLATIONS], `${this.violations} malformed frames`);
        break;
      }
      const op = bytes[offset + 8]!;
      const part = message.parts.find((p) => p.start === offset && p.end === offset + verdict.size);
      const desc = part?.desc;
      if (this.state === 'unconnected' && op !== OP_CONNECT) {
        this.io.push(this.refusal(bytes, offset, new Set([ERROR.NOT_CONNECTED]), `the op ${op} frame at byte ${offset} (before connect) of ${describeMessage(message)}`, false));
        refusedAt = offset;
        break;
      }
      if (op === OP_CONNECT && this.state === 'unconnected') {
        if (desc?.connect === undefined) {
          this.state = 'unknown';
          this.unknownBecause = `a damaged but well-formed connect frame at byte ${offset}`;
          return;
        }
        if (desc.connect === 'accepted') {
          this.connects.push(desc.rid!);
          this.state = 'connected';
        } else {
          this.io.push({ codes: desc.connect, what: `the refused connect at byte ${offset} of ${describeMessage(message)}`, rid: desc.rid! });
          this.close([protocol.CLOSE_AUTH], 'a refused connect');
          refusedAt = offset;
          break;
        }
      } else if (op === OP_LEASE || op === OP_READ || op === OP_CONNECT || op === OP_ATTEST || op === OP_REFRESH) {
        // Requests answered by rid (a second connect is answered ALREADY_CONNECTED; the rest of its message goes on).
        const rid = ridField(bytes, offset)!;
        if (rid === 0) this.ridZeroRequests++;
        else this.requests.set(rid, [...(this.requests.get(rid) ?? []), requestExpectation(op, desc, describeMessage(message))]);
      }
      processed.add(offset);
      offset += verdict.size;
    }
    // The refused frame's rid field may hold a later part's rid (a lying length shifts frames): it is echoed, not dropped.
    const echoed = refusedAt >= 0 ? ridField(bytes, refusedAt) : undefined;
    for (const part of message.parts) {
      if (part.rid !== undefined && !processed.has(part.start) && part.start !== refusedAt && part.rid !== echoed) this.dropped.add(part.rid);
    }
  }

  private close(codes: number[], why: string): void {
    this.state = 'closed';
    this.expectedClose = { codes, why };
  }

  /** A refusal of the frame at `offset`: it echoes the rid; a prefix refusal of a write also names the write. */
  private refusal(bytes: Buffer, offset: number, codes: Set<number>, what: string, onPrefix: boolean): IoExpectation {
    const expectation: IoExpectation = { codes, what };
    const rid = ridField(bytes, offset);
    if (rid !== undefined) expectation.rid = rid;
    if (onPrefix && bytes.length >= offset + 8 + 24 && bytes[offset + 8] === OP_WRITE) {
      expectation.write = { handle: bytes.readUInt32LE(offset + 12), lsn: bytes.readUInt32LE(offset + 16) };
    }
    return expectation;
  }
}

// ---------------------------------------------------------------------------------------------
// A hostile session: its socket, what it sent and received, and the checks.

const totals = { runs: 0, sessions: 0, messages: 0, frames: 0, serverFrames: 0, lostToAbortiveClose: 0 };
/** What the hostile sessions got back, by answer (and error name), and how their sockets closed. */
const answerCounts = new Map<string, number>();
const closeCounts = new Map<string, number>();
function count(counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}
function showCounts(counts: Map<string, number>): string {
  return [...counts].sort(([, a], [, b]) => b - a).map(([key, n]) => `${key} ${n}`).join(', ');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function until(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await sleep(2);
  }
  return true;
}

interface Check {
  violations: string[];
  /** Leases not answered yet: until they are, the handles this session holds are not all known. */
  pendingLeases: number;
  /** Answers still to come (waited for; a hang if they never arrive). */
  missing: string[];
  /** IO-thread refusals not received (a subset of missing). */
  missingRefusals: string[];
}

class HostileSession {
  readonly model = new SessionModel();
  readonly context: SessionContext;
  readonly received: ServerFrame[] = [];
  readonly violations: string[] = [];
  readonly sent: BuiltMessage[] = [];
  /** Set when the socket closed; `byServer` when it closed before we started closing it. */
  closed: { code: number; byServer: boolean } | undefined;
  private closing = false;
  private probeRids: number[] = [];

  private constructor(
    readonly socket: WebSocket,
    context: SessionContext,
  ) {
    this.context = context;
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) return this.violate(`the server sent a text message: ${JSON.stringify(String(data).slice(0, 80))}`);
      try {
        this.received.push(...decodeFrames(data));
      } catch (error) {
        this.violate(`the server sent a message that does not decode as frames (${(error as Error).message}): ${data.toString('hex').slice(0, 200)}`);
      }
    });
    socket.on('close', (code: number) => {
      this.closed = { code, byServer: !this.closing };
    });
    socket.on('error', () => {
      // A refused or dropped connection also closes; the close code is what we check.
    });
  }

  static async open(url: string, context: SessionContext): Promise<HostileSession> {
    const socket = new WebSocket(url);
    socket.binaryType = 'nodebuffer';
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    return new HostileSession(socket, context);
  }

  violate(message: string): void {
    this.violations.push(message);
  }

  send(message: BuiltMessage): void {
    this.model.apply(message);
    this.sent.push(message);
    if (this.socket.readyState !== WebSocket.OPEN) return;
    if (message.kind === 'text') this.socket.send(message.text);
    else if (message.kind === 'oversized') this.socket.send(OVERSIZED_MESSAGE);
    else this.socket.send(message.bytes);
    const fuzzed = message.kind !== 'binary' || message.fuzzed;
    if (fuzzed) {
      totals.messages++;
      totals.frames += message.kind === 'binary' ? message.parts.reduce((sum, part) => sum + (part.frames ?? 1), 0) : 1;
    }
  }

  /** Connect and lease this session's own log, a log it then releases, and the good log (read-only). */
  async setup(kind: SetupKind): Promise<void> {
    const context = this.context;
    const connect = buildOp({ op: 'connect', version: 1, payload: { token: setupToken(kind) } }, context);
    this.send(plainMessage(connect));
    if (!(await until(() => this.received.some((f) => f.op === OP_CONNECTED) || this.closed !== undefined, ANSWER_TIMEOUT_MS))) {
      return this.violate('no answer to a valid connect');
    }
    const name = `hostile-log-${++hostileLogs}`;
    const leases = [
      ['acme', `${name}-own`],
      ['acme', `${name}-released`],
      [GOOD_SITE, GOOD_LOG],
    ].map(([site, log]) => ({ site: site!, log: log!, ...buildOp({ op: 'lease', names: { site: site!, log: log! }, shard: 'names', newWriter: site === 'acme', writerEpoch: 0 }, context) }));
    this.send(plainMessage(...leases));
    const answers = () => leases.map(({ desc }) => this.received.find((f) => (f.op === OP_LEASED || f.op === OP_ERROR) && f.a === desc!.rid));
    if (!(await until(() => answers().every((answer) => answer !== undefined) || this.closed !== undefined, ANSWER_TIMEOUT_MS))) {
      return this.violate('no answer to the setup leases');
    }
    const [own, released, goodRead] = answers().map((answer, i) => (answer?.op === OP_LEASED ? { handle: answer.b, shard: shardOf(leases[i]!.site, leases[i]!.log, SHARD_COUNT) } : undefined));
    context.own = own;
    context.goodRead = goodRead;
    if (released) {
      this.send(plainMessage({ bytes: frames.release(released.shard, released.handle), desc: { op: OP_RELEASE } }));
      context.released = released;
    }
  }

  /** After the fuzzed messages: a read on a never-leased handle per worker must be answered. */
  probe(): void {
    if (this.model.state === 'closed' || this.closed) return;
    const built = [0, 1].map((shard) => {
      const rid = this.context.nextRid();
      this.probeRids.push(rid);
      return { bytes: frames.read(shard, PROBE_HANDLE, rid, 0, 1), desc: { op: OP_READ, rid, handle: PROBE_HANDLE, foreign: 'handle' as const } };
    });
    this.send(plainMessage(...built));
  }

  /** Wait until everything the model expects has arrived (or the socket closed). */
  async settle(): Promise<void> {
    const done = (): boolean => {
      if (this.closed) return true;
      if (this.model.expectedClose) return false;
      if (!this.model.following) return this.received.some((f) => f.op === OP_ERROR && this.probeRids.includes(f.a));
      const check = this.check();
      // A wrong answer is enough, once every lease is answered (until then a handle may look foreign).
      return check.missing.length === 0 || (check.violations.length > 0 && check.pendingLeases === 0);
    };
    const hung = (): string[] => {
      if (this.model.expectedClose) return [`the close (${this.model.expectedClose.codes.join(' or ')}) after ${this.model.expectedClose.why}`];
      if (!this.model.following) return ['an answer to the probe'];
      const check = this.check();
      return check.violations.length > 0 ? [] : check.missing;
    };
    if (!(await until(done, ANSWER_TIMEOUT_MS)) && hung().length > 0) {
      this.violate(`hang: nothing for ${ANSWER_TIMEOUT_MS} ms while waiting for ${hung().join('; ')}`);
    }
  }

  async close(): Promise<void> {
    if (!this.closed) {
      this.closing = true;
      this.socket.close(1000);
      if (!(await until(() => this.closed !== undefined, 2000))) this.socket.terminate();
      await until(() => this.closed !== undefined, 1000);
    }
    for (const target of [this.context.own, this.context.goodRead]) if (target) staleHandles.push(target);
    if (staleHandles.length > 200) staleHandles.splice(0, staleHandles.length - 200);
  }

  /** Compare what arrived with the protocol and the model. */
  verify(): void {
    const check = this.check();
    for (const violation of check.violations) this.violate(violation);
    const closed = this.closed;
    const expected = this.model.expectedClose;
    // The IO thread sends its refusals as it reads each message, so all come before any close it
    // makes, unless the close is abortive (1006: what was sent but not yet read is lost with it).
    if (closed?.code === 1006 && closed.byServer) totals.lostToAbortiveClose += check.missingRefusals.length;
    else if (check.missingRefusals.length > 0 && (!closed?.byServer || expected)) this.violate(`missing: ${check.missingRefusals.join('; ')}`);
    if (expected) {
      if (!(closed?.byServer && expected.codes.includes(closed.code))) {
        this.violate(`after ${expected.why} the server must close with ${expected.codes.join(' or ')}; ${closed ? `closed with ${closed.code}${closed.byServer ? '' : ' (by us)'}` : 'still open'}`);
      }
    } else if (closed?.byServer) {
      // The model lost track ('unknown') only after a damaged connect: then any documented close will do.
      const explained = this.model.state === 'unknown' ? DOCUMENTED_CLOSES.has(closed.code) || closed.code === 1006 : DOCUMENTED_CLOSES.has(closed.code) && !CAUSED_CLOSES.has(closed.code);
      if (!explained) this.violate(`the server closed the socket with ${closed.code}, which nothing we sent explains`);
    }
  }

  private check(): Check {
    const violations: string[] = [];
    const missing: string[] = [];
    const missingRefusals: string[] = [];
    const model = this.model;
    const context = this.context;
    const complete = model.following || model.state === 'closed';
    const held = new Set<number>(this.received.filter((f) => f.op === OP_LEASED).map((f) => f.b));
    if (context.released) held.delete(context.released.handle);
    const answers = new Map<number, ServerFrame[]>();
    const ioQueue = [...model.io];
    const connects = [...model.connects];
    const answer = (rid: number, frame: ServerFrame): void => {
      if (model.dropped.has(rid)) violations.push(`the frame with rid ${rid} should have been dropped (it followed a refused frame) but was answered: ${summarize(frame)}`);
      else if (complete && !model.requests.has(rid)) violations.push(`an answer for rid ${rid}, which no processed request carried: ${summarize(frame)}`);
      answers.set(rid, [...(answers.get(rid) ?? []), frame]);
    };
    const ioRefusal = (frame: ServerFrame): boolean => {
      const next = ioQueue[0];
      if (next === undefined || !next.codes.has(frame.word)) return false;
      ioQueue.shift();
      if (next.rid !== undefined && frame.a !== next.rid) violations.push(`the refusal of ${next.what} echoes rid ${frame.a}, not ${next.rid}`);
      if (next.write && (frame.b !== next.write.handle || frame.c !== next.write.lsn)) {
        violations.push(`the refusal of ${next.what} names handle ${frame.b} lsn ${frame.c}, not the write's handle ${next.write.handle} lsn ${next.write.lsn}`);
      }
      return true;
    };
    for (const frame of this.received) {
      switch (frame.op) {
        case OP_CONNECTED:
          if (complete && connects.shift() !== frame.a) violations.push(`an unexpected _connected: ${summarize(frame)}`);
          break;
        case OP_LEASED:
        case OP_OK:
          answer(frame.a, frame);
          break;
        case OP_REVOKED:
          if (!held.has(frame.a)) violations.push(`cross-session: ${summarize(frame)} for handle ${frame.a}, which this session does not hold`);
          break;
        case OP_PRESENCE:
          // Staged before a release, a _presence may arrive after it: the released handle was this session's.
          if (!held.has(frame.a) && frame.a !== context.released?.handle) violations.push(`cross-session: ${summarize(frame)} for handle ${frame.a}, which this session never held`);
          break;
        case OP_ACKED:
        case OP_NACKED:
          if (!held.has(frame.a)) violations.push(`cross-session: ${summarize(frame)} for handle ${frame.a}, which this session does not hold`);
          break;
        case OP_ENTRIES:
          this.checkEntries(frame, held, violations);
          if ((frame.flags & ENTRIES_READ_REPLY) !== 0 && (frame.flags & ENTRIES_READ_END) !== 0) answer(frame.b, frame);
          break;
        case OP_ERROR: {
          const code = frame.word;
          if (!ERROR_CODES.has(code)) violations.push(`an error code outside ERROR: ${summarize(frame)}`);
          if (frame.body?.code !== code || frame.body?.name !== ERROR_NAMES[code]) violations.push(`an error whose payload does not match its code: ${summarize(frame)}`);
          if (code === ERROR.INTERNAL) violations.push(`INTERNAL error (a server bug by definition): ${summarize(frame)}`);
          if (complete && frame.a !== 0 && ioQueue[0]?.rid === frame.a && ioQueue[0].codes.has(code)) {
            // Exactly the IO refusal expected next: rids repeat (a flip can turn one frame's rid into a
            // later frame's), so a rid a processed or dropped request also carried does not make it that request's answer.
            ioRefusal(frame);
          } else if (frame.a !== 0 && (model.requests.has(frame.a) || model.dropped.has(frame.a))) {
            answer(frame.a, frame); // the answer to a request, by its rid
          } else if (IO_ONLY_ERRORS.has(code) || code === ERROR.WRONG_SHARD) {
            // A refusal by the IO thread: it must be the next one the model expects.
            const ridZeroAnswer = frame.a === 0 && model.ridZeroRequests > 0 && RID_REQUEST_ERRORS.has(code);
            if (complete && !ioRefusal(frame) && !ridZeroAnswer) violations.push(`wrong or unexpected refusal ${summarize(frame)}; expected ${ioQueue[0] ? `${codeNames(ioQueue[0].codes)} for ${ioQueue[0].what}` : 'none'}`);
          } else if (frame.a !== 0) {
            if (complete) violations.push(`an error for rid ${frame.a}, which no processed request carried: ${summarize(frame)}`);
            else if (!RID_REQUEST_ERRORS.has(code)) violations.push(`an error no request may get: ${summarize(frame)}`);
          } else if (!HANDLE_OP_ERRORS.has(code) && !((model.ridZeroRequests > 0 || !complete) && RID_REQUEST_ERRORS.has(code))) {
            violations.push(`an error no handle op may get: ${summarize(frame)}`);
          } else if (frame.b !== 0 && !held.has(frame.b) && !FOREIGN_HANDLE_ERRORS.has(code)) {
            violations.push(`cross-session: ${summarize(frame)} about handle ${frame.b}, which this session does not hold (it must be UNKNOWN_HANDLE)`);
          }
          break;
        }
        default:
          if (frame.op < 0x80 || HEADER_BYTES[frame.op] === undefined) violations.push(`an unknown server op: ${summarize(frame)}`);
      }
    }
    this.checkOwnLog(violations);
    if (!complete) return { violations, missing, missingRefusals, pendingLeases: 0 };
    let pendingLeases = 0;
    // Requests: one terminal answer each, of a kind the op allows.
    for (const [rid, requests] of model.requests) {
      const got = answers.get(rid) ?? [];
      if (got.length < requests.length) missing.push(`an answer to ${requests.map((r) => opName(r.op)).join('+')} rid ${rid}`);
      if (got.length < requests.length && requests.some((r) => r.op === OP_LEASE)) pendingLeases++;
      if (got.length > requests.length) violations.push(`rid ${rid} was answered ${got.length} times for ${requests.length} request(s): ${got.map(summarize).join(', ')}`);
      for (const frame of got) {
        const fits = (r: RequestExpectation): boolean => (frame.op === OP_ERROR ? r.codes.has(frame.word) : r.ok && frame.op === SUCCESS_ANSWER[r.op]);
        if (!requests.some(fits)) {
          violations.push(`wrong answer to ${requests.map((r) => `${opName(r.op)} (allowed: ${r.ok ? 'success, ' : ''}${codeNames(r.codes)})`).join(' / ')} rid ${rid}: ${summarize(frame)} — sent in ${requests[0]!.message}`);
        }
        // (A handle the test took for another session's may turn out to be one this session leased by a fuzzed lease.)
        const foreign = requests.find((r) => r.op === OP_READ && r.foreign !== undefined && !(r.foreign === 'handle' && held.has(r.handle!)));
        if (foreign && requests.length === 1 && !(frame.op === OP_ERROR && FOREIGN_HANDLE_ERRORS.has(frame.word))) {
          const why = foreign.foreign === 'shard' ? 'sent with another shard than its log' : 'which this session does not hold';
          violations.push(`a read on handle ${foreign.handle} (${why}) was answered ${summarize(frame)}, not UNKNOWN_HANDLE — sent in ${foreign.message}`);
        }
      }
    }
    for (const expectation of ioQueue) missingRefusals.push(`the refusal (${codeNames(expectation.codes)}) of ${expectation.what}`);
    if (connects.length > 0) missing.push(`_connected for rid ${connects.join(', ')}`);
    return { violations, missing: [...missingRefusals, ...missing], missingRefusals, pendingLeases };
  }

  /**
   * RIFL on this session's own log (only this session writes it, under one writer epoch): an lsn
   * has one outcome however often it is retried, and accepted lsns get increasing positions.
   */
  private checkOwnLog(violations: string[]): void {
    const own = this.context.own?.handle;
    if (own === undefined) return;
    const outcomes = new Map<number, string>();
    for (const frame of this.received) {
      if (frame.op === OP_ERROR && frame.b === own && frame.word === ERROR.FENCED) violations.push(`FENCED on the session's own log, which no other writer leased: ${summarize(frame)}`);
      if (frame.a !== own || !(frame.op === OP_ACKED || (frame.op === OP_NACKED && frame.flags === protocol.NACK_AT_MISMATCH))) continue;
      const outcome = frame.op === OP_ACKED ? `_ack at ${frame.position}` : `_nack AT_MISMATCH`;
      const first = outcomes.get(frame.b);
      if (first === undefined) outcomes.set(frame.b, outcome);
      else if (first !== outcome) violations.push(`RIFL: lsn ${frame.b} of the own log was answered ${first}, then ${outcome}`);
    }
    const accepted = [...outcomes].filter(([, outcome]) => outcome.startsWith('_ack')).map(([lsn, outcome]) => [lsn, Number(outcome.slice(7))] as const);
    accepted.sort(([a], [b]) => a - b);
    for (let i = 1; i < accepted.length; i++) {
      if (!(accepted[i]![1] > accepted[i - 1]![1])) violations.push(`RIFL: lsn ${accepted[i]![0]} got position ${accepted[i]![1]}, not after lsn ${accepted[i - 1]![0]}'s ${accepted[i - 1]![1]}`);
    }
  }

  private checkEntries(frame: ServerFrame, held: Set<number>, violations: string[]): void {
    if (!held.has(frame.a)) {
      violations.push(`cross-session: ${summarize(frame)} for handle ${frame.a}, which this session does not hold`);
      return;
    }
    if (frame.a !== this.context.goodRead?.handle) return;
    // This session's read-only lease on the good log: what it reads must be the good appends.
    frame.entries!.forEach((entry, i) => {
      if (!entry.equals(goodPayload(frame.position + i + 1))) violations.push(`the good log read by another session holds ${JSON.stringify(String(entry).slice(0, 40))} at position ${frame.position + i}`);
    });
  }

  report(index: number, spec: SessionSpec): string {
    const lines = [`session ${index} (setup ${JSON.stringify(spec.setup)}, model ${this.model.state}${this.model.unknownBecause ? `: ${this.model.unknownBecause}` : ''}, closed ${JSON.stringify(this.closed)}):`];
    for (const violation of this.violations) lines.push(`  VIOLATION ${violation}`);
    lines.push('  sent:');
    for (const message of this.sent) lines.push(`    ${describeMessage(message)}`);
    lines.push('  received:');
    for (const frame of this.received.slice(0, 40)) lines.push(`    ${summarize(frame)}`);
    return lines.join('\n');
  }
}

function opName(op: number): string {
  return ({ [OP_CONNECT]: 'connect', [OP_LEASE]: 'lease', [OP_READ]: 'read', [OP_ATTEST]: 'attest', [OP_REFRESH]: 'refresh' } as Record<number, string>)[op] ?? `op ${op}`;
}

function summarize(frame: ServerFrame): string {
  const name = ({ [OP_CONNECTED]: '_connected', [OP_LEASED]: '_leased', [OP_ACKED]: '_ack', [OP_NACKED]: '_nack', [OP_ENTRIES]: '_entries', [OP_ERROR]: '_error', [OP_OK]: '_ok', [OP_REVOKED]: '_revoke', [OP_PRESENCE]: '_presence' } as Record<number, string>)[frame.op] ?? `op 0x${frame.op.toString(16)}`;
  const error = frame.op === OP_ERROR ? ` ${errorName(frame.word)} "${String(frame.body?.message ?? '').slice(0, 100)}"` : '';
  return `${name}(flags ${frame.flags} a ${frame.a} b ${frame.b} c ${frame.c} position ${frame.position}${frame.entries ? ` ${frame.entries.length} entries` : ''})${error}`;
}

// ---------------------------------------------------------------------------------------------
// The good device: appends pipelined and tails its log from 0 for the whole test. On a second
// lease of the same log it restarts a tail from 0 now and then (a new tail id each time), so
// backlogs are read from storage and handed over to live pushes while the appends go on.

class GoodClient {
  readonly violations: string[] = [];
  /** lsns 1..sent were written, 1..acked acknowledged; the tail delivered positions 0..tailed-1. */
  sent = 0;
  acked = 0;
  tailed = 0;
  lastPosition = -1;
  lastAckAt = Date.now();
  /** The current re-tail: its id and the next position it must push. */
  retail = { id: 0, next: 0, restarts: 0 };
  private writing = true;
  private readonly reads = new Map<number, (frame: ServerFrame) => void>();
  private readonly retailTimer: NodeJS.Timeout;

  private constructor(
    readonly client: RawClient,
    readonly handle: number,
    readonly shard: number,
    readonly retailHandle: number,
  ) {
    this.retailTimer = setInterval(() => this.restartRetail(), GOOD_RETAIL_MS);
    client.socket.on('message', (data: Buffer) => {
      for (const decoded of decodeFrames(data)) this.onFrame(decoded);
      client.received.length = 0; // RawClient keeps every frame; this client handles them itself
    });
    client.socket.on('close', (code: number) => {
      if (this.writing) this.violations.push(`the good client's socket closed with ${code}`);
    });
  }

  static async start(url: string, token: string): Promise<GoodClient> {
    const client = await RawClient.connected(url, token);
    const lease = await client.lease(GOOD_SITE, GOOD_LOG, 1, { newWriter: true });
    if (lease.tail !== 0 || lease.nextLsn !== 1) throw new Error(`the good log is not new: ${JSON.stringify(lease)}`);
    const second = await client.lease(GOOD_SITE, GOOD_LOG, 2);
    client.received.length = 0;
    const good = new GoodClient(client, lease.handle, lease.shard, second.handle);
    client.send(frames.tail(lease.shard, lease.handle, 0, GOOD_TAIL_ID));
    good.restartRetail();
    good.topUp();
    return good;
  }

  private restartRetail(): void {
    this.retail = { id: this.retail.id + 1, next: 0, restarts: this.retail.restarts + 1 };
    this.client.send(frames.tail(this.shard, this.retailHandle, 0, this.retail.id));
  }

  get target(): Target {
    return { handle: this.handle, shard: this.shard };
  }

  private topUp(): void {
    const batch: Buffer[] = [];
    while (this.writing && this.sent - this.acked < GOOD_WINDOW) {
      this.sent++;
      batch.push(frames.write(this.shard, this.handle, this.sent, goodPayload(this.sent)));
    }
    if (batch.length > 0) this.client.send(...batch);
  }

  private onFrame(frame: ServerFrame): void {
    if (frame.op === OP_ACKED && frame.a === this.handle) {
      const lsn = this.acked + 1;
      if (frame.b !== lsn) this.violations.push(`good client: _ack for lsn ${frame.b}, expected lsn ${lsn} (acks must come for consecutive lsns)`);
      if (!(frame.position > this.lastPosition)) this.violations.push(`good client: lsn ${frame.b} acknowledged at position ${frame.position}, not after ${this.lastPosition}`);
      else if (frame.position !== frame.b - 1) this.violations.push(`good client: lsn ${frame.b} acknowledged at position ${frame.position}; only this client writes the log, so it must be ${frame.b - 1}`);
      this.acked = Math.max(this.acked, frame.b);
      this.lastPosition = frame.position;
      this.lastAckAt = Date.now();
      if (this.acked % GOOD_ACK_EVERY === 0) this.client.send(frames.ack(this.shard, this.handle, this.acked));
      this.topUp();
    } else if (frame.op === OP_ENTRIES && frame.a === this.handle && (frame.flags & ENTRIES_READ_REPLY) === 0 && frame.b === GOOD_TAIL_ID) {
      if (frame.position !== this.tailed) this.violations.push(`good client: the tail pushed position ${frame.position} after ${this.tailed - 1} (${frame.position > this.tailed ? 'a gap' : 'a duplicate'})`);
      frame.entries!.forEach((entry, i) => {
        const lsn = frame.position + i + 1;
        if (!entry.equals(goodPayload(lsn))) this.violations.push(`good client: the tail pushed ${JSON.stringify(String(entry).slice(0, 40))} at position ${lsn - 1}, not lsn ${lsn}'s entry`);
      });
      this.tailed = Math.max(this.tailed, frame.position + frame.entries!.length);
    } else if (frame.op === OP_ENTRIES && frame.a === this.retailHandle && (frame.flags & ENTRIES_READ_REPLY) === 0) {
      if (frame.b !== this.retail.id) return; // a push of an earlier re-tail still in flight
      if (frame.position !== this.retail.next) this.violations.push(`good client: re-tail ${frame.b} pushed position ${frame.position} after ${this.retail.next - 1} (${frame.position > this.retail.next ? 'a gap' : 'a duplicate'})`);
      frame.entries!.forEach((entry, i) => {
        const lsn = frame.position + i + 1;
        if (!entry.equals(goodPayload(lsn))) this.violations.push(`good client: re-tail ${frame.b} pushed ${JSON.stringify(String(entry).slice(0, 40))} at position ${lsn - 1}, not lsn ${lsn}'s entry`);
      });
      this.retail.next = Math.max(this.retail.next, frame.position + frame.entries!.length);
    } else if (frame.op === OP_ENTRIES && (frame.flags & ENTRIES_READ_REPLY) !== 0 && this.reads.has(frame.b)) {
      this.reads.get(frame.b)!(frame);
    } else if (frame.op === OP_PRESENCE && (frame.a === this.handle || frame.a === this.retailHandle)) {
      // Others (hostile sessions too) attach to the good client's log and leave again.
      const presence = frame.body?.presence as { handle: number }[] | undefined;
      if (!presence?.some((attached) => attached.handle === frame.a)) this.violations.push(`good client: _presence for handle ${frame.a} does not list it: ${summarize(frame)}`);
    } else {
      this.violations.push(`good client: unexpected ${summarize(frame)}`);
    }
  }

  /** Between runs: writes and the tail keep moving. */
  checkProgress(): void {
    if (this.acked < this.sent && Date.now() - this.lastAckAt > ANSWER_TIMEOUT_MS) {
      this.violations.push(`good client: no ack for ${Date.now() - this.lastAckAt} ms with ${this.sent - this.acked} writes in flight (lsn ${this.acked + 1} on)`);
      this.lastAckAt = Date.now();
    }
  }

  /** Stop writing; wait for every ack, and for both tails to deliver every acknowledged entry. */
  async finish(): Promise<{ allAcked: boolean; tailCaughtUp: boolean; retailCaughtUp: boolean }> {
    this.writing = false;
    clearInterval(this.retailTimer);
    const allAcked = await until(() => this.acked >= this.sent, 10_000);
    const tailCaughtUp = await until(() => this.tailed >= this.acked, 10_000);
    const retailCaughtUp = await until(() => this.retail.next >= this.acked, 10_000);
    return { allAcked, tailCaughtUp, retailCaughtUp };
  }

  /** The whole log, read back in pages (checking each page starts where the last ended). */
  async readAll(): Promise<Buffer[]> {
    const log: Buffer[] = [];
    for (let rid = 1_000_000; ; rid++) {
      const page: Buffer[] = [];
      let caughtUp = false;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`read rid ${rid} from ${log.length} was not answered`)), ANSWER_TIMEOUT_MS);
        this.reads.set(rid, (frame) => {
          if (frame.position !== log.length + page.length) this.violations.push(`good client: read rid ${rid} returned position ${frame.position}, expected ${log.length + page.length}`);
          page.push(...frame.entries!);
          if ((frame.flags & ENTRIES_READ_END) === 0) return;
          caughtUp = (frame.flags & ENTRIES_CAUGHT_UP) !== 0;
          clearTimeout(timer);
          resolve();
        });
        this.client.send(frames.read(this.shard, this.handle, rid, log.length, 1000));
      });
      this.reads.delete(rid);
      log.push(...page);
      if (caughtUp || page.length === 0) return log;
    }
  }

  async close(): Promise<void> {
    this.writing = false;
    clearInterval(this.retailTimer);
    await this.client.close();
  }
}

// ---------------------------------------------------------------------------------------------
// The test

const dataDir = temporaryDataDir();
let server: ServerProcess;
let good: GoodClient | undefined;

t.before(async () => {
  server = await startServer({ dataDir, workers: 2 });
});
t.teardown(async () => {
  await good?.close().catch(() => undefined);
  await server?.stop();
  removeDataDir(dataDir);
});

function serverAlive(): boolean {
  return server.child.exitCode === null && server.child.signalCode === null;
}

async function freshConnect(tokens: Tokens): Promise<string | undefined> {
  try {
    const client = await RawClient.connected(server.url, tokens.mint({ kind: 'valid', text: '' }));
    await client.close();
    return undefined;
  } catch (error) {
    return `a fresh connect failed: ${(error as Error).message}`;
  }
}

async function runHostileSession(spec: SessionSpec, tokens: Tokens): Promise<HostileSession> {
  const session = await HostileSession.open(server.url, new SessionContext(good!.target, tokens));
  try {
    if (spec.setup !== 'none') await session.setup(spec.setup);
    for (const messageSpec of spec.messages) {
      session.send(buildMessage(messageSpec, session.context));
      if (spec.paceMs > 0) await sleep(spec.paceMs);
    }
    session.probe();
    await session.settle();
    session.verify();
  } catch (error) {
    session.violate(`the session failed: ${(error as Error).stack}`);
  } finally {
    await session.close();
  }
  return session;
}

/** The report of the run that killed the server (shrinking after that is meaningless: every input fails). */
let firstCrash: string | undefined;

async function runScenario(specs: SessionSpec[], tokens: Tokens): Promise<void> {
  if (!serverAlive()) throw new Error('the server had exited before this run (see the first crash)');
  totals.runs++;
  totals.sessions += specs.length;
  const results = await Promise.allSettled(specs.map((spec) => runHostileSession(spec, tokens)));
  const sessions = results.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  for (const session of sessions) {
    totals.serverFrames += session.received.length;
    for (const frame of session.received) count(answerCounts, frame.op === OP_ERROR ? errorName(frame.word) : summarize(frame).replace(/\(.*/, ''));
    count(closeCounts, session.closed ? `${session.closed.code}${session.closed.byServer ? ' by the server' : ''}` : 'open');
  }
  const report = (): string => results.map((result, i) => (result.status === 'fulfilled' ? result.value.report(i, specs[i]!) : `session ${i}: could not open a socket: ${(result.reason as Error).message}`)).join('\n');
  if (results.some((result) => result.status === 'rejected')) await sleep(200); // a dying server: let it exit
  if (!serverAlive()) {
    firstCrash ??= `the server exited (code ${server.child.exitCode}, signal ${server.child.signalCode}) during this run:\n${report()}\nserver output:\n${server.output().slice(-3000)}`;
    throw new Error(firstCrash);
  }
  const problems = [(await freshConnect(tokens)) ?? ''].filter(Boolean);
  good!.checkProgress();
  problems.push(...good!.violations.slice(0, 10));
  if (problems.length > 0 || results.some((result) => result.status === 'rejected' || result.value.violations.length > 0)) {
    throw new Error([...problems, report()].join('\n'));
  }
}

t.test('hostile devices can neither crash, hang nor reach into another session, and the good device never notices', async (t) => {
  const started = Date.now();
  t.comment(`fast-check seed ${SEED}, ${RUNS} runs (replay: TAILGROVE_FUZZ_SEED=${SEED} npx tap test/fuzz.test.ts)`);
  const tokens = new Tokens(server.secret);
  good = await GoodClient.start(server.url, mintToken({ sub: 'good', device: GOOD_DEVICE, grants: [{ site: GOOD_SITE, rights: 'rw' }] }, server.secret));

  let failure: string | undefined;
  try {
    await fc.assert(
      fc.asyncProperty(scenario(), (specs) => runScenario(specs, tokens)),
      { seed: SEED, numRuns: RUNS, ...(PATH === undefined ? {} : { path: PATH }), interruptAfterTimeLimit: 180_000, markInterruptAsFailure: true, includeErrorInReport: true },
    );
  } catch (error) {
    failure = (error as Error).message;
  }
  t.equal(failure, undefined, 'every run: the server lives and accepts a connect, nothing hangs, every answer is documented, no session touches another');
  if (firstCrash) t.fail(`the first run that crashed the server:\n${firstCrash}`);

  const finished = await good.finish();
  t.ok(finished.allAcked, `every write of the good client was acknowledged (${good.acked} of ${good.sent})`);
  t.ok(finished.tailCaughtUp, `the good client's tail delivered every acknowledged entry (${good.tailed} of ${good.acked})`);
  t.ok(finished.retailCaughtUp, `its last re-tail from 0 (of ${good.retail.restarts}) caught up from storage to every acknowledged entry (${good.retail.next} of ${good.acked})`);
  const log = await good.readAll().catch((error: Error) => {
    t.fail(`reading the good log back: ${error.message}`);
    return [];
  });
  t.same(good.violations, [], "the good client's acks were for consecutive lsns at strictly increasing positions; its tails had no gap, duplicate or foreign entry");
  t.equal(good.tailed, good.acked, 'the tail stream is exactly as long as what was acknowledged');
  t.equal(log.length, good.acked, "the good log holds as many entries as the good client appended");
  const firstWrong = log.findIndex((entry, position) => !entry.equals(goodPayload(position + 1)));
  t.equal(firstWrong, -1, "the good log is exactly the good client's appends, in order (no foreign entry)");

  t.ok(serverAlive(), 'the server process is still running');
  t.equal(await freshConnect(tokens), undefined, 'and accepts a fresh connect');

  t.comment(`fuzzed frames sent: ${totals.frames} (in ${totals.messages} messages, ${totals.sessions} hostile sessions, ${totals.runs} runs); server frames received by hostile sessions: ${totals.serverFrames}`);
  t.comment(`answers to hostile sessions: ${showCounts(answerCounts)}`);
  t.comment(`hostile sockets closed: ${showCounts(closeCounts)}; refusals lost to abortive closes after over-size messages: ${totals.lostToAbortiveClose}`);
  t.comment(`good client: ${good.acked} appends acknowledged and tailed, ${good.retail.restarts} re-tails from 0; ${((Date.now() - started) / 1000).toFixed(1)} s`);
});
