// The JSON people and scripts see of networks and endpoints, in the shapes docker shows its own
// (`docker network inspect`, `docker network ls`, a container's `State.Health`), so tools written
// for docker read nsdns's output unchanged. No I/O: the handlers pass in what they looked up.
import type { HealthInfo } from '../health/prober.js';
import { formatDuration } from '../health/spec.js';
import { RESOLVER_ADDRESS } from '../listeners/namespace-sockets.js';
import type { HealthStates } from '../registry/health-state.js';
import type { CompiledNetwork } from '../registry/compiled.js';
import type { Registry } from '../registry/registry.js';
import type { Endpoint, HealthState, Network, NetworkRecord } from '../registry/types.js';
import { contains, parseCidr } from '../plumbing/ipam.js';
import { auxAddresses } from '../plumbing/aux-addresses.js';
import { driverOf, subLinkOf } from '../plumbing/sublinks.js';
import { egressRuleText } from '../registry/egress-rules.js';
import { endpointRules } from '../egress/policy.js';
import type { EgressCounters } from '../egress/egress-firewall.js';

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

/**
 * Where a network comes from, as `ls` and `inspect` show it: "nsdns" for one nsdns provisioned,
 * else its registry file.
 */
export function shownSource(registry: Registry, network: string): string | undefined {
  return registry.isProvisioned(network) ? 'nsdns' : registry.sourceOf(network);
}

function prefixLength(record: NetworkRecord, address: string): number {
  const subnet = record.network.subnets.find((s) => s.subnet.includes(':') === address.includes(':'));
  return subnet ? Number(subnet.subnet.split('/')[1]) : address.includes(':') ? 128 : 32;
}

/**
 * Names several endpoints hold as their own (nodes of a shared registry publishing one name): each
 * answers all their addresses. Absent when there are none (a file or a connect never has any).
 */
function sharedNames(endpoints: readonly Endpoint[]): { SharedNames?: string[] } {
  const seen = new Set<string>();
  const shared = new Set<string>();
  for (const e of endpoints) {
    if (seen.has(e.name)) shared.add(e.name);
    else seen.add(e.name);
  }
  return shared.size > 0 ? { SharedNames: [...shared].sort() } : {};
}

/** Docker's AuxiliaryAddresses of one subnet: the network's aux addresses inside it. */
function auxOf(network: Network, subnet: string): { AuxiliaryAddresses?: Record<string, string> } {
  const cidr = parseCidr(subnet);
  const inside = Object.entries(auxAddresses(network)).filter(([, ip]) => contains(cidr, ip));
  return inside.length > 0 ? { AuxiliaryAddresses: Object.fromEntries(inside) } : {};
}

/**
 * The shape of `docker network inspect`. `egress`: the live figures of endpoints under a policy
 * whose namespace is enforced, by endpoint id.
 */
export function inspectNetwork(record: NetworkRecord, source: string | undefined, health?: HealthStates, probes?: HealthProbes, egress?: ReadonlyMap<string, EgressLive>): object {
  const { network, endpoints } = record;
  return {
    Name: network.name,
    Id: network.id,
    Created: network.created ?? null,
    Scope: scopeOf(network),
    Driver: driverOf(network),
    EnableIPv6: network.subnets.some((s) => s.subnet.includes(':')),
    IPAM: { Driver: 'default', Options: {}, Config: network.subnets.map((s) => ({ Subnet: s.subnet, ...(s.gateway && { Gateway: s.gateway }), ...(s.ipRange && { IPRange: s.ipRange }), ...auxOf(network, s.subnet) })) },
    Internal: network.internal,
    Attachable: true,
    Options: {
      ...(network.bridge && { 'com.docker.network.bridge.name': network.bridge }),
      ...(network.mtu && { 'com.docker.network.driver.mtu': String(network.mtu) }),
      ...(network.overlay && { 'com.docker.network.driver.overlay.vxlanid_list': String(network.overlay.vni) }),
      ...network.options,
    },
    DNS: {
      Upstreams: network.upstreams, ...(network.domain && { Domain: network.domain }),
      ...(network.records && network.records.length > 0 && { Records: network.records }),
      ...sharedNames(endpoints),
    },
    ...(network.egress && { Egress: network.egress.map(egressRuleText) }),
    Source: source,
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
      // The policy the endpoint is under: its own, else the network's default.
      ...egressOf(e, network),
      ...liveEgressOf(egress?.get(e.id)),
    }])),
    Labels: network.labels ?? {},
  };
}

export function endpointSummary(e: Endpoint, record: NetworkRecord, health?: { states: HealthStates; probes?: HealthProbes }): object {
  const gateway = record.network.subnets.find((s) => !s.subnet.includes(':'))?.gateway;
  return {
    network: e.network, name: e.name, id: e.id, shortId: e.id.slice(0, 12), aliases: e.aliases, ipv4: e.ipv4, ipv6: e.ipv6,
    mac: e.mac, ifname: e.ifname, hostIf: e.hostIf, netns: e.netns, gateway, nameserver: RESOLVER_ADDRESS, ports: e.ports ?? [],
    services: e.services ?? [], labels: e.labels ?? {},
    ...(record.network.domain !== undefined && { domain: record.network.domain }),
    ...(health && { health: healthOf(e, health.states, health.probes) }),
  };
}

/** Docker's scope words: an overlay network is the cluster's, every other this host's. */
function scopeOf(network: Network): 'swarm' | 'local' {
  return network.overlay ? 'swarm' : 'local';
}

/**
 * A row of `network ls`. Fields after `source` came later (fullId ... labels): older clients
 * ignore them. It counts endpoints without listing them: a file's network is packed, and decoding
 * it to count would cost time in proportion to its endpoints.
 */
export function networkRow({ network, endpointCount }: CompiledNetwork, source: string | undefined) {
  return {
    name: network.name, id: network.id.slice(0, 12), driver: driverOf(network), internal: network.internal,
    subnets: network.subnets.map((s) => s.subnet), endpoints: endpointCount, bridge: network.bridge ?? null,
    source, fullId: network.id, created: network.created ?? null, scope: scopeOf(network),
    ipv6: network.subnets.some((s) => s.subnet.includes(':')), labels: network.labels ?? {},
    parent: subLinkOf(network)?.parent ?? null,
  };
}

/** `Egress`: the short forms of the rules an endpoint is under, when it is under any. */
function egressOf(e: Endpoint, network: Network): { Egress?: string[] } {
  const rules = endpointRules(e, network);
  return rules === undefined ? {} : { Egress: rules.map(egressRuleText) };
}

/** An endpoint under a policy: what the kernel holds for its namespace, or why its traffic is not enforced. */
export type EgressLive = { counters: EgressCounters } | { notEnforced: string };

/**
 * `EgressEnforced`: what the kernel holds for the endpoint's namespace now (learned set sizes,
 * drops); `EgressNotEnforced`: why its traffic is not fully enforced (its names are filtered all the same, its addresses still choose its chain).
 */
function liveEgressOf(live: EgressLive | undefined): { EgressEnforced?: { Learned4: number; Learned6: number; Dropped: number }; EgressNotEnforced?: string } {
  if (live === undefined) return {};
  if ('notEnforced' in live) return { EgressNotEnforced: live.notEnforced };
  const { counters } = live;
  return { EgressEnforced: { Learned4: counters.learned4, Learned6: counters.learned6, Dropped: counters.dropped } };
}
