// The admin HTTP API on the server's port: revoke tokens by id, device or user, and list the
// revocations. Requests carry an admin token (`Authorization: Bearer …`): a session token
// with a grant of right `a` on site `*`.
import type uWS from 'uWebSockets.js';
import type { Revocation, RevocationKind, Revocations } from '../auth/revocations.js';
import { TokenRejected, type TokenVerifier } from '../auth/token.js';

export interface AdminApiOptions {
  verify: TokenVerifier;
  revocations: Revocations;
  /** Apply the revocations to live sessions; returns how many sessions lost a token or grant. */
  applyRevocations: () => number;
}

const BODY_BYTES_MAX = 16 * 1024;
// A device or user revocation lasts this long unless the request says otherwise: longer
// than the lifetime of the tokens it must refuse.
const REVOCATION_SECONDS_DEFAULT = 30 * 86400;

class HttpError extends Error {
  readonly status: string;
  constructor(status: string, message: string) {
    super(message);
    this.status = status;
  }
}

function readBody(res: uWS.HttpResponse): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    res.onData((chunk, isLast) => {
      length += chunk.byteLength;
      if (length > BODY_BYTES_MAX) {
        reject(new HttpError('413 Payload Too Large', `the body is limited to ${BODY_BYTES_MAX} bytes`));
        return;
      }
      chunks.push(Buffer.from(chunk.slice(0)));
      if (isLast) resolve(Buffer.concat(chunks));
    });
  });
}

function authorize(verify: TokenVerifier, header: string): void {
  const match = /^Bearer (.+)$/.exec(header);
  if (match === null) throw new HttpError('401 Unauthorized', 'send an admin token: Authorization: Bearer <token>');
  try {
    const claims = verify.session(match[1]!);
    if (!claims.grants.some((grant) => grant.site === '*' && grant.rights.includes('a'))) {
      throw new HttpError('403 Forbidden', 'this token has no admin grant (right "a" on site "*")');
    }
  } catch (error) {
    if (error instanceof TokenRejected) throw new HttpError('401 Unauthorized', error.message);
    throw error;
  }
}

function parseRevocation(body: Buffer): Revocation {
  let request: Record<string, unknown>;
  try {
    request = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new HttpError('400 Bad Request', 'the body must be JSON');
  }
  const kinds = (['jti', 'device', 'user'] as const).filter((kind) => request[kind] !== undefined);
  if (kinds.length !== 1 || typeof request[kinds[0]!] !== 'string' || (request[kinds[0]!] as string).length === 0) {
    throw new HttpError('400 Bad Request', 'give exactly one of "jti", "device" or "user", a non-empty string');
  }
  const now = Math.floor(Date.now() / 1000);
  const expiresAt = request.expiresAt ?? now + REVOCATION_SECONDS_DEFAULT;
  if (typeof expiresAt !== 'number' || !Number.isInteger(expiresAt) || expiresAt <= now) {
    throw new HttpError('400 Bad Request', '"expiresAt" is a time in seconds since the epoch, in the future');
  }
  const kind: RevocationKind = kinds[0]!;
  return { kind, value: request[kind] as string, revokedAt: now, expiresAt };
}

export function registerAdminApi(app: uWS.TemplatedApp, options: AdminApiOptions): void {
  const respond = (res: uWS.HttpResponse, status: string, value: unknown): void => {
    res.cork(() => res.writeStatus(status).writeHeader('content-type', 'application/json').end(`${JSON.stringify(value)}\n`));
  };
  const handle = (res: uWS.HttpResponse, work: () => Promise<unknown>): void => {
    let aborted = false;
    res.onAborted(() => (aborted = true));
    work().then(
      (value) => aborted || respond(res, '200 OK', value),
      (error: Error) => aborted || respond(res, error instanceof HttpError ? error.status : '500 Internal Server Error', { error: error.message }),
    );
  };
  app.post('/admin/revoke', (res, req) => {
    const authorization = req.getHeader('authorization');
    const body = readBody(res);
    handle(res, async () => {
      authorize(options.verify, authorization);
      const revocation = parseRevocation(await body);
      await options.revocations.add(revocation);
      return { revocation, sessions: options.applyRevocations() };
    });
  });
  app.get('/admin/revocations', (res, req) => {
    const authorization = req.getHeader('authorization');
    handle(res, async () => {
      authorize(options.verify, authorization);
      return { revocations: options.revocations.list() };
    });
  });
}
