// Staging records: what a worker's phases hand to the disk thread for one group commit, and
// what the worker itself releases (acks, replies, tail pushes) once that commit is durable.
// They live in a per-worker Ring (src/ring) whose READ position the worker advances after
// release; the disk thread reads with its own cursor and publishes COMMITTED_POSITION.
export const STAGE_KIND = 0; // u32, every record

// A write's outcome: an entry to store (position ≥ 0) or a refused conditional write.
export const STAGE_WRITE = 1;
export const WRITE_LOG_ID = 4; // u32
export const WRITE_WRITER_ID = 8; // u32
export const WRITE_LSN = 12; // u32
export const WRITE_SESSION = 16; // u32
export const WRITE_HANDLE = 20; // u32
export const WRITE_OUTCOME = 24; // f64: position ≥ 0, or -(tail + 1) when refused
export const WRITE_DATA_LENGTH = 32; // u32
export const WRITE_APPENDED_AT = 36; // u32: seconds since the epoch (of the batch), for retention by age
export const WRITE_BYTES_BEFORE = 40; // f64: bytes of every entry of the log before this one, for retention by size
export const WRITE_DATA = 48;

// A server frame to send to a session once everything staged before it is durable.
export const STAGE_FRAME = 2;
export const FRAME_SESSION = 4; // u32
export const FRAME_LENGTH = 8; // u32
export const FRAME_BYTES = 16;

// A writer's durable state (RIFL): created, new epoch, or acknowledged up to an lsn.
export const STAGE_WRITER = 3;
export const WRITER_ID = 4; // u32
export const WRITER_LOG_ID = 8; // u32
export const WRITER_EPOCH = 12; // u32
export const WRITER_LAST_LSN = 16; // u32
export const WRITER_ACKED_LSN = 20; // u32
export const WRITER_DEVICE_LENGTH = 24; // u32
export const WRITER_DEVICE = 32;

// A new log: its name → (id, epoch).
export const STAGE_LOG = 4;
export const LOG_ID = 4; // u32
export const LOG_EPOCH = 8; // u32
export const LOG_NAME_LENGTH = 12; // u32
export const LOG_NAME = 16;

// Drop completion records of a writer for lsn in [from, to].
export const STAGE_TRIM_COMPLETIONS = 5;
export const TRIM_WRITER_ID = 4; // u32
export const TRIM_FROM_LSN = 8; // u32
export const TRIM_TO_LSN = 12; // u32
export const TRIM_BYTES = 16;

// Retention removed the entries of a log in [from, to): delete them and record `to` as its
// first position; `bytes` is the log's byte count through its tail (kept for an emptied log).
export const STAGE_TRIM_ENTRIES = 6;
export const TRIM_ENTRIES_LOG_ID = 4; // u32
export const TRIM_ENTRIES_FROM = 8; // f64
export const TRIM_ENTRIES_TO = 16; // f64
export const TRIM_ENTRIES_BYTES = 24; // f64
export const TRIM_ENTRIES_RECORD_BYTES = 32;

// The disk thread's progress per worker, in the worker's staging control words.
export const COMMITTED_POSITION = 0;
export const STAGING_CONTROL_INT32S = 16;
