// `tailgrove revoke`: revoke tokens by id, device or user through a running server's admin
// API, or list the revocations. Without --token it signs a short-lived admin token with the
// server's secret.
import type { Revocation, RevocationKind } from '../auth/revocations.js';
import { mintToken } from '../auth/token.js';
import { DEFAULT_URL, fetchJson, serverUrl } from './http.js';
import { findSecret } from './secret.js';
import { formatTable } from './table.js';
import { fail, integerFlag, parseCommandArgs } from './usage.js';

export const REVOKE_HELP = `Usage: tailgrove revoke (--jti <id> | --device <id> | --user <id>) [options]
       tailgrove revoke --list [options]

Revokes through the admin API of a running server (POST /admin/revoke): the tokens are
refused from now on, and live sessions holding them lose their leases.

  --jti <id>          one token, by its token id
  --device <id>       every token of this device issued up to now
  --user <id>         every token of this user issued up to now
  --seconds <n>       how long the revocation lasts (default: the server's, 30 days);
                      make it longer than the revoked tokens live
  --list              list the revocations instead (GET /admin/revocations)
  --url <url>         the server (default ${DEFAULT_URL})
  --token <token>     an admin token (grant '*:a'); by default one is signed with the secret:
  --secret <string>   the server's secret (default: TAILGROVE_SECRET, else <data>/secret)
  --data <dir>        the data directory holding the development secret (default ./data)
`;

const KIND_NAMES: Record<RevocationKind, string> = { jti: 'token id', device: 'device', user: 'user' };
// Long enough for one request, short enough to be harmless if it leaks from a process list.
const ADMIN_TOKEN_SECONDS = 60;
const CLI_IDENTITY = 'tailgrove-cli';

function formatTime(seconds: number): string {
  return new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function formatRevocations(revocations: readonly Revocation[]): string {
  if (revocations.length === 0) return 'no revocations\n';
  const rows = revocations.map((revocation) => [KIND_NAMES[revocation.kind] ?? revocation.kind, revocation.value, formatTime(revocation.revokedAt), formatTime(revocation.expiresAt)]);
  return formatTable([['kind', 'value', 'revoked at', 'expires at'], ...rows]);
}

export async function revoke(argv: string[]): Promise<void> {
  const flags = parseCommandArgs(
    {
      args: argv,
      options: {
        jti: { type: 'string' },
        device: { type: 'string' },
        user: { type: 'string' },
        seconds: { type: 'string' },
        list: { type: 'boolean' },
        url: { type: 'string', default: DEFAULT_URL },
        token: { type: 'string' },
        secret: { type: 'string' },
        data: { type: 'string', default: './data' },
        help: { type: 'boolean', short: 'h' },
      },
    },
    REVOKE_HELP,
  );
  if (flags.help) {
    process.stdout.write(REVOKE_HELP);
    return;
  }
  const targets = (['jti', 'device', 'user'] as const).filter((kind) => flags[kind] !== undefined);
  if (flags.list && (targets.length > 0 || flags.seconds !== undefined)) fail('--list takes no --jti, --device, --user or --seconds', REVOKE_HELP);
  if (!flags.list && targets.length !== 1) fail('give exactly one of --jti, --device or --user (or --list)', REVOKE_HELP);
  if (targets.some((kind) => flags[kind] === '')) fail(`--${targets[0]} must not be empty`, REVOKE_HELP);
  const seconds = flags.seconds === undefined ? undefined : integerFlag(flags.seconds, '--seconds', 1, REVOKE_HELP);
  const server = serverUrl(flags.url, REVOKE_HELP);
  const adminToken =
    flags.token ?? mintToken({ sub: CLI_IDENTITY, device: CLI_IDENTITY, grants: [{ site: '*', rights: 'a' }] }, findSecret(flags, REVOKE_HELP), { expiresInSeconds: ADMIN_TOKEN_SECONDS });
  const authorization = { authorization: `Bearer ${adminToken}` };

  if (flags.list) {
    const reply = (await fetchJson(server, '/admin/revocations', { headers: authorization })) as { revocations: Revocation[] };
    process.stdout.write(formatRevocations(reply.revocations));
    return;
  }
  const kind = targets[0]!;
  const request = { [kind]: flags[kind], ...(seconds === undefined ? {} : { expiresAt: Math.floor(Date.now() / 1000) + seconds }) };
  const reply = (await fetchJson(server, '/admin/revoke', {
    method: 'POST',
    headers: { ...authorization, 'content-type': 'application/json' },
    body: JSON.stringify(request),
  })) as { revocation: Revocation; sessions: number };
  const { revocation, sessions } = reply;
  process.stdout.write(
    `revoked ${KIND_NAMES[revocation.kind] ?? revocation.kind} "${revocation.value}" until ${formatTime(revocation.expiresAt)}\n` +
      `${sessions} live session${sessions === 1 ? '' : 's'} affected\n`,
  );
}
