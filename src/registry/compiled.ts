// One network turned into lookup indexes, built once when the network changes. Addresses are kept
// in wire form (4 or 16 bytes) so an answer copies them instead of parsing text per query.
import ipaddr from 'ipaddr.js';
import { ALIAS, NameRules, nameKeys } from './name-rules.js';
import { EndpointTextWriter, IndexWriter, PackedEndpoints, shareCommonValues, type PackedTables } from './packed.js';
import type { Endpoint, Network, NetworkRecord, StaticRecord } from './types.js';

export interface NameEntry {
  readonly endpoints: readonly Endpoint[];
  /**
   * The endpoint whose own name (or id) this is; undefined for an alias, which any number of
   * endpoints may share and which answers only its healthy holders.
   */
  readonly own: Endpoint | undefined;
}

/** Name → entry: a Map, or a network's packed index (packed.ts). */
export interface NameLookup {
  get(key: string): NameEntry | undefined;
  has(key: string): boolean;
}

/** Canonical address → the endpoints holding it: a Map, or a network's packed index. */
export interface AddressLookup {
  get(key: string): readonly Endpoint[] | undefined;
}

export interface CompiledNetwork {
  readonly network: Network;
  /**
   * Every endpoint. A network loaded from a file keeps its endpoints packed (packed.ts) and decodes
   * them here on each read: for commands, never for a query or a registry change.
   */
  readonly endpoints: readonly Endpoint[];
  readonly endpointCount: number;
  /**
   * The endpoints the daemon does more with than answer their names (few, even in a large file
   * network): those in a namespace nsdns serves, probed or given a health state, naming their own
   * upstreams or publishing ports.
   */
  readonly notable: readonly Endpoint[];
  /** The endpoints that live in a namespace nsdns serves (few, even in a large file network). */
  readonly inNamespaces: readonly InNamespace[];
  /** Lower-case name, alias, full id or 12-character short id → the endpoints it names. */
  readonly names: NameLookup;
  /** Canonical address → endpoints that hold it (PTR, and who is asking). */
  readonly byAddress: AddressLookup;
  /** Zones this network is authoritative for: its name, and its domain if it has one. */
  readonly zones: readonly string[];
  /** Whether the network or one of its endpoints names its own upstreams (known at build time). */
  readonly ownUpstreams: boolean;
  /** The zone PTR answers and SRV targets name endpoints in: the domain, else the network name (lower case). */
  readonly canonicalZone: string;
  /**
   * Set when other sources contribute endpoints (union.ts): the primary source's network alone,
   * what its owner edits and saves (`endpoints` above holds every source's).
   */
  readonly primary?: CompiledNetwork;
  /** Frees a packed network's tables once a newer version replaces it (PackedEndpoints.release). */
  readonly release?: () => void;
  /** Static records by lower-case name relative to the zones. */
  readonly records: ReadonlyMap<string, readonly StaticRecord[]>;
  /** Canonical address → names of the static A/AAAA records that hold it (PTR). */
  readonly recordAddresses: ReadonlyMap<string, readonly string[]>;
}

export type InNamespace = Endpoint & { readonly netns: string };

/** A dotted quad ipaddr.js would print as it is (no leading zeros): its own canonical key. */
const CANONICAL_IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** An endpoint's canonical addresses: the keys the address index finds it by. */
export function addressKeys(e: Endpoint, visit: (key: string) => void): void {
  for (const a of e.ipv4) visit(CANONICAL_IPV4.test(a) ? a : ipaddr.parse(a).toString());
  for (const a of e.ipv6) visit(ipaddr.parse(a).toString());
}

/**
 * Builds a CompiledNetwork from endpoints added in any number of slices, so a large network can be
 * compiled between event-loop turns; nothing is visible until `build()`.
 */
export class NetworkBuilder {
  private readonly endpoints: Endpoint[] = [];
  private readonly notable: Endpoint[] = [];
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
      if (isNotable(e)) this.notable.push(e);
      const own = { endpoints: [e], own: e };
      nameKeys(e, (key, kind) => this.addName(key, e, kind === ALIAS ? undefined : own));
      addressKeys(e, (key) => this.addAddress(key, e, own.endpoints));
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
    const { network, endpoints } = this;
    return {
      ...networkParts(network), network, endpoints, endpointCount: endpoints.length, notable: this.notable,
      inNamespaces: inNamespaces(this.notable), names: this.names, byAddress: this.byAddress, ownUpstreams: this.ownUpstreams,
    };
  }
}

