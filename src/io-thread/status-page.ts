// The operator status page on the server's HTTP port: `GET /` is one self-contained HTML page
// that polls `GET /stats` (the StatusSnapshot as JSON) every second and renders it. The page
// is a constant built once at module load; its inline script and style are allowed by hash in
// a strict Content-Security-Policy, so nothing else runs or loads on it. Site and log names
// come from clients and are written with textContent only, never parsed as HTML.
import { createHash } from 'node:crypto';
import type uWS from 'uWebSockets.js';
import type { StatusSnapshot } from '../metrics/status.js';

const STYLE = `
:root { color-scheme: light; --ink: #1b1f24; --muted: #5b6571; --line: #d8dde3; --card: #fff;
  --page: #f4f6f8; --accent: #1f6feb; --good: #1a7f37; --warn: #9a6700; --bad: #cf222e; }
* { box-sizing: border-box; }
body { margin: 0; padding: 1rem; background: var(--page); color: var(--ink);
  font: 15px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 72rem; margin: 0 auto; }
header { display: flex; flex-wrap: wrap; align-items: baseline; gap: .5rem 1rem; margin-bottom: 1rem; }
h1 { font-size: 1.4rem; margin: 0; }
h2 { font-size: 1rem; margin: 1.5rem 0 .5rem; color: var(--muted); font-weight: 600; }
.meta { color: var(--muted); font-size: .9rem; }
#state { font-weight: 600; padding: .1rem .6rem; border-radius: 1rem; color: #fff; background: var(--muted); }
#state[data-state="live"] { background: var(--good); }
#state[data-state="recovering"] { background: var(--warn); }
#state[data-state="disconnected"] { background: var(--bad); }
body.stale .value, body.stale td { color: var(--muted); }
.cards { display: grid; gap: .75rem; grid-template-columns: repeat(auto-fill, minmax(min(100%, 10rem), 1fr)); }
.card { background: var(--card); border: 1px solid var(--line); border-radius: .5rem; padding: .75rem; }
.card.wide { grid-column: span 2; }
.label { color: var(--muted); font-size: .85rem; }
.value { font-size: 1.6rem; font-weight: 600; font-variant-numeric: tabular-nums; }
.unit { color: var(--muted); font-size: .85rem; font-weight: 400; }
svg.spark { display: block; width: 100%; height: 2.5rem; margin-top: .25rem; }
svg.spark polyline { fill: none; stroke: var(--accent); stroke-width: 1.5; vector-effect: non-scaling-stroke; }
.scroll { overflow-x: auto; background: var(--card); border: 1px solid var(--line); border-radius: .5rem; }
table { border-collapse: collapse; width: 100%; }
th, td { padding: .4rem .75rem; text-align: left; border-bottom: 1px solid var(--line); white-space: nowrap; }
tr:last-child td { border-bottom: 0; }
th { color: var(--muted); font-weight: 600; font-size: .85rem; }
td.number, th.number { text-align: right; font-variant-numeric: tabular-nums; }
td.name { max-width: 24rem; overflow: hidden; text-overflow: ellipsis; }
.bar { height: .4rem; min-width: 1px; background: var(--accent); border-radius: .2rem; }
td.bar-cell { width: 40%; }
.empty td { color: var(--muted); text-align: center; }
@media (max-width: 22rem) { .card.wide { grid-column: span 1; } }
@media (max-width: 40rem) { body { padding: .5rem; } .value { font-size: 1.3rem; } }
`;

