// The bench's TSV files and the arithmetic on their columns, shared by report.ts (one run) and
// compare-report.ts (two builds). Only reads files.
import { existsSync, readFileSync } from 'node:fs';

export type Row = Record<string, string>;

/** The rows of a TSV file with a header line, keyed by column; [] when the file is not there. */
export function readTsv(file: string): Row[] {
  if (!existsSync(file)) return [];
  const [head, ...lines] = readFileSync(file, 'utf8').trim().split('\n');
  const cols = head.split('\t');
  return lines.filter(Boolean).map((l) => Object.fromEntries(l.split('\t').map((v, i) => [cols[i], v])));
}

/** The median of the finite values; NaN when there are none. */
export function median(values: number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
}

/** A cell as a number: "-" and "" (no figure) are NaN. */
export const num = (s: string | undefined) => (s === undefined || s === '-' || s === '' ? NaN : Number(s));
export const fmt = (x: number, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '-');
export const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : '-');
