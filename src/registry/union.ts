// A network whose endpoints come from several sources: the primary's compiled network (the source
// that defines it: nsdns's own state, a file, or a shared registry) with the endpoints other
// sources contribute (other hosts through etcd) laid over it. Only the contributions are compiled
// again when they change: a large packed primary is neither decoded nor rebuilt, and a query
// reads both layers (two lookups, and a merged entry only for a name both layers hold).
import { compileNetwork, type AddressLookup, type CompiledNetwork, type NameEntry, type NameLookup } from './compiled.js';
import { isLongId, isNameId, SHORT_ID_LENGTH } from './ids.js';
import type { Endpoint } from './types.js';

/**
 * `primary` with `contributed` added, each endpoint once: an endpoint (by id) the primary or an
 * earlier contribution already holds is skipped, so this daemon's own endpoints coming back
 * through a shared registry are not counted twice. The primary itself when nothing is added.
 */
export function unionNetwork(primary: CompiledNetwork, contributed: Iterable<readonly Endpoint[]>): CompiledNetwork {
  const added = newEndpoints(primary, contributed);
  if (added.length === 0) return primary;
  const overlay = compileNetwork({ network: primary.network, endpoints: added });
  return {
    network: primary.network,
    primary,
    get endpoints() { return [...primary.endpoints, ...overlay.endpoints]; },
    endpointCount: primary.endpointCount + overlay.endpointCount,
    notable: [...primary.notable, ...overlay.notable],
    // Contributions never name a namespace (Registry.setContribution refuses them).
    inNamespaces: primary.inNamespaces,
    names: layeredNames(primary.names, overlay.names),
    byAddress: layeredAddresses(primary.byAddress, overlay.byAddress),
    zones: primary.zones,
    canonicalZone: primary.canonicalZone,
    ownUpstreams: primary.ownUpstreams,
    records: primary.records,
    recordAddresses: primary.recordAddresses,
    // No release: the primary's tables stay in use; the registry frees them when it drops the primary.
  };
}

function newEndpoints(primary: CompiledNetwork, contributed: Iterable<readonly Endpoint[]>): Endpoint[] {
  const added: Endpoint[] = [];
  const ids = new Set<string>();
  for (const list of contributed) {
    for (const e of list) {
      if (ids.has(e.id) || holds(primary, e)) continue;
      ids.add(e.id);
      added.push(e);
    }
  }
  return added;
}

/**
 * Whether `network` holds an endpoint with this id. A hex id (Docker's, or derived) is in the name
 * index (a long one by its short id); any other id is looked for among every endpoint, which
 * decodes a packed network: ask only when needed.
 */
export function holdsId(network: CompiledNetwork, id: string): boolean {
  const key = id.toLowerCase();
  if (!isNameId(key)) return network.endpoints.some((held) => held.id.toLowerCase() === key);
  return network.names.get(isLongId(key) ? key.slice(0, SHORT_ID_LENGTH) : key)?.endpoints.some((held) => held.id.toLowerCase() === key) ?? false;
}

/**
 * Whether `network` holds e (by id). A hex id is found whatever e's name: another host's value
 * that reuses a local id under another name is not served beside it. Other ids are found by e's
 * own name, a key every endpoint has.
 */
function holds(network: CompiledNetwork, e: Endpoint): boolean {
  if (isNameId(e.id.toLowerCase())) return holdsId(network, e.id);
  return network.names.get(e.name.toLowerCase())?.endpoints.some((held) => held.id === e.id) ?? false;
}

/** A name both layers hold answers every holder, as one network built from both would (NetworkBuilder). */
function layeredNames(base: NameLookup, overlay: NameLookup): NameLookup {
  return {
    get(key: string): NameEntry | undefined {
      const a = base.get(key);
      const b = overlay.get(key);
      if (a === undefined || b === undefined) return a ?? b;
      return { endpoints: [...a.endpoints, ...b.endpoints], own: a.own ?? b.own };
    },
    has: (key: string) => base.has(key) || overlay.has(key),
  };
}

function layeredAddresses(base: AddressLookup, overlay: AddressLookup): AddressLookup {
  return {
    get(key: string): readonly Endpoint[] | undefined {
      const a = base.get(key);
      const b = overlay.get(key);
      if (a === undefined || b === undefined) return a ?? b;
      return [...a, ...b];
    },
  };
}
