// The IO thread: a uWebSockets.js app. Inbound, it reads only the fixed prefix of each frame,
// validates it and copies the frames once into the input ring of the worker that owns their
// shard (a message whose frames all go to one worker is one copy). Session ops — connect,
// refresh, attest — are answered here (session-control.ts): credentials are an edge concern.
// Outbound, it drains the workers' output rings when they ring, coalescing consecutive
// frames for one session into one WebSocket message, and pauses the tails of a socket that
// backs up. It also enforces the per-connection limits and serves the admin API.
import type uWS from 'uWebSockets.js';
import type { UwsTransport } from '../native-free/transport/uws-compat.js';
import { CONTROL_PAYLOAD_BYTES_MAX, PREFIX_BYTES } from '../constants.js';
import { Revocations } from '../auth/revocations.js';
import { createTokenVerifier, type TokenKeys } from '../auth/token.js';
import type { Limits } from '../limits.js';
import type { CommitStoreTuning, StorageEngine } from '../log/engine.js';
import { checkFrame, frameOp, frameRid, readUint32, type FrameLimits } from '../net/frame.js';
import {
  CLOSE_GOING_AWAY,
  CLOSE_HANDSHAKE_TIMEOUT,
  CLOSE_PROTOCOL,
  CLOSE_VIOLATIONS,
  ERROR,
  HEADER_A,
  HEADER_B,
  HEADER_C,
  OP_CONNECT,
  OP_REFRESH,
  OP_WRITE,
} from '../net/protocol.js';
import { INPUT_SESSION_PAUSE, INPUT_SESSION_RESUME } from '../net/records.js';
import type { RecoverySummary } from '../phases/recovery.js';
import { Doorbell } from '../ring/doorbell.js';
import { Ring } from '../ring/ring.js';
import { OUTPUT_DOORBELL, WORK_DOORBELL } from '../workers/layout.js';
import { startPipeline, type Pipeline } from '../workers/pipeline.js';
import { registerAdminApi } from './admin-api.js';
import { newConnection, NOT_CONNECTED, type Connection } from './connection.js';
import { errorFrame } from './control-frames.js';
import { OutputDrain } from './output-drain.js';
import { ROUTE_STOPPED_AT_SESSION_OP, InputRouter } from './router.js';
import { SessionControl } from './session-control.js';
import { SessionRegistry } from './sessions.js';
import { SessionCounters } from '../workers/session-counters.js';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { ioMetrics } from '../metrics/io-metrics.js';
import { LogNames } from '../metrics/log-names.js';
import { PipelineMetricsReader } from '../metrics/pipeline-reader.js';
import { createMetricsRegistry, type RingOccupancy } from '../metrics/prometheus.js';
import { StatusSampler } from '../metrics/status-sampler.js';
import type { StatusSnapshot } from '../metrics/status.js';
import { registerHttpRoutes } from './http-routes.js';
import { Retention } from '../retention/retention.js';
import { Notifications, type NotificationOptions } from '../notify/notifications.js';
import { PreferenceOps } from './preference-ops.js';
import type { RetentionRule } from '../retention/rules.js';
import { registerStatusPage } from './status-page.js';

export interface ServerOptions {
  host: string;
  port: number;
  dataDir: string;
  workers: number;
  keys: TokenKeys;
  limits: Limits;
  onFatal: (error: Error) => void;
  logger: Logger;
  /** The storage engine (src/log/engine.ts), loaded by the caller. */
  engine: StorageEngine;
  tuning: CommitStoreTuning;
  /** uWebSockets.js, or the native-free transport with the same API (src/native-free/transport). */
  transport: UwsTransport;
  /** Batches slower than this are logged. */
  slowBatchMs: number;
  /** Serve the status page `/` and `GET /stats`. */
  statusPage: boolean;
  /** Serve `GET /metrics`. */
  metrics: boolean;
  retention: { rules: RetentionRule[]; intervalMs: number; batchEntries: number };
  /** Offline notifications; undefined: off. */
  notifications: Omit<NotificationOptions, 'dataDir'> | undefined;
  /** Called once the port listens (recovery runs after it). */
  onListening?: (port: number) => void;
}

