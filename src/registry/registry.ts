// The live registry: a current immutable snapshot, replaced whole on every change. Each change
// recompiles only the network it touches; readers take `current()` once per query and never see a
// half-applied change. A network is served from one primary source (the one that defines it) plus
// the endpoints other sources contribute (other hosts, through a shared registry: union.ts). Two
// local sources cannot fight over one network: only a shared registry's definition gives way (to
// a local one) or stands by (behind one). A namespace belongs to one source too: a registry file
// cannot add names to (or choose the upstreams of) a namespace that nsdns connected itself or that
// another file serves, whatever path names it (/run/netns/X, a second name for it, /proc/PID/ns/net): see RegistryOptions.identify.
import { EventEmitter } from 'node:events';
import { NsdnsError } from '../errors.js';
import { compileNetwork, compilePacked, type CompiledNetwork } from './compiled.js';
import type { PackedTables } from './packed.js';
import type { Endpoint, Network, NetworkRecord } from './types.js';
import type { FailOpenListener } from './view.js';
import { Snapshot } from './snapshot.js';
import { printable } from './fields.js';
import { HealthStates } from './health-state.js';
import { overlaps, spansOf } from './subnet-spans.js';
import { holdsId, unionNetwork } from './union.js';

export { Snapshot };

/** The source of the networks nsdns provisions itself (its state directory, `connect`). */
export const STATE_SOURCE = 'state';

/** Sources named `etcd:URL` are shared registries: DNS-only values from other hosts. */
export const REMOTE_SOURCE_PREFIX = 'etcd:';

export function isRemoteSource(source: string): boolean {
  return source.startsWith(REMOTE_SOURCE_PREFIX);
}

/** What one source gives for one network: its definition with endpoints, and endpoints it adds to another's. */
interface Offer {
  compiled?: CompiledNetwork;
  contributed?: readonly Endpoint[];
}

export interface RegistryEvents {
  change: [snapshot: Snapshot, changedNetwork: string];
  /**
   * A shared name (alias or service set) had no healthy holder, so every holder was answered.
   * Emitted once per name and view each time the health states change, never per query.
   */
  failOpen: [name: string, endpoints: number];
}

export interface RegistryOptions {
  /**
   * Which namespace a path names now (namespace-identity.ts): two paths of one namespace are one
   * namespace to its owner. Without it (unit tests), namespaces are told apart by path only.
   */
  identify?: (netns: string) => string | undefined;
}

export class Registry extends EventEmitter<RegistryEvents> {
  /** Every endpoint's health, beside the snapshots: a change is seen by the next query without a recompile. */
  readonly health = new HealthStates();
  private readonly failOpen: FailOpenListener = (name, endpoints) => void this.emit('failOpen', name, endpoints);
  private snapshot = new Snapshot(0, new Map(), this.health, this.failOpen);
  /** Network → its primary source (the one whose definition is served). */
  private readonly sources = new Map<string, string>();
  /** Network → source → what that source gives (in the order sources first gave it). */
  private readonly offers = new Map<string, Map<string, Offer>>();
  /** Short network id → the network that has it: `inspect ID`, `rm ID` must find one network. */
  private readonly ids = new Map<string, string>();
  /** Namespace path → the networks that have endpoints in it (kept with every install and removal). */
  private readonly namespaceNetworks = new Map<string, Set<string>>();
  /** Namespace identity → the paths in namespaceNetworks seen naming it, and each path's identity. */
  private readonly pathsOf = new Map<string, Set<string>>();
  private readonly identityOf = new Map<string, string>();
  /** Network → endpoint ids whose health state a shared registry's value set (takeHealth). */
  private readonly remoteStates = new Map<string, Set<string>>();

  constructor(private readonly options: RegistryOptions = {}) {
    super();
  }

  current(): Snapshot {
    return this.snapshot;
  }

