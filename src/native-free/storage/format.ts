// The on-disk format of the native-free engine (docs/NATIVE-FREE.md has the byte tables).
// Everything is little-endian. A data directory holds `native-free/`:
//   segments/<id>.seg  the record stream, split into segments of ~SEGMENT_BYTES: a segment
//                      header, then commit frames, appended by the disk thread only
//   published          where the committed (fsynced) stream ends: readers read up to it
//   tables/<name>.tbl  the metadata tables of the IO thread (kv-table.ts)

export const STORE_DIRECTORY = 'native-free';
export const SEGMENTS_DIRECTORY = 'segments';
export const TABLES_DIRECTORY = 'tables';
export const PUBLISHED_FILE = 'published';
export const SEGMENT_SUFFIX = '.seg';

/** A new segment is started once the current one reaches this size (a commit is never split). */
export const SEGMENT_BYTES = 64 * 2 ** 20;
/** Entry blocks are cut at this size: the read unit, and what one index item covers. */
export const BLOCK_BYTES_MAX = 64 * 2 ** 10;

// Segment header.
export const SEGMENT_MAGIC = 0x31534754; // 'TGS1'
export const SEGMENT_VERSION = 1;
export const SEGMENT_HEADER_BYTES = 32;
export const SEGMENT_HEADER_MAGIC = 0; // u32
export const SEGMENT_HEADER_VERSION = 4; // u32
export const SEGMENT_HEADER_ID = 8; // u32
export const SEGMENT_HEADER_CRC = 28; // u32: CRC-32 of bytes [0, 28)

// A commit frame: header, entry blocks, block descriptors, meta records, trailer. The CRC in
// the trailer covers everything before it: a frame is applied whole or not at all.
export const COMMIT_MAGIC = 0x31434754; // 'TGC1'
export const COMMIT_END_MAGIC = 0x45434754; // 'TGCE'
export const COMMIT_HEADER_BYTES = 32;
export const COMMIT_MAGIC_AT = 0; // u32
export const COMMIT_LENGTH = 4; // u32: the whole frame, header and trailer included
export const COMMIT_DESCRIPTORS = 8; // u32: offset of the block descriptors in the frame
export const COMMIT_BLOCK_COUNT = 12; // u32
export const COMMIT_SEQUENCE = 16; // f64: commit number, increasing along the stream
export const COMMIT_KIND = 24; // u32: COMMIT_KIND_APPLY or COMMIT_KIND_CARRY
export const COMMIT_TRAILER_BYTES = 8;
export const COMMIT_TRAILER_CRC = 0; // u32, at length - 8
export const COMMIT_TRAILER_MAGIC = 4; // u32, at length - 4
/** A group commit: what the disk thread's apply fed to the sink. */
export const COMMIT_KIND_APPLY = 1;
/** Compaction: live records carried forward from an old segment. */
export const COMMIT_KIND_CARRY = 2;
/** The least frame: header and trailer. */
export const COMMIT_BYTES_MIN = COMMIT_HEADER_BYTES + COMMIT_TRAILER_BYTES;

// An entry inside a block: its header, then its bytes. Entries of a block are consecutive
// positions of one log, and consecutive byte counts (bytesBefore of the next = this one's + length).
export const ENTRY_HEADER_BYTES = 8;
export const ENTRY_LENGTH = 0; // u32
export const ENTRY_APPENDED_AT = 4; // u32, seconds since the epoch

// A block descriptor (after the blocks, so a reader indexes a frame without reading its entries).
export const DESCRIPTOR_BYTES = 32;
export const DESCRIPTOR_LOG_ID = 0; // u32
export const DESCRIPTOR_COUNT = 4; // u32: entries
export const DESCRIPTOR_OFFSET = 8; // u32: offset of the block in the frame
export const DESCRIPTOR_BYTE_LENGTH = 12; // u32: the block's bytes, entry headers included
export const DESCRIPTOR_FIRST_POSITION = 16; // f64
export const DESCRIPTOR_BYTES_BEFORE = 24; // f64: bytes of the log before the block's first entry

// Meta records: [kind u32][length u32, the whole record] then the fields, from offset 8.
export const META_KIND = 0;
export const META_LENGTH = 4;

/** A run of completion outcomes of one writer, for lsns first, first+1, … (as LMDB's runs). */
export const META_COMPLETIONS = 1;
export const COMPLETIONS_WRITER_ID = 8; // u32
export const COMPLETIONS_FIRST_LSN = 12; // u32
export const COMPLETIONS_COUNT = 16; // u32
export const COMPLETIONS_OUTCOMES = 20; // f64 × count

/** A writer's durable state, keyed (logId, device): the latest record wins. */
export const META_WRITER = 2;
export const WRITER_WRITER_ID = 8; // u32
export const WRITER_LOG_ID = 12; // u32
export const WRITER_EPOCH = 16; // u32
export const WRITER_LAST_LSN = 20; // u32
export const WRITER_ACKED_LSN = 24; // u32
export const WRITER_DEVICE = 28; // UTF-8, to the end of the record

/** A log: name → (logId, epoch), keyed by name: the latest record wins. */
export const META_LOG = 3;
export const LOG_LOG_ID = 8; // u32
export const LOG_EPOCH = 12; // u32
export const LOG_NAME = 16; // UTF-8, to the end of the record

/**
 * Drop the completion runs of a writer that end at or below `to` (LMDB's rule) and lie in
 * segments below `bound`. A group commit writes NO_BOUND; compaction, carrying the record
 * forward past newer runs, bounds it by the segment it came from.
 */
export const META_TRIM_COMPLETIONS = 4;
export const TRIM_COMPLETIONS_WRITER_ID = 8; // u32
export const TRIM_COMPLETIONS_FROM_LSN = 12; // u32
export const TRIM_COMPLETIONS_TO_LSN = 16; // u32
export const TRIM_COMPLETIONS_BOUND = 20; // u32
export const TRIM_COMPLETIONS_BYTES = 24;
export const NO_BOUND = 0xffffffff;

/** Retention: the log's entries below `to` are gone; `to` is its first position, `bytes` its byte count. */
export const META_TRIM_ENTRIES = 5;
export const TRIM_ENTRIES_LOG_ID = 8; // u32
export const TRIM_ENTRIES_FROM = 16; // f64
export const TRIM_ENTRIES_TO = 24; // f64
export const TRIM_ENTRIES_LOG_BYTES = 32; // f64
export const TRIM_ENTRIES_BYTES = 40;

// The published state: the head segment and how far its commits are durable.
export const PUBLISHED_MAGIC = 0x31504754; // 'TGP1'
export const PUBLISHED_BYTES = 32;
export const PUBLISHED_MAGIC_AT = 0; // u32
export const PUBLISHED_HEAD = 4; // u32: the head segment's id
export const PUBLISHED_LENGTH = 8; // f64: its durable length
export const PUBLISHED_SEQUENCE = 16; // f64: the last durable commit's sequence
export const PUBLISHED_CRC = 28; // u32: CRC-32 of bytes [0, 28)

const TWO_TO_32 = 2 ** 32;

/** A record's place in the stream, as one number: segment id × 2^32 + offset in the segment. */
export function location(segment: number, offset: number): number {
  return segment * TWO_TO_32 + offset;
}

export function locationSegment(place: number): number {
  return Math.floor(place / TWO_TO_32);
}

export function locationOffset(place: number): number {
  return place % TWO_TO_32;
}
