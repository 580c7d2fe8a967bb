// Who a client is, by its source address: the networks it is a tenant of. A client whose address
// is an endpoint's own, or lies inside a subnet of a network nsdns serves (provisioned or from a
// registry file), is that network's tenant wherever it asks: at a host listener it sees what its
// own 127.0.0.11 would show, never more (docs/security.md). An address of the host's own (a
// bridge's gateway among them) is the host's, not a tenant's; a gateway a registry file declares is
// not, unless the host has it: the file's author would otherwise choose an address of its own
// tenants that sees every network. Only networks this host vouches for make tenants: another
// host's network from a shared registry (etcd) claims subnets and addresses no one here checked,
// and must not narrow, or refuse, what a client of this host sees. Built once per snapshot; a client's answer is remembered, so a
// query costs a map lookup.
import ipaddr from 'ipaddr.js';
import type { CompiledNetwork } from './compiled.js';
import type { Snapshot } from './registry.js';
import type { View } from './view.js';

/** Remembered clients per snapshot; spoofed sources must not grow it without bound. */
const MEMO_LIMIT = 4096;

export class Tenants {
  private readonly subnets = new SubnetIndex();
  /** Networks without subnets: their endpoints' addresses are all that makes their tenants. */
  private readonly bare: CompiledNetwork[] = [];
  /** The host's own addresses: never a tenant. */
  private readonly host = new Set<string>();
  private readonly memo = new Map<string, readonly string[] | null>();

  /**
   * `hostAddresses`: the addresses of the host's own interfaces. `local`: whether a network is
   * this host's (not another host's, from a shared registry); only those make tenants.
   */
  constructor(networks: ReadonlyMap<string, CompiledNetwork>, hostAddresses: Iterable<string> = [], local: (network: string) => boolean = () => true) {
    for (const address of hostAddresses) {
      const addr = parsed(address);
      if (addr !== undefined) this.host.add(addr.toString());
    }
    for (const net of networks.values()) {
      if (!local(net.network.name)) continue;
      if (net.network.subnets.length === 0) this.bare.push(net);
      for (const subnet of net.network.subnets) {
        try {
          this.subnets.add(subnet.subnet, net.network.name);
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

  /** A client not remembered: a map get per prefix length in use, and one per network without subnets. */
  private find(address: string): readonly string[] | null {
    const addr = parsed(address);
    const key = addr?.toString();
    // The host is no tenant, whatever endpoint address a registry file claims it has.
    if (addr === undefined || key === undefined || this.host.has(key)) return null;
    const found = new Set<string>();
    this.subnets.find(addr, found);
    // Inside a served subnet, the subnet decides: a file's endpoint without subnets that claims a
    // tenant's address must not become that tenant's view (nor give it the file's upstreams). A
    // network with subnets has every endpoint address inside them (document.ts checks).
    if (found.size === 0) {
      // The primary's addresses only: endpoints other hosts add (union.ts) are not this host's to vouch for.
      for (const net of this.bare) if (((net.primary ?? net).byAddress.get(key)?.length ?? 0) > 0) found.add(net.network.name);
    }
    return found.size === 0 ? null : [...found].sort();
  }
}

/**
 * Subnets by family and prefix length, each keyed by its masked address: which subnets hold an
 * address costs one map get per prefix length in use, not a match per network.
 */
class SubnetIndex {
  private readonly slots: Array<{ kind: string; bits: number; networks: Map<string, string[]> }> = [];

  /** Throws on a subnet that is no CIDR. */
  add(cidr: string, network: string): void {
    const [addr, bits] = ipaddr.parseCIDR(cidr);
    let slot = this.slots.find((s) => s.kind === addr.kind() && s.bits === bits);
    if (!slot) this.slots.push((slot = { kind: addr.kind(), bits, networks: new Map() }));
    const key = masked(addr.toByteArray(), bits);
    const list = slot.networks.get(key);
    if (list) list.push(network);
    else slot.networks.set(key, [network]);
  }

  find(addr: ipaddr.IPv4 | ipaddr.IPv6, into: Set<string>): void {
    const bytes = addr.toByteArray();
    for (const slot of this.slots) {
      if (slot.kind !== addr.kind()) continue;
      for (const network of slot.networks.get(masked(bytes, slot.bits)) ?? []) into.add(network);
    }
  }
}

/** The first `bits` of an address, one character per byte. */
function masked(bytes: readonly number[], bits: number): string {
  let key = '';
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    key += String.fromCharCode(bytes[i] & (0xff << (8 - keep)) & 0xff);
  }
  return key;
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

/** The address parsed (an IPv4-mapped IPv6 address as IPv4); undefined when it is none. */
function parsed(address: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  try {
    return ipaddr.process(address);
  } catch {
    return undefined;
  }
}
