// Who a client is, by its source address: the networks it is a tenant of. A client whose address
// is an endpoint's own, or lies inside a subnet of a network nsdns serves (provisioned or from a
// registry file), is that network's tenant wherever it asks: at a host listener it sees what its
// own 127.0.0.11 would show, never more (README, Security model). An address of the host's own (a
// bridge's gateway among them) is the host's, not a tenant's; a gateway a registry file declares is
// not, unless the host has it: the file's author would otherwise choose an address of its own
// tenants that sees every network. Built once per snapshot; a client's answer is remembered, so a
// query costs a map lookup.
import ipaddr from 'ipaddr.js';
import type { CompiledNetwork } from './compiled.js';
import type { Snapshot } from './registry.js';
import type { View } from './view.js';

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** Remembered clients per snapshot; spoofed sources must not grow it without bound. */
const MEMO_LIMIT = 4096;

export class Tenants {
  private readonly ranges: Array<{ range: Range; network: string }> = [];
  /** The host's own addresses: never a tenant. */
  private readonly host = new Set<string>();
  private readonly memo = new Map<string, readonly string[] | null>();

  /** `hostAddresses`: the addresses of the host's own interfaces. */
  constructor(private readonly networks: ReadonlyMap<string, CompiledNetwork>, hostAddresses: Iterable<string> = []) {
    for (const address of hostAddresses) {
      const key = canonical(address);
      if (key !== undefined) this.host.add(key);
    }
    for (const { network } of networks.values()) {
      for (const subnet of network.subnets) {
        try {
          this.ranges.push({ range: ipaddr.parseCIDR(subnet.subnet), network: network.name });
        } catch { /* refused where the network was accepted; nothing to match */ }
      }
    }
  }

  /** The names of the networks `address` is a tenant of (sorted); null when it is no tenant (the host's own addresses are none). */
  of(address: string): readonly string[] | null {
    let result = this.memo.get(address);
    if (result === undefined) {
      result = this.find(address);
      if (this.memo.size >= MEMO_LIMIT) this.memo.clear();
      this.memo.set(address, result);
    }
    return result;
  }

  private find(address: string): readonly string[] | null {
    const key = canonical(address);
    // The host is no tenant, whatever endpoint address a registry file claims it has.
    if (key === undefined || this.host.has(key)) return null;
    const found = new Set<string>();
    const addr = ipaddr.parse(key);
    for (const { range, network } of this.ranges) {
      if (range[0].kind() === addr.kind() && addr.match(range)) found.add(network);
    }
    // Inside a served subnet, the subnet decides: a file's endpoint without subnets that claims a
    // tenant's address must not become that tenant's view (nor give it the file's upstreams).
    if (found.size === 0) {
      for (const net of this.networks.values()) {
        if ((net.byAddress.get(key)?.length ?? 0) > 0) found.add(net.network.name);
      }
    }
    return found.size === 0 ? null : [...found].sort();
  }
}

/**
 * How a listener that serves `networks` (undefined: all) sees each client: a tenant sees its own
 * networks among them, or is refused (null) when it has none there; anyone else sees the
 * listener's view. One function per snapshot (see Registry.derived); each client's view is
 * remembered.
 */
export function clientViews(snapshot: Snapshot, tenants: Tenants, networks: readonly string[] | undefined): (address: string) => View | null {
  const everyone = snapshot.view(networks);
  const served = networks === undefined ? undefined : new Set(networks);
  const memo = new Map<string, View | null>();
  return (address) => {
    let view = memo.get(address);
    if (view === undefined) {
      const own = tenants.of(address);
      if (own === null) view = everyone;
      else {
        const shared = served === undefined ? own : own.filter((n) => served.has(n));
        view = shared.length === 0 ? null : snapshot.view(shared);
      }
      if (memo.size >= MEMO_LIMIT) memo.clear();
      memo.set(address, view);
    }
    return view;
  };
}

/** The address as ipaddr.js prints it (an IPv4-mapped IPv6 address as IPv4); undefined when it is none. */
function canonical(address: string): string | undefined {
  try {
    return ipaddr.process(address).toString();
  } catch {
    return undefined;
  }
}
