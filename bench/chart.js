// The chart of a `npm run bench` run (bench/run.js): a hand-written SVG, no dependency.
//
//   import { renderChart } from './chart.js'
//   writeFileSync('run.svg', renderChart(results))     // results: the run's JSON object
//
// Three panels of grouped bars, one color per system:
//   1. durable appends/s at 16 connections, 100 B entries, by number of logs (workload a),
//      with the uWS echo message rate as a dashed reference line (the limit of the stack);
//   2. fan-out deliveries/s, 1 writer, by number of tailers (workload b), uWS pub/sub included;
//   3. p99 append→ack at 50 % of each system's peak (workload e), lower is better, with the
//      2 ms target as a dashed line.
// Every bar carries its value; a missing measurement is simply absent.

/** Colors per system id (bench/run.js SYSTEMS), in legend order. */
const PALETTE = {
  'tailgrove-1w': '#1b7f5b',
  'tailgrove-2w': '#5fb58f',
  'tailgrove-free-1w': '#a4d6bd',
  'tailgrove-free-2w': '#cfe9dc',
  echo: '#7a7a7a',
  pubsub: '#b0b0b0',
  'nats-fsync': '#2a6fb5',
  'nats-relaxed': '#8fb8e3',
  'redis-fsync': '#c0392b',
  'redis-relaxed': '#eda49c',
};
const FALLBACK_COLORS = ['#8e44ad', '#d68910', '#17a589', '#5d6d7e'];

const escapeXml = (text) =>
  String(text).replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]);

/** 1234567 → "1.23M", 45678 → "45.7k", 1.234 → "1.23". */
export function compact(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return '—';
  const abs = Math.abs(value);
  const three = (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
  if (abs >= 1e9) return `${three(value / 1e9)}G`;
  if (abs >= 1e6) return `${three(value / 1e6)}M`;
  if (abs >= 1e3) return `${three(value / 1e3)}k`;
  return three(value);
}

/** An axis label: compact() without trailing zeros ("1.50M" → "1.5M", "0.00" → "0"). */
const tick = (format) => (value) => format(value).replace(/\.0+(?=[kMG]?$)/, '').replace(/(\.\d*?[1-9])0+(?=[kMG]?$)/, '$1');

/** A "nice" axis maximum and step (1, 2 or 5 × 10^k) for values up to `max`. */
function niceScale(max, ticks = 4) {
  if (!(max > 0)) return { top: 1, step: 0.25 };
  const rough = max / ticks;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= rough);
  return { top: Math.ceil(max / step) * step, step };
}

/**
 * One panel: groups of bars. `groups`: [{ label, bars: [{ system, label, value }] }];
 * `references`: [{ label, value }] dashed horizontal lines. Returns SVG elements (a string)
 * drawn in the box (x, y, width, height).
 */
