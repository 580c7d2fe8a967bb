// aardvark-dns's configuration directory as netavark writes it (netavark src/dns/aardvark.rs), read
// as hostile input: one file per network, `<network>` or `<network>%int` for an internal one.
//
//   line 1:      listen-ip[,listen-ip…][ dns-server[,…]]
//   other lines: <id> <ipv4[,…]> <ipv6[,…]> <name[,alias…]>[ <dns-server[,…]>]
//
// Columns are split on single spaces and may be empty; every netavark from 1.4 (line 1 with the
// gateways only, four columns) to today writes a subset of this. Names, aliases and ids compare in
// any case. aardvark has no subnets: a client is known by its exact address (the container's), so
// the networks made here have none and their endpoints' addresses decide who is whose tenant
// (registry/tenants.ts). Pure: the caller reads the file; nothing here does I/O, and no problem
// quotes the file's content.
import ipaddr from 'ipaddr.js';
import { z } from 'zod';
import { isServiceName } from '../wire/names.js';
import { derivedId } from '../registry/ids.js';
import { isIp, isIpv4, isIpv6, printable } from '../registry/fields.js';
import type { Endpoint, Network, NetworkRecord } from '../registry/types.js';

/** Written by the server into the directory: never a network. */
export const PID_FILE = 'aardvark.pid';
/** netavark renames a network's file to `<name>%int` when the network is internal. */
export const INTERNAL_SUFFIX = '%int';
/** The search domain Podman writes into containers: names answer under it too. */
export const PODMAN_DOMAIN = 'dns.podman';

export interface AardvarkLimits {
  /** Larger files are refused unread. */
  maxBytes: number;
  /** Container lines per file (an IPv4 /16 holds 65 534 containers). */
  maxContainers: number;
  maxLineLength: number;
  /** Names and aliases on one container line. */
  maxNames: number;
  /** Addresses in one column (listen ips, a container's IPv4 or IPv6 addresses). */
  maxAddresses: number;
  /** DNS servers in one column. */
  maxServers: number;
}

export const AARDVARK_LIMITS: AardvarkLimits = {
  maxBytes: 16 * 1024 * 1024,
  maxContainers: 65_536,
  maxLineLength: 8192,
  maxNames: 128,
  maxAddresses: 32,
  maxServers: 16,
};

/** One network of the directory: what the registry takes, and the addresses its DNS server listens on. */
export interface AardvarkNetwork {
  record: NetworkRecord;
  /** Gateway addresses to bind (IPv6 in canonical form), in the file's order. */
  listen: string[];
}

export type FileOutcome =
  | { kind: 'network'; network: AardvarkNetwork }
  /** `problem` names the file and what is wrong, never the content. */
  | { kind: 'refused'; problem: string }
  /** Not a network file (the pid file). */
  | { kind: 'ignored' };

/**
 * Podman's network names (libnetwork/util NameRegex) as a path component: never `.`, `..`, a
 * slash or a control character, whatever the directory holds.
 */
const NETWORK_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}$/;
/** netavark's SafeString allows any id without ',', ' ' or '\n'; Podman's are 64 hex digits. */
const CONTAINER_ID = /^[A-Za-z0-9_.-]{1,128}$/;

/** The network a file in the directory stands for, or why it stands for none. */
export function networkOfFile(fileName: string): { name: string; internal: boolean } | { problem: string } | undefined {
  if (fileName === PID_FILE) return undefined;
  const internal = fileName.endsWith(INTERNAL_SUFFIX);
  const name = internal ? fileName.slice(0, -INTERNAL_SUFFIX.length) : fileName;
  if (!NETWORK_NAME.test(name)) return { problem: 'not a network name (letters, digits, "_", "." and "-", starting with a letter or digit; "%int" may follow)' };
  return { name, internal };
}

const list = <T extends z.ZodType<string>>(item: T, max: number, what: string) => z.array(item).max(max, `more than ${max} ${what}`);

function fileSchema(limits: AardvarkLimits) {
  const ip = z.string().refine(isIp, 'not an IP address');
  const container = z.object({
    id: z.string().regex(CONTAINER_ID, 'not a container id (letters, digits, ".", "_", "-"; at most 128)'),
    ipv4: list(z.string().refine(isIpv4, 'not an IPv4 address'), limits.maxAddresses, 'IPv4 addresses'),
    ipv6: list(z.string().refine(isIpv6, 'not an IPv6 address'), limits.maxAddresses, 'IPv6 addresses'),
    names: list(z.string().refine(isServiceName, 'not a valid name (labels of letters, digits, "_" and "-" joined by ".")'), limits.maxNames, 'names')
      .min(1, 'no name'),
    servers: list(ip, limits.maxServers, 'DNS servers'),
  });
  return z.object({
    listen: list(ip, limits.maxAddresses, 'listen addresses').min(1, 'no listen address'),
    servers: list(ip, limits.maxServers, 'DNS servers'),
    containers: z.array(container),
  });
}

type FileSchema = ReturnType<typeof fileSchema>;
/** Built once per limits: building a zod schema costs more than parsing a small file with it. */
const schemas = new WeakMap<AardvarkLimits, FileSchema>();

function schemaFor(limits: AardvarkLimits): FileSchema {
  let schema = schemas.get(limits);
  if (schema === undefined) schemas.set(limits, (schema = fileSchema(limits)));
  return schema;
}

type FileData = z.output<FileSchema>;
type Container = FileData['containers'][number];

/** A column split on ',' (an empty column is an empty list). */
const column = (text: string | undefined) => (text === undefined || text === '' ? [] : text.split(','));

/** What the lines say, before validation, and the line number of each container entry. */
interface Tokens { data: unknown; lineOf: number[]; problems: string[] }

