// A minimal RFC 6455 client over node:net for tests that must control reading: unlike the
// `ws` package, pauseReading() really stops reading the socket (net.Socket.pause: once the
// stream's small buffer is full, Node stops reading the kernel socket), so the kernel
// buffers fill and the server's buffered amount grows: a slow consumer.
// Mirrors bench/raw-websocket.js, simplified: client frames are masked with the key 0 (the
// server still unmasks; fine on loopback), server frames are unmasked and unfragmented.
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const OP_BINARY = 0x2;
const OP_TEXT = 0x1;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;

export interface CloseInfo {
  /** Close code from the server's close frame, or 1006 when the connection just dropped. */
  code: number;
  reason: string;
  /** True when the server (or the network) ended the connection, false after our close(). */
  byServer: boolean;
  error?: Error;
}

export interface SlowSocketOptions {
  /** One binary message: bytes[start, end), valid only during the call. */
  onMessage: (bytes: Buffer, start: number, end: number) => void;
  onClose?: (info: CloseInfo) => void;
}

function clientFrame(opcode: number, payload: Uint8Array): Buffer {
  const length = payload.length;
  const header = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const bytes = Buffer.allocUnsafe(header + 4 + length);
  bytes[0] = 0x80 | opcode;
  if (length < 126) bytes[1] = 0x80 | length;
  else if (length < 65536) {
    bytes[1] = 0x80 | 126;
    bytes.writeUInt16BE(length, 2);
  } else {
    bytes[1] = 0x80 | 127;
    bytes.writeUInt32BE(Math.floor(length / 0x100000000), 2);
    bytes.writeUInt32BE(length >>> 0, 6);
  }
  bytes.writeUInt32BE(0, header); // mask key 0: XOR is a no-op
  bytes.set(payload, header + 4);
  return bytes;
}

export class SlowSocket {
  readonly socket: net.Socket;
  closed: CloseInfo | undefined;
  bytesIn = 0;
  messagesIn = 0;
  private readonly onMessage: SlowSocketOptions['onMessage'];
  private readonly onClose: NonNullable<SlowSocketOptions['onClose']>;
  private closing = false;
  // A frame split across chunks is reassembled here.
  private pending: Buffer = Buffer.alloc(0);
  private pendingLength = 0;

