// `tailgrove bench`: the repository's load generator (bench/load.js) with the given
// arguments, in a child process that shares this terminal.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { constants } from 'node:os';

const BENCH_INTRO = `Usage: tailgrove bench [load options]

Runs the load generator bench/load.js: writers pipelining appends and tailers against a
server it spawns (or a running one with --url and --secret), then prints a table and one
JSON line with every figure. The options are the load script's own:

`;

// From dist/cli/ or src/cli/ alike: the repository's bench/ folder.
const LOAD_SCRIPT = fileURLToPath(new URL('../../bench/load.js', import.meta.url));

function missingScript(): never {
  process.stderr.write(
    `tailgrove: the load script ${LOAD_SCRIPT} is absent: it ships with the source repository, not with the npm package; run tailgrove bench from a clone\n`,
  );
  process.exit(2);
}

export async function bench(argv: string[]): Promise<void> {
  const wantsHelp = argv.includes('--help') || argv.includes('-h');
  if (wantsHelp) process.stdout.write(BENCH_INTRO);
  if (!existsSync(LOAD_SCRIPT)) missingScript();
  if (wantsHelp) {
    const help = spawnSync(process.execPath, [LOAD_SCRIPT, '--help'], { encoding: 'utf8' });
    process.stdout.write(help.stdout);
    return;
  }
  const child = spawn(process.execPath, [LOAD_SCRIPT, ...argv], { stdio: 'inherit' });
  // Ctrl-C reaches the load script too (same process group): it stops its server and
  // reports; this process only waits for it. SIGTERM is passed on.
  const ignore = (): void => {};
  const forward = (): void => void child.kill('SIGTERM');
  process.on('SIGINT', ignore);
  process.on('SIGTERM', forward);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('exit', (...outcome) => resolve(outcome)));
  process.off('SIGINT', ignore);
  process.off('SIGTERM', forward);
  process.exitCode = signal === null ? (code ?? 1) : 128 + constants.signals[signal];
}
