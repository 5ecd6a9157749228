// The IO thread's session registry: a session id is a socket slot (low 16 bits) and that
// slot's generation (high 16 bits), so frames for a closed session that are still in the
// output rings never reach the socket that reused its slot.
import { invariant } from '../invariant.js';
import { SESSION_SLOTS } from '../constants.js';

const SLOT_BITS = 16;
const SLOT_MASK = (1 << SLOT_BITS) - 1;
invariant(SESSION_SLOTS === 1 << SLOT_BITS, 'a session id holds a slot in its low 16 bits');

export class SessionRegistry<Socket> {
  private readonly sockets: (Socket | undefined)[] = new Array(SESSION_SLOTS).fill(undefined);
  private readonly generations = new Uint16Array(SESSION_SLOTS);
  // Free slots in a FIFO ring: a closed slot is reused last, long after the workers have
  // drained the closed session's records (session-counters.ts relies on that).
  private readonly free = new Int32Array(SESSION_SLOTS);
  private freeHead = 0;
  private freeCount = SESSION_SLOTS;
  count = 0;

  constructor() {
    for (let slot = 0; slot < SESSION_SLOTS; slot++) this.free[slot] = slot;
  }

  /** A new session id for `socket`, or -1 when every slot is taken. */
  open(socket: Socket): number {
    if (this.freeCount === 0) return -1;
    const slot = this.free[this.freeHead]!;
    this.freeHead = (this.freeHead + 1) & SLOT_MASK;
    this.freeCount--;
    this.generations[slot] = (this.generations[slot]! + 1) & 0xffff;
    this.sockets[slot] = socket;
    this.count++;
    return ((this.generations[slot]! << SLOT_BITS) | slot) >>> 0;
  }

  close(session: number): void {
    const slot = session & SLOT_MASK;
    invariant(this.sessionOf(slot) === session, 'a closed session is current');
    this.sockets[slot] = undefined;
    this.free[(this.freeHead + this.freeCount) & SLOT_MASK] = slot;
    this.freeCount++;
    this.count--;
  }

  /** The socket of a current session, or undefined when it closed. */
  socket(session: number): Socket | undefined {
    const slot = session & SLOT_MASK;
    if (this.sessionOf(slot) !== session) return undefined;
    return this.sockets[slot];
  }

  private sessionOf(slot: number): number {
    return ((this.generations[slot]! << SLOT_BITS) | slot) >>> 0;
  }
}