  /**
   * A value computed from the current snapshot and recomputed only when the snapshot changes:
   * what a listener uses to keep its view without a lookup per query.
   */
  derived<T>(compute: (snapshot: Snapshot) => T): () => T {
    let snapshot: Snapshot | undefined;
    let value: T;
    return () => {
      const current = this.snapshot;
      if (current !== snapshot) {
        snapshot = current;
        value = compute(current);
      }
      return value;
    };
  }

  sourceOf(network: string): string | undefined {
    return this.sources.get(network);
  }

  /**
   * Whether nsdns provisioned `network` itself (a bridge or sublinks it made, from its state directory): only
   * such a network may be changed by connects, reach the firewall or get gateway listeners; one
   * from a registry file is its file's.
   */
  isProvisioned(network: string): boolean {
    const provisioned = this.snapshot.networks.get(network)?.network;
    // A bridge, or the parent interface of a macvlan/ipvlan network (plumbing/sublinks.ts).
    return this.sources.get(network) === STATE_SOURCE && Boolean(provisioned?.bridge ?? provisioned?.options?.parent);
  }

  /**
   * Adds or replaces `source`'s definition of one network with its endpoints. A shared registry's
   * definition of a network a local source defines stands by (its endpoints still join the
   * network's), and gives way to a local definition made later.
   */
  setNetwork(record: NetworkRecord, source: string): Snapshot {
    this.checkOwner(record.network, record.endpoints, source);
    return this.define(compileNetwork(record), source);
  }

  /** setNetwork for a network the registry parser parsed and packed (registry files). */
  setPackedNetwork(network: Network, tables: PackedTables, notable: Endpoint[], source: string): Snapshot {
    this.checkOwner(network, notable, source);
    return this.define(compilePacked(network, tables, notable), source);
  }

  /**
   * Sets the endpoints `source` adds to `network` (another host's, from a shared registry): served
   * once some source defines the network, each endpoint once. Only names: a contribution may not
   * name a namespace, so no source can add to a namespace another serves this way.
   */
  setContribution(network: string, source: string, endpoints: readonly Endpoint[]): Snapshot {
    checkNamesOnly(endpoints, source, `endpoints added to network "${printable(network)}"`);
    const offer = this.offerOf(network, source);
    const kept = new Set(endpoints.map((e) => e.id));
    for (const e of offer.contributed ?? []) {
      if (e.health === undefined || kept.has(e.id) || this.heldLocally(network, e.id)) continue;
      this.health.delete(network, e.id);
      this.remoteStates.get(network)?.delete(e.id);
    }
    offer.contributed = endpoints.length > 0 ? endpoints : undefined;
    this.takeHealth(network, source, endpoints);
    const snapshot = this.install(network);
    this.dropEmptyOffer(network, source);
    return snapshot;
  }

  removeContribution(network: string, source: string): Snapshot {
    if (this.offers.get(network)?.get(source)?.contributed === undefined) return this.snapshot;
    return this.setContribution(network, source, []);
  }

  /** The sources that add endpoints to `network` besides its primary one. */
  contributors(network: string): string[] {
    return [...this.offers.get(network)?.keys() ?? []].filter((s) => s !== this.sources.get(network));
  }

  private offerOf(network: string, source: string): Offer {
    let offers = this.offers.get(network);
    if (!offers) this.offers.set(network, (offers = new Map()));
    let offer = offers.get(source);
    if (!offer) offers.set(source, (offer = {}));
    return offer;
  }

  private dropEmptyOffer(network: string, source: string): void {
    const offers = this.offers.get(network);
    const offer = offers?.get(source);
    if (!offers || !offer || offer.compiled !== undefined || offer.contributed !== undefined) return;
    offers.delete(source);
    if (offers.size === 0) this.offers.delete(network);
  }

