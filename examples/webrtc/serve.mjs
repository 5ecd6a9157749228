// The WebRTC example's web server: the page, the SDK from dist/, msgpackr's browser ESM, and
// GET /token, which mints a demo token the way an app's backend would (the secret stays here).
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { dirname, extname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { mintToken } from '../../dist/index.js';

const HELP = `usage: node examples/webrtc/serve.mjs [options]
  --port <n>          the example's HTTP port on 127.0.0.1 (default 8090; 0 picks a free one)
  --tailgrove <url>   the tailgrove server the page connects to (default ws://127.0.0.1:8080)
  --secret <string>   the server's secret (default: TAILGROVE_SECRET, else <data>/secret)
  --data <dir>        the server's data directory holding the development secret (default ./data)`;
const SECRET_LENGTH_MIN = 16; // the server refuses shorter secrets
const TOKEN_SECONDS = 3600;
const DEVICE_PATTERN = /^[\w.-]{1,64}$/;
const CONTENT_TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.json': 'application/json' };

const flags = parseFlags();
const secret = findSecret();
const here = dirname(fileURLToPath(import.meta.url));
const pageFiles = new Map([
  ['/', join(here, 'index.html')],
  ['/app.js', join(here, 'app.js')],
]);
// URL prefixes served from directories: the SDK (it imports ../constants.js, ../net/protocol.js
// and more from dist/) and the msgpackr package, whose index.js is plain browser ESM.
const directories = new Map([
  ['/dist/', join(here, '..', '..', 'dist')],
  ['/msgpackr/', dirname(fileURLToPath(import.meta.resolve('msgpackr')))],
]);

const server = createServer((request, response) => {
  handle(request, response).catch((error) => {
    const missing = error.code === 'ENOENT' || error.code === 'EISDIR' || error instanceof URIError;
    if (!missing) console.error(error);
    reply(response, missing ? 404 : 500, 'text/plain', missing ? 'not found' : 'internal error');
  });
});
server.listen(flags.port, '127.0.0.1', () => {
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  console.log(`webrtc example on http://127.0.0.1:${port}/ (tailgrove at ${flags.tailgrove})`);
});

/** @param {import('node:http').IncomingMessage} request @param {import('node:http').ServerResponse} response */
async function handle(request, response) {
  const url = new URL(request.url ?? '/', 'http://localhost');
  if (request.method !== 'GET') return reply(response, 405, 'text/plain', 'GET only');
  if (url.pathname === '/config.json') return reply(response, 200, CONTENT_TYPES['.json'], JSON.stringify({ tailgrove: flags.tailgrove }));
  if (url.pathname === '/token') {
    const device = url.searchParams.get('device') ?? '';
    if (!DEVICE_PATTERN.test(device)) return reply(response, 400, 'text/plain', 'device: 1 to 64 letters, digits, _ . -');
    // Every tab is a device of one demo user, allowed to read, write and signal on site "demo".
    const token = mintToken({ sub: 'demo', device, grants: [{ site: 'demo', rights: 'rws' }] }, secret, { expiresInSeconds: TOKEN_SECONDS });
    return reply(response, 200, 'text/plain', token);
  }
  const file = fileFor(url.pathname);
  if (file === undefined) return reply(response, 404, 'text/plain', 'not found');
  reply(response, 200, CONTENT_TYPES[extname(file)], await readFile(file));
}

/** The file a path names, or undefined: only the page's files and JavaScript below the served directories. */
function fileFor(pathname) {
  const pageFile = pageFiles.get(pathname);
  if (pageFile !== undefined) return pageFile;
  for (const [prefix, directory] of directories) {
    if (!pathname.startsWith(prefix)) continue;
    const file = join(directory, decodeURIComponent(pathname.slice(prefix.length)));
    return file.startsWith(directory + sep) && file.endsWith('.js') ? file : undefined;
  }
  return undefined;
}

/** @param {import('node:http').ServerResponse} response @param {number} status @param {string} type @param {string | Buffer} body */
function reply(response, status, type, body) {
  response.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  response.end(body);
}

function parseFlags() {
  try {
    const { values } = parseArgs({
      options: {
        port: { type: 'string', default: '8090' },
        tailgrove: { type: 'string', default: 'ws://127.0.0.1:8080' },
        data: { type: 'string', default: './data' },
        secret: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (values.help) {
      console.log(HELP);
      process.exit(0);
    }
    const port = Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be an integer from 0 to 65535, not "${values.port}"`);
    return { ...values, port };
  } catch (error) {
    fail(error.message);
  }
}

// As the tailgrove CLI does: --secret, else TAILGROVE_SECRET, else the development secret.
function findSecret() {
  const secretFile = join(flags.data, 'secret');
  const found = flags.secret ?? (process.env.TAILGROVE_SECRET || undefined) ?? (existsSync(secretFile) ? readFileSync(secretFile, 'utf8').trim() : undefined);
  if (found === undefined) fail(`no secret: pass --secret, set TAILGROVE_SECRET, or start tailgrove once to create ${secretFile}`);
  if (found.length < SECRET_LENGTH_MIN) fail(`the secret must be at least ${SECRET_LENGTH_MIN} characters (tailgrove refuses shorter ones)`);
  return found;
}

/** @param {string} message @returns {never} */
function fail(message) {
  console.error(`${message}\n${HELP}`);
  process.exit(2);
}