// Every element with data-metric shows that field of the snapshot (a dotted path), formatted
// by its data-format. Numbers use the browser's locale, so they get thousands separators.
const SCRIPT = `
'use strict';
const POLL_MS = 1000;
const TIMEOUT_MS = 2500;
const SPARK_WINDOW_MS = 60000;
const formats = {
  int: new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 }),
  one: new Intl.NumberFormat(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 }),
  ms: new Intl.NumberFormat(undefined, { minimumFractionDigits: 3, maximumFractionDigits: 3 }),
};
function format(value, kind) {
  if (typeof value !== 'number' || !Number.isFinite(value)) return '–';
  if (kind === 'rate') return (Math.abs(value) < 10 && value !== 0 ? formats.one : formats.int).format(value);
  if (kind === 'decimal') return formats.one.format(value);
  if (kind === 'ms') return formats.ms.format(value);
  if (kind === 'duration') return duration(value);
  return formats.int.format(value);
}
function duration(seconds) {
  let rest = Math.floor(seconds);
  const parts = [];
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['m', 60]]) {
    if (rest >= size || parts.length > 0) { parts.push(Math.floor(rest / size) + unit); rest %= size; }
  }
  parts.push(rest + 's');
  return parts.slice(0, 3).join(' ');
}
function field(snapshot, path) {
  let value = snapshot;
  for (const key of path.split('.')) value = value == null ? undefined : value[key];
  return value;
}
const metricElements = Array.from(document.querySelectorAll('[data-metric]'));
const stateElement = document.getElementById('state');
const updatedElement = document.getElementById('updated');
const topLogsBody = document.getElementById('top-logs');
const phaseBody = document.getElementById('phases');
const sparkLine = document.getElementById('spark-line');
const sparkMax = document.getElementById('spark-max');
let history = [];
let lastSnapshotAt = 0;

function showState(state, text, detail) {
  stateElement.dataset.state = state;
  stateElement.textContent = text;
  stateElement.title = detail || '';
  document.body.classList.toggle('stale', state === 'disconnected');
}
function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}
function renderTopLogs(topLogs) {
  const rows = [];
  for (const top of topLogs) {
    const tr = document.createElement('tr');
    tr.dataset.site = top.site;
    tr.dataset.log = top.log;
    tr.append(cell(top.site, 'name'), cell(top.log, 'name'),
      cell(format(top.appendsPerSecond, 'rate'), 'number'), cell(format(top.length, 'int'), 'number'));
    rows.push(tr);
  }
  if (rows.length === 0) {
    const tr = document.createElement('tr');
    tr.className = 'empty';
    const td = cell('no appends in the last second');
    td.colSpan = 4;
    tr.append(td);
    rows.push(tr);
  }
  topLogsBody.replaceChildren(...rows);
}
function renderPhaseBars(phaseMs) {
  const total = Object.values(phaseMs).reduce((sum, ms) => sum + (Number.isFinite(ms) ? ms : 0), 0);
  for (const bar of phaseBody.querySelectorAll('.bar')) {
    const ms = phaseMs[bar.dataset.phase];
    bar.style.width = (total > 0 && Number.isFinite(ms) ? (100 * ms) / total : 0).toFixed(1) + '%';
  }
}
function renderSparkline(snapshot) {
  if (snapshot.at !== lastSnapshotAt) history.push([snapshot.at, snapshot.appendsPerSecond]);
  lastSnapshotAt = snapshot.at;
  history = history.filter(([at]) => at > snapshot.at - SPARK_WINDOW_MS);
  const peak = Math.max(0, ...history.map(([, value]) => value));
  const max = Math.max(1, peak);
  const start = snapshot.at - SPARK_WINDOW_MS;
  // The viewBox is 60 wide (one unit a second) and 20 high; the line keeps 1 unit of headroom.
  sparkLine.setAttribute('points', history
    .map(([at, value]) => (((at - start) / SPARK_WINDOW_MS) * 60).toFixed(2) + ',' + (19 - (value / max) * 18).toFixed(2))
    .join(' '));
  sparkMax.textContent = format(peak, 'rate');
}
function render(snapshot) {
  for (const element of metricElements) {
    element.textContent = format(field(snapshot, element.dataset.metric), element.dataset.format);
  }
  renderTopLogs(snapshot.topLogs || []);
  renderPhaseBars(snapshot.phaseMs || {});
  renderSparkline(snapshot);
  if (snapshot.ready) showState('live', 'live');
  else showState('recovering', 'recovering…', 'recovery is running; WebSocket connections wait until it ends');
  updatedElement.textContent = 'updated ' + new Date(snapshot.at).toLocaleTimeString();
}
async function poll() {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), TIMEOUT_MS);
  try {
    const response = await fetch('stats', { cache: 'no-store', signal: abort.signal });
    if (!response.ok) throw new Error('GET /stats answered ' + response.status);
    render(await response.json());
  } catch (error) {
    const since = lastSnapshotAt ? ' (last update ' + new Date(lastSnapshotAt).toLocaleTimeString() + ')' : '';
    showState('disconnected', 'disconnected', String(error && error.message || error) + since);
  } finally {
    clearTimeout(timer);
    setTimeout(poll, POLL_MS);
  }
}
poll();
`;

