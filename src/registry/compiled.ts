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
  /** The endpoints that live in a namespace nsdns serves (few, even in a large file network). */
  readonly inNamespaces: readonly InNamespace[];
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

export type InNamespace = Endpoint & { readonly netns: string };

export const SHORT_ID_LENGTH = 12;

/** A dotted quad ipaddr.js would print as it is (no leading zeros): its own canonical key. */
const CANONICAL_IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const NONE: string[] = Object.freeze([]) as unknown as string[];

/**
 * Endpoints deserialized from a worker or a state file each carry their own copy of the network's
 * name and their own empty lists: one shared value instead (a large network has ~30 % fewer objects).
 */
function shareCommonValues(e: Endpoint, network: string): void {
  if (e.network === network) e.network = network;
  if (e.aliases.length === 0) e.aliases = NONE;
  if (e.ipv6.length === 0) e.ipv6 = NONE;
  if (e.upstreams.length === 0) e.upstreams = NONE;
}

/**
 * Builds a CompiledNetwork from endpoints added in any number of slices, so a large network can be
 * compiled between event-loop turns; nothing is visible until `build()`.
 */
export class NetworkBuilder {
  private readonly endpoints: Endpoint[] = [];
  private readonly inNamespaces: InNamespace[] = [];
  private readonly names = new Map<string, { endpoints: Endpoint[]; own: Endpoint | undefined }>();
  private readonly byAddress = new Map<string, Endpoint[]>();
  /**
   * Entries and lists this builder may push to. An endpoint's own name, id and short id share one
   * entry, and its unique addresses that entry's one-element list (a large network holds a few
   * objects per endpoint, not a dozen): those are copied before a second endpoint joins them.
   */
  private readonly growable = new WeakSet<object>();
  private ownUpstreams: boolean;

  constructor(private readonly network: Network) {
    this.ownUpstreams = network.upstreams.length > 0;
  }

  add(endpoints: readonly Endpoint[]): void {
    for (const e of endpoints) {
      shareCommonValues(e, this.network.name);
      this.endpoints.push(e);
      if (e.netns !== undefined) this.inNamespaces.push(e as InNamespace);
      const own = { endpoints: [e], own: e };
      this.addName(e.name, e, own);
      for (const alias of e.aliases) this.addName(alias, e, undefined);
      const id = /[A-F]/.test(e.id) ? e.id.toLowerCase() : e.id;
      if (/^[0-9a-f]{12,}$/.test(id)) {
        this.addName(id, e, own);
        this.addName(id.slice(0, SHORT_ID_LENGTH), e, own);
      }
      for (const a of e.ipv4) this.addAddress(CANONICAL_IPV4.test(a) ? a : ipaddr.parse(a).toString(), e, own.endpoints);
      for (const a of e.ipv6) this.addAddress(ipaddr.parse(a).toString(), e, own.endpoints);
      if (e.upstreams.length > 0) this.ownUpstreams = true;
    }
  }

  /** `own`: the endpoint's shared own-name entry; undefined for an alias. */
  private addName(key: string, e: Endpoint, own: { endpoints: Endpoint[]; own: Endpoint } | undefined): void {
    let entry = this.names.get(key);
    if (!entry) {
      if (own) this.names.set(key, own);
      else {
        entry = { endpoints: [e], own: undefined };
        this.growable.add(entry);
        this.names.set(key, entry);
      }
      return;
    }
    if (entry.endpoints.includes(e)) return;
    if (!this.growable.has(entry)) {
      entry = { endpoints: [...entry.endpoints], own: entry.own };
      this.growable.add(entry);
      this.names.set(key, entry);
    }
    entry.endpoints.push(e);
  }

  private addAddress(key: string, e: Endpoint, alone: Endpoint[]): void {
    let list = this.byAddress.get(key);
    if (!list) {
      this.byAddress.set(key, alone);
      return;
    }
    if (list.includes(e)) return;
    if (!this.growable.has(list)) {
      list = [...list];
      this.growable.add(list);
      this.byAddress.set(key, list);
    }
    list.push(e);
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
      network, endpoints: this.endpoints, inNamespaces: this.inNamespaces, names: this.names, byAddress: this.byAddress, zones, ownUpstreams: this.ownUpstreams,
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
