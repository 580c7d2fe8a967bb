// What each control method does: thin adapters from requests to the network manager, and the
// shapes people and scripts see (`docker network inspect`-like JSON).
import dnsPacket from 'dns-packet';
import { NsdnsError } from '../errors.js';
import type { NetworkManager } from '../plumbing/network-manager.js';
import { resolveTarget } from '../plumbing/target.js';
import type { Registry } from '../registry/registry.js';
import type { HealthStates } from '../registry/health-state.js';
import type { Endpoint, HealthState, NetworkRecord } from '../registry/types.js';
import type { HealthInfo } from '../health/prober.js';
import { formatDuration } from '../health/spec.js';
import type { Resolver } from '../resolver/resolver.js';
import type { NamespaceStatus } from '../listeners/namespace-spec.js';
import { bindHelperKind } from '../listeners/namespace-sockets.js';
import type { OperationTiming } from '../plumbing/timing.js';
import { STATE_SOURCE } from '../plumbing/state.js';
import { parseUpstream } from '../resolver/upstream-address.js';
import { recordTypeName } from '../wire/names.js';
import type { Handler } from './control.js';
import { parseParams, quote, type Method, type ParamsOf } from './control-schemas.js';

export interface HandlerDeps {
  registry: Registry;
  manager: NetworkManager;
  resolver: Resolver;
  namespaces: NamespaceStatus;
  /** The daemon's host listeners as ADDRESS:PORT keys (host listeners and gateways): no upstream may be one. */
  ownAddresses?: () => ReadonlySet<string>;
  /** The daemon's health checks (HealthProber): last results, and states set from outside. */
  probes?: HealthProbes;
}

/** What the handlers use of the HealthProber. */
export interface HealthProbes {
  info(network: string, endpointId: string): HealthInfo | undefined;
  set(network: string, endpointId: string, state: HealthState, endpointName?: string): boolean;
}

/**
 * An endpoint's health as docker shows a container's (`State.Health`): its status, failures in a
 * row and the last probe results; `Check` when the daemon probes it.
 */
export function healthOf(e: Endpoint, health: HealthStates, probes?: HealthProbes): object {
  const info = probes?.info(e.network, e.id);
  const check = e.healthCheck;
  return {
    Status: health.get(e.network, e.id),
    FailingStreak: info?.failingStreak ?? 0,
    Log: (info?.log ?? []).map((r) => ({ Start: new Date(r.start).toISOString(), End: new Date(r.end).toISOString(), ExitCode: r.ok ? 0 : 1, Output: r.detail })),
    ...(check && {
      Check: {
        Test: `${check.type}:${check.port}${check.path ?? ''}`, Interval: formatDuration(check.intervalMs), Timeout: formatDuration(check.timeoutMs),
        Retries: check.retries, StartPeriod: formatDuration(check.startPeriodMs), ...(info && { Address: info.address }),
      },
    }),
  };
}

/** The address every namespace's programs ask: nsdns itself, never an upstream. */
const NAMESPACE_RESOLVER = '127.0.0.11';

/**
 * Refuses an upstream that is nsdns itself: the resolver would drop it when forwarding (a loop),
 * and the endpoint would quietly fall back to the daemon's upstreams instead of its network's.
 */
function refuseOwnAddresses(flag: string, upstreams: readonly string[] | undefined, own: ReadonlySet<string>): void {
  for (const text of upstreams ?? []) {
    let server: ReturnType<typeof parseUpstream>;
    try {
      server = parseUpstream(text);
    } catch {
      continue; // not an address at all: the planner says so
    }
    const wildcard = server.family === 4 ? `0.0.0.0:${server.port}` : `[::]:${server.port}`;
    const loopback = server.family === 4 ? server.host.startsWith('127.') : server.host === '::1';
    if (server.host === NAMESPACE_RESOLVER || own.has(server.key) || (loopback && own.has(wildcard))) {
      const which = server.host === NAMESPACE_RESOLVER ? 'is where nsdns answers inside every namespace' : 'is an address this nsdns daemon listens on';
      throw new NsdnsError('ERR_BAD_REQUEST', `${flag} ${server.key}: ${which}, so it cannot be an upstream (queries would loop); give the DNS server nsdns should forward to`);
    }
  }
}

/** A handler whose parameters are checked by the method's schema before `run` sees them. */
function method<M extends Method>(name: M, run: (p: ParamsOf<M>) => Promise<unknown>): [M, Handler] {
  return [name, (p) => run(parseParams(name, p))];
}

