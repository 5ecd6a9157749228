// The peer servers of the comparison benchmark, each started as a child process (never
// daemonized) on 127.0.0.1, on a free port, with its data in a fresh temporary directory:
//
//   const nats = await startNats({ durability: 'fsync' })    // { url, host, port, pid, … }
//   const redis = await startRedis({ durability: 'relaxed' })
//   …
//   await nats.stop()     // SIGTERM, SIGKILL after `graceMs`; removes the data directory
//
// Durability modes (bench/peers/README.md says what each really gives):
//   fsync    every acknowledged write is on disk before its ack.
//            Redis: appendonly yes, appendfsync always (fdatasync before replies go out).
//            NATS 2.9 has no per-write sync setting (jetstream.sync_interval came in 2.10):
//            the JetStream store directory gets the ext4/xfs/btrfs "synchronous updates"
//            attribute (chattr +S), so each write(2) of the file store returns only once
//            the data is on disk; if the file system refuses the attribute, startNats throws.
//            On nats-server ≥ 2.10, `sync_interval: always` is used instead.
//   relaxed  Redis: appendfsync everysec. NATS: the default file store (written to the
//            page cache before the ack, fsync every 2 minutes).
//
// Readiness is a real round trip: PING → PONG for Redis; for NATS, a client connection that
// reaches the JetStream API. Nothing is printed unless `verbose` (server output to stderr).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as natsConnect } from 'nats';
import { findBinary } from './install.js';

export const DURABILITIES = ['fsync', 'relaxed'];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function checkDurability(durability) {
  if (!DURABILITIES.includes(durability)) {
    throw new Error(`durability must be ${DURABILITIES.join(' or ')} (got ${durability})`);
  }
}

function binary(name) {
  const path = findBinary(name);
  if (!path) throw new Error(`${name} not found: run \`node bench/peers/install.js\` (as root) first`);
  return path;
}

/** The version of a server binary, as [major, minor, patch]. */
function versionOf(path, pattern) {
  const result = spawnSync(path, ['--version'], { encoding: 'utf8' });
  const match = pattern.exec(`${result.stdout ?? ''}${result.stderr ?? ''}`);
  return match ? match.slice(1, 4).map(Number) : null;
}

const atLeast = (version, major, minor) => version !== null && (version[0] > major || (version[0] === major && version[1] >= minor));

/** A free TCP port on 127.0.0.1 (free when asked: the caller retries if it is taken meanwhile). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// Every child still running when this process exits gets SIGKILL and loses its data
// directory: no server outlives its benchmark, even after an uncaught exception or a
// process.exit() in the middle of a start.
const live = new Map(); // child → its data directory
process.once('exit', () => {
  for (const [child, dataDir] of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
    rmSync(dataDir, { recursive: true, force: true });
  }
});

/**
 * Spawns `path args` with cwd `dir`; collects its output (the last 64 KiB), forwards it to
 * stderr when verbose. Returns a handle with `exited` (resolves the exit code or signal).
 */
function spawnServer(path, args, { name, verbose, dataDir }) {
  const child = spawn(path, args, { cwd: dataDir, stdio: ['ignore', 'pipe', 'pipe'], detached: false });
  live.set(child, dataDir);
  let output = '';
  const collect = (chunk) => {
    output += chunk;
    if (output.length > 65536) output = output.slice(-65536);
    if (verbose) process.stderr.write(`[${name}] ${chunk}`);
  };
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  let spawnError = null;
  const exited = new Promise((resolve) => {
    child.once('error', (error) => {
      spawnError = error;
      live.delete(child);
      resolve(`error: ${error.message}`);
    });
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve(code ?? signal);
    });
  });
  const isRunning = () => child.exitCode === null && child.signalCode === null && spawnError === null;
  return { child, exited, output: () => output, isRunning };
}

/**
 * The handle returned by startNats/startRedis: stop() sends SIGTERM, then SIGKILL after
 * `graceMs`, waits for the exit, removes the data directory; resolves the exit code or signal.
 */
function makeHandle(server, fields, { dataDir, graceMs, keepData }) {
  let stopping = null;
  const stop = ({ timeoutMs = graceMs } = {}) => {
    if (stopping) return stopping;
    stopping = (async () => {
      let timer = null;
      if (server.isRunning()) {
        server.child.kill('SIGTERM');
        timer = setTimeout(() => {
          if (server.isRunning()) server.child.kill('SIGKILL');
        }, timeoutMs);
      }
      const exit = await server.exited;
      clearTimeout(timer);
      if (!keepData) rmSync(dataDir, { recursive: true, force: true });
      return exit;
    })();
    return stopping;
  };
  return { ...fields, pid: server.child.pid, dataDir, exited: server.exited, output: server.output, isRunning: server.isRunning, stop };
}

