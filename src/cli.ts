// The `tailgrove` command: `serve` runs the server, `token` mints a device token.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { mintToken, type Grant } from './auth/token.js';
import { main as serve } from './main.js';

const HELP = `Usage: tailgrove <command> [options]

Commands:
  serve     run the server (tailgrove serve --help)
  token     mint a device token (tailgrove token --help)
`;

const TOKEN_HELP = `Usage: tailgrove token --user <id> --device <id> --grant <site:rights> [options]

  --user <id>            the user (claim "sub")
  --device <id>          the device (claim "device")
  --grant <site:rights>  a grant, repeatable; rights are letters: r read, w write,
                         s signal, a admin; site "*" is every site, "team-*" a prefix.
                         Example: --grant acme:rw   (admin token: --grant '*:a')
  --jti <id>             a token id, so this one token can be revoked
  --kid <id>             the key id of --secret (when the server holds several)
  --expires-in <seconds> lifetime (default 86400)
  --secret <string>      the server's secret (default: TAILGROVE_SECRET, else <data>/secret)
  --data <dir>           the data directory holding the development secret (default ./data)
`;

function fail(message: string, help: string): never {
  process.stderr.write(`tailgrove: ${message}\n\n${help}`);
  process.exit(2);
}

function parseGrant(text: string): Grant {
  const match = /^(.+):([rwsa]+)$/.exec(text);
  if (match === null) fail(`grant "${text}" is not site:rights (rights from r, w, s, a)`, TOKEN_HELP);
  return { site: match[1]!, rights: match[2]! };
}

function token(argv: string[]): void {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        user: { type: 'string' },
        device: { type: 'string' },
        grant: { type: 'string', multiple: true },
        'expires-in': { type: 'string', default: '86400' },
        secret: { type: 'string' },
        jti: { type: 'string' },
        kid: { type: 'string' },
        data: { type: 'string', default: './data' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    fail((error as Error).message, TOKEN_HELP);
  }
  if (values.help) {
    process.stdout.write(TOKEN_HELP);
    return;
  }
  if (values.user === undefined || values.device === undefined) fail('--user and --device are required', TOKEN_HELP);
  const expiresInSeconds = Number(values['expires-in']);
  if (!Number.isInteger(expiresInSeconds) || expiresInSeconds <= 0) fail('--expires-in must be a positive integer', TOKEN_HELP);
  const secretFile = join(values.data!, 'secret');
  const secret = values.secret ?? (process.env.TAILGROVE_SECRET || undefined) ?? (existsSync(secretFile) ? readFileSync(secretFile, 'utf8').trim() : undefined);
  if (secret === undefined) fail(`no secret: pass --secret, set TAILGROVE_SECRET, or start the server once to create ${secretFile}`, TOKEN_HELP);
  if (secret.length < 16) fail('the secret must be at least 16 characters (the server refuses shorter ones)', TOKEN_HELP);
  if (values.grant === undefined || values.grant.length === 0) fail('at least one --grant is required: a token without grants can lease nothing', TOKEN_HELP);
  const grants = values.grant.map(parseGrant);
  const options = { expiresInSeconds, ...(values.jti === undefined ? {} : { jti: values.jti }), ...(values.kid === undefined ? {} : { kid: values.kid }) };
  process.stdout.write(`${mintToken({ sub: values.user, device: values.device, grants }, secret, options)}\n`);
}

export async function cli(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === 'serve') return serve(rest);
  if (command === 'token') return token(rest);
  if (command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(HELP);
    return;
  }
  if (command === undefined) fail('a command is required', HELP);
  fail(`unknown command "${command}"`, HELP);
}
