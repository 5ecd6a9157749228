// `tailgrove token`: mint a device token with the server's secret.
import { mintToken, type Grant } from '../auth/token.js';
import { findSecret } from './secret.js';
import { fail, integerFlag, parseCommandArgs } from './usage.js';

export const TOKEN_HELP = `Usage: tailgrove token --user <id> --device <id> --grant <site:rights> [options]

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

function parseGrant(text: string): Grant {
  const match = /^(.+):([rwsa]+)$/.exec(text);
  if (match === null) fail(`grant "${text}" is not site:rights (rights from r, w, s, a)`, TOKEN_HELP);
  return { site: match[1]!, rights: match[2]! };
}

export function token(argv: string[]): void {
  const flags = parseCommandArgs(
    {
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
    },
    TOKEN_HELP,
  );
  if (flags.help) {
    process.stdout.write(TOKEN_HELP);
    return;
  }
  if (flags.user === undefined || flags.device === undefined) fail('--user and --device are required', TOKEN_HELP);
  const expiresInSeconds = integerFlag(flags['expires-in'], '--expires-in', 1, TOKEN_HELP);
  const secret = findSecret(flags, TOKEN_HELP);
  if (flags.grant === undefined || flags.grant.length === 0) fail('at least one --grant is required: a token without grants can lease nothing', TOKEN_HELP);
  const grants = flags.grant.map(parseGrant);
  const options = { expiresInSeconds, ...(flags.jti === undefined ? {} : { jti: flags.jti }), ...(flags.kid === undefined ? {} : { kid: flags.kid }) };
  process.stdout.write(`${mintToken({ sub: flags.user, device: flags.device, grants }, secret, options)}\n`);
}
