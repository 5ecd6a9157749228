// uWS's WebSocket route (app.ws) and WebSocket over the `ws` package, in noServer mode on
// node:http's 'upgrade' event, without compression. What it keeps of uWS (probed against the
// native module in test/native-free-transport.test.ts):
// - messages arrive as ArrayBuffers, `isBinary` false for text; none after end() or close();
// - send() copies the message and returns 1 (written), 0 (some of it is buffered:
//   backpressure builds) or 2 (dropped: more than maxBackpressure was buffered before it);
//   with closeOnBackpressureLimit a drop also drops the connection (close handler: 1006,
//   soon after, not within send());
// - `drain` runs whenever buffered bytes went down after a send left some;
// - end() sends what is buffered, then the close frame; end() and close() run the close
//   handler before they return; from then on every method but getUserData() throws;
// - idleTimeout with automatic pings, in uWS's two parts (ping after the silence, close if
//   nothing answers within the margin), checked every second;
// - a message over maxPayloadLength, or text that is not UTF-8, drops the connection (close
//   handler: 1006).
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { RecognizedString, WebSocket, WebSocketBehavior } from 'uWebSockets.js';
import { WebSocket as RawWebSocket, WebSocketServer, type RawData, type ServerOptions } from 'ws';
import { arrayBufferOf, exactArrayBuffer, ownedCopy } from './bytes.js';
import type { CompatRequest } from './http-request.js';
import { UpgradeResponse, type CompatResponse, type UpgradeContext } from './http-response.js';
import { unsupported } from './unsupported.js';

const CLOSED = 'Invalid access of closed uWS.WebSocket/SSLWebSocket.';
const SEND_BACKPRESSURE = 0;
const SEND_SUCCESS = 1;
const SEND_DROPPED = 2;
const CLOSE_ABNORMAL = 1006;
const CLOSE_REASON_BYTES_MAX = 123;
const TIMED_OUT = 'WebSocket timed out from inactivity';
/** uWS's close messages for the frames `ws` refuses (by ws's error code); others keep ws's message. */
const REFUSED_FRAME_MESSAGES: Record<string, string> = {
  WS_ERR_UNSUPPORTED_MESSAGE_LENGTH: 'Received too big message',
  WS_ERR_INVALID_UTF8: 'Received invalid UTF-8',
};
const IDLE_TICK_MS = 1000;
// uWS.js's defaults.
const MAX_PAYLOAD_LENGTH_DEFAULT = 16 * 1024;
const MAX_BACKPRESSURE_DEFAULT = 64 * 1024;
const IDLE_TIMEOUT_DEFAULT = 120;
const BINARY = { binary: true };
const TEXT = { binary: false };

/** Close codes `ws` accepts to send (uWS sends any; others close without a code). */
function sendableCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);
}

/** uWS's margin: 4, 8 or 16 s by idleTimeout (WebSocketContextData::calculateIdleTimeoutCompnents). */
function idleMargin(idleTimeout: number): number {
  let margin = 4;
  while (idleTimeout - margin * 2 >= margin * 2 && margin < 16) margin *= 2;
  return margin;
}

export class WebSocketRoute<UserData> implements UpgradeContext {
  readonly behavior: WebSocketBehavior<UserData>;
  readonly maxBackpressure: number;
  readonly closeOnBackpressureLimit: boolean;
  readonly sendPings: boolean;
  /** Idle seconds (ticks) before the ping, or before closing without pings; 0: no idle timeout. */
  readonly silenceTicks: number;
  /** Seconds after the ping before closing. */
  readonly graceTicks: number;
  private readonly server: WebSocketServer;
  private readonly sockets = new Set<CompatWebSocket<UserData>>();
  private sweeper: NodeJS.Timeout | undefined;

