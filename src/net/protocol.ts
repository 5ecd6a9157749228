// The wire format (docs/PROTOCOL.md is the reference; keep the two in step).
// Every frame: an 8-byte prefix, an op header of `headerLength` bytes, `payloadLength`
// payload bytes. All integers little-endian; positions are float64 (exact to 2^53).

// Prefix offsets.
export const PREFIX_HEADER_LENGTH = 0; // u16
export const PREFIX_PAYLOAD_LENGTH = 2; // u32
export const PREFIX_SHARD = 6; // u16

// Op header offsets, relative to the header start (byte 8 of the frame).
export const HEADER_OP = 0; // u8
export const HEADER_FLAGS = 1; // u8
export const HEADER_WORD = 2; // u16: protocol version (connect), error code (_error)
export const HEADER_A = 4; // u32
export const HEADER_B = 8; // u32
export const HEADER_C = 12; // u32
export const HEADER_POSITION = 16; // f64
export const HEADER_D = 24; // u32

// Device → server ops.
export const OP_CONNECT = 0x01; // word=version A=rid; payload msgpack { token }
export const OP_LEASE = 0x02; // flags=LEASE_NEW_WRITER A=rid B=writerEpoch; payload msgpack [site, log]
export const OP_WRITE = 0x03; // flags=WRITE_HAS_AT A=handle B=lsn POSITION=at; payload = entry bytes
export const OP_ACK = 0x04; // A=handle B=lsn
export const OP_READ = 0x05; // A=handle B=rid C=limit POSITION=from
export const OP_TAIL = 0x06; // A=handle B=tailId POSITION=from
export const OP_UNTAIL = 0x07; // A=handle
export const OP_RELEASE = 0x08; // A=handle
export const OP_ATTEST = 0x09; // A=rid; payload msgpack { token } (a grant token)
export const OP_REFRESH = 0x0a; // A=rid; payload msgpack { token } (a new session token, same user and device)
export const OP_SIGNAL = 0x0b; // A=handle B=toHandle C=rid; payload = the signal's bytes (for a device attached to the same log)
// Notification preferences of the session's user (answered by the IO thread with _ok):
export const OP_JOIN = 0x0c; // A=rid; payload msgpack { site }: notify me of this site while I am offline
export const OP_LEAVE = 0x0d; // A=rid; payload msgpack { site }
export const OP_MUTE = 0x0e; // A=rid; payload msgpack { site, seconds }
export const OP_UNMUTE = 0x0f; // A=rid; payload msgpack { site }
export const OP_PUSH_SUBSCRIBE = 0x10; // A=rid; payload msgpack { endpoint, keys: { p256dh, auth } } (a Web Push subscription of this device)
export const OP_PUSH_UNSUBSCRIBE = 0x11; // A=rid; payload msgpack { endpoint }

// Server → device ops.
export const OP_CONNECTED = 0x81; // word=version A=rid; payload msgpack { session, user, device, expiresAt, entryBytesMax, shardCount }
export const OP_LEASED = 0x82; // A=rid B=handle C=writerEpoch POSITION=tail D=nextLsn; payload msgpack { site, log, epoch, leader, presence }
export const OP_ACKED = 0x83; // "_ack": A=handle B=lsn POSITION=position
export const OP_NACKED = 0x84; // "_nack": flags=reason A=handle B=lsn C=expectedLsn POSITION=tail
export const OP_ENTRIES = 0x85; // flags=ENTRIES_* A=handle B=rid or tailId C=count POSITION=from; payload = count × (u32 length, bytes)
export const OP_ERROR = 0x86; // word=code A=rid B=handle C=lsn (write, ack); payload msgpack { code, name, message, ...details }
export const OP_OK = 0x87; // "_ok": A=rid; payload msgpack { expiresAt } (attest, refresh)
export const OP_REVOKED = 0x88; // "_revoke": A=handle; payload msgpack { reason } — the lease is gone
export const OP_PRESENCE = 0x89; // "_presence": A=handle; payload msgpack { presence: [{ handle, device }], leader } — who is attached, in attach order
export const OP_SIGNALED = 0x8a; // "_signal": A=handle (the recipient's) B=fromHandle C=device byte length; payload = device (utf8) then the signal's bytes

