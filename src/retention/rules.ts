// Retention rules: which logs keep how much. A rule names a site and optionally a log, each
// exact, a prefix pattern ending in `*`, or `*`; the first rule that matches a log applies.

export interface RetentionRule {
  /** A site name, a prefix ending in `*` (`team-*`), or `*` for every site. */
  site: string;
  /** The same over log names; absent: every log of the site. */
  log?: string;
  maxEntries?: number;
  maxBytes?: number;
  maxAgeSeconds?: number;
}

function matches(pattern: string, name: string): boolean {
  if (pattern === '*') return true;
  if (pattern.endsWith('*')) return name.startsWith(pattern.slice(0, -1));
  return name === pattern;
}

export function retentionRuleFor(rules: readonly RetentionRule[], site: string, log: string): RetentionRule | undefined {
  return rules.find((rule) => matches(rule.site, site) && (rule.log === undefined || matches(rule.log, log)));
}
