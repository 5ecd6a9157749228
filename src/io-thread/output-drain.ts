// Drain the workers' output rings to the sockets. Records for the same session that follow
// each other are sent as one WebSocket message (the protocol allows several frames per
// message), corked, so a burst of acks is one syscall: a record that stands alone is sent
// straight from the ring, and only a run of records is gathered into a scratch buffer. The
// ring is released as it drains, so a worker blocked on a full ring resumes while the rest
// is still being sent.
import { OUTPUT_FRAMES, OUTPUT_SESSION } from '../net/records.js';
import type { Ring } from '../ring/ring.js';
import type { SessionRegistry } from './sessions.js';

interface Sendable {
  send(message: Uint8Array, isBinary: boolean): number;
  cork(callback: () => void): unknown;
  getBufferedAmount(): number;
}

const SCRATCH_BYTES = 1 << 20;
/** Release drained ring space to the worker at least this often (bytes read). */
const RELEASE_EVERY_BYTES = 1 << 20;

export class OutputDrain<Socket extends Sendable> {
  private readonly rings: Ring[];
  private readonly registry: SessionRegistry<Socket>;
  private readonly bufferedBytesMax: number;
  private readonly backedUp: (socket: Socket) => void;
  private readonly scratch = Buffer.alloc(SCRATCH_BYTES);
  private scratchLength = 0;
  /** The message being gathered: one record still in its ring, or a run in `scratch`. */
  private pendingSession = -1;
  private pendingRing: Ring | undefined;
  private pendingStart = 0;
  private pendingLength = 0;
  private message: Uint8Array = this.scratch;
  private socket: Socket | undefined;
  // Bound once: cork() takes a callback, and one per send would allocate.
  private readonly sendMessage = (): void => {
    this.socket!.send(this.message, true);
  };
  /** Messages sent since start (a gauge for metrics and tests). */
  messagesSent = 0;

  constructor(rings: Ring[], registry: SessionRegistry<Socket>, bufferedBytesMax: number, backedUp: (socket: Socket) => void) {
    this.rings = rings;
    this.registry = registry;
    this.bufferedBytesMax = bufferedBytesMax;
    this.backedUp = backedUp;
  }

  drainAll(): void {
    for (const ring of this.rings) {
      if (ring.refresh() === 0) continue;
      let readSinceRelease = 0;
      for (let offset = ring.peek(); offset >= 0; offset = ring.peek()) {
        const session = ring.view.getUint32(offset + OUTPUT_SESSION, true);
        const start = offset + OUTPUT_FRAMES;
        const length = ring.recordLength - OUTPUT_FRAMES;
        if (session !== this.pendingSession || this.scratchLength + this.pendingLength + length > SCRATCH_BYTES) {
          this.flush();
          if (readSinceRelease >= RELEASE_EVERY_BYTES) {
            // Nothing pending refers to the ring below this record any more.
            ring.release();
            readSinceRelease = 0;
          }
        }
        if (this.pendingSession === -1) {
          this.pendingSession = session;
          this.pendingRing = ring;
          this.pendingStart = start;
          this.pendingLength = length;
        } else {
          this.gatherPending();
          ring.bytes.copy(this.scratch, this.scratchLength, start, start + length);
          this.scratchLength += length;
        }
        readSinceRelease += ring.recordLength;
        ring.advance();
      }
      this.flush();
      ring.release();
    }
  }

  /** A second record joins the message: move the record still in the ring to scratch. */
  private gatherPending(): void {
    if (this.pendingRing === undefined) return;
    this.pendingRing.bytes.copy(this.scratch, 0, this.pendingStart, this.pendingStart + this.pendingLength);
    this.scratchLength = this.pendingLength;
    this.pendingRing = undefined;
    this.pendingLength = 0;
  }

  private flush(): void {
    if (this.pendingSession === -1) return;
    this.socket = this.registry.socket(this.pendingSession);
    if (this.socket !== undefined) {
      this.message =
        this.pendingRing !== undefined
          ? this.pendingRing.bytes.subarray(this.pendingStart, this.pendingStart + this.pendingLength)
          : this.scratch.subarray(0, this.scratchLength);
      this.socket.cork(this.sendMessage);
      this.messagesSent++;
      if (this.socket.getBufferedAmount() > this.bufferedBytesMax) this.backedUp(this.socket);
    }
    this.socket = undefined;
    this.message = this.scratch;
    this.pendingSession = -1;
    this.pendingRing = undefined;
    this.pendingLength = 0;
    this.scratchLength = 0;
  }
}
