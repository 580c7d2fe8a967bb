// `--format` and `--filter` as docker takes them, for `network ls` and `network inspect`: a small
// subset of Go templates ({{.Name}}, {{.IPAM.Config}}, {{json .Options}}, {{range .X}}...{{end}})
// and docker's filter keys (name, id, driver, label). Client side only: the daemon sends the data.
import { UsageError } from './options.js';

type Node =
  | { kind: 'text'; text: string }
  | { kind: 'value'; path: string[]; json: boolean }
  | { kind: 'range'; path: string[]; body: Node[] };

const MAX_TEMPLATE = 4096;

/** Parses a template once; a template it does not understand is a usage error, as docker's are. */
export function compileTemplate(template: string): (data: unknown) => string {
  if (template.length > MAX_TEMPLATE) throw new UsageError(`--format: the template is over ${MAX_TEMPLATE} characters`);
  const tokens = template.split(/(\{\{-?\s*[^}]*?\s*-?\}\})/);
  let i = 0;
  const parse = (inRange: boolean): Node[] => {
    const nodes: Node[] = [];
    while (i < tokens.length) {
      const token = tokens[i++];
      const action = /^\{\{-?\s*(.*?)\s*-?\}\}$/s.exec(token);
      if (!action) {
        if (token) nodes.push({ kind: 'text', text: token.replace(/\\n/g, '\n').replace(/\\t/g, '\t') });
        continue;
      }
      const words = action[1].split(/\s+/);
      if (words[0] === 'end') {
        if (!inRange) throw templateError(`{{end}} without {{range}}`);
        return nodes;
      }
      if (words[0] === 'range' && words.length === 2) nodes.push({ kind: 'range', path: fieldPath(words[1]), body: parse(true) });
      else if (words[0] === 'json' && words.length === 2) nodes.push({ kind: 'value', path: fieldPath(words[1]), json: true });
      else if (words.length === 1) nodes.push({ kind: 'value', path: fieldPath(words[0]), json: false });
      else throw templateError(`"{{${action[1].slice(0, 40)}}}" is not supported (use {{.Field}}, {{json .Field}} or {{range .Field}}...{{end}})`);
    }
    if (inRange) throw templateError('{{range}} without {{end}}');
    return nodes;
  };
  const nodes = parse(false);
  return (data) => render(nodes, data);
}

function templateError(message: string): UsageError {
  return new UsageError(`--format: ${message}`);
}

/** `.IPAM.Config` → ['IPAM', 'Config']; `.` → []. */
function fieldPath(text: string): string[] {
  if (text === '.') return [];
  if (!/^(\.[A-Za-z_][A-Za-z0-9_]*)+$/.test(text)) throw templateError(`"${text.slice(0, 40)}" is not a field (like .Name or .IPAM.Config)`);
  return text.slice(1).split('.');
}

function lookup(data: unknown, path: readonly string[]): unknown {
  let value = data;
  for (const [n, key] of path.entries()) {
    if (value === null || typeof value !== 'object' || Array.isArray(value) || !Object.hasOwn(value, key)) {
      throw new UsageError(`--format: no field .${path.slice(0, n + 1).join('.')}`);
    }
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

function render(nodes: readonly Node[], data: unknown): string {
  let out = '';
  for (const node of nodes) {
    if (node.kind === 'text') out += node.text;
    else if (node.kind === 'value') {
      const value = lookup(data, node.path);
      out += node.json ? JSON.stringify(value ?? null) : goText(value);
    } else {
      const value = lookup(data, node.path);
      const items = Array.isArray(value) ? value : value !== null && typeof value === 'object' ? Object.keys(value).sort().map((k) => (value as Record<string, unknown>)[k]) : [];
      for (const item of items) out += render(node.body, item);
    }
  }
  return out;
}

/** Values printed as Go's text/template prints them: [a b] for lists, map[k:v] for objects. */
function goText(value: unknown): string {
  if (value === null || value === undefined) return '<no value>';
  if (Array.isArray(value)) return `[${value.map(goText).join(' ')}]`;
  if (typeof value === 'object') return `map[${Object.keys(value).sort().map((k) => `${k}:${goText((value as Record<string, unknown>)[k])}`).join(' ')}]`;
  return String(value);
}

/** docker's filter keys for networks; each `--filter key=value`. */
const FILTER_KEYS = ['name', 'id', 'driver', 'label', 'scope', 'type'] as const;
type FilterKey = (typeof FILTER_KEYS)[number];

export interface FilterableNetwork {
  Name: string;
  ID: string;
  Driver: string;
  Scope: string;
  Labels: Record<string, string>;
  /** docker's type filter: custom (made by nsdns network create) or builtin (a registry file's). */
  Type?: 'custom' | 'builtin';
}

/**
 * `--filter` values as docker combines them: values of one key are alternatives (name=a OR
 * name=b), different keys must all match. name is a substring, id a prefix, driver exact, label
 * KEY or KEY=VALUE.
 */
export function compileFilters(specs: readonly string[]): (n: FilterableNetwork) => boolean {
  const byKey = new Map<FilterKey, string[]>();
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    const key = spec.slice(0, eq) as FilterKey;
    if (eq <= 0 || !FILTER_KEYS.includes(key)) {
      throw new UsageError(`--filter "${spec.slice(0, 40)}": expected KEY=VALUE with KEY one of ${FILTER_KEYS.join(', ')}`);
    }
    byKey.set(key, [...(byKey.get(key) ?? []), spec.slice(eq + 1)]);
  }
  const test: Record<FilterKey, (n: FilterableNetwork, v: string) => boolean> = {
    name: (n, v) => n.Name.toLowerCase().includes(v.toLowerCase()),
    id: (n, v) => n.ID.startsWith(v.toLowerCase()),
    driver: (n, v) => n.Driver === v,
    scope: (n, v) => n.Scope === v,
    type: (n, v) => (n.Type ?? 'custom') === v,
    label: (n, v) => {
      const eq = v.indexOf('=');
      return eq < 0 ? Object.hasOwn(n.Labels, v) : n.Labels[v.slice(0, eq)] === v.slice(eq + 1);
    },
  };
  return (n) => [...byKey].every(([key, values]) => values.some((v) => test[key](n, v)));
}
