export { formatBytesPlain as formatBytes } from '../fs/units.js';

export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

/** An ISO time as `2026-12-01 22:49:18 UTC` (tables) */
export function formatTime(iso: string): string {
  return iso.replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

/** An age in seconds as `45s`, `12m`, `5h 3m`, `3d 4h` */
export function formatAge(seconds: number): string {
  if (seconds < 60) return `${seconds}s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  const d = Math.floor(h / 24);
  return `${d}d ${h % 24}h`;
}

/** A plain-text table with a header row, like Symfony's table helper that Magento prints. */
export function renderTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = '+' + widths.map((w) => '-'.repeat(w + 2)).join('+') + '+';
  const fmt = (cells: string[]) => '| ' + cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ') + ' |';
  return [line, fmt(headers), line, ...rows.map(fmt), line].join('\n') + '\n';
}
