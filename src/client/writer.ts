// RIFL exactly-once appends for one leased log (docs/PROTOCOL.md, "write"). Every append
// takes the next lsn of this writer epoch and keeps it for life, so when it is sent again
// (after a reconnect or an LSN_GAP) the server recognises it and answers with the original
// outcome instead of appending twice.
import { NACK_AT_MISMATCH, NACK_LSN_GAP } from '../net/protocol.js';
import { ackFrame, writeFrame } from './codec.js';
import { TailgroveError } from './errors.js';
import type { Attachment } from './link.js';

// The pause after UNACKED_LIMIT: about a group commit or two, for the answers that let the
// client ack to arrive.
const UNACKED_RETRY_MS = 50;

interface PendingWrite {
  lsn: number;
  data: Uint8Array;
  at: number | undefined;
  /** Sends of this write on the current session whose answer has not arrived. */
  unanswered: number;
  resolve(position: number): void;
  reject(error: Error): void;
}

export class Writer {
  /** Undefined while this client knows no epoch for the log: its first lease then opens one (NEW_WRITER). */
  writerEpoch: number | undefined;
  readonly #attachment: Attachment;
  #nextLsn = 1;
  // Writes without an outcome, in lsn order (lsns only grow, and a Map keeps insertion order).
  readonly #pending = new Map<number, PendingWrite>();
  #ackedThrough = 0;
  #ackScheduled = false;
  #failed: TailgroveError | undefined;
  // Set while the server refuses new writes until it sees an ack (UNACKED_LIMIT): writes
  // wait for the timer to send them again, instead of each drawing an LSN_GAP.
  #heldTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(attachment: Attachment, writerEpoch: number | undefined) {
    this.#attachment = attachment;
    this.writerEpoch = writerEpoch;
  }

  /** The first lease of this log object: the server's writer state is the truth. */
  begin(writerEpoch: number, nextLsn: number): void {
    this.writerEpoch = writerEpoch;
    this.#nextLsn = nextLsn;
    this.#ackedThrough = nextLsn - 1;
  }

  append(data: Uint8Array, at: number | undefined): Promise<number> {
    if (this.#failed) return Promise.reject(this.#failed);
    const limit = this.#attachment.link.entryBytesMax;
    if (data.byteLength > limit) {
      // Refused before it takes an lsn: a write the server refuses as TOO_LARGE would leave
      // a hole in the lsn sequence that every later write would trip over.
      return Promise.reject(new TailgroveError('TOO_LARGE', `entry of ${data.byteLength} bytes is above the limit of ${limit}`));
    }
    const lsn = this.#nextLsn++;
    return new Promise((resolve, reject) => {
      // A copy (Buffer#slice would not copy): the bytes may be sent again later, and the
      // caller may reuse its buffer meanwhile.
      const write: PendingWrite = { lsn, data: new Uint8Array(data), at, unanswered: 0, resolve, reject };
      this.#pending.set(lsn, write);
      if (this.#attachment.attached && this.#heldTimer === undefined) this.#send(write);
    });
  }

  /** Leased on a new session: earlier sends will never be answered, so send every write without an outcome again, in lsn order. */
  resume(): void {
    clearTimeout(this.#heldTimer);
    this.#heldTimer = undefined;
    for (const write of this.#pending.values()) {
      write.unanswered = 0;
      this.#send(write);
    }
    this.#scheduleAck();
  }

  /**
   * Some frames sent on this session were dropped (RATE_LIMITED) and which is unknown: send
   * the last ack and every write without an outcome again. Duplicates are answered with
   * their original outcome, and an ack already seen is ignored.
   */
  replay(): void {
    const { shard, handle, link } = this.#attachment;
    if (this.#ackedThrough > 0) link.send(ackFrame(shard, handle, this.#ackedThrough));
    this.resume();
  }

  /**
   * The server refused write `lsn` until it sees more acks (UNACKED_LIMIT; the lsn was not
   * used, and the later writes in flight draw LSN_GAP). Ack what can be acked, then send
   * again from `lsn` after a pause in which the outstanding answers (and so acks) arrive.
   */
  onUnackedLimit(lsn: number): void {
    const write = this.#pending.get(lsn);
    if (write === undefined) return;
    write.unanswered--;
    if (this.#heldTimer !== undefined) return;
    const { shard, handle, link } = this.#attachment;
    // Sent even when not new: the last one may have been dropped.
    if (this.#ackedThrough > 0) link.send(ackFrame(shard, handle, this.#ackedThrough));
    this.#heldTimer = setTimeout(() => {
      this.#heldTimer = undefined;
      // Not attached: the next lease sends everything (resume).
      if (!this.#attachment.attached) return;
      for (const held of this.#pending.values()) if (held.lsn >= lsn) this.#send(held);
    }, UNACKED_RETRY_MS);
  }

  onAck(lsn: number, position: number): void {
    const write = this.#pending.get(lsn);
    if (write === undefined) return; // the answer to a resend of a write already settled
    this.#pending.delete(lsn);
    write.resolve(position);
    this.#scheduleAck();
  }

  onNack(reason: number, lsn: number, expectedLsn: number, tail: number): void {
    const write = this.#pending.get(lsn);
    if (write === undefined) return;
    if (reason === NACK_LSN_GAP) {
      write.unanswered--;
      // A later send of this write is still in flight and gets its own answer; reacting
      // to every stale nack would resend the same range once per pipelined write.
      // While held, the timer sends everything again.
      if (write.unanswered > 0 || this.#heldTimer !== undefined) return;
      this.#resendFrom(expectedLsn);
      return;
    }
    // AT_MISMATCH (or a reason newer than this client): the write was refused and its lsn used.
    this.#pending.delete(lsn);
    const code = reason === NACK_AT_MISMATCH ? 'AT_MISMATCH' : `NACK_${reason}`;
    write.reject(new TailgroveError(code, `append at ${write.at} refused: the log's tail is ${tail}`, { tail }));
    this.#scheduleAck();
  }

  /** The writer cannot go on (FENCED, FORBIDDEN, the log is gone, …): reject pending and future appends. */
  fail(error: TailgroveError): void {
    this.#failed ??= error;
    clearTimeout(this.#heldTimer);
    for (const write of this.#pending.values()) write.reject(error);
    this.#pending.clear();
  }

  #send(write: PendingWrite): void {
    write.unanswered++;
    const { shard, handle, link } = this.#attachment;
    link.send(writeFrame(shard, handle, write.lsn, write.at, write.data));
  }

  #resendFrom(expectedLsn: number): void {
    const first = this.#pending.keys().next().value!;
    if (expectedLsn < first) {
      // The server expects an lsn whose outcome this client already has: the two writer
      // states diverged, and reusing those lsns could turn a new append into an old one.
      this.fail(new TailgroveError('LSN_GAP', `the server expects lsn ${expectedLsn}, below the first unanswered write ${first}`, { expectedLsn }));
      return;
    }
    for (const write of this.#pending.values()) if (write.lsn >= expectedLsn) this.#send(write);
  }

  // Acknowledge the outcomes received so far, once per burst of answers: the server then
  // drops their completion records.
  #scheduleAck(): void {
    if (this.#ackScheduled) return;
    this.#ackScheduled = true;
    queueMicrotask(() => {
      this.#ackScheduled = false;
      const firstUnanswered = this.#pending.keys().next().value;
      const through = (firstUnanswered ?? this.#nextLsn) - 1;
      const { shard, handle, link, attached } = this.#attachment;
      if (!attached || through <= this.#ackedThrough) return;
      link.send(ackFrame(shard, handle, through));
      this.#ackedThrough = through;
    });
  }
}