function prefixLength(record: NetworkRecord, address: string): number {
  const subnet = record.network.subnets.find((s) => s.subnet.includes(':') === address.includes(':'));
  return subnet ? Number(subnet.subnet.split('/')[1]) : address.includes(':') ? 128 : 32;
}

/** The shape of `docker network inspect`. */
export function inspectNetwork(record: NetworkRecord, source: string | undefined, health?: HealthStates, probes?: HealthProbes): object {
  const { network, endpoints } = record;
  return {
    Name: network.name,
    Id: network.id,
    Created: network.created ?? null,
    Scope: 'local',
    Driver: network.bridge ? 'bridge' : 'static',
    EnableIPv6: network.subnets.some((s) => s.subnet.includes(':')),
    IPAM: { Driver: 'default', Options: {}, Config: network.subnets.map((s) => ({ Subnet: s.subnet, ...(s.gateway && { Gateway: s.gateway }), ...(s.ipRange && { IPRange: s.ipRange }) })) },
    Internal: network.internal,
    Attachable: true,
    Options: {
      ...(network.bridge && { 'com.docker.network.bridge.name': network.bridge }),
      ...(network.mtu && { 'com.docker.network.driver.mtu': String(network.mtu) }),
      ...network.options,
    },
    DNS: {
      Upstreams: network.upstreams, ...(network.domain && { Domain: network.domain }),
      ...(network.records && network.records.length > 0 && { Records: network.records }),
    },
    Source: source === STATE_SOURCE ? 'nsdns' : source,
    Containers: Object.fromEntries(endpoints.map((e) => [e.id, {
      Name: e.name,
      EndpointID: e.id,
      MacAddress: e.mac ?? '',
      IPv4Address: e.ipv4[0] ? `${e.ipv4[0]}/${prefixLength(record, e.ipv4[0])}` : '',
      IPv6Address: e.ipv6[0] ? `${e.ipv6[0]}/${prefixLength(record, e.ipv6[0])}` : '',
      Aliases: e.aliases,
      ...(e.netns && { Namespace: e.netns }),
      ...(e.ifname && { Interface: e.ifname }),
      ...(e.ports && e.ports.length > 0 && { Ports: e.ports }),
      ...(e.services && e.services.length > 0 && { Services: e.services }),
      ...(e.labels && { Labels: e.labels }),
      ...(health && { Health: healthOf(e, health, probes) }),
      ...(e.healthHideOwn && { HealthHideOwn: true }),
    }])),
    Labels: network.labels ?? {},
  };
}

export function endpointSummary(e: Endpoint, record: NetworkRecord, health?: { states: HealthStates; probes?: HealthProbes }): object {
  const gateway = record.network.subnets.find((s) => !s.subnet.includes(':'))?.gateway;
  return {
    network: e.network, name: e.name, id: e.id, shortId: e.id.slice(0, 12), aliases: e.aliases, ipv4: e.ipv4, ipv6: e.ipv6,
    mac: e.mac, ifname: e.ifname, hostIf: e.hostIf, netns: e.netns, gateway, nameserver: '127.0.0.11', ports: e.ports ?? [],
    services: e.services ?? [], labels: e.labels ?? {},
    ...(record.network.domain !== undefined && { domain: record.network.domain }),
    ...(health && { health: healthOf(e, health.states, health.probes) }),
  };
}

