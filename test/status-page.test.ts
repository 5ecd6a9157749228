// The operator status page in a real browser (headless Chromium via playwright-core): first
// against a bare uWS app with a scripted snapshot (formatting, "recovering…", "disconnected",
// names shown as text), then against a real server under load from the SDK, where the page's
// numbers must move. Under load it saves a screenshot to test-results/status-page.png.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import t from 'tap';
import uWS from 'uWebSockets.js';
import { mintToken } from '../src/auth/token.js';
import { connect, type Client, type LeasedLog, type Tail } from '../src/client/index.js';
import { registerStatusPage } from '../src/io-thread/status-page.js';
import type { StatusSnapshot } from '../src/metrics/status.js';
import { removeDataDir, repositoryRoot, startServer, type ServerProcess } from './helpers/server.js';

const CHROMIUM_PATH = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const SCREENSHOT_PATH = join(repositoryRoot, 'test-results', 'status-page.png');
const LOAD_CLIENTS = 4;
const LOAD_SITE = 'status-test';
const SNAPSHOT_FIELDS = ['at', 'uptimeSeconds', 'ready', 'workers', 'connections', 'sessions', 'leases', 'tails', 'appendsPerSecond', 'entriesDeliveredPerSecond', 'batchesPerSecond', 'batchSize', 'phaseMs', 'topLogs', 'totals'];

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The page's displayed text of every data-metric element. (A string expression: the test's tsconfig has no DOM types.) */
async function displayed(page: Page): Promise<Record<string, string>> {
  const pairs = await page.evaluate<Array<[string, string]>>("Array.from(document.querySelectorAll('[data-metric]'), (e) => [e.dataset.metric, e.textContent])");
  return Object.fromEntries(pairs);
}

/** A displayed number back to a number: the page is opened with locale en-US, so ',' groups thousands. */
const numberOf = (text: string | undefined): number => (text === undefined || !/\d/.test(text) ? NaN : Number(text.replace(/,/g, '')));

async function displayedNumbers(page: Page): Promise<Record<string, number>> {
  const texts = await displayed(page);
  return Object.fromEntries(Object.entries(texts).map(([metric, text]) => [metric, numberOf(text)]));
}

async function stateOf(page: Page): Promise<string> {
  return (await page.locator('#state').textContent()) ?? '';
}

/** Poll the page until `condition` holds on its numbers; returns them. */
async function untilDisplayed(page: Page, what: string, condition: (numbers: Record<string, number>) => boolean, timeoutMs = 20_000): Promise<Record<string, number>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const numbers = await displayedNumbers(page);
    if (condition(numbers)) return numbers;
    if (Date.now() > deadline) throw new Error(`timed out waiting for the page to show ${what}; it shows ${JSON.stringify(numbers)}`);
    await sleep(100);
  }
}