function tokenize(text: string, limits: AardvarkLimits): Tokens {
  const problems: string[] = [];
  const lineOf: number[] = [];
  const containers: unknown[] = [];
  let first: string[] | undefined;
  const lines = text.split('\n');
  for (let n = 0; n < lines.length && problems.length === 0; n++) {
    const line = lines[n];
    // aardvark skips empty lines, the last newline's among them.
    if (line === '') continue;
    if (line.length > limits.maxLineLength) {
      problems.push(`line ${n + 1}: longer than ${limits.maxLineLength} characters`);
      break;
    }
    // Columns past the known ones are ignored, as aardvark ignores them (room for a newer netavark).
    const parts = line.split(' ');
    if (first === undefined) {
      first = parts;
      continue;
    }
    if (parts.length < 4) {
      problems.push(`line ${n + 1}: ${parts.length} columns where at least 4 are expected (id, IPv4, IPv6, names[, DNS servers])`);
      break;
    }
    if (containers.length === limits.maxContainers) {
      problems.push(`more than ${limits.maxContainers} containers`);
      break;
    }
    containers.push({ id: parts[0], ipv4: column(parts[1]), ipv6: column(parts[2]), names: column(parts[3]), servers: column(parts[4]) });
    lineOf.push(n + 1);
  }
  if (first === undefined && problems.length === 0) problems.push('empty (line 1 must name the listen addresses)');
  return { data: { listen: column(first?.[0]), servers: column(first?.[1]), containers }, lineOf, problems };
}

const FIELD: Record<string, string> = { listen: 'listen address', servers: 'DNS server', ipv4: 'IPv4 address', ipv6: 'IPv6 address', names: 'name', id: 'id' };

/** A schema problem by its line and column, with a fixed message: never the offending value. */
function issueText(issue: z.core.$ZodIssue, lineOf: number[]): string {
  const path = issue.path;
  const inContainer = path[0] === 'containers' && typeof path[1] === 'number';
  const line = inContainer ? lineOf[path[1] as number] : 1;
  const rest = inContainer ? path.slice(2) : path;
  const field = FIELD[String(rest[0])] ?? String(rest[0] ?? '');
  const item = typeof rest[1] === 'number' ? ` ${rest[1] + 1}` : '';
  return `line ${line}: ${field}${item}: ${issue.message}`;
}

/** Entries of one container id merged: netavark appends without looking, and aardvark merges them. */
function merged(containers: Container[]): Container[] {
  const byId = new Map<string, Container>();
  for (const c of containers) {
    const id = c.id.toLowerCase();
    const seen = byId.get(id);
    if (!seen) {
      byId.set(id, { ...c, id });
      continue;
    }
    seen.ipv4 = [...new Set([...seen.ipv4, ...c.ipv4])];
    seen.ipv6 = [...new Set([...seen.ipv6, ...c.ipv6])];
    seen.names = [...new Set([...seen.names, ...c.names])];
    seen.servers = [...new Set([...seen.servers, ...c.servers])];
  }
  return [...byId.values()];
}

const canonical = (address: string) => ipaddr.parse(address).toString();

function toEndpoint(c: Container, network: string, internal: boolean): Endpoint {
  const names = [...new Set(c.names.map((n) => n.toLowerCase().replace(/\.$/, '')))];
  return {
    id: c.id,
    network,
    name: names[0],
    aliases: names.slice(1),
    ipv4: c.ipv4,
    ipv6: [...new Set(c.ipv6.map(canonical))],
    // aardvark takes DNS servers only on networks that forward.
    upstreams: internal ? [] : c.servers.map(canonical),
  };
}

const MAX_PROBLEMS = 5;

function refused(fileName: string, problems: readonly string[]): FileOutcome {
  const shown = problems.slice(0, MAX_PROBLEMS);
  if (problems.length > MAX_PROBLEMS) shown.push(`and ${problems.length - MAX_PROBLEMS} more`);
  return { kind: 'refused', problem: `${printable(fileName, 200)}: ${shown.join('; ')}` };
}

/** Parses one file of the directory (`fileName`: its name, no directory) into its network. */
export function parseAardvarkFile(fileName: string, bytes: Uint8Array, limits: AardvarkLimits = AARDVARK_LIMITS): FileOutcome {
  const of = networkOfFile(fileName);
  if (of === undefined) return { kind: 'ignored' };
  if ('problem' in of) return refused(fileName, [of.problem]);
  if (bytes.length > limits.maxBytes) return refused(fileName, [`larger than ${limits.maxBytes} bytes`]);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return refused(fileName, ['not UTF-8 text']);
  }
  const tokens = tokenize(text, limits);
  if (tokens.problems.length > 0) return refused(fileName, tokens.problems);
  const checked = schemaFor(limits).safeParse(tokens.data);
  if (!checked.success) return refused(fileName, checked.error.issues.map((i) => issueText(i, tokens.lineOf)));
  const { name, internal } = of;
  const data = checked.data;
  const network: Network = {
    name,
    id: derivedId('aardvark-network', name),
    subnets: [],
    internal,
    domain: PODMAN_DOMAIN,
    // aardvark answers `web` and `web.dns.podman`, never `web.<network>`: that name is forwarded.
    nameIsZone: false,
    upstreams: internal ? [] : data.servers.map(canonical),
  };
  // No name rules: a name or alias that is also another container's name answers every address
  // holding it, as aardvark answers (its names map to address lists). The daemon's files keep them.
  const endpoints = merged(data.containers).map((c) => toEndpoint(c, name, internal));
  return { kind: 'network', network: { record: { network, endpoints }, listen: [...new Set(data.listen.map(canonical))] } };
}
