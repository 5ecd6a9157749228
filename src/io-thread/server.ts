// The IO thread: a uWebSockets.js app. Inbound, it reads only the fixed prefix of each frame,
// validates it and copies the frames once into the input ring of the worker that owns their
// shard (a message whose frames all go to one worker is one copy). It authenticates connect
// itself (tokens are an edge concern) and tells every worker about session opens and closes.
// Outbound, it drains the workers' output rings when they ring, coalescing consecutive
// frames for one session into one WebSocket message.
import uWS from 'uWebSockets.js';
import { pack, unpack } from 'msgpackr';
import { CONTROL_PAYLOAD_BYTES_MAX, PREFIX_BYTES, PROTOCOL_VERSION, SHARD_COUNT } from '../constants.js';
import { createTokenVerifier, TokenRejected, type Claims } from '../auth/token.js';
import { checkFrame, frameOp, frameRid, readUint16, readUint32, type FrameLimits } from '../net/frame.js';
import {
  CLOSE_AUTH,
  CLOSE_GOING_AWAY,
  CLOSE_HANDSHAKE_TIMEOUT,
  CLOSE_PROTOCOL,
  ERROR,
  HEADER_A,
  HEADER_B,
  HEADER_C,
  HEADER_WORD,
  OP_CONNECT,
  OP_WRITE,
  PREFIX_PAYLOAD_LENGTH,
} from '../net/protocol.js';
import { InputRouter } from './router.js';
import { connectedFrame, errorFrame } from './control-frames.js';
import { OutputDrain } from './output-drain.js';
import { SessionRegistry } from './sessions.js';
import { Ring } from '../ring/ring.js';
import { Doorbell } from '../ring/doorbell.js';
import { startPipeline, type Pipeline } from '../workers/pipeline.js';
import { OUTPUT_DOORBELL, WORK_DOORBELL } from '../workers/layout.js';
import type { RecoverySummary } from '../phases/recovery.js';

export interface ServerOptions {
  host: string;
  port: number;
  dataDir: string;
  workers: number;
  secret: string;
  entryBytesMax: number;
  handshakeTimeoutMs: number;
  onFatal: (error: Error) => void;
}

export interface RunningServer {
  port: number;
  recovered: RecoverySummary;
  connections(): number;
  /** Stop accepting, close clients with 1001, stop the pipeline after its last commit. */
  close(): Promise<void>;
}

interface Connection {
  session: number;
  handshakeTimer: NodeJS.Timeout | undefined;
}

type Socket = uWS.WebSocket<Connection>;

