// The kinds of value in the configuration schema. Each parses a flag or environment string, or
// a config-file JSON value, into its type, or throws a ConfigError naming where it came from.
import { DEFAULT_KID } from '../auth/token.js';

export class ConfigError extends Error {}

/**
 * Names a value in messages: `--port`, `TAILGROVE_PORT`, `port in /etc/tailgrove.json`;
 * `part` names a piece of it: `retention[2].maxBytes in /etc/tailgrove.json`.
 */
export type Where = (part?: string) => string;

export interface Kind<T> {
  /** How the help shows the value after the flag, e.g. `<n>` or `<file>`. */
  arg: string;
  parse(value: unknown, where: Where): T;
}

const SECRET_LENGTH_MIN = 16;

export const within =
  (where: Where, part: string): Where =>
  (sub = '') =>
    where(part + sub);

export function fail(where: string, expected: string, value: unknown): never {
  throw new ConfigError(`config: ${where} must be ${expected}, got ${value === undefined ? 'nothing' : JSON.stringify(value)}`);
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Integers from JSON numbers or decimal strings (an empty string is not 0). */
export function integer(min: number, max = Number.MAX_SAFE_INTEGER): Kind<number> {
  const bounded = max !== Number.MAX_SAFE_INTEGER;
  const expected = bounded ? `an integer from ${min} to ${max}` : `an integer of at least ${min}`;
  return {
    arg: bounded ? `<${min}..${max}>` : `<${min}..>`,
    parse(value, where) {
      const number = typeof value === 'number' ? value : typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : NaN;
      if (!Number.isInteger(number) || number < min || number > max) fail(where(), expected, value);
      return number;
    },
  };
}

export const boolean: Kind<boolean> = {
  arg: '<true|false>',
  parse(value, where) {
    if (value === true || value === 'true') return true;
    if (value === false || value === 'false') return false;
    return fail(where(), 'true or false', value);
  },
};

export function oneOf<const T extends string>(values: readonly T[]): Kind<T> {
  return {
    arg: `<${values.join('|')}>`,
    parse(value, where) {
      if ((values as readonly unknown[]).includes(value)) return value as T;
      return fail(where(), `one of ${values.join(', ')}`, value);
    },
  };
}

export function text(arg: string, expected = 'a non-empty string', valid = (value: string) => value !== ''): Kind<string> {
  return {
    arg,
    parse(value, where) {
      if (typeof value !== 'string' || !valid(value)) fail(where(), expected, value);
      return value;
    },
  };
}

export const jsonFile = text('<file.json>', 'the path of a .json file', (path) => /\.json$/i.test(path));

// Secrets are never echoed in messages.
function checkSecret(value: unknown, where: string): string {
  if (typeof value !== 'string' || value.length < SECRET_LENGTH_MIN) throw new ConfigError(`config: ${where} must be at least ${SECRET_LENGTH_MIN} characters`);
  return value;
}

export const secret: Kind<string> = { arg: '<string>', parse: (value, where) => checkSecret(value, where()) };

const SECRETS_SHAPE = 'kid=secret pairs separated by commas';

function secretPairs(text: string, where: Where): [string, unknown][] {
  if (text === '') return [];
  return text.split(',').map((pair, index) => {
    const separator = pair.indexOf('=');
    if (separator <= 0) throw new ConfigError(`config: ${where()} must be ${SECRETS_SHAPE} (pair ${index + 1} is not)`);
    return [pair.slice(0, separator), pair.slice(separator + 1)];
  });
}

/** Secrets by key id: `kid=secret,...` text, or in a config file also an object `{ "kid": "secret" }`. */
export const secrets: Kind<Record<string, string>> = {
  arg: '<kid=secret,...>',
  parse(value, where) {
    const pairs = typeof value === 'string' ? secretPairs(value, where) : isObject(value) ? Object.entries(value) : undefined;
    if (pairs === undefined) throw new ConfigError(`config: ${where()} must be ${SECRETS_SHAPE}, or an object of secrets by key id`);
    const result: Record<string, string> = {};
    for (const [kid, secret] of pairs) {
      if (kid === DEFAULT_KID) throw new ConfigError(`config: ${where()} must not use key id "${DEFAULT_KID}": it is the key id of the secret option`);
      result[kid] = checkSecret(secret, where(`.${kid}`));
    }
    return result;
  },
};

/** Optimal string alignment distance: edits, with a swap of neighbours as one edit. */
function editDistance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    rows.push([i]);
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        rows[0].push(j);
        continue;
      }
      let best = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, rows[i - 2][j - 2] + 1);
      rows[i].push(best);
    }
  }
  return rows[a.length][b.length];
}

/**
 * ` (did you mean X?)` when `word` is a likely typo of a known name, else ''. Each candidate is
 * an alias to compare with and the name to suggest; case, "-" and "_" are ignored.
 */
export function didYouMean(word: string, candidates: readonly (readonly [alias: string, name: string])[]): string {
  const plain = (name: string): string => name.toLowerCase().replace(/[-_]/g, '');
  const near = Math.min(3, Math.max(1, Math.floor(plain(word).length / 3)));
  let best: { name: string; distance: number } | undefined;
  for (const [alias, name] of candidates) {
    const distance = editDistance(plain(word), plain(alias));
    if (distance <= near && (best === undefined || distance < best.distance)) best = { name, distance };
  }
  return best === undefined ? '' : ` (did you mean ${best.name}?)`;
}
