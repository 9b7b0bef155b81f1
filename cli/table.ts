// Plain-text tables for the CLI, kubectl style: upper-case headers, columns
// padded to their widest cell, three spaces apart; no colours, so the output
// reads the same in a terminal, a log and a test.

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('   ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

/** Epoch ms as an ISO time and how far away it is, e.g. `2025-01-01T10:00:00.000Z (in 42 s)`. */
export function when(ms: number | undefined, now = Date.now()): string {
  if (ms === undefined) return 'unknown';
  const s = Math.round((ms - now) / 1000);
  return `${new Date(ms).toISOString()} (${s >= 0 ? `in ${s} s` : `${-s} s ago`})`;
}