// A WebSocket message must fit one input ring record (frames are copied whole).
const MESSAGE_BYTES_MAX = 8 << 20;
const INPUT_FULL_WAIT_MS = 1;
const NOT_CONNECTED = -1;
const LISTEN_EXCLUSIVE_PORT = 1; // LIBUS_LISTEN_EXCLUSIVE_PORT

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const pipeline: Pipeline = await startPipeline({
    dataDir: options.dataDir,
    workerCount: options.workers,
    entryBytesMax: options.entryBytesMax,
    onFatal: options.onFatal,
  });
  const inputs = pipeline.buffers.workers.map((buffers) => new Ring(buffers.arena, buffers.input));
  const workDoorbell = new Doorbell(pipeline.control, WORK_DOORBELL);
  const registry = new SessionRegistry<Socket>();
  const drain = new OutputDrain(
    pipeline.buffers.workers.map((buffers) => new Ring(buffers.arena, buffers.output)),
    registry,
  );
  const verify = createTokenVerifier(options.secret);
  const limits: FrameLimits = { entryBytesMax: options.entryBytesMax, controlBytesMax: CONTROL_PAYLOAD_BYTES_MAX };
  const openSockets = new Set<Socket>();

  // While a worker's input ring is full, keep its output flowing (a worker may be waiting for
  // output room) and wait a little: the socket is not read meanwhile, which is TCP backpressure.
  const router = new InputRouter(inputs, limits, (worker) => {
    workDoorbell.ring();
    drain.drainAll();
    inputs[worker]!.waitForRoom(INPUT_FULL_WAIT_MS);
  });

  function publishInput(): void {
    router.publish();
    workDoorbell.ring();
  }

  function refuse(ws: Socket, code: number, rid: number, message: string, closeCode: number): void {
    ws.send(errorFrame(code, rid, 0, message), true);
    ws.end(closeCode, message.slice(0, 120));
  }

  function connect(ws: Socket, connection: Connection, bytes: Uint8Array, offset: number): void {
    const header = offset + PREFIX_BYTES;
    const rid = readUint32(bytes, header + HEADER_A);
    const version = readUint16(bytes, header + HEADER_WORD);
    if (version !== PROTOCOL_VERSION) {
      return refuse(ws, ERROR.BAD_VERSION, rid, `protocol version ${version} is not supported; this server speaks ${PROTOCOL_VERSION}`, CLOSE_AUTH);
    }
    const payloadStart = header + readUint16(bytes, offset);
    const payloadLength = readUint32(bytes, offset + PREFIX_PAYLOAD_LENGTH);
    let claims: Claims;
    try {
      const request = unpack(bytes.subarray(payloadStart, payloadStart + payloadLength)) as { token?: unknown };
      if (typeof request?.token !== 'string') throw new TokenRejected('connect payload must be msgpack { token: string }', false);
      claims = verify(request.token);
    } catch (error) {
      const expired = error instanceof TokenRejected && error.expired;
      const message = error instanceof Error ? error.message : String(error);
      return refuse(ws, expired ? ERROR.TOKEN_EXPIRED : ERROR.BAD_TOKEN, rid, message, CLOSE_AUTH);
    }
    const session = registry.open(ws);
    if (session < 0) return refuse(ws, ERROR.LIMIT, rid, 'the server has no free session slots', CLOSE_GOING_AWAY);
    connection.session = session;
    clearTimeout(connection.handshakeTimer);
    connection.handshakeTimer = undefined;
    router.openSession(session, packClaims(claims));
    publishInput();
    ws.send(connectedFrame(rid, { session, user: claims.sub, device: claims.device, expiresAt: claims.exp, entryBytesMax: options.entryBytesMax, shardCount: SHARD_COUNT }), true);
  }

  function route(ws: Socket, connection: Connection, message: ArrayBuffer): void {
    const bytes = new Uint8Array(message);
    const length = bytes.length;
    let offset = 0;
    if (connection.session === NOT_CONNECTED) {
      const first = checkFrame(bytes, 0, length, limits);
      if (first < 0) return refuseFrame(ws, bytes, 0, -first);
      if (frameOp(bytes, 0) !== OP_CONNECT) {
        ws.send(errorFrame(ERROR.NOT_CONNECTED, frameRid(bytes, 0), 0, 'the first frame of a session must be connect'), true);
        return;
      }
      connect(ws, connection, bytes, 0);
      if (connection.session === NOT_CONNECTED) return;
      offset = first;
    }
    if (offset === length) return;
    const error = router.route(connection.session, bytes, offset, length);
    publishInput();
    if (error !== 0) refuseFrame(ws, bytes, router.errorOffset, error);
  }

  /** Answer a frame refused on its prefix; a write's error names its handle and lsn when the header is there. */
  function refuseFrame(ws: Socket, bytes: Uint8Array, offset: number, error: number): void {
    const header = offset + PREFIX_BYTES;
    const isWrite = bytes.length >= header + HEADER_C && frameOp(bytes, offset) === OP_WRITE;
    const handle = isWrite ? readUint32(bytes, header + HEADER_A) : 0;
    const lsn = isWrite ? readUint32(bytes, header + HEADER_B) : 0;
    const message =
      error === ERROR.ALREADY_CONNECTED
        ? 'this session is already connected'
        : error === ERROR.TOO_LARGE
          ? `the frame at byte ${offset} of the message is larger than allowed (entries up to ${options.entryBytesMax} bytes); the rest of the message was dropped`
          : `the frame at byte ${offset} of the message was refused; the rest of the message was dropped`;
    ws.send(errorFrame(error, bytes.length >= header + HEADER_C ? frameRid(bytes, offset) : 0, handle, message, lsn), true);
  }

  const app = uWS.App();
  app.ws<Connection>('/*', {
    maxPayloadLength: MESSAGE_BYTES_MAX,
    maxBackpressure: 64 << 20,
    closeOnBackpressureLimit: 1,
    idleTimeout: 120,
    sendPingsAutomatically: true,
    upgrade: (res, req, context) => {
      res.upgrade<Connection>(
        { session: NOT_CONNECTED, handshakeTimer: undefined },
        req.getHeader('sec-websocket-key'),
        req.getHeader('sec-websocket-protocol'),
        req.getHeader('sec-websocket-extensions'),
        context,
      );
    },
    open: (ws) => {
      openSockets.add(ws);
      const connection = ws.getUserData();
      connection.handshakeTimer = setTimeout(() => {
        if (connection.session === NOT_CONNECTED) ws.end(CLOSE_HANDSHAKE_TIMEOUT, 'no connect within the handshake timeout');
      }, options.handshakeTimeoutMs);
    },
    message: (ws, message, isBinary) => {
      if (!isBinary) {
        ws.end(CLOSE_PROTOCOL, 'tailgrove speaks binary frames only');
        return;
      }
      route(ws, ws.getUserData(), message);
    },
    close: (ws) => {
      openSockets.delete(ws);
      const connection = ws.getUserData();
      clearTimeout(connection.handshakeTimer);
      if (connection.session !== NOT_CONNECTED) {
        registry.close(connection.session);
        router.closeSession(connection.session);
        publishInput();
        connection.session = NOT_CONNECTED;
      }
    },
  });
  app.get('/*', (res) => {
    res.writeHeader('content-type', 'text/plain').end('tailgrove: connect a WebSocket to this address (docs/PROTOCOL.md)\n');
  });

  // Output: sleep on the output doorbell without blocking the event loop.
  let running = true;
  const outputDoorbell = new Doorbell(pipeline.control, OUTPUT_DOORBELL);
  const waitForOutput = (): void => {
    if (!running) return;
    const seen = outputDoorbell.sequence();
    drain.drainAll();
    const waiting = outputDoorbell.waitAsync(seen, 1000);
    if (waiting === undefined) setImmediate(waitForOutput);
    else void waiting.then(waitForOutput);
  };
  waitForOutput();

  const listenSocket = await new Promise<uWS.us_listen_socket>((resolve, reject) => {
    // Exclusive: uWS otherwise sets SO_REUSEPORT, and a second server would silently share the port.
    // (The native listen takes host, port, options, callback; the typings lack that overload.)
    const listen = app.listen as unknown as (host: string, port: number, options: number, callback: (socket: uWS.us_listen_socket | false) => void) => void;
    listen.call(app, options.host, options.port, LISTEN_EXCLUSIVE_PORT, (socket) =>
      socket ? resolve(socket) : reject(new Error(`cannot listen on ${options.host}:${options.port} (in use, or not an address of this host)`)),
    );
  });
  const port = uWS.us_socket_local_port(listenSocket);

  return {
    port,
    recovered: pipeline.recovered,
    connections: () => openSockets.size,
    async close() {
      uWS.us_listen_socket_close(listenSocket);
      for (const ws of [...openSockets]) ws.end(CLOSE_GOING_AWAY, 'server shutting down');
      await pipeline.stop();
      running = false;
      drain.drainAll();
    },
  };
}

function packClaims(claims: Claims): Buffer {
  return pack([claims.sub, claims.device, claims.grants]);
}
