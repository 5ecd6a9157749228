// The server's secret, for commands that sign tokens locally: --secret, else
// TAILGROVE_SECRET, else the development secret the server generated into <data>/secret.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from './usage.js';

// The server refuses shorter secrets: a token signed with one could never be accepted.
const SECRET_LENGTH_MIN = 16;

export function findSecret(flags: { secret?: string | undefined; data: string }, help: string): string {
  const secretFile = join(flags.data, 'secret');
  const secret = flags.secret ?? (process.env.TAILGROVE_SECRET || undefined) ?? (existsSync(secretFile) ? readFileSync(secretFile, 'utf8').trim() : undefined);
  if (secret === undefined) fail(`no secret: pass --secret, set TAILGROVE_SECRET, or start the server once to create ${secretFile}`, help);
  if (secret.length < SECRET_LENGTH_MIN) fail(`the secret must be at least ${SECRET_LENGTH_MIN} characters (the server refuses shorter ones)`, help);
  return secret;
}