async function withDeadline(what, ms, server, attempt) {
  const deadline = Date.now() + ms;
  let lastError = null;
  while (Date.now() < deadline) {
    if (!server.isRunning()) {
      throw new Error(`${what} exited (${await server.exited}) before it was ready:\n${server.output().trim()}`);
    }
    try {
      return await attempt();
    } catch (error) {
      lastError = error;
    }
    await sleep(25);
  }
  throw new Error(`${what} not ready after ${ms} ms (${lastError?.message ?? 'no answer'}):\n${server.output().trim()}`);
}

// ---------------------------------------------------------------------------------------
// NATS (JetStream)

/** Sets the "synchronous updates" attribute on `dir` (inherited by what is created inside). */
function setSyncAttribute(dir) {
  const chattr = findBinary('chattr');
  if (!chattr) return 'chattr not found (Debian package e2fsprogs)';
  const result = spawnSync(chattr, ['+S', dir], { encoding: 'utf8' });
  if (result.status !== 0) return (result.stderr || result.stdout || `chattr exited ${result.status}`).trim();
  const lsattr = findBinary('lsattr');
  if (lsattr) {
    const check = spawnSync(lsattr, ['-d', dir], { encoding: 'utf8' });
    const flags = (check.stdout ?? '').trim().split(/\s+/)[0] ?? '';
    if (check.status !== 0 || !flags.includes('S')) return `lsattr does not show the S attribute on ${dir} (${(check.stdout || check.stderr || '').trim()})`;
  }
  return null;
}

/**
 * Starts nats-server with JetStream. Options: durability ('fsync' | 'relaxed'), verbose,
 * graceMs (SIGTERM → SIGKILL, default 5000), readyTimeoutMs (default 15000), keepData.
 * Resolves { system: 'nats', url, host, port, pid, dataDir, durability, durabilityDetail,
 * version, configText, exited, output(), isRunning(), stop() }.
 */
export async function startNats({ durability = 'fsync', verbose = false, graceMs = 5000, readyTimeoutMs = 15000, keepData = false } = {}) {
  checkDurability(durability);
  const path = binary('nats-server');
  const version = versionOf(path, /(\d+)\.(\d+)\.(\d+)/);
  const dataDir = mkdtempSync(join(tmpdir(), 'tailgrove-peer-nats-'));
  try {
    const storeDir = join(dataDir, 'jetstream');
    mkdirSync(storeDir);
    let syncLine = '';
    let durabilityDetail;
    if (durability === 'fsync') {
      if (atLeast(version, 2, 10)) {
        syncLine = '\n  sync_interval: always';
        durabilityDetail = 'JetStream file store, sync_interval: always (fsync after every write, before the ack)';
      } else {
        const refused = setSyncAttribute(storeDir);
        if (refused) {
          throw new Error(
            `nats-server ${version?.join('.') ?? '?'} has no per-write sync setting, and the store directory ` +
              `${storeDir} could not get the synchronous-updates attribute (chattr +S): ${refused}. ` +
              'Put TMPDIR on ext4, xfs or btrfs, or use --durability relaxed.',
          );
        }
        durabilityDetail =
          'JetStream file store in a directory with the synchronous-updates attribute (chattr +S): every write(2) ' +
          'of the store returns after the data is on disk (O_DSYNC semantics), before the ack';
      }
    } else {
      durabilityDetail = 'JetStream file store, default sync (written to the page cache before the ack, fsync every 2 min)';
    }
    // port -1: a random free port, published in the ports file once the server listens.
    const configText =
      `host: 127.0.0.1\nport: -1\nserver_name: tailgrove-bench-peer\nports_file_dir: "${dataDir}"\n` +
      `max_payload: 8MB\nmax_pending: 256MB\nwrite_deadline: "30s"\n` +
      `jetstream {\n  store_dir: "${storeDir}"\n  max_memory_store: 1GB\n  max_file_store: 64GB${syncLine}\n}\n`;
    const configFile = join(dataDir, 'nats.conf');
    writeFileSync(configFile, configText);
    const server = spawnServer(path, ['-c', configFile], { name: 'nats', verbose, dataDir });
    try {
      const url = await withDeadline('nats-server', readyTimeoutMs, server, async () => {
        const file = readdirSync(dataDir).find((name) => name.endsWith('.ports'));
        if (!file) throw new Error('no ports file yet');
        const ports = JSON.parse(readFileSync(join(dataDir, file), 'utf8'));
        const url = ports.nats?.[0];
        if (!url) throw new Error('no client URL in the ports file');
        const nc = await natsConnect({ servers: url, reconnect: false, timeout: 2000 });
        try {
          const jsm = await nc.jetstreamManager({ timeout: 2000 }); // fails unless JetStream answers
          await jsm.getAccountInfo();
        } finally {
          await nc.close();
        }
        return url;
      });
      const { hostname, port } = new URL(url);
      return makeHandle(
        server,
        { system: 'nats', url, host: hostname, port: Number(port), durability, durabilityDetail, version: version?.join('.') ?? null, configText },
        { dataDir, graceMs, keepData },
      );
    } catch (error) {
      server.child.kill('SIGKILL');
      await server.exited;
      throw error;
    }
  } catch (error) {
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
}

// ---------------------------------------------------------------------------------------
// Redis

/** One PING on a fresh TCP connection; resolves when +PONG comes back. */
function redisPing(port) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let answer = '';
    const fail = (error) => {
      socket.destroy();
      reject(error);
    };
    socket.setTimeout(1000, () => fail(new Error('PING timed out')));
    socket.once('error', fail);
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.setEncoding('utf8');
    socket.on('data', (chunk) => {
      answer += chunk;
      if (!answer.includes('\r\n')) return;
      socket.destroy();
      if (answer.startsWith('+PONG')) resolve();
      else reject(new Error(`PING answered ${answer.trim()}`));
    });
  });
}

