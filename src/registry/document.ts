// A registry document: one network and its endpoints, as a person writes it in a registry file
// (YAML or JSON) or as the daemon keeps it in its state directory. Parsing validates everything
// and reports every problem with its place; nothing here does I/O.
import { createHash } from 'node:crypto';
import ipaddr from 'ipaddr.js';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { isValidLabel, isValidName } from '../wire/names.js';
import { NsdnsError } from '../errors.js';
import type { Endpoint, NetworkRecord, Subnet } from './types.js';

const oneOrMany = <T extends z.ZodTypeAny>(item: T) =>
  z.union([item, z.array(item)]).optional().transform((v) => (v === undefined ? [] : Array.isArray(v) ? v : [v]));

const ipv4 = z.string().refine((s) => ipaddr.IPv4.isValidFourPartDecimal(s), 'not an IPv4 address');
const ipv6 = z.string().refine((s) => ipaddr.IPv6.isValid(s) && !s.includes('/'), 'not an IPv6 address');
const cidr = z.string().refine((s) => { try { ipaddr.parseCIDR(s); return true; } catch { return false; } }, 'not a CIDR subnet');
const label = z.string().refine(isValidLabel, 'not a valid DNS label (letters, digits, hyphens; at most 63)');
const dnsName = z.string().refine(isValidName, 'not a valid DNS name');
export const upstreamAddress = z.string().refine(isUpstreamAddress, 'not an upstream address (IP, IP:PORT or [IPv6]:PORT)');

const subnetSchema = z.object({ subnet: cidr, gateway: z.string().refine(ipaddr.isValid, 'not an IP address').optional(), ipRange: cidr.optional() }).strict();

const portSchema = z.object({
  hostIp: z.string().optional(), hostPort: z.number().int().min(1).max(65535),
  containerPort: z.number().int().min(1).max(65535), protocol: z.enum(['tcp', 'udp']).default('tcp'),
}).strict();

const endpointSchema = z.object({
  name: label,
  id: z.string().regex(/^[0-9a-zA-Z_.-]+$/).optional(),
  aliases: oneOrMany(dnsName),
  ipv4: oneOrMany(ipv4),
  ipv6: oneOrMany(ipv6),
  upstreams: oneOrMany(upstreamAddress),
  netns: z.string().optional(),
  ifname: z.string().optional(),
  hostIf: z.string().optional(),
  mac: z.string().optional(),
  ports: z.array(portSchema).optional(),
}).strict();

export const documentSchema = z.object({
  name: label,
  id: z.string().regex(/^[0-9a-zA-Z_.-]+$/).optional(),
  subnets: z.array(subnetSchema).default([]),
  internal: z.boolean().default(false),
  domain: dnsName.optional(),
  upstreams: oneOrMany(upstreamAddress),
  created: z.string().optional(),
  bridge: z.string().optional(),
  mtu: z.number().int().min(68).max(65535).optional(),
  options: z.record(z.string(), z.string()).optional(),
  endpoints: z.array(endpointSchema).default([]),
}).strict();

export type RegistryDocument = z.input<typeof documentSchema>;

/** A stable id derived from a name, for hand-written files that give none (hex, like Docker's). */
export function derivedId(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\0')).digest('hex');
}

/** Parses YAML or JSON text into a validated network record (JSON by JSON.parse: faster, less garbage). */
export function parseDocumentText(text: string, source: string): NetworkRecord {
  let data: unknown;
  try {
    data = /\.json$/i.test(source) ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new NsdnsError('ERR_REGISTRY_FILE', `${source}: not valid ${/\.json$/i.test(source) ? 'JSON' : 'YAML'}: ${(err as Error).message}`, { cause: err });
  }
  return toRecord(data, source);
}

export function toRecord(data: unknown, source: string): NetworkRecord {
  const parsed = documentSchema.safeParse(data);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`);
    throw new NsdnsError('ERR_REGISTRY_FILE', `${source}: ${problems.join('; ')}`);
  }
  const doc = parsed.data;
  const networkId = doc.id ?? derivedId('network', doc.name);
  const subnets: Subnet[] = doc.subnets.map((s) => ({ ...s }));
  const endpoints: Endpoint[] = doc.endpoints.map((e) => ({
    id: e.id ?? derivedId('endpoint', doc.name, e.name),
    network: doc.name,
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
  }));
  const record: NetworkRecord = {
    network: {
      name: doc.name, id: networkId, subnets, internal: doc.internal, upstreams: doc.upstreams,
      ...(doc.domain !== undefined && { domain: doc.domain.toLowerCase().replace(/\.$/, '') }),
      ...(doc.created !== undefined && { created: doc.created }),
      ...(doc.bridge !== undefined && { bridge: doc.bridge }),
      ...(doc.mtu !== undefined && { mtu: doc.mtu }),
      ...(doc.options !== undefined && { options: doc.options }),
    },
    endpoints,
  };
  const problems = consistencyProblems(record);
  if (problems.length > 0) throw new NsdnsError('ERR_REGISTRY_FILE', `${source}: ${problems.join('; ')}`);
  return record;
}

/** What a schema cannot say: names unique in the network, addresses inside a declared subnet. */
export function consistencyProblems({ network, endpoints }: NetworkRecord): string[] {
  const problems: string[] = [];
  const owner = new Map<string, string>();
  const claim = (name: string, endpoint: string) => {
    const previous = owner.get(name);
    if (previous !== undefined && previous !== endpoint) problems.push(`name "${name}" is used by both "${previous}" and "${endpoint}"`);
    owner.set(name, endpoint);
  };
  const ids = new Set<string>();
  for (const e of endpoints) {
    if (ids.has(e.id)) problems.push(`endpoint id ${e.id} appears twice`);
    ids.add(e.id);
    claim(e.name, e.name);
    for (const alias of e.aliases) claim(alias, e.name);
  }
  const ranges = network.subnets.map((s) => ipaddr.parseCIDR(s.subnet));
  for (const s of network.subnets) {
    if (s.gateway && !ipaddr.parse(s.gateway).match(ipaddr.parseCIDR(s.subnet))) problems.push(`gateway ${s.gateway} is outside ${s.subnet}`);
  }
  if (ranges.length > 0) {
    for (const e of endpoints) {
      for (const a of [...e.ipv4, ...e.ipv6]) {
        const addr = ipaddr.parse(a);
        if (!ranges.some((r) => r[0].kind() === addr.kind() && addr.match(r))) problems.push(`${e.name}: ${a} is outside the network's subnets`);
      }
    }
  }
  return problems;
}

export function isUpstreamAddress(value: string): boolean {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(value) ?? /^([^:]+)(?::(\d+))?$/.exec(value);
  if (m) return ipaddr.isValid(m[1]) && (m[2] === undefined || (Number(m[2]) > 0 && Number(m[2]) < 65536));
  return ipaddr.IPv6.isValid(value);
}