  private define(compiled: CompiledNetwork, source: string): Snapshot {
    const name = compiled.network.name;
    const offer = this.offerOf(name, source);
    const replaced = offer.compiled;
    offer.compiled = compiled;
    // A state given in a file (`health:`) is the endpoint's state from now on (until a probe or
    // `endpoint health` says otherwise).
    if (!isRemoteSource(source)) this.dropRemoteStates(name, compiled);
    this.takeHealth(name, source, compiled.notable);
    const snapshot = this.install(name);
    // After the change listeners: every query from now on uses the new version.
    if (replaced !== compiled) replaced?.release?.();
    return snapshot;
  }

  /**
   * Records the health states `endpoints` give. States are kept by network and endpoint id, so a
   * shared registry's value may not set the state of an id a local source holds on the network:
   * another host would decide which of this host's endpoints answer.
   */
  private takeHealth(network: string, source: string, endpoints: readonly Endpoint[]): void {
    const remote = isRemoteSource(source);
    for (const e of endpoints) {
      if (e.health === undefined || (remote && this.heldLocally(network, e.id))) continue;
      this.health.set(network, e.id, e.health);
      if (!remote) continue;
      let ids = this.remoteStates.get(network);
      if (!ids) this.remoteStates.set(network, (ids = new Set()));
      ids.add(e.id);
    }
  }

  /**
   * A local definition that now holds an id whose state a shared registry's value set (while no
   * local endpoint had it: a container away and back) starts from its own state, not that one.
   */
  private dropRemoteStates(network: string, compiled: CompiledNetwork): void {
    const ids = this.remoteStates.get(network);
    for (const id of ids ?? []) {
      if (!holdsId(compiled, id)) continue;
      this.health.delete(network, id);
      ids!.delete(id);
    }
    if (ids?.size === 0) this.remoteStates.delete(network);
  }

  /** Whether a local source's definition of `network` has an endpoint with this id. */
  private heldLocally(network: string, id: string): boolean {
    for (const [source, offer] of this.offers.get(network) ?? []) {
      if (!isRemoteSource(source) && offer.compiled && holdsId(offer.compiled, id)) return true;
    }
    return false;
  }

  /**
   * The source whose definition is served: the current one while it still defines the network
   * and no local source does instead of a shared registry, else the first local definer, else
   * the first shared one.
   */
  private primaryOf(network: string): string | undefined {
    const offers = this.offers.get(network);
    if (!offers) return undefined;
    const current = this.sources.get(network);
    const definers = [...offers].filter(([, o]) => o.compiled !== undefined).map(([s]) => s);
    const local = definers.find((s) => !isRemoteSource(s));
    if (current !== undefined && definers.includes(current) && (local === undefined || !isRemoteSource(current))) return current;
    return local ?? definers[0];
  }

  /**
   * The network, its id and the namespaces its endpoints live in must not belong to another source
   * (ids in files are the file's choice: a copied id would make `inspect ID` show the file's network).
   */
  private checkOwner(network: Network, endpoints: readonly Endpoint[], source: string): void {
    const name = network.name;
    if (isRemoteSource(source)) {
      if (network.bridge !== undefined || network.upstreams.length > 0) {
        throw new NsdnsError('ERR_REGISTRY_CONFLICT', `network "${printable(name)}" from ${describeSource(source)} names a bridge or upstreams; a shared registry's networks carry names only`);
      }
      checkNamesOnly(endpoints, source, `a shared registry's endpoints`);
    }
    const owner = this.sources.get(name);
    if (owner !== undefined && owner !== source && !isRemoteSource(owner) && !isRemoteSource(source)) {
      throw new NsdnsError('ERR_REGISTRY_CONFLICT', `network "${name}" is already defined by ${owner}; ignoring the one from ${source}`);
    }
    this.checkSubnets(network, source);
    const holder = this.ids.get(shortId(network.id));
    if (holder !== undefined && holder !== name) {
      throw new NsdnsError('ERR_REGISTRY_CONFLICT',
        `network id ${printable(network.id, 64)} begins like the id of network "${printable(holder)}" from ${describeSource(this.sources.get(holder) ?? '')} (ids must differ in their first 12 characters, the short id); ${describeSource(source)} may not reuse it`);
    }
    for (const e of endpoints) if (e.netns !== undefined) this.checkNamespace(e.netns, source, name);
  }