function panel({ x, y, width, height, title, subtitle, groups, references = [], format = compact, colorOf }) {
  const out = [];
  out.push(`<text x="${x}" y="${y + 16}" class="title">${escapeXml(title)}</text>`);
  if (subtitle) out.push(`<text x="${x}" y="${y + 34}" class="subtitle">${escapeXml(subtitle)}</text>`);
  const plot = { x: x + 64, y: y + 52, width: width - 76, height: height - 52 - 40 };
  const values = groups.flatMap((g) => g.bars.map((b) => b.value)).concat(references.map((r) => r.value)).filter((v) => Number.isFinite(v));
  if (values.length === 0 || groups.every((g) => g.bars.length === 0)) {
    out.push(`<rect x="${plot.x}" y="${plot.y}" width="${plot.width}" height="${plot.height}" class="frame"/>`);
    out.push(`<text x="${plot.x + plot.width / 2}" y="${plot.y + plot.height / 2}" class="empty" text-anchor="middle">no measurement in this run</text>`);
    return out.join('\n');
  }
  const { top, step } = niceScale(Math.max(...values) * 1.08);
  const yOf = (v) => plot.y + plot.height - (Math.max(0, v) / top) * plot.height;
  // Grid and axis labels.
  for (let v = 0; v <= top + step / 2; v += step) {
    const gy = yOf(v).toFixed(1);
    out.push(`<line x1="${plot.x}" y1="${gy}" x2="${plot.x + plot.width}" y2="${gy}" class="grid"/>`);
    out.push(`<text x="${plot.x - 6}" y="${(yOf(v) + 4).toFixed(1)}" class="axis" text-anchor="end">${escapeXml(tick(format)(v))}</text>`);
  }
  out.push(`<line x1="${plot.x}" y1="${plot.y + plot.height}" x2="${plot.x + plot.width}" y2="${plot.y + plot.height}" class="baseline"/>`);
  // Reference lines under the bars and their labels.
  for (const reference of references) {
    if (!Number.isFinite(reference.value)) continue;
    const ry = yOf(reference.value).toFixed(1);
    out.push(`<line x1="${plot.x}" y1="${ry}" x2="${plot.x + plot.width}" y2="${ry}" class="reference"/>`);
    out.push(`<text x="${plot.x + plot.width - 4}" y="${(Number(ry) - 5).toFixed(1)}" class="reference-label" text-anchor="end">${escapeXml(reference.text ?? `${reference.label} ${format(reference.value)}`)}</text>`);
  }
  // Bars.
  const shown = groups.filter((g) => g.bars.length > 0);
  const groupWidth = plot.width / shown.length;
  for (const [gi, group] of shown.entries()) {
    const gx = plot.x + gi * groupWidth;
    const inner = groupWidth * 0.84;
    const barWidth = Math.min(56, inner / group.bars.length);
    const start = gx + (groupWidth - barWidth * group.bars.length) / 2;
    for (const [bi, bar] of group.bars.entries()) {
      const bx = start + bi * barWidth;
      const by = yOf(bar.value);
      const h = plot.y + plot.height - by;
      out.push(
        `<rect x="${(bx + 1).toFixed(1)}" y="${by.toFixed(1)}" width="${(barWidth - 2).toFixed(1)}" height="${Math.max(0.5, h).toFixed(1)}" fill="${colorOf(bar.system)}">` +
          `<title>${escapeXml(`${bar.label}: ${bar.value}`)}</title></rect>`,
      );
      const labelSize = barWidth < 30 ? ' style="font-size:9px"' : '';
      out.push(`<text x="${(bx + barWidth / 2).toFixed(1)}" y="${(by - 4).toFixed(1)}" class="value" text-anchor="middle"${labelSize}>${escapeXml(format(bar.value))}</text>`);
    }
    out.push(`<text x="${(gx + groupWidth / 2).toFixed(1)}" y="${plot.y + plot.height + 18}" class="group" text-anchor="middle">${escapeXml(group.label)}</text>`);
  }
  return out.join('\n');
}

/**
 * The measurement of `system` with key `key` that produced figures, or undefined; the best
 * one when there are several (uWS pub/sub is measured at a few windows).
 */
function find(results, system, key) {
  const score = (m) => m.result.deliveredPerSec || m.result.appendsPerSec || 0;
  const found = results.measurements.filter((m) => m.system === system && m.key === key && m.result && !m.skipped);
  return found.reduce((best, m) => (best === undefined || score(m) > score(best) ? m : best), undefined);
}

