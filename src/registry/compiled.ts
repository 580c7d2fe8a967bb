// One network turned into lookup indexes, built once when the network changes. Addresses are kept
// in wire form (4 or 16 bytes) so an answer copies them instead of parsing text per query.
import ipaddr from 'ipaddr.js';
import type { Endpoint, Network, NetworkRecord } from './types.js';

export interface NameEntry {
  readonly endpoints: readonly Endpoint[];
}

export interface CompiledNetwork {
  readonly network: Network;
  readonly endpoints: readonly Endpoint[];
  /** Lower-case name, alias, full id or 12-character short id → the endpoints it names. */
  readonly names: ReadonlyMap<string, NameEntry>;
  /** Canonical address → endpoints that hold it (PTR, and who is asking). */
  readonly byAddress: ReadonlyMap<string, readonly Endpoint[]>;
  /** Zones this network is authoritative for: its name, and its domain if it has one. */
  readonly zones: readonly string[];
  /** Whether the network or one of its endpoints names its own upstreams (known at build time). */
  readonly ownUpstreams: boolean;
}

export const SHORT_ID_LENGTH = 12;

/**
 * Builds a CompiledNetwork from endpoints added in any number of slices, so a large network can be
 * compiled between event-loop turns; nothing is visible until `build()`.
 */
export class NetworkBuilder {
  private readonly endpoints: Endpoint[] = [];
  private readonly names = new Map<string, { endpoints: Endpoint[] }>();
  private readonly byAddress = new Map<string, Endpoint[]>();
  private ownUpstreams: boolean;

  constructor(private readonly network: Network) {
    this.ownUpstreams = network.upstreams.length > 0;
  }

  add(endpoints: readonly Endpoint[]): void {
    const name = (key: string, e: Endpoint) => {
      const entry = this.names.get(key);
      if (!entry) this.names.set(key, { endpoints: [e] });
      else if (!entry.endpoints.includes(e)) entry.endpoints.push(e);
    };
    for (const e of endpoints) {
      this.endpoints.push(e);
      name(e.name, e);
      for (const alias of e.aliases) name(alias, e);
      const id = e.id.toLowerCase();
      if (/^[0-9a-f]{12,}$/.test(id)) {
        name(id, e);
        name(id.slice(0, SHORT_ID_LENGTH), e);
      }
      for (const a of [...e.ipv4, ...e.ipv6]) {
        const key = ipaddr.parse(a).toString();
        const list = this.byAddress.get(key);
        if (!list) this.byAddress.set(key, [e]);
        else if (!list.includes(e)) list.push(e);
      }
      if (e.upstreams.length > 0) this.ownUpstreams = true;
    }
  }

  build(): CompiledNetwork {
    const { network } = this;
    const zones = [network.name];
    if (network.domain && network.domain !== network.name) zones.push(network.domain);
    return { network, endpoints: this.endpoints, names: this.names, byAddress: this.byAddress, zones, ownUpstreams: this.ownUpstreams };
  }
}

export function compileNetwork(record: NetworkRecord): CompiledNetwork {
  const builder = new NetworkBuilder(record.network);
  builder.add(record.endpoints);
  return builder.build();
}

/** The name a PTR answer gives for an endpoint: one that resolves forward to the same address. */
export function canonicalName(endpoint: Endpoint, network: Network): string {
  return `${endpoint.name}.${network.domain ?? network.name}`;
}
