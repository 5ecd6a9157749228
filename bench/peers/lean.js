// Lean protocol clients for the peer load generators (--client lean, the default): the
// least client work per append, so that a run on two shared cores measures the server
// rather than the client library — the same reason bench/load.js drives tailgrove with a
// raw WebSocket client (bench/raw-websocket.js) instead of the `ws` package.
//
//   RedisConnection  RESP2 over node:net: pipelined commands, replies matched in order,
//                    a fast path for `XADD key * d <payload>` and a blocking-command helper.
//   NatsPublisher    the NATS client protocol over node:net: PUB with a reply subject per
//                    publish on one wildcard inbox subscription; each PubAck (or error)
//                    answers its publish. JetStream stores the message and answers the reply
//                    subject exactly as it answers js.publish() of the official client, which
//                    sends the same PUB (plus an empty header block) and waits for the same
//                    PubAck.
//
// Both copy each payload into a slab of outgoing bytes at once (the caller may reuse its
// buffer), and send what one tick produced in one socket write. Every request has a
// timeout: its callback gets an error with code 'TIMEOUT', and a late answer is ignored.
import net from 'node:net';

const CR = 13;
const LF = 10;
const SLAB_BYTES = 256 * 1024;
const SWEEP_MS = 250;

/** Outgoing bytes: a slab filled front to back; the filled part is written once per tick. */
class Outbox {
  constructor(socket) {
    this.socket = socket;
    this.slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
    this.start = 0; // first byte not yet handed to the socket
    this.end = 0; // first free byte
    this.scheduled = false;
    this.flushTick = () => {
      this.scheduled = false;
      this.flush();
    };
  }

  /** Room for n bytes at this.slab[this.end]; the caller writes them and adds n to this.end. */
  reserve(n) {
    if (this.end + n > this.slab.length) {
      this.flush();
      // The written part of the old slab belongs to the socket now: start a new one.
      this.slab = Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, n));
      this.start = 0;
      this.end = 0;
    }
    if (!this.scheduled) {
      this.scheduled = true;
      process.nextTick(this.flushTick);
    }
    return this.slab;
  }

  flush() {
    if (this.end > this.start && !this.socket.destroyed) this.socket.write(this.slab.subarray(this.start, this.end));
    this.start = this.end;
  }
}

function writeDecimal(buffer, offset, value) {
  if (value === 0) {
    buffer[offset] = 48;
    return offset + 1;
  }
  let digits = 0;
  for (let v = value; v > 0; v = Math.floor(v / 10)) digits++;
  let p = offset + digits;
  for (let v = value; v > 0; v = Math.floor(v / 10)) buffer[--p] = 48 + (v % 10);
  return offset + digits;
}

/** Input framing: keeps an incomplete tail across chunks; `need` avoids re-parsing too early. */
class Input {
  constructor(parseOne) {
    this.parseOne = parseOne; // (buffer, pos) → next position, or -(bytes needed from pos) if incomplete
    this.pending = [];
    this.pendingBytes = 0;
    this.need = 0;
  }

  push(chunk) {
    let buffer = chunk;
    if (this.pending.length > 0) {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      if (this.pendingBytes < this.need) return;
      buffer = Buffer.concat(this.pending, this.pendingBytes);
      this.pending = [];
      this.pendingBytes = 0;
    }
    let pos = 0;
    while (pos < buffer.length) {
      const next = this.parseOne(buffer, pos);
      if (next < 0) {
        this.need = -next;
        const rest = buffer.subarray(pos);
        this.pending = [rest];
        this.pendingBytes = rest.length;
        return;
      }
      pos = next;
    }
  }
}

function timeoutError(what, ms) {
  const error = new Error(`${what} timed out after ${ms} ms`);
  error.code = 'TIMEOUT';
  return error;
}