/**
 * Starts redis-server. Options as startNats. Resolves { system: 'redis', url, host, port,
 * pid, dataDir, durability, durabilityDetail, version, configText, exited, output(),
 * isRunning(), stop() }.
 */
export async function startRedis({ durability = 'fsync', verbose = false, graceMs = 5000, readyTimeoutMs = 15000, keepData = false } = {}) {
  checkDurability(durability);
  const path = binary('redis-server');
  const version = versionOf(path, /v=(\d+)\.(\d+)\.(\d+)/);
  const durabilityDetail =
    durability === 'fsync'
      ? 'AOF, appendfsync always: the commands of each event-loop iteration are written and fdatasync()ed before their replies are sent'
      : 'AOF, appendfsync everysec: written to the page cache before the reply, fdatasync about once a second (a crash of the machine loses up to ~2 s)';
  let lastError = null;
  // The port is free when chosen; another process may take it before redis binds: retry.
  for (let attempt = 0; attempt < 5; attempt++) {
    const dataDir = mkdtempSync(join(tmpdir(), 'tailgrove-peer-redis-'));
    try {
      const port = await freePort();
      const configText = [
        'bind 127.0.0.1',
        `port ${port}`,
        'protected-mode yes',
        'daemonize no',
        `dir "${dataDir}"`,
        'save ""',
        'appendonly yes',
        'appenddirname "appendonlydir"',
        `appendfsync ${durability === 'fsync' ? 'always' : 'everysec'}`,
        'no-appendfsync-on-rewrite no',
        'auto-aof-rewrite-percentage 0',
        'databases 1',
        'loglevel warning',
        'logfile ""',
        '',
      ].join('\n');
      const configFile = join(dataDir, 'redis.conf');
      writeFileSync(configFile, configText);
      const server = spawnServer(path, [configFile], { name: 'redis', verbose, dataDir });
      try {
        await withDeadline('redis-server', readyTimeoutMs, server, () => redisPing(port));
      } catch (error) {
        server.child.kill('SIGKILL');
        await server.exited;
        throw error;
      }
      return makeHandle(
        server,
        { system: 'redis', url: `redis://127.0.0.1:${port}`, host: '127.0.0.1', port, durability, durabilityDetail, version: version?.join('.') ?? null, configText },
        { dataDir, graceMs, keepData },
      );
    } catch (error) {
      rmSync(dataDir, { recursive: true, force: true });
      lastError = error;
      if (!/Address already in use|bind/i.test(error.message)) throw error;
    }
  }
  throw lastError;
}

/** startNats or startRedis by system name. */
export function startPeer(system, options) {
  if (system === 'nats') return startNats(options);
  if (system === 'redis') return startRedis(options);
  throw new Error(`unknown peer system ${system} (nats or redis)`);
}