export function controlHandlers(deps: HandlerDeps): Record<string, Handler> {
  const { registry, manager } = deps;
  const own = (): ReadonlySet<string> => deps.ownAddresses?.() ?? new Set();
  // By name (any case), full id or unique id prefix, as docker finds networks.
  const recordOf = (name: string): NetworkRecord => {
    const compiled = registry.current().find(name);
    if (!compiled) throw new NsdnsError('ERR_NOT_FOUND', `network ${quote(name)} not found; see \`nsdns network ls\``);
    return { network: compiled.network, endpoints: [...compiled.endpoints] };
  };
  // method() takes only names that have a schema: no handler runs on unchecked parameters.
  return Object.fromEntries([
    method('ping', async () => ({ pid: process.pid })),
    method('network.create', async (p) => {
      refuseOwnAddresses('--dns-upstream', p.dnsUpstreams, own());
      const network = await manager.createNetwork(p);
      return inspectNetwork(recordOf(network.name), STATE_SOURCE, registry.health, deps.probes);
    }),
    // Fields after `source` came later (fullId ... labels): older clients ignore them.
    // endpointCount, not the endpoints: a file's network is packed, and decoding it to count is ~2 µs an endpoint.
    method('network.ls', async () => [...registry.current().networks.values()].map(({ network, endpointCount }) => ({
      name: network.name, id: network.id.slice(0, 12), driver: network.bridge ? 'bridge' : 'static', internal: network.internal,
      subnets: network.subnets.map((s) => s.subnet), endpoints: endpointCount, bridge: network.bridge ?? null,
      source: registry.sourceOf(network.name) === STATE_SOURCE ? 'nsdns' : registry.sourceOf(network.name),
      fullId: network.id, created: network.created ?? null, scope: 'local',
      ipv6: network.subnets.some((s) => s.subnet.includes(':')), labels: network.labels ?? {},
    })).sort((a, b) => a.name.localeCompare(b.name))),
    method('network.inspect', async (p) => p.names.map((n) => {
      const record = recordOf(n);
      return inspectNetwork(record, registry.sourceOf(record.network.name), registry.health, deps.probes);
    })),
    method('network.rm', async (p) => {
      const { removed, failed } = await manager.removeNetworks(p.names, { disconnect: p.disconnect ?? p.force ?? false, ignoreMissing: p.ignoreMissing ?? false });
      if (p.report) return { removed, failed: failed.map((f) => ({ name: f.name, code: f.error.code, message: f.error.message })) };
      // Older clients expect a list or one error.
      if (failed.length === 1 && removed.length === 0) throw failed[0].error;
      if (failed.length > 0) throw new NsdnsError(failed[0].error.code, `removed ${removed.length}; ${failed.map((f) => f.error.message).join('; ')}`);
      return removed;
    }),
    method('network.prune', async () => manager.prune()),
    method('network.connect', async (p) => {
      refuseOwnAddresses('--dns', p.dns, own());
      const endpoint = await manager.connect(p);
      // resolvConf: the file `ip netns exec` mounts, or null: a PID or path target gets none.
      return { ...endpointSummary(endpoint, recordOf(endpoint.network)), resolvConf: manager.resolvConfFile(endpoint.netns!) ?? null };
    }),
    method('network.disconnect', async (p) => {
      const endpoint = await manager.disconnect(p.network, p.target);
      return { network: endpoint.network, name: endpoint.name, id: endpoint.id };
    }),
    method('endpoint.health', async (p) => {
      const record = recordOf(p.network);
      const endpoint = endpointOf(record, p.endpoint);
      const previous = registry.health.get(record.network.name, endpoint.id);
      if (deps.probes) deps.probes.set(record.network.name, endpoint.id, p.state, endpoint.name);
      else registry.health.set(record.network.name, endpoint.id, p.state);
      return { network: record.network.name, name: endpoint.name, id: endpoint.id, state: p.state, previous, probed: endpoint.healthCheck !== undefined };
    }),
    method('debug.namespace', async (p) => debugNamespace(deps, p)),
  ]);
}

/**
 * An endpoint of `record` by its own name (any case), full id, or an id prefix of at least 12
 * characters; an alias may be shared, so it names no single endpoint.
 */
function endpointOf(record: NetworkRecord, which: string): Endpoint {
  const lower = which.toLowerCase();
  const found = record.endpoints.find((e) => e.name === lower || e.id === lower) ?? (lower.length >= 12 ? record.endpoints.find((e) => e.id.startsWith(lower)) : undefined);
  if (!found) throw new NsdnsError('ERR_NOT_FOUND', `no endpoint ${quote(which)} on network ${quote(record.network.name)} (give its name or id)`);
  return found;
}

/**
 * The daemon's last connects and disconnects (any namespace), stage by stage, oldest first. The
 * bind path is the daemon's binder's when the manager was not told it.
 */
function recentTimings(manager: NetworkManager): OperationTiming[] {
  return manager.recentTimings().map((t) => (t.operation === 'connect' && t.paths.bind === undefined ? { ...t, paths: { ...t.paths, bind: bindHelperKind() } } : t));
}

