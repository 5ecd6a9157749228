// The `tailgrove` command: dispatches to one module per command. Each is loaded only when
// run, so `tailgrove token` does not load the server.
import { fail } from './cli/usage.js';

const HELP = `Usage: tailgrove <command> [options]

Commands:
  serve     run the server
  token     mint a device token
  revoke    revoke tokens by id, device or user, or list the revocations
  stats     show a running server's status, once or every few seconds
  bench     run the load generator (bench/load.js)

tailgrove <command> --help describes a command's options.
`;

type Command = (argv: string[]) => Promise<void> | void;

const COMMANDS: Record<string, () => Promise<Command>> = {
  serve: async () => (await import('./main.js')).main,
  token: async () => (await import('./cli/token.js')).token,
  revoke: async () => (await import('./cli/revoke.js')).revoke,
  stats: async () => (await import('./cli/stats.js')).stats,
  bench: async () => (await import('./cli/bench.js')).bench,
};

export async function cli(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(HELP);
    return;
  }
  if (name === undefined) fail('a command is required', HELP);
  const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (load === undefined) fail(`unknown command "${name}"`, HELP);
  const command = await load();
  await command(rest);
}
