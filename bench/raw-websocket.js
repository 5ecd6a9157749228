// A minimal RFC 6455 WebSocket client over node:net, for load generation only.
//
// Why: the `ws` package as a client tops out near 170k msg/s on a 2-core machine, far below
// what the server can take. This client does the least work per message:
//   - the caller writes its payload into a buffer it owns, leaving HEADER_ROOM bytes free in
//     front; sendFramed() writes the WebSocket header into that room and hands one
//     contiguous slice to the socket: no copy, no concatenation;
//   - several sends in one tick are corked and leave in one writev;
//   - inbound frames that arrive whole inside a socket chunk are handed to the caller as a
//     view of that chunk (no copy); only a frame split across chunks is reassembled.
//
// Masking. RFC 6455 §5.3 requires every client frame to be masked with a 32-bit key that
// intermediaries cannot predict (it protects proxies against cache poisoning by hostile
// scripts). The frame format is the same whatever the key, and the server cannot tell a
// predictable key from a random one. The default here is the key 0x00000000, which makes
// XOR masking a no-op, so the payload is never touched: the server still sees MASK = 1 and
// still unmasks every byte, so the server-side cost is the real one. This is fine for a
// benchmark on loopback with no intermediary; it is NOT acceptable for a real client.
// `mask: 'random'` picks a fresh key per message from a crypto-random pool and masks the payload in place
// (the caller's buffer is modified), to measure what masking costs the client.
//
// Assumptions: the server sends unmasked, unfragmented frames (FIN = 1, no continuation
// frames; the tailgrove server and uWS do so). A fragmented or masked server frame is a
// protocol error here: the socket is destroyed with an error. No extensions (no
// permessage-deflate) are offered, so none can be negotiated.

import net from 'node:net';
import { createHash, randomBytes, randomFillSync } from 'node:crypto';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** Bytes a caller leaves free before its payload for sendFramed(): 2 + 8 (length) + 4 (mask). */
export const HEADER_ROOM = 14;

const OP_CONTINUATION = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;

function headerBytes(length) {
  return (length < 126 ? 2 : length < 65536 ? 4 : 10) + 4;
}

/**
 * Write a client (masked) frame header ending exactly at `end` in `buffer`; returns its start.
 * `maskKey` is 4 bytes (or null for 0,0,0,0).
 */
function writeHeader(buffer, end, opcode, length, maskKey) {
  const start = end - headerBytes(length);
  buffer[start] = 0x80 | opcode; // FIN + opcode
  let offset = start + 1;
  if (length < 126) {
    buffer[offset++] = 0x80 | length;
  } else if (length < 65536) {
    buffer[offset++] = 0x80 | 126;
    buffer[offset++] = length >>> 8;
    buffer[offset++] = length & 0xff;
  } else {
    buffer[offset++] = 0x80 | 127;
    // 64-bit big-endian length; our messages stay far below 2^32.
    buffer.writeUInt32BE(Math.floor(length / 0x100000000), offset);
    buffer.writeUInt32BE(length >>> 0, offset + 4);
    offset += 8;
  }
  if (maskKey === null) {
    buffer[offset] = 0;
    buffer[offset + 1] = 0;
    buffer[offset + 2] = 0;
    buffer[offset + 3] = 0;
  } else {
    buffer[offset] = maskKey[0];
    buffer[offset + 1] = maskKey[1];
    buffer[offset + 2] = maskKey[2];
    buffer[offset + 3] = maskKey[3];
  }
  return start;
}

// Mask keys come from a pool of crypto-random bytes refilled 16 KiB at a time: one
// randomFillSync per 4096 messages instead of one per message.
const keyPool = Buffer.allocUnsafe(16384);
let keyPoolOffset = keyPool.length;
function nextMaskKey() {
  if (keyPoolOffset === keyPool.length) {
    randomFillSync(keyPool);
    keyPoolOffset = 0;
  }
  const key = keyPool.subarray(keyPoolOffset, keyPoolOffset + 4);
  keyPoolOffset += 4;
  return key;
}

