// uWS's HttpResponse over node:http. Status and headers are kept until end(), like uWS's
// linear buffer: a status written after a header is ignored, headers may repeat. A response
// is valid until it ends, upgrades or is aborted; afterwards every call throws, like uWS's.
// Two kinds: PlainResponse answers a request through node:http's ServerResponse;
// UpgradeResponse answers a request that came with `Upgrade:` (node:http's 'upgrade' event)
// on its raw socket — it upgrades it to a WebSocket, or refuses it with an HTTP response
// and closes the connection.
import { validateHeaderName, validateHeaderValue, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { HttpResponse, RecognizedString, us_socket_context_t } from 'uWebSockets.js';
import { exactArrayBuffer, ownedCopy, textOf } from './bytes.js';
import { unsupported } from './unsupported.js';

const DISCARDED = 'uWS.HttpResponse must not be accessed after uWS.HttpResponse.onAborted callback, or after a successful response. See documentation for uWS.HttpResponse and consult the user manual.';

type DataHandler = (chunk: ArrayBuffer, isLast: boolean) => void;

/** What res.upgrade hands the request to: the WebSocket route whose upgrade handler got it as `context`. */
export interface UpgradeContext {
  acceptUpgrade(message: IncomingMessage, socket: Duplex, head: Buffer, userData: unknown): void;
}

function isUpgradeContext(value: unknown): value is UpgradeContext {
  return typeof (value as Partial<UpgradeContext> | undefined)?.acceptUpgrade === 'function';
}

export abstract class CompatResponse implements HttpResponse {
  /** uWS lets handlers attach their own fields to a response. */
  [key: string]: unknown;
  protected readonly message: IncomingMessage;
  private status = '200 OK';
  private statusWritten = false;
  private readonly headers: string[] = [];
  private done = false;
  private abortHandler: (() => void) | undefined;

  constructor(message: IncomingMessage) {
    this.message = message;
  }

  writeStatus(status: RecognizedString): HttpResponse {
    this.live();
    if (!this.statusWritten) this.status = textOf(status);
    this.statusWritten = true;
    return this;
  }

  writeHeader(key: RecognizedString, value: RecognizedString): HttpResponse {
    this.live();
    this.statusWritten = true;
    this.headers.push(textOf(key), textOf(value));
    return this;
  }

  end(body?: RecognizedString, closeConnection?: boolean): HttpResponse {
    this.finish();
    this.respond(this.status, this.headers, body === undefined ? '' : ownedCopy(body), closeConnection === true);
    return this;
  }

  /** Writes go out at end() anyway: the callback just runs. */
  cork(cb: () => void): HttpResponse {
    this.live();
    cb();
    return this;
  }

  onAborted(handler: () => void): HttpResponse {
    this.live();
    this.abortHandler = handler;
    return this;
  }

  getRemoteAddressAsText(): ArrayBuffer {
    this.live();
    return new TextEncoder().encode(this.message.socket.remoteAddress ?? '').buffer;
  }

  abstract onData(handler: DataHandler): HttpResponse;

  abstract upgrade<UserData>(userData: UserData, secWebSocketKey: RecognizedString, secWebSocketProtocol: RecognizedString, secWebSocketExtensions: RecognizedString, context: us_socket_context_t): void;

  pause(): never {
    return unsupported('HttpResponse.pause');
  }

  resume(): never {
    return unsupported('HttpResponse.resume');
  }

  write(): never {
    return unsupported('HttpResponse.write');
  }

  endWithoutBody(): never {
    return unsupported('HttpResponse.endWithoutBody');
  }

  tryEnd(): never {
    return unsupported('HttpResponse.tryEnd');
  }

  close(): never {
    return unsupported('HttpResponse.close');
  }

  getWriteOffset(): never {
    return unsupported('HttpResponse.getWriteOffset');
  }

  onWritable(): never {
    return unsupported('HttpResponse.onWritable');
  }

  getRemoteAddress(): never {
    return unsupported('HttpResponse.getRemoteAddress');
  }

  getProxiedRemoteAddress(): never {
    return unsupported('HttpResponse.getProxiedRemoteAddress');
  }

  getProxiedRemoteAddressAsText(): never {
    return unsupported('HttpResponse.getProxiedRemoteAddressAsText');
  }

  /** Write the response out. */
  protected abstract respond(status: string, headers: string[], body: string | Buffer, closeConnection: boolean): void;

  /** The connection went away before the response ended: the abort handler runs, once. */
  protected aborted(): void {
    if (this.done) return;
    this.done = true;
    this.abortHandler?.();
  }

  /** The response ends (or upgrades) now; it may not be used afterwards. */
  protected finish(): void {
    this.live();
    this.done = true;
  }

  protected live(): void {
    if (this.done) throw new Error(DISCARDED);
  }
}

/** The response to a plain HTTP request, through node:http. */
export class PlainResponse extends CompatResponse {
  private readonly reply: ServerResponse;
  private readingBody = false;

  constructor(message: IncomingMessage, reply: ServerResponse) {
    super(message);
    this.reply = reply;
    // 'close' also follows a completed response, when aborted() finds the response done.
    reply.on('close', () => this.aborted());
  }

  /**
   * The body in chunks, the last one flagged (an empty one when there is no body), like uWS:
   * each chunk is held until the next one arrives or the body ends.
   */
  onData(handler: DataHandler): HttpResponse {
    this.live();
    this.readingBody = true;
    let held: Buffer | undefined;
    this.message.on('data', (chunk: Buffer) => {
      if (held !== undefined) handler(exactArrayBuffer(held), false);
      held = chunk;
    });
    this.message.on('end', () => handler(held === undefined ? new ArrayBuffer(0) : exactArrayBuffer(held), true));
    return this;
  }

  /** After the handlers: a body nobody asked for is read and dropped, so the connection goes on. */
  discardUnreadBody(): void {
    if (!this.readingBody) this.message.resume();
  }

  upgrade(): never {
    throw new Error('uws-compat: only a request that asked for a WebSocket (Upgrade: websocket) can be upgraded');
  }

  protected respond(status: string, headers: string[], body: string | Buffer, closeConnection: boolean): void {
    const space = status.indexOf(' ');
    // Set here: headers given to writeHead without a length would make Node chunk the body.
    headers.push('content-length', String(Buffer.byteLength(body)));
    if (closeConnection) headers.push('connection', 'close');
    this.reply.writeHead(Number(space < 0 ? status : status.slice(0, space)), space < 0 ? undefined : status.slice(space + 1), headers);
    this.reply.end(body);
  }
}

/** The response to a request that came with `Upgrade:`, on its raw socket. */
export class UpgradeResponse extends CompatResponse {
  private readonly socket: Duplex;
  private readonly head: Buffer;

  // Removed on upgrade: the WebSocket outlives this response and should not keep it.
  private readonly onSocketClose = (): void => this.aborted();

  constructor(message: IncomingMessage, socket: Duplex, head: Buffer) {
    super(message);
    this.socket = socket;
    this.head = head;
    socket.on('close', this.onSocketClose);
  }

  /** An upgrade request has no body (what follows it belongs to the WebSocket). */
  onData(handler: DataHandler): HttpResponse {
    this.live();
    process.nextTick(handler, new ArrayBuffer(0), true);
    return this;
  }

  /**
   * Hands the socket to the WebSocket route `context`, which opens the WebSocket (its `open`
   * runs before this returns). The key, protocol and extensions are read from the request by
   * `ws`: tailgrove passes exactly those headers.
   */
  upgrade<UserData>(userData: UserData, _secWebSocketKey: RecognizedString, _secWebSocketProtocol: RecognizedString, _secWebSocketExtensions: RecognizedString, context: us_socket_context_t): void {
    if (!isUpgradeContext(context)) throw new Error('uws-compat: upgrade needs the context the ws upgrade handler was given');
    this.finish();
    this.socket.off('close', this.onSocketClose);
    context.acceptUpgrade(this.message, this.socket, this.head, userData);
  }

  /** Refused: the HTTP response, then the connection closes (the client will not reuse it). */
  protected respond(status: string, headers: string[], body: string | Buffer): void {
    if (/[\r\n]/.test(status)) throw new Error(`uws-compat: invalid status ${JSON.stringify(status)}`);
    const bytes = typeof body === 'string' ? Buffer.from(body) : body;
    let head = `HTTP/1.1 ${status}\r\n`;
    for (let i = 0; i < headers.length; i += 2) {
      validateHeaderName(headers[i]!);
      validateHeaderValue(headers[i]!, headers[i + 1]!);
      head += `${headers[i]}: ${headers[i + 1]}\r\n`;
    }
    head += `content-length: ${bytes.length}\r\nconnection: close\r\n\r\n`;
    this.socket.end(Buffer.concat([Buffer.from(head, 'latin1'), bytes]));
  }
}
