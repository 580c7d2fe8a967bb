// A registry document: one network and its endpoints, as a person writes it in a registry file
// (YAML or JSON) or as the daemon keeps it in its state directory. Parsing validates everything
// and reports every problem with its place; nothing here does I/O.
import { createRequire } from 'node:module';
import ipaddr from 'ipaddr.js';
import { z } from 'zod';
import { isServiceLabel, isServiceName, isValidName } from '../wire/names.js';
import { NsdnsError } from '../errors.js';
import { parseHostPort } from '../host-port.js';
import { derivedId } from './ids.js';
import { nameProblems } from './name-rules.js';
import type { Endpoint, Network, NetworkRecord, Service, StaticRecord, Subnet } from './types.js';
import { egressRulesSchema } from './egress-rules.js';
import {
  healthCheckSchema, healthStateSchema, ifname, isUnicastMac, NETNS_RUN_DIR, ipAddress, ipv4Address, ipv6Address, labelsSchema, macAddress, netnsPath, networkOptions, port, printable,
  servicesSchema, staticRecordsSchema,
} from './fields.js';

const oneOrMany = <T extends z.ZodTypeAny>(item: T) =>
  z.union([item, z.array(item)]).optional().transform((v) => (v === undefined ? [] : Array.isArray(v) ? v : [v]));

const ipv4 = ipv4Address;
const ipv6 = ipv6Address;
const cidr = z.string().max(64).refine((s) => { try { ipaddr.parseCIDR(s); return !s.includes('%'); } catch { return false; } }, 'not a CIDR subnet');
// Names people give (networks, endpoints, aliases) may carry '_' as Docker's do; a domain may not.
const label = z.string().refine(isServiceLabel, 'not a valid name (letters, digits, "_" and "-"; at most 63; not starting with "_" or "-")');
const serviceName = z.string().refine(isServiceName, 'not a valid name (labels of letters, digits, "_" and "-" joined by ".")');
const dnsName = z.string().refine(isValidName, 'not a valid DNS name');
const objectId = z.string().max(128).regex(/^[0-9a-zA-Z_.-]+$/, 'not a valid id (letters, digits, ".", "_", "-")');
export const upstreamAddress = z.string().refine(isUpstreamAddress, 'not an upstream address (IP, IP:PORT or [IPv6]:PORT)');

const subnetSchema = z.object({ subnet: cidr, gateway: ipAddress.optional(), ipRange: cidr.optional() }).strict();

// hostIp is IPv4 only: published ports are DNAT rules for `ip daddr`.
const portSchema = z.object({
  hostIp: ipv4Address.optional(), hostPort: port,
  containerPort: port, protocol: z.enum(['tcp', 'udp']).default('tcp'),
}).strict();

// netns, ifname, hostIf and mac reach nsenter and ip: the same strict types as the control API.
const endpointSchema = z.object({
  name: label,
  id: objectId.optional(),
  aliases: oneOrMany(serviceName),
  ipv4: oneOrMany(ipv4),
  ipv6: oneOrMany(ipv6),
  upstreams: oneOrMany(upstreamAddress),
  netns: netnsPath.optional(),
  ifname: ifname.optional(),
  hostIf: ifname.optional(),
  mac: macAddress.optional(),
  ports: z.array(portSchema).max(1024).optional(),
  services: servicesSchema.optional(),
  labels: labelsSchema.optional(),
  health: healthStateSchema.optional(),
  healthHideOwn: z.boolean().optional(),
  healthCheck: healthCheckSchema.optional(),
  /** The endpoint's egress policy (registry/egress-rules.ts); it replaces the network's. */
  egress: egressRulesSchema.optional(),
}).strict();

export const documentSchema = z.object({
  name: label,
  id: objectId.optional(),
  subnets: z.array(subnetSchema).default([]),
  internal: z.boolean().default(false),
  domain: dnsName.optional(),
  upstreams: oneOrMany(upstreamAddress),
  created: z.string().max(64).optional(),
  bridge: ifname.optional(),
  mtu: z.number().int().min(68).max(65535).optional(),
  options: networkOptions.optional(),
  labels: labelsSchema.optional(),
  records: staticRecordsSchema.optional(),
  /** The default egress policy of the network's endpoints. */
  egress: egressRulesSchema.optional(),
  /** An overlay network's local presence (the state directory): its VXLAN id, and the VXLAN device on its bridge. */
  overlay: z.object({ vni: z.number().int().min(1).max(0xffffff), vxlan: ifname.optional() }).strict().optional(),
  endpoints: z.array(endpointSchema).default([]),
}).strict();