async function untilState(page: Page, text: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await stateOf(page)) !== text) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for the page to say "${text}"; it says "${await stateOf(page)}"`);
    await sleep(100);
  }
}

/** The rows of the top-logs table as [site, log, appends/s, length] texts. */
async function topLogRows(page: Page): Promise<string[][]> {
  return page.evaluate<string[][]>("Array.from(document.querySelectorAll('#top-logs tr:not(.empty)'), (row) => Array.from(row.cells, (cell) => cell.textContent))");
}

/** A new page that records what went wrong in it (script errors, CSP violations, failed loads). */
async function openPage(browser: Browser, url: string, problems: string[]): Promise<Page> {
  const context = await browser.newContext({ locale: 'en-US', viewport: { width: 1100, height: 1000 } });
  const page = await context.newPage();
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    // A poll refused while the test stops the server is expected; anything else is not.
    if (message.type() === 'error' && !/Failed to load resource|ERR_CONNECTION_REFUSED|status of 500/.test(message.text())) problems.push(`console: ${message.text()}`);
  });
  await page.goto(url);
  return page;
}

function scriptedSnapshot(at: number): StatusSnapshot {
  return {
    at,
    uptimeSeconds: 93_784, // 1d 2h 3m 4s
    ready: false,
    workers: 3,
    connections: 12_345,
    sessions: 12_000,
    leases: 1_048_576,
    tails: 7,
    appendsPerSecond: 250_000,
    entriesDeliveredPerSecond: 2.5,
    batchesPerSecond: 1_500,
    batchSize: 166.66,
    phaseMs: { ioContributions: 0.0125, ioDeletions: 0, clientInput: 0.5, catchUp: 0.25, commit: 2 },
    topLogs: [
      { site: 'acme', log: '<img src=x onerror="document.title=\'owned\'">', appendsPerSecond: 200_000, length: 9_876_543 },
      { site: 'acme & co', log: 'doc-2', appendsPerSecond: 50_000, length: 12 },
    ],
    totals: { appends: 1_234_567_890, entriesDelivered: 42, errors: 3, trimmedEntries: 1_000 },
  };
}

if (!existsSync(CHROMIUM_PATH)) {
  t.fail(`${CHROMIUM_PATH} is missing: install Debian's chromium (apt-get install -y chromium; .ci/run installs it) to run the status page test`);
} else {
  let browser: Browser | undefined;
  t.before(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
  });
  t.teardown(async () => {
    await browser?.close();
  });

  t.test('the page renders a scripted snapshot: formatting, recovering…, disconnected, names as text', async (t) => {
    let snapshot = scriptedSnapshot(Date.now());
    let failing = false;
    const app = uWS.App();
    registerStatusPage(app, () => {
      if (failing) throw new Error('snapshot unavailable');
      return { ...snapshot, at: Date.now() };
    });
    const listenSocket = await new Promise<uWS.us_listen_socket>((resolve, reject) =>
      app.listen('127.0.0.1', 0, (socket) => (socket ? resolve(socket) : reject(new Error('cannot listen')))),
    );
    const base = `http://127.0.0.1:${uWS.us_socket_local_port(listenSocket)}/`;
    const problems: string[] = [];
    const page = await openPage(browser!, base, problems);
    t.teardown(async () => {
      await page.context().close();
      uWS.us_listen_socket_close(listenSocket);
    });

    await untilState(page, 'recovering…');
    t.pass('ready: false shows "recovering…"');
    const texts = await displayed(page);
    t.equal(texts['totals.appends'], '1,234,567,890', 'totals get thousands separators');
    t.equal(texts['appendsPerSecond'], '250,000', 'rates get thousands separators');
    t.equal(texts['leases'], '1,048,576');
    t.equal(texts['entriesDeliveredPerSecond'], '2.5', 'a small rate keeps one decimal');
    t.equal(texts['batchSize'], '166.7', 'the batch size has one decimal');
    t.equal(texts['phaseMs.ioContributions'], '0.013', 'phase times are in ms with three decimals');
    t.equal(texts['phaseMs.commit'], '2.000');
    t.equal(texts['uptimeSeconds'], '1d 2h 3m', 'the uptime reads as a duration');
    t.equal(texts['workers'], '3');
    const rows = await topLogRows(page);
    t.same(rows, [
      ['acme', '<img src=x onerror="document.title=\'owned\'">', '200,000', '9,876,543'],
      ['acme & co', 'doc-2', '50,000', '12'],
    ], 'top logs are listed busiest first, names as given');
    t.equal(await page.locator('#top-logs img').count(), 0, 'a log name is shown as text, never parsed as HTML');
    t.equal(await page.title(), 'tailgrove status');

    snapshot = { ...snapshot, ready: true };
    await untilState(page, 'live');
    t.pass('ready: true shows "live"');

    failing = true;
    await untilState(page, 'disconnected');
    t.match(await page.locator('#state').getAttribute('title'), /500/, 'the badge says why the poll failed');
    t.equal((await displayed(page))['totals.appends'], '1,234,567,890', 'the last numbers stay on the page while disconnected');
    failing = false;
    await untilState(page, 'live');
    t.pass('the page recovers when polling works again');

    const stats = await fetch(`${base}stats`);
    t.equal(stats.status, 200);
    t.equal(stats.headers.get('content-type'), 'application/json');
    t.equal(stats.headers.get('cache-control'), 'no-store');
    t.same(Object.keys((await stats.json()) as object), SNAPSHOT_FIELDS, '/stats is the snapshot');
    t.same(problems, [], 'no script errors or CSP violations on the page');
  });

  t.test('against a real server under load, the numbers move', async (t) => {
    const server: ServerProcess = await startServer({ workers: 2 });
    const clients: Client[] = [];
    const tails: Tail[] = [];
    let serverStopped = false;
    let loading = true;
    let loadError: Error | undefined;
    let acknowledged = 0;
    t.teardown(async () => {
      loading = false;
      for (const tail of tails) tail.close();
      await Promise.allSettled(clients.map((client) => client.close()));
      if (!serverStopped) await server.stop();
      removeDataDir(server.dataDir);
    });
    const base = `http://127.0.0.1:${server.port}/`;

    const home = await fetch(base);
    t.equal(home.status, 200, 'GET / answers');
    t.match(home.headers.get('content-type'), /^text\/html/, 'GET / is the HTML page');
    t.match(home.headers.get('content-security-policy'), /default-src 'none'/, 'the page runs under a strict CSP');
    await home.arrayBuffer();
    const stats = await fetch(`${base}stats`);
    t.equal(stats.status, 200, 'GET /stats answers');
    t.equal(stats.headers.get('content-type'), 'application/json');
    t.equal(stats.headers.get('cache-control'), 'no-store');
    let first = (await stats.json()) as StatusSnapshot;
    // The snapshot is sampled once a second, so `ready` may trail the "ready" line by one sample.
    const readyDeadline = Date.now() + 3000;
    while (!first.ready && Date.now() < readyDeadline) {
      await sleep(100);
      first = (await (await fetch(`${base}stats`)).json()) as StatusSnapshot;
    }
    t.same(Object.keys(first).sort(), [...SNAPSHOT_FIELDS].sort(), '/stats has the StatusSnapshot fields');
    t.same(Object.keys(first.phaseMs).sort(), ['catchUp', 'clientInput', 'commit', 'ioContributions', 'ioDeletions']);
    t.same(Object.keys(first.totals).sort(), ['appends', 'entriesDelivered', 'errors', 'trimmedEntries']);
    t.ok(Array.isArray(first.topLogs), 'topLogs is a list');
    for (const field of SNAPSHOT_FIELDS.filter((name) => !['ready', 'phaseMs', 'topLogs', 'totals'].includes(name))) {
      t.ok(Number.isFinite((first as unknown as Record<string, unknown>)[field]), `${field} is a number`);
    }
    t.equal(first.ready, true, 'a server that printed "ready" reports ready within a sampling interval');
    t.equal(first.workers, 2);

    const problems: string[] = [];
    const page = await openPage(browser!, base, problems);
    t.teardown(() => page.context().close());
    await untilState(page, 'live');
    const before = await untilDisplayed(page, 'a first snapshot', (numbers) => Number.isFinite(numbers['totals.appends']));
    t.equal(before.connections, 0, 'no connections before the load');
    t.equal(before.appendsPerSecond, 0, 'no appends before the load');

    // Load: 4 SDK clients, each appending to its own log in pipelined bursts, and one tail on
    // client 0's log so that entries are delivered too. It runs until the test has seen enough.
    const token = (device: string): string => mintToken({ sub: 'status-test', device, grants: [{ site: '*', rights: 'rw' }] }, server.secret);
    const logs: LeasedLog[] = [];
    for (let i = 0; i < LOAD_CLIENTS; i++) {
      const client = await connect(server.url, { token: token(`status-load-${i}`) });
      clients.push(client);
      logs.push(await client.lease(LOAD_SITE, `load-${i}`));
    }
    let delivered = 0;
    tails.push((await clients[1]!.lease(LOAD_SITE, 'load-0')).tail(0, (entries) => (delivered += entries.length)));
    const payload = new TextEncoder().encode('status page load '.repeat(4));
    const appendUntilStopped = async (log: LeasedLog): Promise<void> => {
      while (loading) {
        await Promise.all(Array.from({ length: 50 }, () => log.append(payload)));
        acknowledged += 50;
        await sleep(10); // a steady load, not a flood: the cores are shared
      }
    };
    const load = Promise.all(logs.map(appendUntilStopped)).catch((error: Error) => {
      if (loading) loadError = error;
    });

    const underLoad = await untilDisplayed(
      page,
      'connections, appends/s, entries delivered/s and batches/s above zero',
      (numbers) => numbers.connections >= LOAD_CLIENTS && numbers.appendsPerSecond > 0 && numbers.entriesDeliveredPerSecond > 0 && numbers.batchesPerSecond > 0,
    );
    t.ok(underLoad.connections >= LOAD_CLIENTS, `the page counts the ${LOAD_CLIENTS} connections (shows ${underLoad.connections})`);
    t.ok(underLoad.sessions >= LOAD_CLIENTS, `and their sessions (shows ${underLoad.sessions})`);
    t.ok(underLoad.leases >= LOAD_CLIENTS + 1, `and their leases (shows ${underLoad.leases})`);
    t.ok(underLoad.tails >= 1, `and the tail (shows ${underLoad.tails})`);
    t.ok(underLoad.appendsPerSecond > 0, `appends/s rose above zero (shows ${underLoad.appendsPerSecond})`);
    t.ok(underLoad.entriesDeliveredPerSecond > 0, `entries delivered/s rose above zero (shows ${underLoad.entriesDeliveredPerSecond})`);
    t.ok(underLoad.batchesPerSecond > 0 && underLoad.batchSize > 0, 'batches are counted and sized');

    const loadLogs = new Set(logs.map((_, i) => `load-${i}`));
    const deadline = Date.now() + 20_000;
    let rows = await topLogRows(page);
    while (!rows.some(([site, log]) => site === LOAD_SITE && loadLogs.has(log!))) {
      if (Date.now() > deadline) throw new Error(`no top-logs row for the loaded logs; rows: ${JSON.stringify(rows)}`);
      await sleep(100);
      rows = await topLogRows(page);
    }
    const row = rows.find(([site, log]) => site === LOAD_SITE && loadLogs.has(log!))!;
    t.ok(numberOf(row[2]) > 0 && numberOf(row[3]) > 0, `a top-logs row shows a loaded log with its rate and length: ${row.join(' | ')}`);
    await sleep(1500); // a little sparkline history for the screenshot
    mkdirSync(join(repositoryRoot, 'test-results'), { recursive: true });
    await page.screenshot({ path: SCREENSHOT_PATH, fullPage: true });
    t.ok(existsSync(SCREENSHOT_PATH), `screenshot under load saved to ${SCREENSHOT_PATH}`);

    loading = false;
    await load;
    t.equal(loadError, undefined, 'every append of the load was acknowledged');
    const appended = acknowledged;
    const after = await untilDisplayed(page, `totals.appends reaching the ${appended} acknowledged appends`, (numbers) => numbers['totals.appends'] >= before['totals.appends']! + appended);
    t.ok(after['totals.appends'] >= appended, `the total of appends moved from ${before['totals.appends']} to ${after['totals.appends']} (${appended} acknowledged)`);
    t.ok(after['totals.entriesDelivered'] > before['totals.entriesDelivered']!, `the total of entries delivered moved (${after['totals.entriesDelivered']}; the tail got ${delivered})`);
    const idle = await untilDisplayed(page, 'appends/s back at zero after the load', (numbers) => numbers.appendsPerSecond === 0);
    t.equal(idle.appendsPerSecond, 0, 'appends/s falls back to zero when the load stops');

    await server.stop();
    serverStopped = true;
    await untilState(page, 'disconnected');
    t.pass('the page says "disconnected" once the server is gone');
    t.same(problems, [], 'no script errors or CSP violations on the page');
  });
}