export interface RunningServer {
  port: number;
  recovered: RecoverySummary;
  connections(): number;
  /** Stop accepting, close clients with 1001, stop the pipeline after its last commit. */
  close(): Promise<void>;
}

type Socket = uWS.WebSocket<Connection>;

const INPUT_FULL_WAIT_MS = 1;
const LISTEN_EXCLUSIVE_PORT = 1; // LIBUS_LISTEN_EXCLUSIVE_PORT
// The rate limiter's clock: integer ticks, so reading it never allocates.
const TICK_MS = 10;
const REVOCATION_PRUNE_MS = 3600_000;
const STATUS_SAMPLE_MS = 1000;

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const { limits } = options;
  const app = options.transport.App();
  // Operator endpoints answer from the moment the port listens; sessions wait for recovery.
  let ready = false;
  let registry: Registry | undefined;
  let sampler: StatusSampler | undefined;
  registerHttpRoutes(app, { ready: () => ready, metrics: () => registry, metricsEnabled: options.metrics });
  if (options.statusPage) registerStatusPage(app, () => sampler?.current() ?? recoveringSnapshot(options.workers));
  const listenSocket = await listen(app, options.host, options.port);
  const port = options.transport.us_socket_local_port(listenSocket);
  options.onListening?.(port);

  const pipeline: Pipeline = await startPipeline({
    dataDir: options.dataDir,
    workerCount: options.workers,
    limits,
    slowBatchMs: options.slowBatchMs,
    reportAdvances: options.notifications !== undefined,
    engine: options.engine.name,
    tuning: options.tuning,
    onFatal: options.onFatal,
  });
  const inputs = pipeline.buffers.workers.map((buffers) => new Ring(buffers.arena, buffers.input));
  const workDoorbell = new Doorbell(pipeline.control, WORK_DOORBELL);
  const sessions = new SessionRegistry<Socket>();
  const openSockets = new Set<Socket>();
  const connectionsByAddress = new Map<string, number>();
  const verify = createTokenVerifier(options.keys, { clockSkewSeconds: limits.clockSkewSeconds });
  const store = options.engine.openMetadata(options.dataDir);
  const revocations = new Revocations(store.revocations);
  await revocations.prune(Math.floor(Date.now() / 1000));
  const frameLimits: FrameLimits = { entryBytesMax: limits.entryBytesMax, controlBytesMax: CONTROL_PAYLOAD_BYTES_MAX, signalBytesMax: limits.signalBytesMax };
  let tick = 0;
  // Set by close(): frames that arrive while the pipeline finishes are not read (they were
  // not acknowledged, so devices send them again after reconnecting).
  let closing = false;
  const clock = setInterval(() => tick++, TICK_MS);
  const pruning = setInterval(() => void revocations.prune(Math.floor(Date.now() / 1000)), REVOCATION_PRUNE_MS);
  const framesPerTick = Math.max(1, Math.floor((limits.framesPerSecond * TICK_MS) / 1000));

  const drain = new OutputDrain(
    pipeline.buffers.workers.map((buffers) => new Ring(buffers.arena, buffers.output)),
    sessions,
    limits.socketBufferedBytesMax,
    (ws) => pauseTails(ws),
  );
  // While a worker's input ring is full, keep its output flowing (a worker may be waiting for
  // output room) and wait a little: the socket is not read meanwhile, which is TCP backpressure.
  const router = new InputRouter(inputs, frameLimits, new SessionCounters(pipeline.buffers.sessionCounters), (worker) => {
    workDoorbell.ring();
    drain.drainAll();
    inputs[worker]!.waitForRoom(INPUT_FULL_WAIT_MS);
  });
  const publishInput = (): void => {
    router.publish();
    workDoorbell.ring();
  };
  const logNames = new LogNames(store);
  // The session control is made below; the notifier asks it who is online.
  let isOnline: (user: string) => boolean = () => false;
  const notifications =
    options.notifications === undefined
      ? undefined
      : await Notifications.start({ ...options.notifications, dataDir: options.dataDir }, store, logNames, (user) => isOnline(user), options.logger);
  const control = new SessionControl<Socket>(sessions, {
    router,
    publish: publishInput,
    verify,
    revocations,
    entryBytesMax: limits.entryBytesMax,
    clockSkewSeconds: limits.clockSkewSeconds,
    preferenceOps: new PreferenceOps({ preferences: notifications?.preferences, webPush: notifications?.pushPublicKey !== undefined }),
    pushPublicKey: notifications?.pushPublicKey,
  });
  isOnline = (user) => control.isOnline(user);
  const advances = pipeline.buffers.workers.map((buffers) => new Ring(buffers.arena, buffers.advances));

  function pauseTails(ws: Socket): void {
    const connection = ws.getUserData();
    if (connection.paused || connection.session === NOT_CONNECTED) return;
    connection.paused = true;
    ioMetrics.pauses++;
    router.broadcast(INPUT_SESSION_PAUSE, connection.session);
    publishInput();
  }

  function resumeTails(ws: Socket): void {
    const connection = ws.getUserData();
    if (!connection.paused || ws.getBufferedAmount() > limits.socketBufferedBytesMax / 2) return;
    connection.paused = false;
    router.broadcast(INPUT_SESSION_RESUME, connection.session);
    publishInput();
  }

  /** A token bucket of frames per connection, refilled by ticks; false when it ran dry. */
  function takeFrameTokens(connection: Connection): boolean {
    const elapsed = tick - connection.refilledAtTick;
    if (elapsed > 0) {
      connection.frameTokens = Math.min(limits.framesBurst, connection.frameTokens + elapsed * framesPerTick);
      connection.refilledAtTick = tick;
    }
    return connection.frameTokens > 0;
  }

  /** An `_error` naming the frame at `offset`: its rid, or a write's handle and lsn, when its header is there. */
  function refuseNamed(ws: Socket, bytes: Uint8Array, offset: number, error: number, message: string): void {
    const header = offset + PREFIX_BYTES;
    const isWrite = bytes.length >= header + HEADER_C && frameOp(bytes, offset) === OP_WRITE;
    ws.send(errorFrame(error, frameRid(bytes, offset), isWrite ? readUint32(bytes, header + HEADER_A) : 0, message, isWrite ? readUint32(bytes, header + HEADER_B) : 0), true);
  }

  /** Answer a frame refused on its prefix; repeated malformed frames close the socket. */
  function refuseFrame(ws: Socket, bytes: Uint8Array, offset: number, error: number): void {
    const message =
      error === ERROR.TOO_LARGE
        ? `the frame at byte ${offset} of the message is larger than allowed (entries up to ${limits.entryBytesMax} bytes); the rest of the message was dropped`
        : `the frame at byte ${offset} of the message was refused; the rest of the message was dropped`;
    refuseNamed(ws, bytes, offset, error, message);
    if (++ws.getUserData().violations > limits.violationsMax) ws.end(CLOSE_VIOLATIONS, 'too many malformed frames');
  }

  function route(ws: Socket, message: ArrayBuffer): void {
    const connection = ws.getUserData();
    const bytes = new Uint8Array(message);
    const length = bytes.length;
    let offset = 0;
    if (length === 0) return refuseFrame(ws, bytes, 0, ERROR.BAD_FRAME);
    if (connection.session === NOT_CONNECTED) {
      const first = checkFrame(bytes, 0, length, frameLimits);
      if (first < 0) return refuseFrame(ws, bytes, 0, -first);
      if (frameOp(bytes, 0) !== OP_CONNECT) {
        ws.send(errorFrame(ERROR.NOT_CONNECTED, frameRid(bytes, 0), 0, 'the first frame of a session must be connect'), true);
        return;
      }
      if (!control.connect(ws, bytes, 0)) return;
      offset = first;
    }
    // A revoked session: each frame is refused with REVOKED until a refresh brings it back;
    // the frames after a successful refresh are routed as usual.
    while (connection.revoked && offset < length) {
      const size = checkFrame(bytes, offset, length - offset, frameLimits);
      if (size < 0) return refuseFrame(ws, bytes, offset, -size);
      if (frameOp(bytes, offset) === OP_REFRESH) control.sessionOp(ws, bytes, offset, OP_REFRESH);
      else refuseNamed(ws, bytes, offset, ERROR.REVOKED, 'the token of this session was revoked: refresh it with a valid token');
      offset += size;
    }
    if (offset < length && !takeFrameTokens(connection)) {
      refuseNamed(ws, bytes, offset, ERROR.RATE_LIMITED, `more than ${limits.framesPerSecond} frames per second: this message was dropped whole (this error names its first frame); send it again later`);
      return;
    }
    while (offset < length) {
      const outcome = router.route(connection.session, bytes, offset, length);
      connection.frameTokens -= router.framesRouted;
      publishInput();
      if (outcome === 0) return;
      const stop = router.stopOffset;
      if (outcome !== ROUTE_STOPPED_AT_SESSION_OP) return refuseFrame(ws, bytes, stop, outcome);
      control.sessionOp(ws, bytes, stop, frameOp(bytes, stop));
      if (connection.session === NOT_CONNECTED || connection.revoked) return;
      offset = stop + checkFrame(bytes, stop, length - stop, frameLimits);
    }
  }

  app.ws<Connection>('/*', {
    maxPayloadLength: limits.messageBytesMax,
    // The last resort behind pausing tails: a socket that backs up this far is closed.
    maxBackpressure: Math.max(64 << 20, limits.socketBufferedBytesMax * 4),
    closeOnBackpressureLimit: 1,
    idleTimeout: limits.idleTimeoutSeconds,
    sendPingsAutomatically: true,
    upgrade: (res, req, context) => {
      const address = Buffer.from(res.getRemoteAddressAsText()).toString();
      const fromAddress = connectionsByAddress.get(address) ?? 0;
      if (openSockets.size >= limits.connectionsMax || fromAddress >= limits.connectionsPerAddressMax) {
        ioMetrics.upgradesRefused++;
        res.writeStatus('503 Service Unavailable').writeHeader('content-type', 'text/plain').end('tailgrove: connection limit reached (CONNECTION_LIMIT)\n');
        return;
      }
      res.upgrade<Connection>(
        newConnection(address, limits.framesBurst, tick),
        req.getHeader('sec-websocket-key'),
        req.getHeader('sec-websocket-protocol'),
        req.getHeader('sec-websocket-extensions'),
        context,
      );
    },
    open: (ws) => {
      openSockets.add(ws);
      const connection = ws.getUserData();
      connectionsByAddress.set(connection.address, (connectionsByAddress.get(connection.address) ?? 0) + 1);
      connection.handshakeTimer = setTimeout(() => {
        if (connection.session === NOT_CONNECTED) ws.end(CLOSE_HANDSHAKE_TIMEOUT, 'no connect within the handshake timeout');
      }, limits.handshakeTimeoutMs);
    },
    message: (ws, message, isBinary) => {
      if (!isBinary) {
        ws.end(CLOSE_PROTOCOL, 'tailgrove speaks binary frames only');
        return;
      }
      if (!closing) route(ws, message);
    },
    drain: (ws) => resumeTails(ws),
    close: (ws) => {
      openSockets.delete(ws);
      const connection = ws.getUserData();
      const remaining = (connectionsByAddress.get(connection.address) ?? 1) - 1;
      if (remaining === 0) connectionsByAddress.delete(connection.address);
      else connectionsByAddress.set(connection.address, remaining);
      control.closed(connection);
    },
  });
  registerAdminApi(app, { verify, revocations, applyRevocations: () => control.applyRevocations(openSockets) });

  // Output: sleep on the output doorbell without blocking the event loop.
  let running = true;
  const outputDoorbell = new Doorbell(pipeline.control, OUTPUT_DOORBELL);
  const waitForOutput = (): void => {
    if (!running) return;
    const seen = outputDoorbell.sequence();
    drain.drainAll();
    notifications?.drain(advances);
    const waiting = outputDoorbell.waitAsync(seen, 1000);
    if (waiting === undefined) setImmediate(waitForOutput);
    else void waiting.then(waitForOutput);
  };
  waitForOutput();

  const pipelineMetrics = new PipelineMetricsReader(pipeline.metrics);
  const connections = (): number => openSockets.size;
  const sessionCount = (): number => sessions.count;
  const isReady = (): boolean => ready;
  if (options.metrics) {
    registry = createMetricsRegistry({ pipeline: pipelineMetrics, io: ioMetrics, connections, sessions: sessionCount, ready: isReady, rings: ringOccupancy(pipeline), notifications: notifications === undefined ? undefined : () => notifications.stats() });
  }
  const statusSampler = new StatusSampler({
    pipeline: pipelineMetrics,
    io: ioMetrics,
    names: logNames,
    connections,
    sessions: sessionCount,
    ready: isReady,
    onSlowBatches: (worker, count, lastMs) => options.logger.warn({ worker, count, lastMs: Math.round(lastMs * 10) / 10, thresholdMs: options.slowBatchMs }, 'slow batches'),
  });
  sampler = statusSampler;
  const sampling = setInterval(() => statusSampler.sample(), STATUS_SAMPLE_MS);
  const retention =
    options.retention.rules.length === 0
      ? undefined
      : new Retention({
          dataDir: options.dataDir,
          engine: options.engine.name,
          rules: options.retention.rules,
          intervalMs: options.retention.intervalMs,
          batchEntries: options.retention.batchEntries,
          deletions: pipeline.buffers.workers.map((buffers) => new Ring(buffers.arena, buffers.deletions)),
          wake: () => workDoorbell.ring(),
          logger: options.logger,
        });
  ready = true;
  statusSampler.sample();

  return {
    port,
    recovered: pipeline.recovered,
    connections,
    async close() {
      // Stop accepting, stop reading frames, let the workers finish and commit what is in
      // flight and release its acks, send them, then close every socket with 1001.
      options.transport.us_listen_socket_close(listenSocket);
      ready = false;
      closing = true;
      clearInterval(clock);
      clearInterval(pruning);
      clearInterval(sampling);
      await retention?.close();
      await pipeline.stop();
      running = false;
      drain.drainAll();
      notifications?.drain(advances);
      for (const ws of [...openSockets]) ws.end(CLOSE_GOING_AWAY, 'server shutting down');
      await notifications?.close();
      await store.close();
    },
  };
}

