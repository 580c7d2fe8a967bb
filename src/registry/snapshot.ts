// One version of the registry: every network compiled, immutable. Readers take one per query
// (Registry.current()); views over sets of networks and the namespace index are built once per
// snapshot, when first asked for.
import { NsdnsError } from '../errors.js';
import type { CompiledNetwork } from './compiled.js';
import { printable } from './fields.js';
import { HealthStates } from './health-state.js';
import type { Endpoint, NetworkRecord } from './types.js';
import { View, type FailOpenListener } from './view.js';

export class Snapshot {
  private readonly views = new Map<string, View>();

  constructor(
    readonly version: number,
    readonly networks: ReadonlyMap<string, CompiledNetwork>,
    readonly health: HealthStates = new HealthStates(),
    private readonly onFailOpen?: FailOpenListener,
  ) {}

  /** The view over the named networks (unknown names are skipped), or over all with `undefined`. */
  view(networks?: readonly string[]): View {
    const key = networks === undefined ? '*' : [...networks].sort().join(',');
    let view = this.views.get(key);
    if (!view) {
      const selected = networks === undefined
        ? [...this.networks.values()]
        : networks.map((n) => this.networks.get(n)).filter((n): n is CompiledNetwork => n !== undefined);
      view = new View(selected, this.health, this.onFailOpen);
      this.views.set(key, view);
    }
    return view;
  }

  private byNamespace: Map<string, Endpoint[]> | undefined;

  /** Endpoints grouped by the namespace they live in (only endpoints that name one). */
  namespaces(): ReadonlyMap<string, readonly Endpoint[]> {
    if (!this.byNamespace) {
      this.byNamespace = new Map();
      // Only the endpoints that name a namespace: a registry change does not walk every endpoint.
      for (const net of this.networks.values()) {
        for (const e of net.inNamespaces) {
          const list = this.byNamespace.get(e.netns);
          if (list) list.push(e);
          else this.byNamespace.set(e.netns, [e]);
        }
      }
    }
    return this.byNamespace;
  }

  /**
   * The network a person means by `query`, as docker finds one: its name as stored, its full id,
   * its name in any case, then a unique id prefix (the 12 characters `ls` shows, or fewer).
   * Undefined when nothing matches; ERR_CONFLICT when the query fits more than one network.
   */
  find(query: string): CompiledNetwork | undefined {
    const exact = this.networks.get(query);
    if (exact) return exact;
    const all = [...this.networks.values()];
    const lower = query.toLowerCase();
    const byId = all.find((n) => n.network.id.toLowerCase() === lower);
    if (byId) return byId;
    const byName = all.filter((n) => n.network.name.toLowerCase() === lower);
    if (byName.length === 1) return byName[0];
    const byPrefix = byName.length === 0 && /^[0-9a-f]{1,64}$/.test(lower) ? all.filter((n) => n.network.id.toLowerCase().startsWith(lower)) : byName;
    if (byPrefix.length > 1) {
      const names = byPrefix.slice(0, 5).map((n) => `"${printable(n.network.name)}"`).join(', ');
      throw new NsdnsError('ERR_CONFLICT', `"${printable(query)}" matches more than one network (${names}); give the full name or id`);
    }
    return byPrefix[0];
  }

  /**
   * Every network as plain records with its primary source's endpoints (what its owner edits and
   * saves: never another host's); a record's endpoints are read (and, when packed, decoded) only when used.
   */
  get records(): NetworkRecord[] {
    return [...this.networks.values()].map((n) => {
      let endpoints: Endpoint[] | undefined;
      const own = n.primary ?? n;
      return { network: n.network, get endpoints() { return (endpoints ??= [...own.endpoints]); } };
    });
  }
}