export type RegistryDocument = z.input<typeof documentSchema>;

/**
 * A shared registry's values (etcd): a network's and an endpoint's DNS fields, named as in a
 * registry file. Plumbing fields (netns, bridge, interfaces, ports, health checks) and upstreams
 * are not among them: no remote value makes this daemon enter a namespace, probe an address,
 * touch the firewall or choose where queries go. Nor egress policies: who may reach what is this
 * host's decision, never a remote value's (one would open a sandbox, or shut one).
 */
const remoteNetworkSchema = documentSchema.pick({ name: true, id: true, subnets: true, internal: true, domain: true, labels: true, records: true })
  .extend({ overlay: z.object({ vni: z.number().int().min(1).max(0xffffff), mtu: z.number().int().min(68).max(65535).optional() }).strict().optional() }).strict();
/**
 * An overlay endpoint's value also says where its frames go: its MAC and its host's underlay
 * (advertise) address, which become forwarding entries on this host's VXLAN device. Both are
 * plain data: nothing here makes the daemon enter a namespace or probe an address.
 */
const overlayPeerSchema = z.object({ mac: macAddress.refine(isUnicastMac, 'not a unicast MAC address'), host: ipAddress }).strict();
const remoteEndpointSchema = endpointSchema.pick({ name: true, id: true, aliases: true, ipv4: true, ipv6: true, services: true, labels: true, health: true })
  .extend({ overlay: overlayPeerSchema.optional() }).strict();
const PLUMBING_FIELDS = new Set(['netns', 'ifname', 'hostIf', 'mac', 'ports', 'healthCheck', 'healthHideOwn', 'upstreams', 'bridge', 'mtu', 'options', 'created', 'endpoints', 'egress']);

/** The problems of a remote value's keys that are fields of a registry file but not remote ones. */
function plumbingProblems(data: unknown): string[] {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return [];
  return Object.keys(data).filter((k) => PLUMBING_FIELDS.has(k)).map((k) => `${k}: not accepted from a shared registry (remote values carry DNS fields only)`);
}

/** A network from a shared registry's value; throws ERR_REGISTRY_FILE naming `source` (its key) and every problem. */
export function remoteNetwork(data: unknown, source: string): Network {
  const plumbing = plumbingProblems(data);
  if (plumbing.length > 0) throw fileError(source, plumbing);
  const parsed = remoteNetworkSchema.safeParse(data);
  if (!parsed.success) throw fileError(source, parsed.error.issues.map(issueText));
  const { overlay, ...fields } = parsed.data;
  const network: Network = { ...toNetwork({ ...fields, upstreams: [], endpoints: [] }), ...(overlay && { overlay: { vni: overlay.vni, ...(overlay.mtu !== undefined && { mtu: overlay.mtu }) } }) };
  const problems = gatewayProblems(network);
  if (problems.length > 0) throw fileError(source, problems);
  return network;
}

/** An endpoint of `network` from a shared registry's value; throws ERR_REGISTRY_FILE naming `source` (its key). */
export function remoteEndpoint(data: unknown, network: Network, source: string): Endpoint {
  const plumbing = plumbingProblems(data);
  if (plumbing.length > 0) throw fileError(source, plumbing);
  const parsed = remoteEndpointSchema.safeParse(data);
  if (!parsed.success) throw fileError(source, parsed.error.issues.map(issueText));
  const { overlay, ...fields } = parsed.data;
  if (overlay !== undefined && network.overlay === undefined) throw fileError(source, ['overlay: only endpoints of an overlay network carry it']);
  const endpoint: Endpoint = { ...toEndpoint({ ...fields, upstreams: [] }, network.name), ...(overlay && { overlay: { mac: overlay.mac.toLowerCase(), host: ipaddr.parse(overlay.host).toString() } }) };
  const outside = subnetCheck(network)(endpoint);
  if (outside) throw fileError(source, [outside]);
  return endpoint;
}

/** The value a shared registry holds for `endpoint`: its DNS fields, as remoteEndpoint reads them back. */
export function remoteEndpointValue(endpoint: Endpoint): Record<string, unknown> {
  return {
    name: endpoint.name, id: endpoint.id, aliases: endpoint.aliases, ipv4: endpoint.ipv4, ipv6: endpoint.ipv6,
    ...(endpoint.services && { services: endpoint.services }),
    ...(endpoint.labels && { labels: endpoint.labels }),
    ...(endpoint.health && { health: endpoint.health }),
    ...(endpoint.overlay && { overlay: { mac: endpoint.overlay.mac, host: endpoint.overlay.host } }),
  };
}