function listen(app: uWS.TemplatedApp, host: string, port: number): Promise<uWS.us_listen_socket> {
  return new Promise((resolve, reject) => {
    // Exclusive: uWS otherwise sets SO_REUSEPORT, and a second server would silently share the port.
    // (The native listen takes host, port, options, callback; the typings lack that overload.)
    const listenExclusive = app.listen as unknown as (host: string, port: number, options: number, callback: (socket: uWS.us_listen_socket | false) => void) => void;
    listenExclusive.call(app, host, port, LISTEN_EXCLUSIVE_PORT, (socket) =>
      socket ? resolve(socket) : reject(new Error(`cannot listen on ${host}:${port} (in use, or not an address of this host)`)),
    );
  });
}

/** Reads how full each ring of each worker is (views made once, read per scrape). */
function ringOccupancy(pipeline: Pipeline): () => RingOccupancy[] {
  const views = pipeline.buffers.workers.flatMap((buffers, worker) =>
    (['input', 'output', 'staging'] as const).map((ring) => ({ worker, ring, view: new Ring(buffers.arena, buffers[ring]) })),
  );
  return () => views.map(({ worker, ring, view }) => ({ worker, ring, usedBytes: view.occupancy(), capacityBytes: view.capacity }));
}

/** The snapshot shown while recovery runs. */
function recoveringSnapshot(workers: number): StatusSnapshot {
  return {
    at: Date.now(),
    uptimeSeconds: 0,
    ready: false,
    workers,
    connections: 0,
    sessions: 0,
    leases: 0,
    tails: 0,
    appendsPerSecond: 0,
    entriesDeliveredPerSecond: 0,
    batchesPerSecond: 0,
    batchSize: 0,
    phaseMs: { ioContributions: 0, ioDeletions: 0, clientInput: 0, catchUp: 0, commit: 0 },
    topLogs: [],
    totals: { appends: 0, entriesDelivered: 0, errors: 0, trimmedEntries: 0 },
  };
}
