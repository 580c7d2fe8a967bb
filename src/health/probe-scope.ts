// Where a health probe may go. The root daemon probes from the host, and a registry file chooses
// the endpoint's address and the HTTP path: left unchecked, a file could aim the probes at a
// service on the host (GET /admin/reset?confirm=yes on 127.0.0.1 every 500 ms) and read from the
// answers which local ports are open. So a probe goes only to an address inside its network's
// subnets that is not loopback, link-local, unspecified, multicast or one of the host's own,
// unless the operator's daemon configuration allows its range (`registryFiles.probeAllow`;
// never a file).
import os from 'node:os';
import ipaddr from 'ipaddr.js';
import type { Endpoint, Network } from '../registry/types.js';

/** `unreachable`: no configuration can make the probe work (probeAllow is no remedy). */
export type ProbeTarget = { readonly address: string } | { readonly refused: string; readonly unreachable?: true };

const NEVER = new Set(['loopback', 'linkLocal', 'unspecified', 'multicast', 'broadcast']);

/** The address to probe for this endpoint, or why it may not be probed. */
export function probeTarget(e: Endpoint, network: Network, allow: readonly string[], hostAddresses: ReadonlySet<string>): ProbeTarget {
  const text = e.ipv4[0] ?? e.ipv6[0];
  if (text === undefined) return { refused: 'it has no address' };
  // The kernel does not pass frames between a macvlan/ipvlan link and its own parent (docker's
  // known limit): a probe from the host would only time out.
  const options = network.options ?? {};
  if (network.bridge === undefined && options.parent !== undefined && (options.macvlan_mode !== undefined || options.ipvlan_mode !== undefined)) {
    const driver = options.macvlan_mode !== undefined ? 'macvlan' : 'ipvlan';
    return { refused: `a ${driver} endpoint cannot be reached from its own host through the parent interface ${options.parent} (as in Docker), so the host cannot probe it`, unreachable: true };
  }
  const address = ipaddr.process(text);
  if (allow.some((range) => inRange(address, range))) return { address: text };
  if (network.subnets.length === 0) return { refused: 'its network has no subnets (probes go only inside them)' };
  const range = address.range();
  if (NEVER.has(range)) return { refused: `${text} is a ${range} address` };
  if (hostAddresses.has(address.toString())) return { refused: `${text} is an address of the host` };
  if (!network.subnets.some((s) => inRange(address, s.subnet))) return { refused: `${text} is outside the network's subnets` };
  return { address: text };
}

function inRange(address: ipaddr.IPv4 | ipaddr.IPv6, cidr: string): boolean {
  const [net, bits] = ipaddr.parseCIDR(cidr);
  return net.kind() === address.kind() && address.match([net, bits] as [typeof net, number]);
}

/** The host's own addresses now, canonical (read when a network's probes are set up, not per probe). */
export function hostAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) {
      try { out.add(ipaddr.process(a.address.replace(/%.*$/, '')).toString()); } catch { /* not an address */ }
    }
  }
  return out;
}