  constructor(behavior: WebSocketBehavior<UserData>) {
    for (const option of ['compression', 'maxLifetime', 'ping', 'pong', 'subscription'] as const) {
      if (behavior[option]) unsupported(`WebSocketBehavior.${option}`);
    }
    const idleTimeout = Math.trunc(behavior.idleTimeout ?? IDLE_TIMEOUT_DEFAULT);
    // uWS prints these and aborts the process; throwing is kinder.
    if (idleTimeout !== 0 && idleTimeout < 8) throw new Error('idleTimeout must be either 0 or greater than 8!');
    if (idleTimeout > 960) throw new Error('idleTimeout must not be greater than 960 seconds!');
    this.behavior = behavior;
    this.maxBackpressure = behavior.maxBackpressure ?? MAX_BACKPRESSURE_DEFAULT;
    this.closeOnBackpressureLimit = Boolean(behavior.closeOnBackpressureLimit);
    this.sendPings = behavior.sendPingsAutomatically ?? true;
    const margin = idleMargin(idleTimeout);
    this.silenceTicks = idleTimeout === 0 ? 0 : idleTimeout - (this.sendPings ? margin : 0);
    this.graceTicks = margin;
    // closeTimeout (missing from @types/ws): how long end() waits for the peer's close frame;
    // uWS waits the margin too.
    const options: ServerOptions & { closeTimeout: number } = {
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: behavior.maxPayloadLength ?? MAX_PAYLOAD_LENGTH_DEFAULT,
      closeTimeout: margin * 1000,
    };
    this.server = new WebSocketServer(options);
  }

  /** The GET route of the pattern: takes WebSocket upgrade requests and passes the others on, like uWS. */
  readonly handle = (res: CompatResponse, req: CompatRequest): void => {
    const key = req.getHeader('sec-websocket-key');
    if (!(res instanceof UpgradeResponse) || key.length !== 24) {
      req.setYield(true);
      return;
    }
    if (this.behavior.upgrade !== undefined) void this.behavior.upgrade(res, req, this);
    else res.upgrade({}, key, req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), this);
  };

  acceptUpgrade(message: IncomingMessage, socket: Duplex, head: Buffer, userData: unknown): void {
    this.server.handleUpgrade(message, socket, head, (raw) => {
      raw.binaryType = 'arraybuffer';
      const ws = new CompatWebSocket<UserData>(this, raw, socket, userData as UserData);
      this.sockets.add(ws);
      if (this.silenceTicks > 0 && this.sweeper === undefined) this.sweeper = setInterval(this.sweep, IDLE_TICK_MS).unref();
      void this.behavior.open?.(ws);
    });
  }

  /** The socket closed: it leaves the idle sweep (its close handler runs next). */
  forget(ws: CompatWebSocket<UserData>): void {
    this.sockets.delete(ws);
    if (this.sockets.size === 0 && this.sweeper !== undefined) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  private readonly sweep = (): void => {
    for (const ws of this.sockets) ws.idleTick();
  };
}

export class CompatWebSocket<UserData> implements WebSocket<UserData> {
  private readonly route: WebSocketRoute<UserData>;
  private readonly raw: RawWebSocket;
  private readonly socket: Duplex;
  private readonly userData: UserData;
  /** Until the close handler runs. */
  private open = true;
  private idleTicks = 0;
  private pinged = false;
  private corks = 0;
  /** Bytes buffered when the outermost cork began. */
  private backlogAtCork = 0;
  /** Bytes buffered after the last send: fewer later means the socket drained. */
  private lastBuffered = 0;

  constructor(route: WebSocketRoute<UserData>, raw: RawWebSocket, socket: Duplex, userData: UserData) {
    this.route = route;
    this.raw = raw;
    this.socket = socket;
    this.userData = userData;
    raw.on('message', this.onMessage);
    raw.on('close', this.onClose);
    raw.on('error', this.onError);
    socket.on('data', this.onActivity);
  }

  send(message: RecognizedString, isBinary?: boolean): number {
    this.live();
    // Closing on its own (the peer's close frame came, or dropped over the limit): uWS
    // would have run the close handler already.
    if (this.raw.readyState !== RawWebSocket.OPEN) return SEND_DROPPED;
    if (this.route.maxBackpressure > 0 && this.bufferedAmount() > this.route.maxBackpressure) {
      if (this.route.closeOnBackpressureLimit) this.raw.terminate();
      return SEND_DROPPED;
    }
    this.raw.send(ownedCopy(message), isBinary === true ? BINARY : TEXT, this.onWritten);
    if (this.corks > 0) return this.backlogAtCork > 0 ? SEND_BACKPRESSURE : SEND_SUCCESS;
    this.lastBuffered = this.raw.bufferedAmount;
    return this.lastBuffered > 0 ? SEND_BACKPRESSURE : SEND_SUCCESS;
  }

  getBufferedAmount(): number {
    this.live();
    return this.bufferedAmount();
  }

  /** Closing handshake: buffered messages, then the close frame (reason cut at 123 bytes, like uWS). */
  end(code?: number, shortMessage?: RecognizedString): void {
    this.live();
    const message = arrayBufferOf(shortMessage);
    if (code !== undefined && sendableCloseCode(code)) this.raw.close(code, Buffer.from(message, 0, Math.min(message.byteLength, CLOSE_REASON_BYTES_MAX)));
    else this.raw.close();
    this.closed(code ?? 0, message);
  }

