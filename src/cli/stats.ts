// `tailgrove stats`: a running server's status snapshot (GET /stats) as a compact table, or
// as JSON, once or every few seconds.
import { setTimeout as sleep } from 'node:timers/promises';
import type { StatusSnapshot } from '../metrics/status.js';
import { DEFAULT_URL, fetchJson, serverUrl } from './http.js';
import { formatTable } from './table.js';
import { integerFlag, parseCommandArgs } from './usage.js';

export const STATS_HELP = `Usage: tailgrove stats [options]

Shows a running server's status (GET /stats): connections, sessions, leases, tails, rates
over the last second, mean phase times per batch, the busiest logs and totals.

  --url <url>          the server (default ${DEFAULT_URL})
  --json               print the snapshot as JSON (one line per snapshot)
  --watch [seconds]    print again every few seconds (default 1) until Ctrl-C
`;

const WATCH_SECONDS_DEFAULT = 1;
const CLEAR_SCREEN = '\x1b[H\x1b[2J';

const count = (n: number): string => Math.round(n).toLocaleString('en-US');
const milliseconds = (n: number): string => n.toFixed(n < 10 ? 2 : 1);

function formatUptime(totalSeconds: number): string {
  const seconds = Math.floor(totalSeconds);
  const [days, hours, minutes] = [Math.floor(seconds / 86400), Math.floor(seconds / 3600) % 24, Math.floor(seconds / 60) % 60];
  const pad = (n: number): string => String(n).padStart(2, '0');
  if (days > 0) return `${days}d ${hours}h`;
  if (hours > 0) return `${hours}h ${pad(minutes)}m`;
  if (minutes > 0) return `${minutes}m ${pad(seconds % 60)}s`;
  return `${seconds}s`;
}

/** The snapshot as the lines `tailgrove stats` prints. */
export function formatStatus(snapshot: StatusSnapshot, server: string): string {
  const { phaseMs, totals } = snapshot;
  const heading = `tailgrove ${server} · up ${formatUptime(snapshot.uptimeSeconds)} · ${snapshot.ready ? 'ready' : 'recovering'} · ${snapshot.workers} worker${snapshot.workers === 1 ? '' : 's'}\n`;
  const gauges = formatTable(
    [
      ['connections', count(snapshot.connections), 'appends/s', count(snapshot.appendsPerSecond)],
      ['sessions', count(snapshot.sessions), 'delivered/s', count(snapshot.entriesDeliveredPerSecond)],
      ['leases', count(snapshot.leases), 'batches/s', count(snapshot.batchesPerSecond)],
      ['tails', count(snapshot.tails), 'batch size', snapshot.batchSize.toFixed(1)],
    ],
    [1, 3],
    '  ',
  );
  const phases = [
    ['io', phaseMs.ioContributions],
    ['deletions', phaseMs.ioDeletions],
    ['input', phaseMs.clientInput],
    ['catch-up', phaseMs.catchUp],
    ['commit', phaseMs.commit],
  ] as const;
  const details = formatTable(
    [
      ['phase ms', phases.map(([name, ms]) => `${name} ${milliseconds(ms)}`).join('  ')],
      ['totals', `appends ${count(totals.appends)}  delivered ${count(totals.entriesDelivered)}  errors ${count(totals.errors)}  trimmed ${count(totals.trimmedEntries)}`],
      ['top logs', snapshot.topLogs.length === 0 ? 'none' : ''],
    ],
    [],
    '  ',
  );
  const topLogs =
    snapshot.topLogs.length === 0
      ? ''
      : formatTable([['log', 'appends/s', 'length'], ...snapshot.topLogs.map((log) => [`${log.site}/${log.log}`, count(log.appendsPerSecond), count(log.length)])], [1, 2], '    ');
  return heading + gauges + details + topLogs;
}

/** `--watch` without a number means every second: parseArgs has no optional values. */
function withWatchDefault(argv: string[]): string[] {
  return argv.map((arg, index) => (arg === '--watch' && !/^\d/.test(argv[index + 1] ?? '') ? `--watch=${WATCH_SECONDS_DEFAULT}` : arg));
}

export async function stats(argv: string[]): Promise<void> {
  const flags = parseCommandArgs(
    {
      args: withWatchDefault(argv),
      options: {
        url: { type: 'string', default: DEFAULT_URL },
        json: { type: 'boolean' },
        watch: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    },
    STATS_HELP,
  );
  if (flags.help) {
    process.stdout.write(STATS_HELP);
    return;
  }
  const server = serverUrl(flags.url, STATS_HELP);
  const watchSeconds = flags.watch === undefined ? undefined : integerFlag(flags.watch, '--watch', 1, STATS_HELP);
  const render = async (): Promise<string> => {
    const snapshot = (await fetchJson(server, '/stats')) as StatusSnapshot;
    return flags.json ? `${JSON.stringify(snapshot)}\n` : formatStatus(snapshot, server.host);
  };
  if (watchSeconds === undefined) {
    process.stdout.write(await render());
    return;
  }
  // Piped into a reader that stops (`| head`), watching is over.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    process.exit(0);
  });
  // Redraw in place on a terminal; piped, each snapshot follows the last. Ctrl-C ends it.
  for (let first = true; ; first = false) {
    const text = await render();
    const separator = flags.json ? '' : process.stdout.isTTY ? CLEAR_SCREEN : first ? '' : '\n';
    process.stdout.write(separator + text);
    await sleep(watchSeconds * 1000);
  }
}