function maskInPlace(buffer, start, end, key) {
  // Word-at-a-time XOR through an Int32 view when the slice is 4-aligned, else bytewise.
  const k0 = key[0], k1 = key[1], k2 = key[2], k3 = key[3];
  let i = start;
  const absolute = buffer.byteOffset + start;
  if ((absolute & 3) === 0 && end - start >= 16) {
    const words = (end - start) >>> 2;
    const view = new Int32Array(buffer.buffer, absolute, words);
    const keyWord = (k0 | (k1 << 8) | (k2 << 16) | (k3 << 24)) | 0; // little-endian host
    for (let w = 0; w < words; w++) view[w] ^= keyWord;
    i = start + words * 4;
  }
  for (let j = (i - start) & 3; i < end; i++, j = (j + 1) & 3) {
    buffer[i] ^= j === 0 ? k0 : j === 1 ? k1 : j === 2 ? k2 : k3;
  }
}

export class RawWebSocket {
  /**
   * Open a connection. Resolves once the upgrade succeeded.
   * options.onMessage(buffer, start, end): one binary message, valid only during the call.
   * options.onClose(code, reason, error?): called once when the socket is gone.
   * options.mask: 'zero' (default) or 'random'.
   * options.maxMessageBytes: refuse larger inbound messages (default 64 MiB).
   */
  static connect(url, options = {}) {
    const target = new URL(url);
    if (target.protocol !== 'ws:') throw new Error(`raw-websocket: only ws:// URLs (${url})`);
    const host = target.hostname;
    const port = Number(target.port || 80);
    const path = (target.pathname || '/') + (target.search || '');
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port, noDelay: true });
      const key = randomBytes(16).toString('base64');
      const expectedAccept = createHash('sha1').update(key + GUID).digest('base64');
      let head = Buffer.alloc(0);
      const onError = (error) => {
        cleanup();
        socket.destroy();
        reject(error);
      };
      const onEnd = () => onError(new Error('raw-websocket: connection closed during the handshake'));
      const onData = (chunk) => {
        head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
        const endOfHead = head.indexOf('\r\n\r\n');
        if (endOfHead < 0) {
          if (head.length > 16384) onError(new Error('raw-websocket: oversized handshake response'));
          return;
        }
        const lines = head.subarray(0, endOfHead).toString('latin1').split('\r\n');
        const status = /^HTTP\/1\.1 (\d{3})/.exec(lines[0]);
        if (!status || status[1] !== '101') {
          return onError(new Error(`raw-websocket: upgrade refused: ${lines[0]}`));
        }
        const headers = new Map();
        for (const line of lines.slice(1)) {
          const colon = line.indexOf(':');
          if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
        }
        if (headers.get('sec-websocket-accept') !== expectedAccept) {
          return onError(new Error('raw-websocket: bad Sec-WebSocket-Accept'));
        }
        if (headers.has('sec-websocket-extensions')) {
          return onError(new Error(`raw-websocket: server negotiated an extension we did not offer: ${headers.get('sec-websocket-extensions')}`));
        }
        cleanup();
        const ws = new RawWebSocket(socket, options);
        const rest = head.subarray(endOfHead + 4);
        resolve(ws);
        if (rest.length > 0) ws._onData(rest);
      };
      const cleanup = () => {
        socket.off('data', onData);
        socket.off('error', onError);
        socket.off('end', onEnd);
      };
      socket.on('data', onData);
      socket.on('error', onError);
      socket.on('end', onEnd);
      socket.write(
        `GET ${path} HTTP/1.1\r\n` +
          `Host: ${target.host}\r\n` +
          'Upgrade: websocket\r\n' +
          'Connection: Upgrade\r\n' +
          `Sec-WebSocket-Key: ${key}\r\n` +
          'Sec-WebSocket-Version: 13\r\n\r\n',
      );
    });
  }

  constructor(socket, options) {
    this.socket = socket;
    this.onMessage = options.onMessage ?? (() => {});
    this.onClose = options.onClose ?? (() => {});
    this.randomMask = options.mask === 'random';
    this.maxMessageBytes = options.maxMessageBytes ?? 64 << 20;
    // Reassembly of a frame split across socket chunks.
    this.pending = Buffer.allocUnsafe(64 * 1024);
    this.pendingLength = 0;
    this.pendingNeed = 2; // bytes needed in `pending` to make progress
    this.pendingStage = 0; // 0: first 2 bytes, 1: extended length, 2: payload
    this.corked = false;
    this.closeSent = false;
    this.closed = false;
    this.bytesIn = 0;
    this.messagesIn = 0;
    this.messagesOut = 0;
    this._uncork = () => {
      this.corked = false;
      this.socket.uncork();
    };
    socket.setNoDelay(true);
    socket.on('data', (chunk) => this._onData(chunk));
    socket.on('error', (error) => this._finish(1006, '', error));
    socket.on('close', () => this._finish(1006, ''));
  }

  /** Bytes queued in the socket and not yet handed to the kernel. */
  get bufferedAmount() {
    return this.socket.writableLength;
  }

  /**
   * Send buffer[payloadStart, payloadEnd) as one binary message. The caller must leave
   * HEADER_ROOM bytes free before payloadStart; the header is written there. The buffer
   * must stay untouched until `callback` runs (the socket holds a view of it). With
   * mask 'random' the payload is masked in place.
   */
  sendFramed(buffer, payloadStart, payloadEnd, callback) {
    if (this.closed || this.closeSent) return false;
    const length = payloadEnd - payloadStart;
    let key = null;
    if (this.randomMask) {
      key = nextMaskKey();
      maskInPlace(buffer, payloadStart, payloadEnd, key);
    }
    const start = writeHeader(buffer, payloadStart, OP_BINARY, length, key);
    if (start < 0) throw new RangeError('raw-websocket: no HEADER_ROOM before the payload');
    this._cork();
    this.messagesOut++;
    return this.socket.write(buffer.subarray(start, payloadEnd), callback);
  }

  /** Send `payload` as one binary message (copies it once; for the non-hot path). */
  send(payload) {
    const buffer = Buffer.allocUnsafe(HEADER_ROOM + payload.length);
    payload.copy ? payload.copy(buffer, HEADER_ROOM) : buffer.set(payload, HEADER_ROOM);
    return this.sendFramed(buffer, HEADER_ROOM, buffer.length);
  }

  /** Start the closing handshake; the socket ends when the server answers (or after 2 s). */
  close(code = 1000, reason = '') {
    if (this.closed) return;
    if (!this.closeSent) this._sendControl(OP_CLOSE, closePayload(code, reason));
    this.closeSent = true;
    const timer = setTimeout(() => this.socket.destroy(), 2000);
    timer.unref();
  }

  /** Drop the connection without a closing handshake. */
  destroy() {
    this.socket.destroy();
  }

  _cork() {
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(this._uncork);
    }
  }

  _sendControl(opcode, payload) {
    const buffer = Buffer.allocUnsafe(6 + payload.length);
    writeHeader(buffer, 6, opcode, payload.length, null);
    payload.copy(buffer, 6);
    if (this.randomMask) {
      const key = nextMaskKey();
      key.copy(buffer, 2);
      maskInPlace(buffer, 6, buffer.length, key);
    }
    this._cork();
    this.socket.write(buffer);
  }

  _finish(code, reason, error) {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    this.onClose(code, reason, error);
  }

  _protocolError(message) {
    this._finish(1002, message, new Error(`raw-websocket: ${message}`));
  }

  _onData(chunk) {
    this.bytesIn += chunk.length;
    let offset = 0;
    const length = chunk.length;
    if (this.pendingLength > 0) {
      offset = this._fillPending(chunk);
      if (offset < 0) return; // still incomplete (or failed)
    }
    // Whole frames straight from the chunk.
    while (offset < length) {
      const available = length - offset;
      if (available < 2) break;
      const b0 = chunk[offset];
      const b1 = chunk[offset + 1];
      if (b1 & 0x80) return this._protocolError('masked frame from the server');
      let payloadLength = b1 & 0x7f;
      let header = 2;
      if (payloadLength === 126) {
        if (available < 4) break;
        payloadLength = (chunk[offset + 2] << 8) | chunk[offset + 3];
        header = 4;
      } else if (payloadLength === 127) {
        if (available < 10) break;
        payloadLength = chunk.readUInt32BE(offset + 2) * 0x100000000 + chunk.readUInt32BE(offset + 6);
        header = 10;
      }
      if (available < header + payloadLength) break;
      const start = offset + header;
      offset = start + payloadLength;
      if (!this._frame(b0, chunk, start, offset)) return;
    }
    if (offset < length) this._startPending(chunk, offset);
  }

  _startPending(chunk, offset) {
    this.pendingLength = 0;
    this.pendingStage = 0;
    this.pendingNeed = 2;
    this._fillPending(chunk.subarray(offset));
  }

  /**
   * Feed `chunk` into the pending frame. Returns the offset in `chunk` after the completed
   * frame, or -1 when all of it was consumed and the frame is still incomplete (or failed).
   */
  _fillPending(chunk) {
    let offset = 0;
    for (;;) {
      const take = Math.min(this.pendingNeed - this.pendingLength, chunk.length - offset);
      if (this.pendingLength + take > this.pending.length) {
        let size = this.pending.length * 2;
        while (size < this.pendingNeed) size *= 2;
        const grown = Buffer.allocUnsafe(size);
        this.pending.copy(grown, 0, 0, this.pendingLength);
        this.pending = grown;
      }
      chunk.copy(this.pending, this.pendingLength, offset, offset + take);
      this.pendingLength += take;
      offset += take;
      if (this.pendingLength < this.pendingNeed) return -1;
      const p = this.pending;
      if (this.pendingStage === 0) {
        if (p[1] & 0x80) {
          this._protocolError('masked frame from the server');
          return -1;
        }
        const short = p[1] & 0x7f;
        if (short === 126) {
          this.pendingStage = 1;
          this.pendingNeed = 4;
        } else if (short === 127) {
          this.pendingStage = 1;
          this.pendingNeed = 10;
        } else {
          this.pendingStage = 2;
          this.pendingNeed = 2 + short;
        }
        continue;
      }
      if (this.pendingStage === 1) {
        const payloadLength = this.pendingNeed === 4 ? p.readUInt16BE(2) : p.readUInt32BE(2) * 0x100000000 + p.readUInt32BE(6);
        if (payloadLength > this.maxMessageBytes) {
          this._protocolError(`message of ${payloadLength} bytes exceeds maxMessageBytes`);
          return -1;
        }
        this.pendingStage = 2;
        this.pendingNeed += payloadLength;
        continue;
      }
      // Stage 2: the whole frame is in `pending`.
      const short = p[1] & 0x7f;
      const start = short === 126 ? 4 : short === 127 ? 10 : 2;
      const end = this.pendingNeed;
      this.pendingLength = 0;
      this.pendingStage = 0;
      this.pendingNeed = 2;
      if (!this._frame(p[0], p, start, end)) return -1;
      return offset;
    }
  }

  /** Dispatch one complete frame; returns false when the connection is gone. */
  _frame(b0, buffer, start, end) {
    if ((b0 & 0x80) === 0) {
      this._protocolError('fragmented message (FIN = 0) from the server: not supported');
      return false;
    }
    if (b0 & 0x70) {
      this._protocolError('RSV bits set without a negotiated extension');
      return false;
    }
    const opcode = b0 & 0x0f;
    switch (opcode) {
      case OP_BINARY:
        this.messagesIn++;
        this.onMessage(buffer, start, end);
        return !this.closed;
      case OP_PING:
        if (!this.closeSent) this._sendControl(OP_PONG, Buffer.from(buffer.subarray(start, end)));
        return true;
      case OP_PONG:
        return true;
      case OP_CLOSE: {
        const code = end - start >= 2 ? buffer.readUInt16BE(start) : 1005;
        const reason = end - start > 2 ? buffer.toString('utf8', start + 2, end) : '';
        if (!this.closeSent) {
          this._sendControl(OP_CLOSE, closePayload(code === 1005 ? 1000 : code, ''));
          this.closeSent = true;
        }
        this.socket.end();
        const onClose = this.onClose;
        this.closed = true;
        onClose(code, reason);
        return false;
      }
      case OP_TEXT:
        this._protocolError('text message from the server (the protocol is binary-only)');
        return false;
      case OP_CONTINUATION:
        this._protocolError('continuation frame from the server: fragmentation not supported');
        return false;
      default:
        this._protocolError(`unknown opcode ${opcode}`);
        return false;
    }
  }
}

function closePayload(code, reason) {
  const text = Buffer.from(reason, 'utf8');
  const payload = Buffer.allocUnsafe(2 + text.length);
  payload.writeUInt16BE(code, 0);
  text.copy(payload, 2);
  return payload;
}