/** The value a shared registry holds for `network`: its DNS fields, as remoteNetwork reads them back. */
export function remoteNetworkValue(network: Network): Record<string, unknown> {
  return {
    name: network.name, id: network.id, subnets: network.subnets, internal: network.internal,
    ...(network.domain && { domain: network.domain }),
    ...(network.labels && { labels: network.labels }),
    ...(network.records && { records: network.records }),
    ...(network.overlay && { overlay: { vni: network.overlay.vni, ...(network.overlay.mtu !== undefined && { mtu: network.overlay.mtu }) } }),
  };
}

export { derivedId } from './ids.js';

const MAX_PROBLEMS = 10;
const MAX_MESSAGE = 1000;

/** `source: problem; problem` with at most MAX_PROBLEMS problems and MAX_MESSAGE characters. */
function fileError(source: string, problems: readonly string[]): NsdnsError {
  const shown = problems.slice(0, MAX_PROBLEMS);
  if (problems.length > MAX_PROBLEMS) shown.push(`and ${problems.length - MAX_PROBLEMS} more`);
  let message = `${printable(source, 200)}: ${shown.join('; ')}`;
  if (message.length > MAX_MESSAGE) message = `${message.slice(0, MAX_MESSAGE)}…`;
  return new NsdnsError('ERR_REGISTRY_FILE', message);
}

let yamlPackage: typeof import('yaml') | undefined;
/** The yaml package, loaded on first use: the Podman drop-in parses no YAML, and netavark waits for its start. */
export function yaml(): typeof import('yaml') {
  return (yamlPackage ??= createRequire(import.meta.url)('yaml') as typeof import('yaml'));
}

/**
 * Where a syntax error is, never what is there: the yaml package's and JSON.parse's own messages
 * quote the file (a symlink to /etc/shadow would be printed line by line).
 */
function syntaxProblem(err: unknown, text: string, json: boolean): string {
  const kind = json ? 'JSON' : 'YAML';
  if (err instanceof yaml().YAMLParseError && err.linePos) return `not valid ${kind} (line ${err.linePos[0].line}, column ${err.linePos[0].col}: ${err.code})`;
  const position = err instanceof SyntaxError ? /at position (\d+)/.exec(err.message) : null;
  if (position) {
    const before = text.slice(0, Number(position[1]));
    const line = before.split('\n').length;
    return `not valid ${kind} (line ${line}, column ${before.length - before.lastIndexOf('\n')})`;
  }
  if (err instanceof SyntaxError && /end of JSON input/.test(err.message)) return `not valid ${kind} (unexpected end)`;
  if (err instanceof RangeError) return `not valid ${kind} (nested too deeply)`;
  if (err instanceof Error && /alias/i.test(err.message)) return `not valid ${kind} (too many aliases)`;
  return `not valid ${kind}`;
}

/** Parses YAML or JSON text into its data, or throws with where the syntax breaks (never what is there). */
export function parseDocumentData(text: string, source: string): unknown {
  const json = /\.json$/i.test(source);
  try {
    // logLevel 'error': warnings would go to process.emitWarning with a piece of the file.
    return json ? JSON.parse(text) : yaml().parse(text, { logLevel: 'error', maxAliasCount: 100 });
  } catch (err) {
    throw fileError(source, [syntaxProblem(err, text, json)]);
  }
}

/** Parses a registry file's YAML or JSON text into a validated network record. */
export function parseDocumentText(text: string, source: string): NetworkRecord {
  return toRecord(parseDocumentData(text, source), source, { release: true, file: true });
}

/**
 * A key from the file, shown only when it looks like a key a person typed (a typo of a field
 * name); anything else (a line of /etc/shadow read as YAML, control characters) only by its size.
 */
function keyText(key: PropertyKey): string {
  if (typeof key === 'number') return String(key);
  if (typeof key === 'string' && /^[A-Za-z0-9_.\-/]{1,40}$/.test(key)) return key;
  return `<a key of ${typeof key === 'string' ? key.length : '?'} characters>`;
}

/** A schema problem named by its key path and a fixed message: never the offending value. */
function issueText(issue: z.core.$ZodIssue): string {
  const where = issue.path.map(keyText).join('.').slice(0, 160) || '(top)';
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.slice(0, 3).map((k) => `"${keyText(k)}"`).join(', ');
    return `${where}: Unrecognized key${issue.keys.length > 1 ? 's' : ''} ${keys}${issue.keys.length > 3 ? `, and ${issue.keys.length - 3} more` : ''}`;
  }
  // Messages are ours (refine) or zod's, which name types and limits, not the value.
  // eslint-disable-next-line no-control-regex
  return `${where}: ${issue.message.replace(/[\u0000-\u001f\u007f]/g, ' ').slice(0, 160)}`;
}

