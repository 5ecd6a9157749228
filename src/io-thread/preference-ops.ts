// The notification preferences of a session's user — join, leave, mute, unmute, and this
// device's Web Push subscription — answered by the IO thread (`_ok` or `_error`, by rid) and
// persisted in LMDB (src/notify/preferences.ts). Off the hot path: msgpack and promises.
import { unpack } from 'msgpackr';
import { PREFIX_BYTES } from '../constants.js';
import { logPrefixesWith } from '../auth/token.js';
import { readUint16, readUint32 } from '../net/frame.js';
import { ERROR, HEADER_A, OP_JOIN, OP_LEAVE, OP_MUTE, OP_PUSH_SUBSCRIBE, OP_PUSH_UNSUBSCRIBE, OP_UNMUTE, PREFIX_HEADER_LENGTH, PREFIX_PAYLOAD_LENGTH } from '../net/protocol.js';
import type { Preferences } from '../notify/preferences.js';
import { NOT_CONNECTED, sessionGrants, type Connection } from './connection.js';
import { errorFrame, okFrame } from './control-frames.js';
import type { ControlledSocket } from './session-control.js';

const NAME_BYTES_MAX = 256;
const ENDPOINT_BYTES_MAX = 2048;
const MUTE_SECONDS_MAX = 10 * 365 * 86400;
const P256DH_BYTES = 65;
const AUTH_BYTES = 16;

export interface PreferenceOpsOptions {
  /** Undefined when notifications are off. */
  preferences: Preferences | undefined;
  webPush: boolean;
}

class Refusal extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.code = code;
  }
}

function bad(message: string): never {
  throw new Refusal(ERROR.BAD_REQUEST, message);
}

function siteOf(request: Record<string, unknown>): string {
  const { site } = request;
  if (typeof site !== 'string' || site.length === 0 || Buffer.byteLength(site) > NAME_BYTES_MAX || site.includes('\0')) {
    bad(`site is a non-empty string of at most ${NAME_BYTES_MAX} bytes without NUL`);
  }
  return site;
}

function endpointOf(request: Record<string, unknown>): string {
  const { endpoint } = request;
  if (typeof endpoint !== 'string' || !endpoint.startsWith('https://') || endpoint.length > ENDPOINT_BYTES_MAX) bad(`endpoint is an https URL of at most ${ENDPOINT_BYTES_MAX} characters`);
  return endpoint;
}

function base64urlBytes(value: unknown, length: number, name: string): string {
  if (typeof value !== 'string' || !/^[A-Za-z0-9_-]+=*$/.test(value) || Buffer.from(value, 'base64url').length !== length) bad(`keys.${name} is ${length} bytes in base64url`);
  return value;
}

export class PreferenceOps<Socket extends ControlledSocket> {
  private readonly options: PreferenceOpsOptions;

  constructor(options: PreferenceOpsOptions) {
    this.options = options;
  }

  handle(ws: Socket, bytes: Uint8Array, offset: number, op: number): void {
    const connection = ws.getUserData();
    const session = connection.session;
    const header = offset + PREFIX_BYTES;
    const rid = readUint32(bytes, header + HEADER_A);
    const payload = header + readUint16(bytes, offset + PREFIX_HEADER_LENGTH);
    const content = bytes.slice(payload, payload + readUint32(bytes, offset + PREFIX_PAYLOAD_LENGTH));
    // Answer only the session that asked (the socket may close while LMDB writes).
    const answer = (frame: Uint8Array): void => {
      if (connection.session === session && session !== NOT_CONNECTED) ws.send(frame, true);
    };
    this.apply(connection, op, content).then(
      () => answer(okFrame(rid, {})),
      (error: Error) => answer(error instanceof Refusal ? errorFrame(error.code, rid, 0, error.message) : errorFrame(ERROR.INTERNAL, rid, 0, `the preference was not saved: ${error.message}`)),
    );
  }

  private async apply(connection: Connection, op: number, content: Uint8Array): Promise<void> {
    const { preferences } = this.options;
    if (preferences === undefined) bad('offline notifications are off on this server (--notifications false)');
    let request: unknown;
    try {
      request = unpack(content);
    } catch {
      bad('the payload must be a msgpack map');
    }
    if (typeof request !== 'object' || request === null || Array.isArray(request)) bad('the payload must be a msgpack map');
    const fields = request as Record<string, unknown>;
    const user = connection.claims!.sub;
    switch (op) {
      case OP_JOIN: {
        const site = siteOf(fields);
        const logs = logPrefixesWith(sessionGrants(connection), site, 'r');
        if (logs === undefined) throw new Refusal(ERROR.FORBIDDEN, `no grant to read site ${site}: joining it would notify of logs this user may not read`);
        return preferences.join(user, site, logs);
      }
      case OP_LEAVE:
        return preferences.leave(user, siteOf(fields));
      case OP_MUTE: {
        const site = siteOf(fields);
        const { seconds } = fields;
        if (typeof seconds !== 'number' || !Number.isInteger(seconds) || seconds < 1 || seconds > MUTE_SECONDS_MAX) bad(`seconds is an integer from 1 to ${MUTE_SECONDS_MAX}`);
        return preferences.mute(user, site, Math.floor(Date.now() / 1000) + seconds);
      }
      case OP_UNMUTE:
        return preferences.unmute(user, siteOf(fields));
      case OP_PUSH_SUBSCRIBE: {
        if (!this.options.webPush) bad('Web Push is off on this server (--web-push false)');
        const endpoint = endpointOf(fields);
        const keys = fields.keys as Record<string, unknown> | undefined;
        if (typeof keys !== 'object' || keys === null) bad('keys is a map { p256dh, auth }');
        const p256dh = base64urlBytes(keys.p256dh, P256DH_BYTES, 'p256dh');
        const auth = base64urlBytes(keys.auth, AUTH_BYTES, 'auth');
        return preferences.subscribe(user, connection.claims!.device, { endpoint, keys: { p256dh, auth } });
      }
      case OP_PUSH_UNSUBSCRIBE:
        await preferences.unsubscribe(user, endpointOf(fields));
        return;
      default:
        bad(`op ${op} is no preference`);
    }
  }
}