// Fixed header lengths per op: a frame whose header length differs is malformed.
export const HEADER_BYTES: Readonly<Record<number, number>> = {
  [OP_CONNECT]: 8,
  [OP_LEASE]: 12,
  [OP_WRITE]: 24,
  [OP_ACK]: 12,
  [OP_READ]: 24,
  [OP_TAIL]: 24,
  [OP_UNTAIL]: 8,
  [OP_RELEASE]: 8,
  [OP_ATTEST]: 8,
  [OP_REFRESH]: 8,
  [OP_SIGNAL]: 16,
  [OP_JOIN]: 8,
  [OP_LEAVE]: 8,
  [OP_MUTE]: 8,
  [OP_UNMUTE]: 8,
  [OP_PUSH_SUBSCRIBE]: 8,
  [OP_PUSH_UNSUBSCRIBE]: 8,
  [OP_CONNECTED]: 8,
  [OP_LEASED]: 28,
  [OP_ACKED]: 24,
  [OP_NACKED]: 24,
  [OP_ENTRIES]: 24,
  [OP_ERROR]: 16,
  [OP_OK]: 8,
  [OP_REVOKED]: 8,
  [OP_PRESENCE]: 8,
  [OP_SIGNALED]: 16,
};

/** Ops the IO thread answers itself (session and user preferences), not routed to workers. */
export const IO_THREAD_OPS: readonly number[] = [OP_CONNECT, OP_ATTEST, OP_REFRESH, OP_JOIN, OP_LEAVE, OP_MUTE, OP_UNMUTE, OP_PUSH_SUBSCRIBE, OP_PUSH_UNSUBSCRIBE];

// Flags.
export const LEASE_NEW_WRITER = 0x01; // open a new writer epoch (the device lost its RIFL state)
export const WRITE_HAS_AT = 0x01; // the write is conditional on the log's tail == at
export const ENTRIES_CAUGHT_UP = 0x01; // tail: the backlog is delivered; live entries follow
export const ENTRIES_READ_REPLY = 0x02; // the frame answers read(rid)
export const ENTRIES_READ_END = 0x04; // the last frame of a read's answer
export const ENTRIES_TRIMMED = 0x08; // tail: no entries; retention removed those below POSITION, the tail goes on from it

// _nack reasons.
export const NACK_LSN_GAP = 1; // C = the lsn the server expects; resend from there
export const NACK_AT_MISMATCH = 2; // POSITION = the log's tail; the write was refused, its lsn is used

// Error codes (u16), with names used in the msgpack payload.
export const ERROR = {
  BAD_FRAME: 1,
  UNKNOWN_OP: 2,
  BAD_VERSION: 3,
  NOT_CONNECTED: 4,
  ALREADY_CONNECTED: 5,
  BAD_TOKEN: 6,
  TOKEN_EXPIRED: 7,
  FORBIDDEN: 8,
  UNKNOWN_HANDLE: 9,
  WRONG_SHARD: 10,
  TOO_LARGE: 11,
  FENCED: 12,
  GONE: 13,
  BAD_REQUEST: 14,
  LEASE_LIMIT: 15,
  STALE_LSN: 16,
  INTERNAL: 17,
  REVOKED: 18,
  TOKEN_NOT_YET_VALID: 19,
  TAIL_LIMIT: 20,
  UNACKED_LIMIT: 21,
  RATE_LIMITED: 22,
  CONNECTION_LIMIT: 23,
  NOT_ATTACHED: 24,
} as const;
export type ErrorName = keyof typeof ERROR;
export const ERROR_NAMES: readonly string[] = (() => {
  const names: string[] = [];
  for (const [name, code] of Object.entries(ERROR)) names[code] = name;
  return names;
})();

// WebSocket close codes.
export const CLOSE_NORMAL = 1000;
export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_PROTOCOL = 4000; // a text message (frames are binary only)
export const CLOSE_AUTH = 4001; // connect refused: bad, expired token or wrong protocol version
export const CLOSE_HANDSHAKE_TIMEOUT = 4002; // no connect within the handshake timeout
export const CLOSE_TOKEN_EXPIRED = 4003; // the session's token expired and was not refreshed
export const CLOSE_VIOLATIONS = 4004; // too many malformed frames

/** The shard of a log: FNV-1a 32 over UTF-8 `site`, a 0 byte, UTF-8 `log`, masked. */
export function shardOf(site: string, log: string, shardCount: number): number {
  let hash = 0x811c9dc5;
  const mix = (text: string): void => {
    const bytes = new TextEncoder().encode(text);
    for (let i = 0; i < bytes.length; i++) {
      hash ^= bytes[i]!;
      hash = Math.imul(hash, 0x01000193);
    }
  };
  mix(site);
  hash = Math.imul(hash ^ 0, 0x01000193);
  mix(log);
  return (hash >>> 0) & (shardCount - 1);
}