function connectSocket(host, port, timeoutMs) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connect to ${host}:${port} timed out`));
    }, timeoutMs);
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}

// ---------------------------------------------------------------------------------------
// Redis (RESP2)

const NEED = Symbol('need');

/**
 * Parses one RESP2 value at `pos`; returns the value and sets state.next, or returns NEED
 * and sets state.need (absolute index the buffer must reach). Bulk strings are views.
 */
function parseResp(buffer, pos, state) {
  const lineEnd = buffer.indexOf(LF, pos + 1);
  if (lineEnd < 0) {
    state.need = buffer.length + 1;
    return NEED;
  }
  const type = buffer[pos];
  // The number on the line (for $, *, :), digits between pos + 1 and lineEnd - 1 (CR).
  let number = 0;
  let negative = false;
  if (type === 36 || type === 42 || type === 58) {
    for (let i = pos + 1; i < lineEnd - 1; i++) {
      const c = buffer[i];
      if (c === 45) negative = true;
      else number = number * 10 + (c - 48);
    }
    if (negative) number = -number;
  }
  switch (type) {
    case 43: // + simple string
      state.next = lineEnd + 1;
      return buffer.latin1Slice(pos + 1, lineEnd - 1);
    case 45: {
      // - error
      state.next = lineEnd + 1;
      const error = new Error(buffer.toString('utf8', pos + 1, lineEnd - 1));
      error.redisError = true;
      return error;
    }
    case 58: // : integer
      state.next = lineEnd + 1;
      return number;
    case 36: {
      // $ bulk string
      if (number < 0) {
        state.next = lineEnd + 1;
        return null;
      }
      const start = lineEnd + 1;
      const end = start + number;
      if (end + 2 > buffer.length) {
        state.need = end + 2;
        return NEED;
      }
      state.next = end + 2;
      return buffer.subarray(start, end);
    }
    case 42: {
      // * array
      if (number < 0) {
        state.next = lineEnd + 1;
        return null;
      }
      const items = new Array(number);
      let p = lineEnd + 1;
      for (let i = 0; i < number; i++) {
        if (p >= buffer.length) {
          state.need = p + 1;
          return NEED;
        }
        const item = parseResp(buffer, p, state);
        if (item === NEED) return NEED;
        items[i] = item;
        p = state.next;
      }
      state.next = p;
      return items;
    }
    default:
      throw new Error(`RESP: unexpected type byte ${type} at ${pos}`);
  }
}

/** Arguments → one RESP2 command (array of bulk strings). */
function encodeCommand(args) {
  const parts = [Buffer.from(`*${args.length}\r\n`, 'latin1')];
  for (const arg of args) {
    const bytes = Buffer.isBuffer(arg) ? arg : Buffer.from(String(arg), 'utf8');
    parts.push(Buffer.from(`$${bytes.length}\r\n`, 'latin1'), bytes, Buffer.from('\r\n', 'latin1'));
  }
  return Buffer.concat(parts);
}

/** A Redis connection: pipelined commands, replies in order (errors as Error objects). */
export class RedisConnection {
  static async connect(url, { timeoutMs = 10000 } = {}) {
    const { hostname, port } = new URL(url);
    const socket = await connectSocket(hostname, Number(port || 6379), 10000);
    return new RedisConnection(socket, timeoutMs);
  }

  constructor(socket, timeoutMs) {
    this.socket = socket;
    this.timeoutMs = timeoutMs;
    this.out = new Outbox(socket);
    // FIFO of callbacks (null once timed out) and their send times, as growing rings.
    this.capacity = 1024;
    this.callbacks = new Array(this.capacity).fill(null);
    this.sentAt = new Float64Array(this.capacity);
    this.head = 0; // oldest outstanding
    this.count = 0;
    this.closed = false;
    this.closeError = null;
    const state = { next: 0, need: 0 };
    this.input = new Input((buffer, pos) => {
      const value = parseResp(buffer, pos, state);
      if (value === NEED) return -(state.need - pos);
      this.reply(value);
      return state.next;
    });
    socket.on('data', (chunk) => this.input.push(chunk));
    const onEnd = (error) => this.fail(error ?? new Error('connection closed'));
    socket.on('error', onEnd);
    socket.on('close', () => onEnd(null));
    this.sweeper = timeoutMs > 0 ? setInterval(() => this.sweep(), SWEEP_MS) : null;
    this.sweeper?.unref();
  }

  enqueue(callback) {
    if (this.count === this.capacity) {
      const callbacks = new Array(this.capacity * 2).fill(null);
      const sentAt = new Float64Array(this.capacity * 2);
      for (let i = 0; i < this.count; i++) {
        const from = (this.head + i) % this.capacity;
        callbacks[i] = this.callbacks[from];
        sentAt[i] = this.sentAt[from];
      }
      this.callbacks = callbacks;
      this.sentAt = sentAt;
      this.head = 0;
      this.capacity *= 2;
    }
    const slot = (this.head + this.count) % this.capacity;
    this.callbacks[slot] = callback;
    this.sentAt[slot] = performance.now();
    this.count++;
  }

  reply(value) {
    if (this.count === 0) return; // an answer after a failure: nobody waits for it
    const callback = this.callbacks[this.head];
    this.callbacks[this.head] = null;
    this.head = (this.head + 1) % this.capacity;
    this.count--;
    if (callback !== null) {
      if (value instanceof Error) callback(value, null);
      else callback(null, value);
    }
  }

  sweep() {
    const now = performance.now();
    for (let i = 0; i < this.count; i++) {
      const slot = (this.head + i) % this.capacity;
      if (now - this.sentAt[slot] < this.timeoutMs) break;
      const callback = this.callbacks[slot];
      if (callback !== null) {
        this.callbacks[slot] = null;
        callback(timeoutError('redis command', this.timeoutMs), null);
      }
    }
  }

  fail(error) {
    if (this.closed) return;
    this.closed = true;
    this.closeError = error;
    clearInterval(this.sweeper);
    for (let i = 0; i < this.count; i++) {
      const slot = (this.head + i) % this.capacity;
      const callback = this.callbacks[slot];
      this.callbacks[slot] = null;
      if (callback !== null) callback(error, null);
    }
    this.count = 0;
  }

  /** Any command; callback(error, reply). */
  command(args, callback) {
    if (this.closed) return callback(this.closeError ?? new Error('connection closed'), null);
    const bytes = encodeCommand(args);
    const slab = this.out.reserve(bytes.length);
    bytes.copy(slab, this.out.end);
    this.out.end += bytes.length;
    this.enqueue(callback);
  }

  /** Promise form of command(). */
  call(...args) {
    return new Promise((resolve, reject) => this.command(args, (error, value) => (error ? reject(error) : resolve(value))));
  }

  /** The constant part of `XADD key * d <payload of size bytes>`, up to the payload. */
  static xaddHead(key, size) {
    const k = Buffer.from(key, 'utf8');
    return Buffer.concat([
      Buffer.from(`*5\r\n$4\r\nXADD\r\n$${k.length}\r\n`, 'latin1'),
      k,
      Buffer.from(`\r\n$1\r\n*\r\n$1\r\nd\r\n$${size}\r\n`, 'latin1'),
    ]);
  }

  /** XADD with a precomputed head (xaddHead(key, payload.length)); callback(error, id). */
  xadd(head, payload, callback) {
    if (this.closed) return callback(this.closeError ?? new Error('connection closed'), null);
    const n = head.length + payload.length + 2;
    const slab = this.out.reserve(n);
    let p = this.out.end;
    p += head.copy(slab, p);
    p += payload.copy(slab, p);
    slab[p++] = CR;
    slab[p++] = LF;
    this.out.end = p;
    this.enqueue(callback);
  }

  /** Closes the connection; what is still outstanding fails with 'connection closed'. */
  close() {
    if (!this.closed) this.out.flush();
    this.socket.destroy();
    this.fail(new Error('connection closed'));
  }
}

// ---------------------------------------------------------------------------------------
// NATS (client protocol)

let inboxCounter = 0;

/**
 * One NATS connection that publishes with a reply subject per publish and matches the
 * PubAcks. publish(subjectHead, payload, callback(error, ack)) where subjectHead comes from
 * pubHead(subject): callback gets null and the PubAck bytes, or an error (a JetStream error
 * answer, a no-responders status, a timeout).
 */
export class NatsPublisher {
  static async connect(url, { timeoutMs = 10000, name = 'tailgrove-bench-lean' } = {}) {
    const { hostname, port } = new URL(url);
    const socket = await connectSocket(hostname, Number(port || 4222), 10000);
    const publisher = new NatsPublisher(socket, timeoutMs);
    await publisher.handshake(name);
    return publisher;
  }

  constructor(socket, timeoutMs) {
    this.socket = socket;
    this.timeoutMs = timeoutMs;
    this.out = new Outbox(socket);
    this.inbox = `_TGINBOX.${process.pid.toString(36)}${(inboxCounter++).toString(36)}${Math.floor(Math.random() * 1e9).toString(36)}`;
    this.inboxBytes = Buffer.from(`${this.inbox}.`, 'latin1');
    this.nextId = 1;
    this.pending = new Map(); // id → { callback, sentAt }, in send order
    this.closed = false;
    this.closeError = null;
    this.info = null;
    this.onInfo = null;
    this.onPong = null;
    this.input = new Input((buffer, pos) => this.parseOne(buffer, pos));
    socket.on('data', (chunk) => this.input.push(chunk));
    const onEnd = (error) => this.fail(error ?? new Error('connection closed'));
    socket.on('error', onEnd);
    socket.on('close', () => onEnd(null));
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweeper.unref();
  }

  async handshake(name) {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no INFO from nats-server')), 10000);
      this.onInfo = () => {
        clearTimeout(timer);
        resolve();
      };
      if (this.info) this.onInfo();
    });
    const connect = { verbose: false, pedantic: false, headers: true, no_responders: true, echo: false, protocol: 1, lang: 'node-lean', version: '1', name };
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no PONG from nats-server')), 10000);
      this.onPong = () => {
        clearTimeout(timer);
        this.onPong = null;
        resolve();
      };
      this.socket.write(`CONNECT ${JSON.stringify(connect)}\r\nSUB ${this.inbox}.* 1\r\nPING\r\n`);
    });
  }

  /** The bytes `PUB <subject> <inbox>.` of a subject, for publish(). */
  pubHead(subject) {
    return Buffer.concat([Buffer.from(`PUB ${subject} `, 'latin1'), this.inboxBytes]);
  }

  publish(head, payload, callback) {
    if (this.closed) return callback(this.closeError ?? new Error('connection closed'), null);
    const id = this.nextId++;
    const n = head.length + 16 + 1 + 10 + 2 + payload.length + 2;
    const slab = this.out.reserve(n);
    let p = this.out.end;
    p += head.copy(slab, p);
    p = writeDecimal(slab, p, id);
    slab[p++] = 32;
    p = writeDecimal(slab, p, payload.length);
    slab[p++] = CR;
    slab[p++] = LF;
    p += payload.copy(slab, p);
    slab[p++] = CR;
    slab[p++] = LF;
    this.out.end = p;
    this.pending.set(id, { callback, sentAt: performance.now() });
  }

  answer(id, error, payload) {
    const entry = this.pending.get(id);
    if (entry === undefined) return; // timed out before, or not ours
    this.pending.delete(id);
    entry.callback(error, payload);
  }

  /** Parses one protocol line (and its payload) at pos; returns the next position or -(bytes needed). */
  parseOne(buffer, pos) {
    const lineEnd = buffer.indexOf(LF, pos);
    if (lineEnd < 0) return -(buffer.length - pos + 1);
    const c0 = buffer[pos];
    if (c0 === 77 || c0 === 72) {
      // MSG <subject> <sid> [reply] <#bytes> | HMSG <subject> <sid> [reply] <#hdr> <#total>
      const line = buffer.latin1Slice(pos, lineEnd - 1);
      const fields = line.split(' ');
      const headered = c0 === 72;
      const total = Number(fields[fields.length - 1]);
      const headerBytes = headered ? Number(fields[fields.length - 2]) : 0;
      const start = lineEnd + 1;
      const end = start + total;
      if (end + 2 > buffer.length) return -(end + 2 - pos);
      const subject = fields[1];
      const dot = subject.lastIndexOf('.');
      const id = Number(subject.slice(dot + 1));
      if (headered) {
        // A status (e.g. 503 no responders) or headers: an error answer for a publish.
        const status = buffer.latin1Slice(start, start + headerBytes).split('\r\n')[0];
        const error = new Error(`nats: ${status.trim()}`);
        error.code = /\s(\d{3})/.exec(status)?.[1] ?? 'HMSG';
        this.answer(id, error, null);
      } else {
        const payload = buffer.subarray(start, end);
        // A PubAck is {"stream":…,"seq":…}; a JetStream error answer has an "error" member.
        if (payload.indexOf('"error"') >= 0) {
          const error = new Error(`nats: ${payload.toString('utf8')}`);
          error.code = /"code"\s*:\s*(\d+)/.exec(payload.toString('utf8'))?.[1] ?? 'JS';
          this.answer(id, error, null);
        } else {
          this.answer(id, null, payload);
        }
      }
      return end + 2;
    }
    const line = buffer.latin1Slice(pos, lineEnd - 1);
    if (line === 'PING') this.socket.write('PONG\r\n');
    else if (line === 'PONG') this.onPong?.();
    else if (line.startsWith('INFO ')) {
      this.info = JSON.parse(line.slice(5));
      this.onInfo?.();
    } else if (line.startsWith('-ERR')) {
      this.fail(new Error(`nats: ${line}`));
    }
    return lineEnd + 1;
  }

  sweep() {
    const now = performance.now();
    for (const [id, entry] of this.pending) {
      if (now - entry.sentAt < this.timeoutMs) break;
      this.pending.delete(id);
      entry.callback(timeoutError('nats publish', this.timeoutMs), null);
    }
  }

  fail(error) {
    if (this.closed) return;
    this.closed = true;
    this.closeError = error;
    clearInterval(this.sweeper);
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const entry of pending) entry.callback(error, null);
  }

  /** Closes the connection; what is still outstanding fails with 'connection closed'. */
  close() {
    if (!this.closed) this.out.flush();
    this.socket.destroy();
    this.fail(new Error('connection closed'));
  }
}