  /**
   * A subnet of another source's network must not overlap this network's: a client in it is that
   * network's tenant (tenants.ts), so an overlapping file network would join a provisioned
   * tenant's view at host listeners and give it the file's upstreams.
   */
  private checkSubnets(network: Network, source: string): void {
    for (const mine of spansOf(network)) {
      for (const other of this.snapshot.networks.values()) {
        const owner = this.sources.get(other.network.name);
        if (other.network.name === network.name || owner === undefined || owner === source) continue;
        for (const theirs of spansOf(other.network)) {
          if (!overlaps(mine, theirs)) continue;
          throw new NsdnsError('ERR_REGISTRY_CONFLICT',
            `subnet ${printable(mine.subnet, 50)} overlaps ${printable(theirs.subnet, 50)} of network "${printable(other.network.name)}" from ${describeSource(owner)}; ${describeSource(source)} may not serve addresses of another source's network`);
        }
      }
    }
  }

  /**
   * A network of another source than `source` that serves `netns` under this or any other path
   * (`network`: the network being set, whose own endpoints there do not count), or undefined.
   * `identity`: the namespace's, when the caller has just looked (identify() otherwise).
   */
  otherOwner(netns: string, source: string, network?: string, identity?: string): { network: string; source: string } | undefined {
    for (const path of this.pathsNaming(netns, identity ?? this.options.identify?.(netns))) {
      for (const other of this.namespaceNetworks.get(path) ?? []) {
        const owner = this.sources.get(other);
        if (other !== network && owner !== undefined && owner !== source) return { network: other, source: owner };
      }
    }
    return undefined;
  }

  /** `netns` and the other served paths that name the namespace `identity` now (looked at again: a path may have been replaced). */
  private pathsNaming(netns: string, identity: string | undefined): string[] {
    const paths = [netns];
    for (const path of identity === undefined ? [] : this.pathsOf.get(identity) ?? []) {
      if (path !== netns && this.options.identify?.(path) === identity) paths.push(path);
    }
    return paths;
  }

  private checkNamespace(netns: string, source: string, network: string): void {
    const other = this.otherOwner(netns, source, network);
    if (other === undefined) return;
    throw new NsdnsError('ERR_REGISTRY_CONFLICT',
      `namespace ${printable(netns)} is served by network "${printable(other.network)}" from ${describeSource(other.source)}; a namespace belongs to one source, so ${describeSource(source)} may not add to it`);
  }

  /** Serves `name` as its sources give it now: the primary's definition with every other source's endpoints. */
  private install(name: string): Snapshot {
    const source = this.primaryOf(name);
    if (source === undefined) return this.withdraw(name);
    const offers = this.offers.get(name)!;
    const contributed: Array<readonly Endpoint[]> = [];
    for (const [s, offer] of offers) {
      if (s !== source && offer.compiled) contributed.push(offer.compiled.endpoints);
      if (offer.contributed) contributed.push(offer.contributed);
    }
    const compiled = unionNetwork(offers.get(source)!.compiled!, contributed);
    const replaced = this.snapshot.networks.get(name);
    const networks = new Map(this.snapshot.networks);
    networks.set(name, compiled);
    this.sources.set(name, source);
    if (replaced) this.ids.delete(shortId(replaced.network.id));
    this.ids.set(shortId(compiled.network.id), name);
    this.indexNamespaces(name, replaced, compiled);
    return this.publish(networks, name);
  }

  /** Withdraws `source`'s definition of `name`; a shared registry's definition standing by is served instead. */
  removeNetwork(name: string, source: string): Snapshot {
    const offer = this.offers.get(name)?.get(source);
    if (offer?.compiled === undefined) return this.snapshot;
    const removed = offer.compiled;
    offer.compiled = undefined;
    this.dropEmptyOffer(name, source);
    const snapshot = this.install(name);
    removed.release?.();
    return snapshot;
  }

