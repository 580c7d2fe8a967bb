// The health check as a person types it: `--health tcp:8080` or `--health http:8080/healthz`, and
// durations as docker takes them (`5s`, `500ms`, `1m30s`). Pure parsing: the planner judges the
// check with it, the CLI reads durations with it; the limits are registry/fields.ts's.

export interface HealthTarget {
  type: 'tcp' | 'http';
  port: number;
  path?: string;
}

const SPEC = /^(tcp|http):(\d{1,5})(\/[\x21-\x7e]*)?$/i;

/**
 * `tcp:PORT` or `http:PORT[/PATH]` (the path defaults to `/`); undefined when it is neither.
 * Path characters are checked again, with the length limit, by healthCheckSchema.
 */
export function parseHealthSpec(spec: unknown): HealthTarget | undefined {
  if (typeof spec !== 'string' || spec.length > 300) return undefined;
  const m = SPEC.exec(spec);
  if (!m) return undefined;
  const type = m[1].toLowerCase() as 'tcp' | 'http';
  const port = Number(m[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  if (type === 'tcp') return m[3] === undefined ? { type, port } : undefined;
  return { type, port, path: m[3] ?? '/' };
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * A duration in whole milliseconds: one or more NUMBER UNIT pairs (`ms`, `s`, `m`, `h`; decimals
 * allowed, as docker's `1.5s`), or `0`. Undefined for anything else, a bare number included
 * (docker: "missing unit in duration").
 */
export function parseDuration(text: unknown): number | undefined {
  if (typeof text !== 'string' || text.length === 0 || text.length > 40) return undefined;
  if (text === '0') return 0;
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let total = 0;
  let at = 0;
  for (let m = part.exec(text); m !== null; m = part.exec(text)) {
    total += Number(m[1]) * UNITS[m[2]];
    at = part.lastIndex;
  }
  if (at !== text.length || !Number.isFinite(total)) return undefined;
  return Math.round(total);
}

/** `5000` → `5s`, `1500` → `1.5s`, `250` → `250ms`: how inspect and messages show a duration. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  if (ms % 60_000 === 0 && ms >= 60_000) return `${ms / 60_000}m`;
  return `${ms / 1000}s`;
}
