// Records in the rings between the IO thread and the workers (not on the wire).
// Input ring (IO thread → worker): [u32 kind][u32 session][content].
export const INPUT_KIND = 0;
export const INPUT_SESSION = 4;
export const INPUT_CONTENT = 8;
export const INPUT_FRAMES = 1; // content: one or more validated frames for this worker
export const INPUT_SESSION_OPEN = 2; // content: msgpack [user, device, grants]
export const INPUT_SESSION_CLOSE = 3; // no content
export const INPUT_SESSION_GRANTS = 4; // content: msgpack grants (the session's whole list now)
export const INPUT_SESSION_REVOKE = 5; // no content: every lease of the session is revoked
export const INPUT_SESSION_PAUSE = 6; // no content: the socket is backed up, stop pushing tails
export const INPUT_SESSION_RESUME = 7; // no content: drained, tails resume from the log

// Output ring (worker → IO thread): [u32 session][u32 unused][frames to send].
export const OUTPUT_SESSION = 0;
export const OUTPUT_FRAMES = 8;

// Deletions ring (IO thread → worker, the io-deletions input): retention asks to trim a log.
// [u32 logId][u32 unused][f64 trim to: the new first position]
export const DELETION_LOG_ID = 0;
export const DELETION_TRIM_TO = 8;
export const DELETION_RECORD_BYTES = 16;

// Advances ring (worker → IO thread): a log's committed length grew this batch (one record
// per log per batch), for offline notifications. [u32 logId][u32 unused][f64 length]
export const ADVANCE_LOG_ID = 0;
export const ADVANCE_LENGTH = 8;
export const ADVANCE_RECORD_BYTES = 16;