/** Whether the daemon does more with an endpoint than answer its names (CompiledNetwork.notable). */
export function isNotable(e: Endpoint): boolean {
  return e.netns !== undefined || e.healthCheck !== undefined || e.health !== undefined || e.upstreams.length > 0 || (e.ports?.length ?? 0) > 0;
}

export function inNamespaces(notable: readonly Endpoint[]): InNamespace[] {
  return notable.filter((e): e is InNamespace => e.netns !== undefined);
}

/** What a compiled network takes from the network itself: its zones and static records. */
export function networkParts(network: Network): Pick<CompiledNetwork, 'zones' | 'canonicalZone' | 'records' | 'recordAddresses'> {
  // Names are kept as typed (MixedNet), DNS compares lower case.
  const zones = network.nameIsZone === false && network.domain ? [] : [network.name.toLowerCase()];
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
  return { zones, canonicalZone, records, recordAddresses };
}

/**
 * Packs a network for compilePacked (in the registry parser), endpoint by endpoint as they are
 * validated, so a large file's endpoints are never all objects at once: the same keys as
 * NetworkBuilder takes, with the same rules, so it answers exactly as one built from objects.
 */
export class NetworkPacker {
  private readonly rules: NameRules;
  private readonly addresses: IndexWriter;
  private readonly text: EndpointTextWriter;
  private readonly notable: Endpoint[] = [];
  private count = 0;

  /**
   * `expected`: the endpoints to come and the bytes of their text in the file, when known (a file
   * split by json-endpoints.ts): room for them is made once, not by doubling.
   */
  constructor(private readonly network: Network, expected?: { endpoints: number; bytes: number }) {
    // Most endpoints have a name, a derived id's short id (12 characters) and one address; a
    // name is shorter than the endpoint's text in the file.
    const per = expected ? expected.bytes / Math.max(1, expected.endpoints) : 0;
    this.rules = new NameRules(expected && new IndexWriter(expected.endpoints * 2, expected.endpoints * (12 + per / 4)));
    this.addresses = new IndexWriter(expected?.endpoints, expected && expected.endpoints * 12);
    // Packed text drops spaces and empty lists but may write a list where the file had one value.
    this.text = new EndpointTextWriter(network.name, expected && { endpoints: expected.endpoints, bytes: expected.bytes * 1.1 + 1024 });
  }

  add(e: Endpoint): void {
    const i = this.count++;
    this.rules.add(e, i);
    addressKeys(e, (key) => this.addresses.add(key, i, false));
    this.text.append(e);
    if (isNotable(e)) this.notable.push(e);
  }

  /** What breaks the name rules (name-rules.ts); empty when the network may be served. */
  problems(): string[] {
    return this.rules.problems(this.network, (i) => this.text.endpoint(i).id);
  }

  /** Every array on a buffer of its own, whole (each can be transferred). */
  finish(): { tables: PackedTables; notable: Endpoint[]; total: number } {
    const tables: PackedTables = { names: this.rules.names.finish(), addresses: this.addresses.finish(), ...this.text.finish() };
    return { tables, notable: this.notable, total: this.count };
  }
}

/** A network given as objects, packed (tests, and files already parsed whole). */
export function packNetwork(record: NetworkRecord): { tables: PackedTables; notable: Endpoint[] } {
  const packer = new NetworkPacker(record.network);
  for (const e of record.endpoints) packer.add(e);
  return packer.finish();
}

/**
 * A network whose endpoints arrive packed from the registry parser: only `notable` endpoints are
 * objects; the rest are decoded when a lookup needs them.
 */
export function compilePacked(network: Network, tables: PackedTables, notable: Endpoint[]): CompiledNetwork {
  const packed = new PackedEndpoints(tables, network.name);
  for (const e of notable) shareCommonValues(e, network.name);
  return {
    ...networkParts(network), network, endpointCount: packed.count, notable, inNamespaces: inNamespaces(notable),
    get endpoints() { return packed.all(); },
    names: packed.names, byAddress: packed.byAddress, release: () => packed.release(),
    ownUpstreams: network.upstreams.length > 0 || notable.some((e) => e.upstreams.length > 0),
  };
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