  /** Stops serving `name` (no source defines it); endpoints contributed to it wait for a definition. */
  private withdraw(name: string): Snapshot {
    const removed = this.snapshot.networks.get(name);
    if (!removed) return this.snapshot;
    const networks = new Map(this.snapshot.networks);
    networks.delete(name);
    this.sources.delete(name);
    this.ids.delete(shortId(removed.network.id));
    this.indexNamespaces(name, removed, undefined);
    this.health.deleteNetwork(name);
    this.remoteStates.delete(name);
    return this.publish(networks, name);
  }

  private indexNamespaces(network: string, before: CompiledNetwork | undefined, after: CompiledNetwork | undefined): void {
    for (const e of before?.inNamespaces ?? []) {
      const networks = this.namespaceNetworks.get(e.netns);
      networks?.delete(network);
      if (networks?.size === 0) {
        this.namespaceNetworks.delete(e.netns);
        this.noteIdentity(e.netns, undefined);
      }
    }
    const seen = new Set<string>();
    for (const e of after?.inNamespaces ?? []) {
      const networks = this.namespaceNetworks.get(e.netns);
      if (networks) networks.add(network);
      else this.namespaceNetworks.set(e.netns, new Set([network]));
      if (!seen.has(e.netns)) {
        seen.add(e.netns);
        this.noteIdentity(e.netns, this.options.identify?.(e.netns));
      }
    }
  }

  /** Records which namespace `path` names now (undefined: none, or it is no longer served). */
  private noteIdentity(path: string, identity: string | undefined): void {
    const before = this.identityOf.get(path);
    if (before === identity) return;
    if (before !== undefined) {
      const paths = this.pathsOf.get(before);
      paths?.delete(path);
      if (paths?.size === 0) this.pathsOf.delete(before);
      this.identityOf.delete(path);
    }
    if (identity === undefined) return;
    this.identityOf.set(path, identity);
    const paths = this.pathsOf.get(identity);
    if (paths) paths.add(path);
    else this.pathsOf.set(identity, new Set([path]));
  }

  private publish(networks: Map<string, CompiledNetwork>, changed: string): Snapshot {
    this.snapshot = new Snapshot(this.snapshot.version + 1, networks, this.health, this.failOpen);
    this.emit('change', this.snapshot, changed);
    return this.snapshot;
  }
}

/**
 * Endpoints from another host may only be answered: none may name a namespace (to enter), a health
 * check (to probe), ports (to publish) or upstreams (to forward to). Checked here as well as where
 * the values are parsed: no caller can make a remote value do more.
 */
function checkNamesOnly(endpoints: readonly Endpoint[], source: string, what: string): void {
  const bad = endpoints.find((e) => e.netns !== undefined || e.healthCheck !== undefined || (e.ports?.length ?? 0) > 0 || e.upstreams.length > 0);
  if (bad) {
    throw new NsdnsError('ERR_REGISTRY_CONFLICT', `endpoint "${printable(bad.name)}" from ${describeSource(source)} names a namespace, health check, ports or upstreams; ${what} carry names only`);
  }
}

/** What `network ls` shows of an id, as find() compares it. */
function shortId(id: string): string {
  return id.slice(0, 12).toLowerCase();
}

/** A source as a message names it: `registry file PATH`, `nsdns's own connects` (the state directory). */
export function describeSource(source: string): string {
  if (source.startsWith('file:')) return `registry file ${printable(source.slice('file:'.length), 200)}`;
  if (source === STATE_SOURCE) return "nsdns's own connects";
  if (isRemoteSource(source)) return `shared registry ${printable(source.slice(REMOTE_SOURCE_PREFIX.length), 200)}`;
  return printable(source, 200);
}