/** The SVG document for a run's results (the JSON bench/run.js writes). */
export function renderChart(results) {
  const systems = results.systems ?? [];
  const label = Object.fromEntries(systems.map((s) => [s.id, s.label]));
  const order = systems.map((s) => s.id);
  let fallback = 0;
  const colors = {};
  const colorOf = (system) => (colors[system] ??= PALETTE[system] ?? FALLBACK_COLORS[fallback++ % FALLBACK_COLORS.length]);
  const barsFor = (key, value, only = () => true) =>
    order
      .filter(only)
      .map((system) => {
        const m = find(results, system, key);
        const v = m ? value(m.result) : null;
        return Number.isFinite(v) ? { system, label: `${label[system] ?? system}`, value: v } : null;
      })
      .filter(Boolean);
  const notReference = (system) => system !== 'echo' && system !== 'pubsub';

  const width = 1000;
  const panelHeight = 330;
  const legendHeight = 28 + Math.ceil(order.filter((s) => s !== 'echo').length / 4) * 20;
  const header = 70;
  const height = header + legendHeight + panelHeight * 3 + 20;
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif">`);
  out.push(`<style>
  .heading { font-size: 20px; font-weight: bold; fill: #222; }
  .note { font-size: 12px; fill: #555; }
  .title { font-size: 15px; font-weight: bold; fill: #222; }
  .subtitle { font-size: 12px; fill: #666; }
  .axis { font-size: 11px; fill: #666; }
  .group { font-size: 12px; fill: #333; }
  .value { font-size: 10px; fill: #333; }
  .legend { font-size: 12px; fill: #333; }
  .empty { font-size: 13px; fill: #999; }
  .grid { stroke: #e6e6e6; stroke-width: 1; }
  .baseline { stroke: #999; stroke-width: 1; }
  .frame { fill: none; stroke: #e6e6e6; }
  .reference { stroke: #444; stroke-width: 1.2; stroke-dasharray: 6 4; }
  .reference-label { font-size: 11px; fill: #444; }
</style>`);
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#fff"/>`);
  const m = results.machine ?? {};
  out.push(`<text x="24" y="32" class="heading">${escapeXml(`tailgrove — npm run bench${results.quick ? ' --quick' : ''}`)}</text>`);
  out.push(
    `<text x="24" y="52" class="note">${escapeXml(
      `${results.startedAt ?? ''} · ${m.cpuModel ?? '?'} × ${m.cores ?? '?'} · Node ${m.node ?? '?'} · ${results.secondsPerMeasurement ?? '?'} s per measurement · server and client on the same machine`,
    )}</text>`,
  );
  // Legend (the echo rate is a dashed line, labelled where it is drawn).
  for (const [i, system] of order.filter((s) => s !== 'echo').entries()) {
    const lx = 24 + (i % 4) * 240;
    const ly = header + 10 + Math.floor(i / 4) * 20;
    out.push(`<rect x="${lx}" y="${ly}" width="14" height="14" fill="${colorOf(system)}"/>`);
    out.push(`<text x="${lx + 20}" y="${ly + 12}" class="legend">${escapeXml(label[system] ?? system)}</text>`);
  }
  let y = header + legendHeight;
  const echo = find(results, 'echo', 'echo');
  out.push(
    panel({
      x: 24, y, width: width - 48, height: panelHeight, colorOf,
      title: 'Durable appends/s — 16 connections, 100 B entries (workload a)',
      subtitle: 'higher is better; tailgrove, NATS and Redis acknowledge after the write is durable (fsync) or relaxed as labelled',
      groups: ['1', '64', '10000'].map((logs) => ({ label: `${logs} log${logs === '1' ? '' : 's'}`, bars: barsFor(`a:16x${logs}`, (r) => r.appendsPerSec, notReference) })),
      references: echo ? [{ label: 'uWS echo (the limit)', value: echo.result.appendsPerSec }] : [],
    }),
  );
  y += panelHeight;
  out.push(
    panel({
      x: 24, y, width: width - 48, height: panelHeight, colorOf,
      title: 'Fan-out: entries delivered/s — 1 writer, one log (workload b)',
      subtitle: 'higher is better; uWS pub/sub: one message per publish per subscriber',
      groups: ['100', '1000'].map((tailers) => ({ label: `${tailers} tailers`, bars: barsFor(`b:${tailers}`, (r) => r.deliveredPerSec) })),
    }),
  );
  y += panelHeight;
  out.push(
    panel({
      x: 24, y, width: width - 48, height: panelHeight, colorOf,
      title: 'p99 append→ack at 50 % of each system’s peak, ms (workload e)',
      subtitle: 'lower is better; open loop at half the rate each system sustained at 16 connections × 64 logs',
      groups: [{ label: '50 % of peak', bars: barsFor('e:50', (r) => r.ackLatency?.p99Ms, notReference) }],
      references: [{ text: 'target ≤ 2 ms', value: 2 }],
      format: (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)),
    }),
  );
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
