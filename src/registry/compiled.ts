// One network turned into lookup indexes, built once when the network changes. Addresses are kept
// in wire form (4 or 16 bytes) so an answer copies them instead of parsing text per query.
import ipaddr from 'ipaddr.js';
import type { Endpoint, Network, NetworkRecord, StaticRecord } from './types.js';

export interface NameEntry {
  readonly endpoints: readonly Endpoint[];
  /**
   * The endpoint whose own name (or id) this is; undefined for an alias, which any number of
   * endpoints may share and which answers only its healthy holders.
   */
  readonly own: Endpoint | undefined;
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
  /** The zone PTR answers and SRV targets name endpoints in: the domain, else the network name (lower case). */
  readonly canonicalZone: string;
  /** Static records by lower-case name relative to the zones. */
  readonly records: ReadonlyMap<string, readonly StaticRecord[]>;
  /** Canonical address → names of the static A/AAAA records that hold it (PTR). */
  readonly recordAddresses: ReadonlyMap<string, readonly string[]>;
}

export const SHORT_ID_LENGTH = 12;

/**
 * Builds a CompiledNetwork from endpoints added in any number of slices, so a large network can be
 * compiled between event-loop turns; nothing is visible until `build()`.
 */
export class NetworkBuilder {
  private readonly endpoints: Endpoint[] = [];
  private readonly names = new Map<string, { endpoints: Endpoint[]; own: Endpoint | undefined }>();
  private readonly byAddress = new Map<string, Endpoint[]>();
  private ownUpstreams: boolean;

  constructor(private readonly network: Network) {
    this.ownUpstreams = network.upstreams.length > 0;
  }

  add(endpoints: readonly Endpoint[]): void {
    const name = (key: string, e: Endpoint, own: boolean) => {
      const entry = this.names.get(key);
      if (!entry) this.names.set(key, { endpoints: [e], own: own ? e : undefined });
      else if (!entry.endpoints.includes(e)) entry.endpoints.push(e);
    };
    for (const e of endpoints) {
      this.endpoints.push(e);
      name(e.name, e, true);
      for (const alias of e.aliases) name(alias, e, false);
      const id = e.id.toLowerCase();
      if (/^[0-9a-f]{12,}$/.test(id)) {
        name(id, e, true);
        name(id.slice(0, SHORT_ID_LENGTH), e, true);
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
    // Names are kept as typed (MixedNet), DNS compares lower case.
    const zones = [network.name.toLowerCase()];
    if (network.domain && network.domain.toLowerCase() !== zones[0]) zones.push(network.domain.toLowerCase());
    const canonicalZone = (network.domain ?? network.name).toLowerCase();
    const records = new Map<string, StaticRecord[]>();
    const recordAddresses = new Map<string, string[]>();
    for (const r of network.records ?? []) {
      const list = records.get(r.name);
      if (list) list.push(r);
      else records.set(r.name, [r]);
      if (r.type === 'A' || r.type === 'AAAA') {
        const key = ipaddr.parse(r.value).toString();
        const fqdn = `${r.name}.${canonicalZone}`;
        const names = recordAddresses.get(key);
        if (!names) recordAddresses.set(key, [fqdn]);
        else if (!names.includes(fqdn)) names.push(fqdn);
      }
    }
    return {
      network, endpoints: this.endpoints, names: this.names, byAddress: this.byAddress, zones, ownUpstreams: this.ownUpstreams,
      canonicalZone, records, recordAddresses,
    };
  }
}

export function compileNetwork(record: NetworkRecord): CompiledNetwork {
  const builder = new NetworkBuilder(record.network);
  builder.add(record.endpoints);
  return builder.build();
}

/** The name a PTR answer gives for an endpoint: one that resolves forward to the same address. */
export function canonicalName(endpoint: Endpoint, network: Network): string {
  return `${endpoint.name}.${(network.domain ?? network.name).toLowerCase()}`;
}
