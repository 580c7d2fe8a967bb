// The rows of the daemon's network.ls answer as `docker network ls` shows them: a text table, the
// JSON objects of `--format json` (docker's keys, every value a string) and the fields `--filter`
// matches.
import type { FilterableNetwork } from './format.js';

/** A row of the daemon's network.ls answer. */
export interface LsRow {
  name: string;
  id: string;
  driver: string;
  internal: boolean;
  source?: string;
  fullId?: string;
  created?: string | null;
  scope?: string;
  ipv6?: boolean;
  labels?: Record<string, string>;
  /** The parent interface of a macvlan/ipvlan network. */
  parent?: string | null;
}

const COLUMNS: Array<[string, string]> = [['id', 'NETWORK ID'], ['name', 'NAME'], ['driver', 'DRIVER'], ['subnets', 'SUBNETS'], ['internal', 'INTERNAL'], ['endpoints', 'ENDPOINTS'], ['bridge', 'BRIDGE'], ['parent', 'PARENT'], ['source', 'SOURCE']];

export function filterable(r: LsRow): FilterableNetwork {
  return { Name: r.name, ID: r.fullId ?? r.id, Driver: r.driver, Scope: r.scope ?? 'local', Labels: r.labels ?? {}, Type: r.source === 'nsdns' ? 'custom' : 'builtin' };
}

/** `docker network ls --format json`: its keys, and its values as strings, as docker prints them. */
export function dockerLsJson(r: LsRow, trunc: boolean): Record<string, string> {
  const created = r.created ? new Date(r.created) : undefined;
  return {
    CreatedAt: created && !Number.isNaN(created.getTime()) ? `${created.toISOString().replace('T', ' ').replace('Z', '')} +0000 UTC` : '',
    Driver: r.driver,
    ID: trunc ? r.id : r.fullId ?? r.id,
    IPv6: String(r.ipv6 ?? false),
    Internal: String(r.internal),
    Labels: Object.entries(r.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(','),
    Name: r.name,
    Scope: r.scope ?? 'local',
  };
}

/** The default output of `network ls`: one aligned row per network; short ids unless `trunc` is false. */
export function lsTable(rows: readonly LsRow[], trunc: boolean): string {
  return table(rows.map((r) => ({ ...r, id: trunc ? r.id : r.fullId ?? r.id })), COLUMNS);
}

function table(rows: Array<Record<string, unknown>>, columns: Array<[string, string]>): string {
  const cells = [columns.map(([, title]) => title), ...rows.map((r) => columns.map(([key]) => formatCell(r[key])))];
  const widths = columns.map((_, i) => Math.max(...cells.map((c) => c[i].length)));
  return cells.map((c) => c.map((v, i) => v.padEnd(widths[i])).join('   ').trimEnd()).join('\n');
}

function formatCell(v: unknown): string {
  if (Array.isArray(v)) return v.join(',');
  if (v === null || v === undefined) return '-';
  return String(v);
}
