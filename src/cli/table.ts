// Plain-text tables for terminal output: columns padded to their widest cell.

/** `rows` as lines; the columns listed in `rightAligned` (numbers) are padded on the left. */
export function formatTable(rows: readonly (readonly string[])[], rightAligned: readonly number[] = [], indent = ''): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, column) => (widths[column] = Math.max(widths[column] ?? 0, cell.length)));
  return rows
    .map((row) => indent + row.map((cell, column) => (rightAligned.includes(column) ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!))).join('  ').trimEnd())
    .map((line) => `${line}\n`)
    .join('');
}
