// Retention rules: which logs keep how much. The first rule whose site and log patterns match
// a log applies to it (docs/CONFIGURATION.md).
import type { RetentionRule } from '../retention/rules.js';
import { ConfigError, didYouMean, fail, integer, isObject, text, within, type Kind, type Where } from './values.js';

export type { RetentionRule };

const RULE_LIMITS = ['maxEntries', 'maxBytes', 'maxAgeSeconds'] as const;
type RuleLimit = (typeof RULE_LIMITS)[number];
const RULE_KEYS: readonly string[] = ['site', 'log', ...RULE_LIMITS];

const pattern = (what: string): Kind<string> =>
  text('<pattern>', `a ${what} name, a prefix ending in "*", or "*"`, (value) => value !== '' && !value.slice(0, -1).includes('*'));
const SITE = pattern('site');
const LOG = pattern('log');
const COUNT = integer(1);

function parseRule(value: unknown, where: Where): RetentionRule {
  if (!isObject(value)) return fail(where(), 'a rule like {"site": "*", "maxEntries": 100000}', value);
  for (const key of Object.keys(value)) {
    if (!RULE_KEYS.includes(key)) throw new ConfigError(`config: unknown key ${where(`.${key}`)}${didYouMean(key, RULE_KEYS.map((known) => [known, known]))}`);
  }
  const rule: RetentionRule = { site: SITE.parse(value.site, within(where, '.site')) };
  if (value.log !== undefined) rule.log = LOG.parse(value.log, within(where, '.log'));
  for (const limit of RULE_LIMITS) {
    if (value[limit] !== undefined) rule[limit] = COUNT.parse(value[limit], within(where, `.${limit}`));
  }
  if (!RULE_LIMITS.some((limit) => rule[limit] !== undefined)) throw new ConfigError(`config: ${where()} needs at least one of ${RULE_LIMITS.join(', ')}`);
  return rule;
}

/** An array of rules: JSON text from a flag or the environment, or an array in a config file. */
export const retentionRules: Kind<RetentionRule[]> = {
  arg: '<json>',
  parse(value, where) {
    const expected = 'a JSON array of retention rules';
    let rules = value;
    if (typeof value === 'string') {
      try {
        rules = JSON.parse(value);
      } catch {
        fail(where(), expected, value);
      }
    }
    if (!Array.isArray(rules)) return fail(where(), expected, value);
    return rules.map((rule, index) => parseRule(rule, within(where, `[${index}]`)));
  },
};

/** The rules, then, when any limit is given, a last rule for every site: the default of logs no earlier rule matches. */
export function withDefaultRule(rules: readonly RetentionRule[], limits: Pick<RetentionRule, RuleLimit>): RetentionRule[] {
  const fallback: RetentionRule = { site: '*' };
  for (const limit of RULE_LIMITS) {
    if (limits[limit] !== undefined) fallback[limit] = limits[limit];
  }
  return RULE_LIMITS.some((limit) => fallback[limit] !== undefined) ? [...rules, fallback] : [...rules];
}