/**
 * Endpoints are validated a slice at a time: the schema's validated copy of a large file's
 * endpoints is never whole in memory beside the file's own objects and the endpoints made from them.
 */
const ENDPOINT_SLICE = 250;
const endpointList = z.array(endpointSchema);

export interface ReadOptions {
  /** The caller hands `data` over: its endpoints are let go as they are converted (a large file's peak memory). */
  release?: boolean;
  /** A registry file (not the daemon's own state): its endpoints may name only /run/netns namespaces. */
  file?: boolean;
}

/** `data` with its endpoints given apart (they may arrive one at a time: registry/pack-file.ts). */
export interface DocumentParts {
  data: unknown;
  endpoints: Iterable<unknown> | undefined;
}

/** Splits `data` into the document and its endpoints list, when it has one. */
export function documentParts(data: unknown): DocumentParts {
  const endpoints = typeof data === 'object' && data !== null && !Array.isArray(data) && Array.isArray((data as { endpoints?: unknown }).endpoints)
    ? (data as { endpoints: unknown[] }).endpoints : undefined;
  return { data: endpoints ? { ...(data as object), endpoints: [] } : data, endpoints };
}

/**
 * Validates a network document whose endpoints come one by one (`parts.endpoints`, in order), and
 * hands each endpoint to the function `start` returns, once the network itself is known to be
 * valid. Throws every problem found (NsdnsError), schema problems first; `problems`, asked after
 * the last endpoint, adds the checks that need them all (the name rules).
 */
export function readDocument(parts: DocumentParts, source: string, start: (network: Network) => (e: Endpoint) => void,
  problems: () => string[], { release = false, file = false }: ReadOptions = {}): Network {
  const parsed = documentSchema.safeParse(parts.data);
  const found = parsed.success ? [] : parsed.error.issues.map(issueText);
  const network = parsed.success ? toNetwork(parsed.data) : undefined;
  found.push(...(network ? gatewayProblems(network) : []));
  const take = network && found.length === 0 ? start(network) : undefined;
  const inSubnets = network ? subnetCheck(network) : () => undefined;
  let at = 0;
  const slice: unknown[] = [];
  const validate = () => {
    const checked = endpointList.safeParse(slice);
    if (!checked.success) {
      found.push(...checked.error.issues.map((i) => issueText({ ...i, path: ['endpoints', at + Number(i.path[0]), ...i.path.slice(1)] })));
    } else if (network) {
      checked.data.forEach((input, n) => {
        const e = toEndpoint(input, network.name);
        const outside = inSubnets(e);
        if (outside) found.push(outside);
        if (file && e.netns !== undefined && !e.netns.startsWith(`${NETNS_RUN_DIR}/`)) {
          // A /proc/PID path would let whoever writes the registry directory make the root daemon
          // serve, and choose the upstreams of, any process's namespace (the host's own, PID 1, included).
          found.push(`endpoints.${at + n}.netns: a registry file may name only ${NETNS_RUN_DIR}/NAME namespaces`);
        }
        if (found.length === 0) take?.(e);
      });
    }
    at += slice.length;
    slice.length = 0;
  };
  const raw = parts.endpoints;
  if (raw) {
    const list = Array.isArray(raw) ? raw : undefined;
    let n = 0;
    for (const item of raw) {
      slice.push(item);
      if (release && list) list[n] = undefined;
      n++;
      if (slice.length === ENDPOINT_SLICE) validate();
    }
    validate();
  }
  if (found.length === 0) found.push(...problems());
  if (found.length > 0 || !network) throw fileError(source, found);
  return network;
}

/** Validates `data` as a network document into a record (state files, control requests, small files). */
export function toRecord(data: unknown, source: string, options: ReadOptions = {}): NetworkRecord {
  const endpoints: Endpoint[] = [];
  let network: Network | undefined;
  readDocument(documentParts(data), source, (n) => {
    network = n;
    return (e) => endpoints.push(e);
  }, () => nameProblems(network!, endpoints), options);
  return { network: network!, endpoints };
}

