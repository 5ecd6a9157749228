// Frame routing: validate the prefix of each frame of a message and copy the frames into the
// input ring of the worker that owns their shard. Frames of one message that all go to one
// worker (the usual case: a device pipelining to one log) are copied in one piece. Shared by
// the IO thread, the simulation and the allocation benchmark, so all three route alike.
import { INPUT_CONTENT, INPUT_FRAMES, INPUT_KIND, INPUT_SESSION, INPUT_SESSION_CLOSE, INPUT_SESSION_OPEN } from '../net/records.js';
import { checkFrame, frameOp, frameShard, isIoThreadOp, type FrameLimits } from '../net/frame.js';

/** route() stopped at a frame the IO thread answers itself (connect, attest, refresh). */
export const ROUTE_STOPPED_AT_SESSION_OP = -1;
import type { Ring } from '../ring/ring.js';
import type { SessionCounters } from '../workers/session-counters.js';

export class InputRouter {
  private readonly inputs: Ring[];
  private readonly limits: FrameLimits;
  private readonly inputFull: (worker: number) => void;
  /** After route(): where the frame that stopped it starts (an error or a session op). */
  stopOffset = 0;
  /** After route(): how many frames it routed. */
  framesRouted = 0;

  private readonly sessionCounters: SessionCounters;

  /** `inputFull(worker)` must return once that worker's input ring may have room again. */
  constructor(inputs: Ring[], limits: FrameLimits, sessionCounters: SessionCounters, inputFull: (worker: number) => void) {
    this.inputs = inputs;
    this.sessionCounters = sessionCounters;
    this.limits = limits;
    this.inputFull = inputFull;
  }

  /**
   * Route the frames in bytes[start, end) of `session`, up to the first malformed frame
   * (returns its error code) or the first session op the IO thread answers itself (returns
   * ROUTE_STOPPED_AT_SESSION_OP); `stopOffset` says where that frame starts. Returns 0 when
   * every frame was routed.
   */
  route(session: number, bytes: Uint8Array, start: number, end: number): number {
    const workerCount = this.inputs.length;
    let worker = -1;
    let mixed = false;
    let cursor = start;
    let error = 0;
    let frames = 0;
    while (cursor < end) {
      const size = checkFrame(bytes, cursor, end - cursor, this.limits);
      if (size < 0) {
        error = -size;
        break;
      }
      const op = frameOp(bytes, cursor);
      if (isIoThreadOp(op)) {
        error = ROUTE_STOPPED_AT_SESSION_OP;
        break;
      }
      frames++;
      const target = frameShard(bytes, cursor) % workerCount;
      if (worker < 0) worker = target;
      else if (target !== worker) mixed = true;
      cursor += size;
    }
    this.stopOffset = cursor;
    this.framesRouted = frames;
    if (!mixed && cursor > start) {
      this.copyFrames(worker, session, bytes, start, cursor);
    } else if (mixed) {
      for (let frame = start; frame < cursor; ) {
        const size = checkFrame(bytes, frame, cursor - frame, this.limits);
        this.copyFrames(frameShard(bytes, frame) % workerCount, session, bytes, frame, frame + size);
        frame += size;
      }
    }
    return error;
  }

  /** Tell every worker about a new session (content: msgpack [user, device, grants]). */
  openSession(session: number, content: Uint8Array): void {
    this.sessionCounters.reset(session);
    for (let worker = 0; worker < this.inputs.length; worker++) this.copyRecord(worker, INPUT_SESSION_OPEN, session, content, 0, content.length);
  }

  closeSession(session: number): void {
    this.broadcast(INPUT_SESSION_CLOSE, session);
  }

  /** Tell every worker about a session event (grants changed, revoked, paused, resumed). */
  broadcast(kind: number, session: number, content?: Uint8Array): void {
    for (let worker = 0; worker < this.inputs.length; worker++) this.copyRecord(worker, kind, session, content, 0, content?.length ?? 0);
  }

  /** Make everything routed so far visible to the workers. */
  publish(): void {
    for (const ring of this.inputs) ring.publish();
  }

  private copyFrames(worker: number, session: number, bytes: Uint8Array, start: number, end: number): void {
    this.copyRecord(worker, INPUT_FRAMES, session, bytes, start, end);
  }

  private copyRecord(worker: number, kind: number, session: number, bytes: Uint8Array | undefined, start: number, end: number): void {
    const ring = this.inputs[worker]!;
    let offset = ring.reserve(INPUT_CONTENT + end - start);
    while (offset < 0) {
      ring.publish();
      this.inputFull(worker);
      offset = ring.reserve(INPUT_CONTENT + end - start);
    }
    ring.view.setUint32(offset + INPUT_KIND, kind, true);
    ring.view.setUint32(offset + INPUT_SESSION, session, true);
    if (bytes === undefined) return;
    if (start === 0 && end === bytes.length) ring.bytes.set(bytes, offset + INPUT_CONTENT);
    else ring.bytes.set(bytes.subarray(start, end), offset + INPUT_CONTENT);
  }
}
