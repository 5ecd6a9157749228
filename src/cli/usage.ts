// Argument handling shared by the commands: a bad invocation prints why and the command's
// usage on stderr and exits 2; a failure at run time (the server refused, or is not there)
// exits 1.
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A bad invocation: the reason and `help` on stderr, exit 2. */
export function fail(message: string, help: string): never {
  process.stderr.write(`tailgrove: ${message}\n\n${help}`);
  process.exit(2);
}

/** A failure at run time: the reason on stderr, exit 1. */
export function abort(message: string): never {
  process.stderr.write(`tailgrove: ${message}\n`);
  process.exit(1);
}

/** `parseArgs` in strict mode (unknown flags and stray arguments are errors) that fails with `help`. */
export function parseCommandArgs<T extends ParseArgsConfig>(config: T, help: string): ReturnType<typeof parseArgs<T>>['values'] {
  try {
    return parseArgs(config).values;
  } catch (error) {
    fail((error as Error).message, help);
  }
}

/** The integer in `text`, at least `min`, or fail naming `flag`. */
export function integerFlag(text: string, flag: string, min: number, help: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value < min) fail(`${flag} must be an integer ≥ ${min} (got "${text}")`, help);
  return value;
}