const PHASES: ReadonlyArray<[key: keyof StatusSnapshot['phaseMs'], label: string]> = [
  ['ioContributions', 'IO contributions'],
  ['ioDeletions', 'IO deletions'],
  ['clientInput', 'client input'],
  ['catchUp', 'catch-up'],
  ['commit', 'group commit (disk thread, fsync)'],
];

const card = (label: string, metric: string, format: string, unit = ''): string =>
  `<div class="card"><div class="label">${label}</div><div class="value"><span data-metric="${metric}" data-format="${format}">–</span>${unit && ` <span class="unit">${unit}</span>`}</div></div>`;

const phaseRow = ([key, label]: [string, string]): string =>
  `<tr><td>${label}</td><td class="number"><span data-metric="phaseMs.${key}" data-format="ms">–</span></td><td class="bar-cell"><div class="bar" data-phase="${key}"></div></td></tr>`;

const HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tailgrove status</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>
<main>
<header>
  <h1>tailgrove</h1>
  <span id="state" data-state="connecting">connecting…</span>
  <span class="meta">up <span data-metric="uptimeSeconds" data-format="duration">–</span>
    · <span data-metric="workers" data-format="int">–</span> workers · <span id="updated"></span></span>
</header>
<section class="cards" aria-label="now">
  ${card('connections', 'connections', 'int')}
  ${card('sessions', 'sessions', 'int')}
  ${card('leases', 'leases', 'int')}
  ${card('tails', 'tails', 'int')}
  <div class="card wide"><div class="label">appends</div><div class="value"><span data-metric="appendsPerSecond" data-format="rate">–</span> <span class="unit">/s</span></div>
    <svg class="spark" viewBox="0 0 60 20" preserveAspectRatio="none" role="img" aria-label="appends per second over the last minute"><polyline id="spark-line" points=""></polyline></svg>
    <div class="label">last 60 s · peak <span id="spark-max">–</span>/s</div></div>
  ${card('entries delivered', 'entriesDeliveredPerSecond', 'rate', '/s')}
  ${card('batches', 'batchesPerSecond', 'rate', '/s')}
  ${card('batch size (records + tailers)', 'batchSize', 'decimal', 'per batch')}
</section>
<h2>time per batch, by phase (mean ms)</h2>
<div class="scroll"><table><tbody id="phases">${PHASES.map(phaseRow).join('')}</tbody></table></div>
<h2>top logs (appends over the last second)</h2>
<div class="scroll"><table>
  <thead><tr><th>site</th><th>log</th><th class="number">appends/s</th><th class="number">length</th></tr></thead>
  <tbody id="top-logs"></tbody>
</table></div>
<h2>totals since start</h2>
<section class="cards" aria-label="totals">
  ${card('appends', 'totals.appends', 'int')}
  ${card('entries delivered', 'totals.entriesDelivered', 'int')}
  ${card('errors', 'totals.errors', 'int')}
  ${card('trimmed entries', 'totals.trimmedEntries', 'int')}
</section>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;

const sha256 = (text: string): string => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

// Only the page's own script and style, fetches to this origin, and the data: favicon.
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  `script-src ${sha256(SCRIPT)}`,
  `style-src ${sha256(STYLE)}`,
  "connect-src 'self'",
  'img-src data:',
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export function registerStatusPage(app: uWS.TemplatedApp, snapshot: () => StatusSnapshot): void {
  app.get('/', (res, req) => {
    // A WebSocket upgrade on `/` is not for the page: it goes on to the socket route (or
    // to the catch-all, which refuses it while recovering).
    if (req.getHeader('upgrade') !== '') {
      req.setYield(true);
      return;
    }
    res
      .writeHeader('content-type', 'text/html; charset=utf-8')
      .writeHeader('cache-control', 'no-cache')
      .writeHeader('content-security-policy', CONTENT_SECURITY_POLICY)
      .writeHeader('x-content-type-options', 'nosniff')
      .end(HTML);
  });
  app.get('/stats', (res) => {
    let body: string;
    try {
      body = JSON.stringify(snapshot());
    } catch (error) {
      // The response must still end here (uWS), and the page shows "disconnected" with this.
      res
        .writeStatus('500 Internal Server Error')
        .writeHeader('content-type', 'application/json')
        .writeHeader('cache-control', 'no-store')
        .end(JSON.stringify({ error: (error as Error).message }));
      return;
    }
    res.writeHeader('content-type', 'application/json').writeHeader('cache-control', 'no-store').end(body);
  });
}