function toNetwork(doc: z.output<typeof documentSchema>): Network {
  const subnets: Subnet[] = doc.subnets.map((s) => ({ ...s }));
  return {
    name: doc.name, id: doc.id ?? derivedId('network', doc.name), subnets, internal: doc.internal, upstreams: doc.upstreams,
    ...(doc.domain !== undefined && { domain: doc.domain.toLowerCase().replace(/\.$/, '') }),
    ...(doc.created !== undefined && { created: doc.created }),
    ...(doc.bridge !== undefined && { bridge: doc.bridge }),
    ...(doc.mtu !== undefined && { mtu: doc.mtu }),
    ...(doc.options !== undefined && { options: doc.options }),
    ...(doc.labels !== undefined && Object.keys(doc.labels).length > 0 && { labels: { ...doc.labels } as Record<string, string> }),
    ...(doc.records !== undefined && doc.records.length > 0 && { records: doc.records.map(normalRecord) }),
    ...(doc.egress !== undefined && { egress: doc.egress }),
    ...(doc.overlay !== undefined && { overlay: { ...doc.overlay } }),
  };
}

type EndpointInput = z.output<typeof endpointSchema>;

function toEndpoint(e: EndpointInput, network: string): Endpoint {
  return {
    id: e.id ?? derivedId('endpoint', network, e.name),
    network,
    name: e.name.toLowerCase(),
    aliases: e.aliases.map((a) => a.toLowerCase().replace(/\.$/, '')),
    ipv4: e.ipv4,
    ipv6: e.ipv6.map((a) => ipaddr.parse(a).toString()),
    upstreams: e.upstreams,
    ...(e.netns !== undefined && { netns: e.netns }),
    ...(e.ifname !== undefined && { ifname: e.ifname }),
    ...(e.hostIf !== undefined && { hostIf: e.hostIf }),
    ...(e.mac !== undefined && { mac: e.mac }),
    ...(e.ports !== undefined && { ports: e.ports }),
    ...(e.services !== undefined && e.services.length > 0 && { services: e.services.map(normalService) }),
    ...(e.labels !== undefined && Object.keys(e.labels).length > 0 && { labels: { ...e.labels } as Record<string, string> }),
    ...(e.health !== undefined && { health: e.health }),
    ...(e.healthHideOwn === true && { healthHideOwn: true }),
    ...(e.healthCheck !== undefined && { healthCheck: e.healthCheck }),
    ...(e.egress !== undefined && { egress: e.egress }),
  };
}


export function normalService(s: { name: string; port: number; protocol?: 'tcp' | 'udp'; priority?: number; weight?: number }): Service {
  return { name: s.name.toLowerCase(), port: s.port, protocol: s.protocol ?? 'tcp', priority: s.priority ?? 0, weight: s.weight ?? 0 };
}

const lowerName = (n: string) => n.toLowerCase().replace(/\.$/, '');

export function normalRecord(r: StaticRecord): StaticRecord {
  if (r.type === 'SRV') return { name: lowerName(r.name), type: 'SRV', priority: r.priority ?? 0, weight: r.weight ?? 0, port: r.port, target: lowerName(r.target) };
  if (r.type === 'AAAA') return { name: lowerName(r.name), type: r.type, value: ipaddr.parse(r.value).toString() };
  if (r.type === 'CNAME') return { name: lowerName(r.name), type: r.type, value: lowerName(r.value) };
  return { name: lowerName(r.name), type: r.type, value: r.value };
}

function gatewayProblems(network: Network): string[] {
  return network.subnets.filter((s) => s.gateway && !ipaddr.parse(s.gateway).match(ipaddr.parseCIDR(s.subnet)))
    .map((s) => `gateway ${s.gateway} is outside ${s.subnet}`);
}

/** An endpoint's addresses must lie in one of the network's subnets, if it declares any: the problem, or undefined. */
function subnetCheck(network: Network): (e: Endpoint) => string | undefined {
  const ranges = network.subnets.map((s) => ipaddr.parseCIDR(s.subnet));
  if (ranges.length === 0) return () => undefined;
  return (e) => {
    for (const a of [...e.ipv4, ...e.ipv6]) {
      const addr = ipaddr.parse(a);
      if (!ranges.some((r) => r[0].kind() === addr.kind() && addr.match(r))) return `${e.name}: ${a} is outside the network's subnets`;
    }
    return undefined;
  };
}

/** IP, IP:PORT or [IPv6]:PORT; no zone id, as a file names no interface of the host. */
export function isUpstreamAddress(value: string): boolean {
  return typeof value === 'string' && value.length <= 60 && parseHostPort(value, { defaultPort: 53, allowZero: false }) !== undefined;
}
