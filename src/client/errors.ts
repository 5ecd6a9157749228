// The one error type the client rejects with. `code` is the protocol's error name (GONE,
// FENCED, …) or one of the client's own (CLOSED, DISCONNECTED, AT_MISMATCH, …), so callers
// branch on a string, never on a message.
import { unpack } from 'msgpackr';
import { ERROR_NAMES } from '../net/protocol.js';

export class TailgroveError extends Error {
  readonly code: string;
  /** Details from the server's payload (e.g. `earliest` for GONE, `tail` for AT_MISMATCH). */
  [detail: string]: unknown;

  constructor(code: string, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = 'TailgroveError';
    // Details first, so a payload key can never overwrite the code or the message.
    Object.assign(this, details);
    this.code = code;
  }
}

/** The error an `_error` frame carries: its name as `code`, its msgpack details as properties. */
export function errorFromPayload(wireCode: number, payload: Uint8Array): TailgroveError {
  let decoded: unknown;
  try {
    decoded = payload.byteLength > 0 ? unpack(payload) : undefined;
  } catch {
    decoded = undefined;
  }
  // Only a msgpack map is a payload (msgpackr decodes some invalid bytes to odd objects).
  const fields = isPlainObject(decoded) ? decoded : {};
  const code = typeof fields.name === 'string' ? fields.name : (ERROR_NAMES[wireCode] ?? `ERROR_${wireCode}`);
  const message = typeof fields.message === 'string' ? fields.message : code;
  const details: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) {
    if (key !== 'code' && key !== 'name' && key !== 'message') details[key] = value;
  }
  return new TailgroveError(code, message, details);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype;
}
