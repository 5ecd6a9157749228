// A tail of one leased log: delivers entries in position order, each exactly once, and
// re-tails from the next position it has not delivered whenever the log is leased again
// (after a reconnect) — the server's stream restarts, the caller's does not.
import { ENTRIES_CAUGHT_UP, ENTRIES_TRIMMED } from '../net/protocol.js';
import { decodeEntries, tailFrame, type Frame } from './codec.js';
import { callSafely } from './call-safely.js';
import type { Attachment } from './link.js';
import type { Entry, Tail, TailOptions } from './types.js';

export class TailStream implements Tail {
  readonly #attachment: Attachment;
  readonly #onEntries: (entries: Entry[]) => void;
  readonly #options: TailOptions;
  readonly #onClose: () => void;
  #next: number;
  // onCaughtUp fires once per server-side tail, i.e. once after each (re)start.
  #awaitingCaughtUp = false;
  #open = true;

  constructor(attachment: Attachment, from: number, onEntries: (entries: Entry[]) => void, options: TailOptions, onClose: () => void) {
    this.#attachment = attachment;
    this.#next = from;
    this.#onEntries = onEntries;
    this.#options = options;
    this.#onClose = onClose;
  }

  get next(): number {
    return this.#next;
  }

  /** Ask the server to push entries from the next undelivered position (on a new lease, or to repair a gap). */
  start(): void {
    const { attached, shard, handle, link } = this.#attachment;
    if (!this.#open || !attached) return;
    this.#awaitingCaughtUp = true;
    link.send(tailFrame(shard, handle, this.#next));
  }

  /**
   * Frames sent on this session may have been dropped (RATE_LIMITED). A tail that caught up
   * is running on the server; one that has not may never have started: start it again
   * (what both deliver is still delivered once).
   */
  replay(): void {
    if (this.#awaitingCaughtUp) this.start();
  }

  onFrame(frame: Frame): void {
    if (!this.#open) return;
    if ((frame.flags & ENTRIES_TRIMMED) !== 0) {
      if (frame.position > this.#next) {
        const skippedFrom = this.#next;
        this.#next = frame.position;
        const onTrimmed = this.#options.onTrimmed;
        if (onTrimmed) callSafely(() => onTrimmed(frame.position, skippedFrom));
      }
      return;
    }
    if (frame.position > this.#next) {
      // Entries after a hole: a late frame of an earlier tail on this handle, or a server
      // gap. Either way, restarting from the first undelivered position is correct.
      this.start();
      return;
    }
    const entries = decodeEntries(frame.payload, frame.c);
    const fresh: Entry[] = [];
    // Entries below #next were delivered already (an overlapping restart): skip them.
    for (let i = this.#next - frame.position; i < entries.length; i++) fresh.push({ position: frame.position + i, data: entries[i]! });
    this.#next += fresh.length;
    if (fresh.length > 0) callSafely(() => this.#onEntries(fresh));
    if ((frame.flags & ENTRIES_CAUGHT_UP) !== 0 && this.#awaitingCaughtUp) {
      this.#awaitingCaughtUp = false;
      const onCaughtUp = this.#options.onCaughtUp;
      if (onCaughtUp) callSafely(onCaughtUp);
    }
  }

  /** The tail cannot go on (its range was trimmed, the log is gone, the client closed). */
  fail(error: Error): void {
    if (!this.#open) return;
    this.#open = false;
    this.#onClose();
    const onError = this.#options.onError;
    if (onError) callSafely(() => onError(error));
  }

  close(): void {
    if (!this.#open) return;
    this.#open = false;
    this.#onClose();
  }
}