  /** Drops the connection: no close frame. */
  close(): void {
    this.live();
    this.raw.terminate();
    this.closed(CLOSE_ABNORMAL, new ArrayBuffer(0));
  }

  /** Runs `cb` with the socket corked: its sends leave in one write. */
  cork(cb: () => void): WebSocket<UserData> {
    this.live();
    if (this.corks++ === 0) this.backlogAtCork = this.raw.bufferedAmount;
    this.socket.cork();
    try {
      cb();
    } finally {
      this.socket.uncork();
      if (--this.corks === 0) this.lastBuffered = this.raw.bufferedAmount;
    }
    return this;
  }

  /** The object given to res.upgrade (uWS copies its fields onto the WebSocket instead). Valid after close too. */
  getUserData(): UserData {
    return this.userData;
  }

  /** One second of the idle sweep: ping a socket silent too long, close it if that stays unanswered. */
  idleTick(): void {
    if (++this.idleTicks < (this.pinged ? this.route.graceTicks : this.route.silenceTicks)) return;
    if (this.route.sendPings && !this.pinged) {
      this.pinged = true;
      this.idleTicks = 0;
      this.raw.ping();
      return;
    }
    this.raw.terminate();
    this.closed(CLOSE_ABNORMAL, arrayBufferOf(TIMED_OUT));
  }

  sendFirstFragment(): never {
    return unsupported('WebSocket.sendFirstFragment');
  }

  sendFragment(): never {
    return unsupported('WebSocket.sendFragment');
  }

  sendLastFragment(): never {
    return unsupported('WebSocket.sendLastFragment');
  }

  ping(): never {
    return unsupported('WebSocket.ping');
  }

  subscribe(): never {
    return unsupported('WebSocket.subscribe');
  }

  unsubscribe(): never {
    return unsupported('WebSocket.unsubscribe');
  }

  isSubscribed(): never {
    return unsupported('WebSocket.isSubscribed');
  }

  getTopics(): never {
    return unsupported('WebSocket.getTopics');
  }

  publish(): never {
    return unsupported('WebSocket.publish');
  }

  getRemoteAddress(): never {
    return unsupported('WebSocket.getRemoteAddress');
  }

  getRemoteAddressAsText(): never {
    return unsupported('WebSocket.getRemoteAddressAsText');
  }

  /** Like uWS: inside a cork begun with nothing buffered, what is sent waits in the cork, not in backpressure. */
  private bufferedAmount(): number {
    return this.corks > 0 && this.backlogAtCork === 0 ? 0 : this.raw.bufferedAmount;
  }

  private live(): void {
    if (!this.open) throw new Error(CLOSED);
  }

  private closed(code: number, message: ArrayBuffer): void {
    this.open = false;
    this.route.forget(this);
    this.route.behavior.close?.(this, code, message);
  }

  // Bytes came in (a pong too), or went out after backpressure: the socket is not idle.
  private readonly onActivity = (): void => {
    this.idleTicks = 0;
    this.pinged = false;
  };

  private readonly onMessage = (data: RawData, isBinary: boolean): void => {
    if (!this.open) return;
    void this.route.behavior.message?.(this, data instanceof ArrayBuffer ? data : exactArrayBuffer(data as Buffer), isBinary);
  };

  /** A send was written out: drain if the buffered bytes went down. */
  private readonly onWritten = (error?: Error): void => {
    if (error !== undefined && error !== null) return;
    if (!this.open) return;
    const buffered = this.raw.bufferedAmount;
    if (buffered >= this.lastBuffered) return;
    this.lastBuffered = buffered;
    this.onActivity();
    this.route.behavior.drain?.(this);
  };

  /** The peer closed (its code and reason), or the connection dropped (1006). */
  private readonly onClose = (code: number, reason: Buffer): void => {
    if (this.open) this.closed(code, exactArrayBuffer(reason));
  };

  /** A frame `ws` refused (too big, malformed): uWS drops the connection at once. */
  private readonly onError = (error: Error & { code?: string }): void => {
    if (!this.open) return;
    this.raw.terminate();
    this.closed(CLOSE_ABNORMAL, arrayBufferOf(REFUSED_FRAME_MESSAGES[error.code ?? ''] ?? error.message));
  };
}