  static connect(url: string, options: SlowSocketOptions): Promise<SlowSocket> {
    const target = new URL(url);
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: target.hostname, port: Number(target.port), noDelay: true });
      const key = randomBytes(16).toString('base64');
      const accept = createHash('sha1').update(key + GUID).digest('base64');
      let head = Buffer.alloc(0);
      const fail = (error: Error): void => {
        cleanup();
        socket.destroy();
        reject(error);
      };
      const onEnd = (): void => fail(new Error('slow-socket: closed during the handshake'));
      const onData = (chunk: Buffer): void => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        const lines = head.subarray(0, end).toString('latin1').split('\r\n');
        if (!/^HTTP\/1\.1 101/.test(lines[0]!)) return fail(new Error(`slow-socket: upgrade refused: ${lines[0]}`));
        const acceptLine = lines.find((line) => line.toLowerCase().startsWith('sec-websocket-accept:'));
        if (acceptLine?.slice(acceptLine.indexOf(':') + 1).trim() !== accept) return fail(new Error('slow-socket: bad Sec-WebSocket-Accept'));
        cleanup();
        const ws = new SlowSocket(socket, options);
        resolve(ws);
        const rest = head.subarray(end + 4);
        if (rest.length > 0) ws.onData(rest);
      };
      const cleanup = (): void => {
        socket.off('data', onData);
        socket.off('error', fail);
        socket.off('end', onEnd);
      };
      socket.on('data', onData);
      socket.on('error', fail);
      socket.on('end', onEnd);
      socket.write(
        `GET ${target.pathname || '/'} HTTP/1.1\r\nHost: ${target.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
  }

  private constructor(socket: net.Socket, options: SlowSocketOptions) {
    this.socket = socket;
    this.onMessage = options.onMessage;
    this.onClose = options.onClose ?? (() => {});
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => this.finish({ code: 1006, reason: '', byServer: !this.closing, error }));
    socket.on('close', () => this.finish({ code: 1006, reason: '', byServer: !this.closing }));
  }

  /** Send one binary message. */
  send(payload: Uint8Array): void {
    if (this.closed === undefined && !this.closing) this.socket.write(clientFrame(OP_BINARY, payload));
  }

  /** Stop reading the socket: the kernel buffers fill, then the server's. */
  pauseReading(): void {
    this.socket.pause();
  }

  resumeReading(): void {
    this.socket.resume();
  }

  /** Closing handshake (or a drop after 2 s); resolves when the socket is gone. */
  close(): Promise<void> {
    if (this.closed !== undefined) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once('close', () => resolve());
      if (!this.closing) {
        this.closing = true;
        this.socket.resume();
        this.socket.write(clientFrame(OP_CLOSE, Buffer.from([0x03, 0xe8])));
      }
      setTimeout(() => this.socket.destroy(), 2000).unref();
    });
  }

  private finish(info: CloseInfo): void {
    if (this.closed !== undefined) return;
    this.closed = info;
    this.socket.destroy();
    this.onClose(info);
  }

  private onData(chunk: Buffer): void {
    this.bytesIn += chunk.length;
    let bytes = chunk;
    if (this.pendingLength > 0) {
      // Append to the pending frame (growing the buffer geometrically).
      const need = this.pendingLength + chunk.length;
      if (need > this.pending.length) {
        const grown = Buffer.allocUnsafe(Math.max(need, this.pending.length * 2));
        this.pending.copy(grown, 0, 0, this.pendingLength);
        this.pending = grown;
      }
      chunk.copy(this.pending, this.pendingLength);
      this.pendingLength = need;
      bytes = this.pending.subarray(0, need);
    }
    let offset = 0;
    while (this.closed === undefined) {
      const available = bytes.length - offset;
      if (available < 2) break;
      const b0 = bytes[offset]!;
      const b1 = bytes[offset + 1]!;
      let length = b1 & 0x7f;
      let header = 2;
      if (length === 126) {
        if (available < 4) break;
        length = bytes.readUInt16BE(offset + 2);
        header = 4;
      } else if (length === 127) {
        if (available < 10) break;
        length = bytes.readUInt32BE(offset + 2) * 0x100000000 + bytes.readUInt32BE(offset + 6);
        header = 10;
      }
      if (available < header + length) break;
      const start = offset + header;
      offset = start + length;
      if ((b1 & 0x80) !== 0 || (b0 & 0x80) === 0) {
        this.finish({ code: 1002, reason: 'masked or fragmented frame from the server', byServer: true, error: new Error('slow-socket: protocol error') });
        return;
      }
      this.frame(b0 & 0x0f, bytes, start, offset);
    }
    const rest = bytes.length - offset;
    if (rest === 0) {
      this.pendingLength = 0;
    } else if (bytes === chunk) {
      if (this.pending.length < rest) this.pending = Buffer.allocUnsafe(Math.max(rest, 64 * 1024));
      chunk.copy(this.pending, 0, offset);
      this.pendingLength = rest;
    } else if (offset > 0) {
      this.pending.copy(this.pending, 0, offset, bytes.length);
      this.pendingLength = rest;
    }
  }

  private frame(opcode: number, bytes: Buffer, start: number, end: number): void {
    switch (opcode) {
      case OP_BINARY:
        this.messagesIn++;
        this.onMessage(bytes, start, end);
        return;
      case OP_PING:
        this.socket.write(clientFrame(OP_PONG, bytes.subarray(start, end)));
        return;
      case OP_PONG:
        return;
      case OP_CLOSE: {
        const code = end - start >= 2 ? bytes.readUInt16BE(start) : 1005;
        const reason = end - start > 2 ? bytes.toString('utf8', start + 2, end) : '';
        const byServer = !this.closing;
        if (byServer) this.socket.write(clientFrame(OP_CLOSE, bytes.subarray(start, Math.min(end, start + 2))));
        this.socket.end();
        this.finish({ code, reason, byServer });
        return;
      }
      case OP_TEXT:
      default:
        this.finish({ code: 1002, reason: `unexpected opcode ${opcode}`, byServer: true, error: new Error('slow-socket: protocol error') });
    }
  }
}
