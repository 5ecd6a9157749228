// Drain the workers' output rings to the sockets. Records for the same session that follow
// each other are copied into one scratch buffer and sent as one WebSocket message (the
// protocol allows several frames per message), corked, so a burst of acks is one syscall.
// A socket whose buffered bytes pass the bound is reported, so its tails pause.
import { OUTPUT_FRAMES, OUTPUT_SESSION } from '../net/records.js';
import type { Ring } from '../ring/ring.js';
import type { SessionRegistry } from './sessions.js';

interface Sendable {
  send(message: Uint8Array, isBinary: boolean): number;
  cork(callback: () => void): unknown;
  getBufferedAmount(): number;
}

const SCRATCH_BYTES = 1 << 20;

export class OutputDrain<Socket extends Sendable> {
  private readonly rings: Ring[];
  private readonly registry: SessionRegistry<Socket>;
  private readonly bufferedBytesMax: number;
  private readonly backedUp: (socket: Socket) => void;
  private readonly scratch = Buffer.alloc(SCRATCH_BYTES);
  private scratchLength = 0;
  private scratchSession = -1;
  private socket: Socket | undefined;
  // Bound once: cork() takes a callback, and one per send would allocate.
  private readonly sendScratch = (): void => {
    this.socket!.send(this.scratch.subarray(0, this.scratchLength), true);
  };
  /** Frames sent since start (a gauge for metrics and tests). */
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
      for (let offset = ring.peek(); offset >= 0; offset = ring.peek()) {
        const session = ring.view.getUint32(offset + OUTPUT_SESSION, true);
        const start = offset + OUTPUT_FRAMES;
        const length = ring.recordLength - OUTPUT_FRAMES;
        if (session !== this.scratchSession || this.scratchLength + length > SCRATCH_BYTES) this.flush();
        if (length > SCRATCH_BYTES) {
          this.sendDirect(session, ring.bytes.subarray(start, start + length));
        } else {
          this.scratchSession = session;
          ring.bytes.copy(this.scratch, this.scratchLength, start, start + length);
          this.scratchLength += length;
        }
        ring.advance();
      }
      this.flush();
      ring.release();
    }
  }

  private flush(): void {
    if (this.scratchLength > 0) {
      this.socket = this.registry.socket(this.scratchSession);
      if (this.socket !== undefined) {
        this.socket.cork(this.sendScratch);
        this.messagesSent++;
        if (this.socket.getBufferedAmount() > this.bufferedBytesMax) this.backedUp(this.socket);
      }
      this.socket = undefined;
    }
    this.scratchLength = 0;
    this.scratchSession = -1;
  }

  private sendDirect(session: number, frames: Uint8Array): void {
    const socket = this.registry.socket(session);
    if (socket === undefined) return;
    socket.send(frames, true);
    this.messagesSent++;
    if (socket.getBufferedAmount() > this.bufferedBytesMax) this.backedUp(socket);
  }
}
