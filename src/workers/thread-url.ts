// The URL of a thread's entry module next to `base`: .js when running from dist/, .ts when
// running the sources under tsx (tests), so both run the same code.
export function threadUrl(relative: string, base: string): URL {
  const extension = base.endsWith('.ts') ? '.ts' : '.js';
  return new URL(`${relative}${extension}`, base);
}