async function debugNamespace(deps: HandlerDeps, p: ParamsOf<'debug.namespace'>): Promise<object> {
  const target = resolveTarget(p.target);
  const snapshot = deps.registry.current();
  const endpoints = snapshot.namespaces().get(target.path) ?? [];
  const context = deps.namespaces.context(target.path);
  const out: Record<string, unknown> = {
    namespace: target.path,
    name: target.name ?? null,
    served: deps.namespaces.isServed(target.path),
    bindError: deps.namespaces.failure(target.path) ?? null,
    view: [...new Set(endpoints.map((e) => e.network))],
    endpoints: endpoints.map((e) => endpointSummary(e, { network: snapshot.networks.get(e.network)!.network, endpoints: [] }, { states: deps.registry.health, probes: deps.probes })),
    upstreams: context ? deps.resolver.upstreamsFor(context.view(), { address: '127.0.0.1', transport: 'udp' }, context).map((s) => s.key) : [],
    resolvConf: target.name ? (await deps.manager.resolvConfOf(target.name)) ?? null : null,
    timings: recentTimings(deps.manager),
  };
  if (p.resolve) {
    if (!context) throw new NsdnsError('ERR_NETNS', `${target.shown} is not served by nsdns (no endpoint in it), so there is nothing to resolve from`);
    const type = (recordTypeName(p.type ?? 'A') ?? 'A') as dnsPacket.RecordType;
    const query = dnsPacket.encode({ type: 'query', id: 1, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: p.resolve, type, class: 'IN' }] });
    const result = await deps.resolver.explain(query, { address: '127.0.0.1', transport: 'udp' }, context);
    if (result) {
      const reply = dnsPacket.decode(result.reply) as dnsPacket.Packet & { rcode?: string };
      out.resolution = {
        name: p.resolve, type, origin: result.origin, rcode: reply.rcode,
        answers: (reply.answers ?? []).map((a) => ({ type: a.type, ttl: 'ttl' in a ? a.ttl : undefined, data: presentData(a.type, (a as { data?: unknown }).data) })),
      };
    }
  }
  return out;
}

/** Printable ASCII as is; anything else (and, quoted, `"` and `\`) as \DDD or \c, as zone files write them. */
function escaped(text: string, quoted: boolean): string {
  let out = '';
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    if (quoted && (ch === '"' || ch === '\\')) out += `\\${ch}`;
    else if (code < 0x20 || code > 0x7e) out += code > 0xff ? '?' : `\\${String(code).padStart(3, '0')}`;
    else out += ch;
  }
  return out;
}

/** A domain name as a zone file writes it: fully qualified (the root as "."). */
function fqdn(name: unknown): string {
  const text = escaped(String(name ?? ''), false);
  return text === '' || text === '.' ? '.' : text.endsWith('.') ? text : `${text}.`;
}

/** A character string (TXT, HINFO, ...) in quotes; upstream data stays escaped, never raw. */
function quotedString(value: unknown): string {
  const text = Buffer.isBuffer(value) ? value.toString('latin1') : String(value ?? '');
  return `"${escaped(text, true)}"`;
}

const hex = (b: Buffer) => b.toString('hex');

/**
 * A record's data in presentation form, as dig prints it: SRV "priority weight port target.", MX
 * "preference exchange.", TXT quoted strings, SOA its seven fields; a type without a form here
 * as RFC 3597's `\# LENGTH HEX` when raw, else its fields.
 */
export function presentData(type: string, data: unknown): string {
  const d = data as Record<string, unknown>;
  switch (type) {
    case 'A': case 'AAAA': return escaped(String(data), false);
    case 'CNAME': case 'NS': case 'PTR': case 'DNAME': return fqdn(data);
    case 'SRV': return `${d.priority ?? 0} ${d.weight ?? 0} ${d.port} ${fqdn(d.target)}`;
    case 'MX': return `${d.preference ?? 0} ${fqdn(d.exchange)}`;
    case 'TXT': case 'SPF': return (Array.isArray(data) ? data : [data]).map(quotedString).join(' ');
    case 'SOA': return `${fqdn(d.mname)} ${fqdn(d.rname)} ${d.serial} ${d.refresh} ${d.retry} ${d.expire} ${d.minimum}`;
    case 'CAA': return `${d.flags ?? (d.issuerCritical ? 128 : 0)} ${escaped(String(d.tag), false)} ${quotedString(d.value)}`;
    case 'HINFO': return `${quotedString(d.cpu)} ${quotedString(d.os)}`;
    case 'NAPTR': return `${d.order} ${d.preference} ${quotedString(d.flags)} ${quotedString(d.services)} ${quotedString(d.regexp)} ${fqdn(d.replacement)}`;
    default:
      if (Buffer.isBuffer(data)) return `\\# ${data.length}${data.length > 0 ? ` ${hex(data)}` : ''}`;
      if (data !== null && typeof data === 'object') {
        return Object.entries(d).map(([k, v]) => `${escaped(k, false)}=${Buffer.isBuffer(v) ? hex(v) : escaped(typeof v === 'object' ? JSON.stringify(v) : String(v), false)}`).join(' ');
      }
      return escaped(String(data), false);
  }
}
