// Makes sure the peer servers of the comparison benchmark are installed: `nats-server`
// (NATS with JetStream) and `redis-server` (Redis Streams), from the Debian packages of
// the same names.
//
//   node bench/peers/install.js      installs what is missing (as root), prints the versions
//
// As root, a missing server is installed with `apt-get update` (once) and
// `apt-get install -y --no-install-recommends nats-server redis-server`, non-interactive
// and quiet. Not as root, ensurePeers() throws an Error naming the packages to install.
// The benchmark never uses the system services those packages may start: it runs its own
// servers on free ports (bench/peers/servers.js).
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The binaries the benchmark needs, and the Debian package of each. */
export const PEERS = [
  { binary: 'nats-server', pkg: 'nats-server' },
  { binary: 'redis-server', pkg: 'redis-server' },
];

// Debian installs into /usr/sbin and /usr/bin; a non-login root shell may lack /usr/sbin.
const EXTRA_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** Absolute path of `binary` on PATH (or in the usual system directories), or null. */
export function findBinary(binary) {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...EXTRA_DIRS];
  for (const dir of dirs) {
    const path = join(dir, binary);
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  return null;
}

function run(command, args, { quiet }) {
  const result = spawnSync(command, args, {
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive', NEEDRESTART_MODE: 'a' },
    stdio: quiet ? ['ignore', 'pipe', 'pipe'] : ['ignore', 'inherit', 'inherit'],
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.error) throw new Error(`${command} ${args.join(' ')}: ${result.error.message}`);
  if (result.status !== 0) {
    const output = quiet ? `\n${(result.stdout ?? '') + (result.stderr ?? '')}`.trimEnd() : '';
    throw new Error(`${command} ${args.join(' ')} exited with ${result.status ?? result.signal}${output}`);
  }
  return result.stdout ?? '';
}

let updated = false; // apt-get update at most once per process

/**
 * Ensures nats-server and redis-server are available; installs the missing ones with apt-get
 * when running as root. Resolves { 'nats-server': path, 'redis-server': path, installed: [pkgs] }.
 * Options: `quiet` (default true: apt output only in the error on failure), `log` (a function
 * called with progress lines, default none).
 */
export async function ensurePeers({ quiet = true, log = () => {} } = {}) {
  const missing = PEERS.filter((peer) => findBinary(peer.binary) === null);
  const installed = [];
  if (missing.length > 0) {
    const packages = missing.map((peer) => peer.pkg);
    const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
    if (!isRoot) {
      throw new Error(
        `the peer benchmark needs ${missing.map((peer) => peer.binary).join(' and ')}, not found on PATH. ` +
          `Install the Debian/Ubuntu package${packages.length > 1 ? 's' : ''} ${packages.join(' ')} as root:\n` +
          `  sudo apt-get update && sudo apt-get install -y ${packages.join(' ')}\n` +
          `or run \`node bench/peers/install.js\` as root (elsewhere: install NATS Server ≥ 2.9 and Redis ≥ 7 ` +
          `so that nats-server and redis-server are on PATH).`,
      );
    }
    if (findBinary('apt-get') === null) {
      throw new Error(`missing ${packages.join(' ')} and apt-get is not available: install NATS Server and Redis by hand`);
    }
    if (!updated) {
      log('apt-get update');
      run('apt-get', ['-qq', 'update'], { quiet });
      updated = true;
    }
    log(`apt-get install -y ${packages.join(' ')}`);
    run('apt-get', ['-qq', '-y', '-o', 'Dpkg::Use-Pty=0', 'install', '--no-install-recommends', ...packages], { quiet });
    const still = missing.filter((peer) => findBinary(peer.binary) === null);
    if (still.length > 0) {
      throw new Error(`apt-get installed ${packages.join(' ')} but ${still.map((p) => p.binary).join(', ')} is still not found`);
    }
    installed.push(...packages);
  }
  const found = { installed };
  for (const peer of PEERS) found[peer.binary] = findBinary(peer.binary);
  return found;
}

/** Version strings, e.g. { nats: '2.9.10', redis: '7.0.15' } (null if not found). */
export function peerVersions() {
  const version = (binary, args, pattern) => {
    const path = findBinary(binary);
    if (!path) return null;
    const result = spawnSync(path, args, { encoding: 'utf8' });
    const match = pattern.exec(`${result.stdout ?? ''}${result.stderr ?? ''}`);
    return match ? match[1] : null;
  };
  return {
    nats: version('nats-server', ['--version'], /v?(\d+\.\d+\.\d+)/),
    redis: version('redis-server', ['--version'], /v=(\d+\.\d+\.\d+)/),
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    console.log('node bench/peers/install.js [--verbose]\n\nInstalls nats-server and redis-server (Debian packages) if missing; needs root.');
    process.exit(0);
  }
  const verbose = args.includes('--verbose');
  ensurePeers({ quiet: !verbose, log: (line) => console.error(`install: ${line}`) })
    .then((found) => {
      const versions = peerVersions();
      if (found.installed.length) console.log(`installed ${found.installed.join(', ')}`);
      console.log(`nats-server ${versions.nats ?? '?'}  ${found['nats-server']}`);
      console.log(`redis-server ${versions.redis ?? '?'}  ${found['redis-server']}`);
    })
    .catch((error) => {
      console.error(`install: ${error.message}`);
      process.exit(1);
    });
}
