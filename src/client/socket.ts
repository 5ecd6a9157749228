// One WebSocket carrying frames. Browsers use their native WebSocket; Node uses the `ws`
// package, imported only when there is no global WebSocket so browser bundles never run it.
// Frames sent in the same tick leave as one message: pipelining many frames per message is
// the protocol's fast path.
import { CLOSE_PROTOCOL } from '../net/protocol.js';
import { TailgroveError } from './errors.js';

/**
 * The part of the WebSocket API the client uses; both the DOM WebSocket and `ws` fit it.
 * Handlers take `never` so either library's event types are accepted; the client's own
 * handlers declare the shapes they read.
 */
export interface WebSocketLike {
  binaryType: string;
  onopen: ((event: never) => void) | null;
  onmessage: ((event: never) => void) | null;
  onclose: ((event: never) => void) | null;
  onerror: ((event: never) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface SocketEvents {
  message(bytes: Uint8Array): void;
  close(code: number, reason: string): void;
}

// A connection attempt that neither opens nor fails in this time is abandoned, so a
// black-holed network cannot stall reconnecting forever.
export const CONNECT_TIMEOUT_MS = 10_000;

// Frames are coalesced up to about this many bytes per message; a larger frame goes alone.
// Bounding messages keeps one burst of writes from becoming one huge allocation.
const MESSAGE_BYTES_TARGET = 1 << 20;

export class FrameSocket {
  readonly #socket: WebSocketLike;
  #queue: Uint8Array[] = [];
  #queuedBytes = 0;
  #flushScheduled = false;
  #open = true;
  /** Settles when the socket has closed, however it closed. */
  readonly closed: Promise<void>;

  constructor(socket: WebSocketLike, events: SocketEvents) {
    this.#socket = socket;
    let settle!: () => void;
    this.closed = new Promise((resolve) => (settle = resolve));
    socket.onmessage = (event: { data: unknown }) => {
      if (event.data instanceof ArrayBuffer) events.message(new Uint8Array(event.data));
      else this.close(CLOSE_PROTOCOL, 'text message');
    };
    socket.onclose = (event: { code: number; reason: string }) => {
      this.#open = false;
      this.#queue = [];
      settle();
      events.close(event.code, event.reason);
    };
    // An error is always followed by close, which carries the code.
    socket.onerror = () => {};
  }

  /** Queue a frame for the next message. Dropped once the socket is closing: the client resends its work on the next session. */
  send(frame: Uint8Array): void {
    if (!this.#open) return;
    if (this.#queue.length > 0 && this.#queuedBytes + frame.byteLength > MESSAGE_BYTES_TARGET) this.#flush();
    this.#queue.push(frame);
    this.#queuedBytes += frame.byteLength;
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(() => {
        this.#flushScheduled = false;
        this.#flush();
      });
    }
  }

  /**
   * Send `frame` as a message of its own, after the frames queued before it. The server
   * refuses a message as a whole (RATE_LIMITED, REVOKED) naming only its first frame's
   * request id, and reads a revoked session's message only when a refresh comes first: a
   * control request alone in its message is the one such a refusal names.
   */
  sendAlone(frame: Uint8Array): void {
    if (!this.#open) return;
    this.#flush();
    this.#socket.send(frame);
  }

  close(code: number, reason: string): void {
    if (!this.#open) return;
    this.#flush();
    this.#open = false;
    this.#socket.close(code, reason);
  }

  #flush(): void {
    if (this.#queue.length === 0 || !this.#open) return;
    let message: Uint8Array;
    if (this.#queue.length === 1) {
      message = this.#queue[0]!;
    } else {
      message = new Uint8Array(this.#queuedBytes);
      let offset = 0;
      for (const frame of this.#queue) {
        message.set(frame, offset);
        offset += frame.byteLength;
      }
    }
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#socket.send(message);
  }
}

/** Open a socket to `url`; rejects with DISCONNECTED if it closes (or times out) before opening. */
export async function openSocket(url: string, WebSocketClass: WebSocketConstructor | undefined, events: SocketEvents): Promise<FrameSocket> {
  const Constructor = WebSocketClass ?? (await defaultWebSocket());
  return new Promise((resolve, reject) => {
    const socket = new Constructor(url);
    socket.binaryType = 'arraybuffer';
    // Closing a connecting socket makes it fail, which lands in onclose below.
    const timer = setTimeout(() => socket.close(), CONNECT_TIMEOUT_MS);
    socket.onopen = () => {
      clearTimeout(timer);
      resolve(new FrameSocket(socket, events));
    };
    socket.onerror = () => {};
    socket.onclose = (event: { code: number; reason: string }) => {
      clearTimeout(timer);
      reject(new TailgroveError('DISCONNECTED', `could not connect to ${url} (close ${event.code}${event.reason ? `: ${event.reason}` : ''})`));
    };
  });
}

async function defaultWebSocket(): Promise<WebSocketConstructor> {
  const native = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (native !== undefined) return native;
  return (await import('ws')).default;
}
