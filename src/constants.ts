// One home for every limit and capacity. Each relation between them is asserted at load,
// so a bad edit fails at startup, not under load.
import { invariant } from './invariant.js';

export const PROTOCOL_VERSION = 1;

// Logs are placed by hash into a fixed number of shards; every frame names its shard and
// the IO thread routes on it alone. Fixed forever: clients compute it (docs/PROTOCOL.md).
export const SHARD_COUNT = 1024;

// The fixed frame prefix from the design notes: header length u16, payload length u32, shard u16.
export const PREFIX_BYTES = 8;

// Entries up to 1 MiB by default (configurable down, never above the ring's max record).
export const ENTRY_BYTES_MAX_DEFAULT = 1 << 20;
// An op header is small and fixed per op; anything larger is a lie.
export const HEADER_BYTES_MAX = 64;
// Control payloads (tokens, names) are msgpack and small.
export const CONTROL_PAYLOAD_BYTES_MAX = 16 * 1024;

// Ring sizes are powers of two so positions wrap with a mask.
export const INPUT_RING_BYTES = 32 << 20;
export const OUTPUT_RING_BYTES = 32 << 20;
export const STAGING_BYTES = 64 << 20;
// A record never exceeds a quarter of its ring, so one large entry cannot wedge it.
export const RECORD_BYTES_MAX = INPUT_RING_BYTES / 4;

// Sessions are numbered by slot in the IO thread; the generation in the high bits makes a
// reused slot distinguishable from its previous owner.
export const SESSION_SLOTS = 1 << 16;

// Initial capacities of the chained hash tables; they double when 3/4 full.
export const LOG_TABLE_CAPACITY = 1 << 12;
export const LEASE_TABLE_CAPACITY = 1 << 12;
export const WRITER_TABLE_CAPACITY = 1 << 12;
export const COMPLETION_TABLE_CAPACITY = 1 << 14;
export const SESSION_TABLE_CAPACITY = 1 << 10;

// The default of the configurable leases-per-session limit (src/limits.ts).
export const LEASES_PER_SESSION_MAX = 1024;
export const READ_LIMIT_MAX = 1000;
export const READ_BYTES_MAX = 4 << 20;
// A tailer catching up from disk gets at most this much per batch, so one deep backlog
// cannot stall the batch for everyone else.
export const CATCH_UP_BYTES_PER_BATCH = 1 << 20;
// …and all tailers of a worker together at most this much per batch (round robin), so many
// tailers catching up at once (a burst of resumes) cannot stall everyone's acks and pushes.
export const CATCH_UP_BYTES_PER_BATCH_TOTAL = 4 << 20;
// Pushed entries are coalesced per frame up to this many bytes.
export const PUSH_FRAME_BYTES_MAX = 256 * 1024;
// Completion records of acknowledged writes are deleted from storage once a writer's acks
// have moved this many lsns past the last deletion (deleting on every ack made the group
// commit ~1.8× slower under paced load); recovery ignores those at or below the acked lsn.
export const COMPLETION_TRIM_LSNS = 256;

// A batch closes when this many input bytes are waiting or the deadline passes.
export const BATCH_BYTES_MAX = 4 << 20;
// Bounds of the adaptive spin before sleeping on a doorbell or barrier (src/ring/adaptive-spin.ts):
// a wake-up costs ~30 µs each way; 20 000 atomic loads are roughly that long.
export const SPIN_ITERATIONS_MIN = 64;
export const SPIN_ITERATIONS_MAX = 20_000;

invariant((SHARD_COUNT & (SHARD_COUNT - 1)) === 0, 'SHARD_COUNT is a power of two');
for (const size of [INPUT_RING_BYTES, OUTPUT_RING_BYTES, STAGING_BYTES]) {
  invariant((size & (size - 1)) === 0, 'ring sizes are powers of two');
}
invariant(ENTRY_BYTES_MAX_DEFAULT + HEADER_BYTES_MAX + PREFIX_BYTES + 64 <= RECORD_BYTES_MAX, 'a max entry fits a ring record');
invariant(ENTRY_BYTES_MAX_DEFAULT * 2 <= STAGING_BYTES / 4, 'staging holds several max entries');
invariant(PUSH_FRAME_BYTES_MAX <= OUTPUT_RING_BYTES / 8, 'a push frame is small against the output ring');
