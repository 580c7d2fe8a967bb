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
}

export const SHORT_ID_LENGTH = 12;

export function compileNetwork(record: NetworkRecord): CompiledNetwork {
  const names = new Map<string, Endpoint[]>();
  const byAddress = new Map<string, Endpoint[]>();
  const add = <K>(map: Map<K, Endpoint[]>, key: K, e: Endpoint) => {
    const list = map.get(key);
    if (!list) map.set(key, [e]);
    else if (!list.includes(e)) list.push(e);
  };
  for (const e of record.endpoints) {
    add(names, e.name, e);
    for (const alias of e.aliases) add(names, alias, e);
    const id = e.id.toLowerCase();
    if (/^[0-9a-f]{12,}$/.test(id)) {
      add(names, id, e);
      add(names, id.slice(0, SHORT_ID_LENGTH), e);
    }
    for (const a of [...e.ipv4, ...e.ipv6]) add(byAddress, ipaddr.parse(a).toString(), e);
  }
  const zones = [record.network.name];
  if (record.network.domain && record.network.domain !== record.network.name) zones.push(record.network.domain);
  return {
    network: record.network,
    endpoints: record.endpoints,
    names: new Map([...names].map(([k, endpoints]) => [k, { endpoints }])),
    byAddress,
    zones,
  };
}

/** The name a PTR answer gives for an endpoint: one that resolves forward to the same address. */
export function canonicalName(endpoint: Endpoint, network: Network): string {
  return `${endpoint.name}.${network.domain ?? network.name}`;
}
