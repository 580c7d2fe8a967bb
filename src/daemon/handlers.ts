// What each control method does: thin adapters from requests, already checked by their schemas
// (control-schemas.ts), to the network manager and the registry. The shapes they answer with are
// docker-shapes.ts's, the loop check on upstreams loop-protection.ts's, `debug` debug-namespace.ts's.
import { NsdnsError } from '../errors.js';
import type { NetworkManager } from '../plumbing/network-manager.js';
import type { Registry } from '../registry/registry.js';
import type { Endpoint, Network, NetworkRecord } from '../registry/types.js';
import type { ClusterNetworks } from '../etcd/cluster-networks.js';
import type { CreateNetworkRequest } from '../plumbing/request-schemas.js';
import type { Resolver } from '../resolver/resolver.js';
import type { NamespaceStatus } from '../listeners/namespace-spec.js';
import type { Handler } from './control.js';
import { parseParams, quote, type Method, type ParamsOf } from './control-schemas.js';
import { debugNamespace } from './debug-namespace.js';
import { egressLog } from './egress-log.js';
import type { EgressEnforcement } from '../egress/enforcement.js';
import { endpointRules } from '../egress/policy.js';
import { endpointSummary, inspectNetwork, networkRow, shownSource, type EgressLive, type HealthProbes } from './docker-shapes.js';
import { refuseOwnAddresses } from './loop-protection.js';
import { egressRuleText } from '../registry/egress-rules.js';

export type { HealthProbes } from './docker-shapes.js';

export interface HandlerDeps {
  registry: Registry;
  manager: NetworkManager;
  resolver: Resolver;
  namespaces: NamespaceStatus;
  /** The daemon's host listeners as ADDRESS:PORT keys (host listeners and gateways): no upstream may be one. */
  ownAddresses?: () => ReadonlySet<string>;
  /** The daemon's health checks (HealthProber): last results, and states set from outside. */
  probes?: HealthProbes;
  /** The egress enforcement, once started: a policy change is answered after its rules are set; inspect reads its figures. */
  egress?: () => EgressEnforcement | undefined;
  /** `serve --cluster`: where overlay networks are created; undefined on a daemon that is no cluster member. */
  cluster?: ClusterNetworks;
}

/** A handler whose parameters are checked by the method's schema before `run` sees them. */
function method<M extends Method>(name: M, run: (p: ParamsOf<M>) => Promise<unknown>): [M, Handler] {
  return [name, (p) => run(parseParams(name, p))];
}

export function controlHandlers(deps: HandlerDeps): Record<string, Handler> {
  const { registry, manager } = deps;
  const own = (): ReadonlySet<string> => deps.ownAddresses?.() ?? new Set();
  // By name (any case), full id or unique id prefix, as docker finds networks.
  const recordOf = (name: string): NetworkRecord => {
    const compiled = registry.current().find(name);
    if (!compiled) throw new NsdnsError('ERR_NOT_FOUND', `network ${quote(name)} not found; see \`nsdns network ls\``);
    return { network: compiled.network, endpoints: [...compiled.endpoints] };
  };
  // method() takes only names that have a schema: no handler runs on unchecked parameters.
  return Object.fromEntries([
    method('ping', async () => ({ pid: process.pid })),
    method('network.create', async (p) => {
      refuseOwnAddresses('--dns-upstream', p.dnsUpstreams, own());
      const network = p.driver === 'overlay' ? await createOverlay(deps.cluster, p) : await manager.createNetwork(p);
      return inspectNetwork(recordOf(network.name), shownSource(registry, network.name), registry.health, deps.probes);
    }),
    method('network.ls', async () => [...registry.current().networks.values()]
      .map((n) => networkRow(n, shownSource(registry, n.network.name)))
      .sort((a, b) => a.name.localeCompare(b.name))),
    method('network.inspect', async (p) => Promise.all(p.names.map(async (n) => {
      const record = recordOf(n);
      const live = await egressFigures(record, deps.egress?.());
      return inspectNetwork(record, shownSource(registry, record.network.name), registry.health, deps.probes, live);
    }))),
    method('network.rm', async (p) => {
      // A cluster's overlay network is removed from etcd, on whichever host asks.
      // Sorted once, before anything is removed: a removed overlay network leaves the registry meanwhile.
      const isOverlay = (n: string) => deps.cluster !== undefined && registry.current().find(n)?.network.overlay !== undefined;
      const [overlayNames, localNames] = [p.names.filter(isOverlay), p.names.filter((n) => !isOverlay(n))];
      const overlays = await removeOverlays(deps.cluster, registry, overlayNames);
      const local = await manager.removeNetworks(localNames, { disconnect: p.disconnect ?? p.force ?? false, ignoreMissing: p.ignoreMissing ?? false });
      const removed = [...overlays.removed, ...local.removed];
      const failed = [...overlays.failed, ...local.failed];
      if (p.report) return { removed, failed: failed.map((f) => ({ name: f.name, code: f.error.code, message: f.error.message })) };
      // Older clients expect a list or one error.
      if (failed.length === 1 && removed.length === 0) throw failed[0].error;
      if (failed.length > 0) throw new NsdnsError(failed[0].error.code, `removed ${removed.length}; ${failed.map((f) => f.error.message).join('; ')}`);
      return removed;
    }),
    method('network.prune', async () => manager.prune()),
    method('network.connect', async (p) => {
      refuseOwnAddresses('--dns', p.dns, own());
      const endpoint = await manager.connect(p);
      // resolvConf: the file `ip netns exec` mounts, or null: a PID or path target gets none.
      return { ...endpointSummary(endpoint, recordOf(endpoint.network)), resolvConf: manager.resolvConfFile(endpoint.netns!) ?? null };
    }),
    method('network.disconnect', async (p) => {
      const endpoint = await manager.disconnect(p.network, p.target);
      return { network: endpoint.network, name: endpoint.name, id: endpoint.id };
    }),
    method('endpoint.health', async (p) => {
      const record = recordOf(p.network);
      const endpoint = endpointOf(record, p.endpoint);
      const previous = registry.health.get(record.network.name, endpoint.id);
      if (deps.probes) deps.probes.set(record.network.name, endpoint.id, p.state, endpoint.name);
      else registry.health.set(record.network.name, endpoint.id, p.state);
      return { network: record.network.name, name: endpoint.name, id: endpoint.id, state: p.state, previous, probed: endpoint.healthCheck !== undefined };
    }),
    method('endpoint.egress', async (p) => {
      const endpoint = await manager.setEgress(p.network, p.endpoint, p.egress ?? undefined);
      // Answered once the kernel has the new rules: "changed" means new connections follow them.
      await deps.egress?.()?.settled();
      const record = recordOf(endpoint.network);
      const rules = endpointRules(endpoint, record.network);
      return { network: endpoint.network, name: endpoint.name, id: endpoint.id, own: endpoint.egress !== undefined, egress: rules === undefined ? null : rules.map(egressRuleText) };
    }),
    method('egress.log', async (p) => egressLog(registry, deps.resolver, p.target)),
    method('debug.namespace', async (p) => debugNamespace(deps, p)),
  ]);
}

/**
 * An endpoint of `record` by its own name (any case), full id, or an id prefix of at least 12
 * characters; an alias may be shared, so it names no single endpoint.
 */
function endpointOf(record: NetworkRecord, which: string): Endpoint {
  const lower = which.toLowerCase();
  const found = record.endpoints.find((e) => e.name === lower || e.id === lower) ?? (lower.length >= 12 ? record.endpoints.find((e) => e.id.startsWith(lower)) : undefined);
  if (!found) throw new NsdnsError('ERR_NOT_FOUND', `no endpoint ${quote(which)} on network ${quote(record.network.name)} (give its name or id)`);
  return found;
}

/**
 * The live egress figures of the endpoints under a policy, by endpoint id: only those (counters
 * runs nft per object), and only while the enforcement governs their namespace.
 */
async function egressFigures(record: NetworkRecord, egress: EgressEnforcement | undefined): Promise<Map<string, EgressLive>> {
  const figures = new Map<string, EgressLive>();
  if (egress === undefined) return figures;
  for (const e of record.endpoints) {
    if (e.netns === undefined || endpointRules(e, record.network) === undefined) continue;
    const notEnforced = egress.unenforcedReason(e.id);
    if (notEnforced !== undefined) {
      figures.set(e.id, { notEnforced });
      continue;
    }
    const counters = await egress.firewall.counters(e.netns);
    if (counters !== undefined) figures.set(e.id, { counters });
  }
  return figures;
}

/** `network rm` of overlay networks: each deleted from the cluster, or reported with why not. */
async function removeOverlays(cluster: ClusterNetworks | undefined, registry: Registry, names: readonly string[]): Promise<{ removed: string[]; failed: Array<{ name: string; error: NsdnsError }> }> {
  const report = { removed: [] as string[], failed: [] as Array<{ name: string; error: NsdnsError }> };
  for (const name of names) {
    const network = registry.current().find(name)!.network.name;
    try {
      await cluster!.remove(network);
      report.removed.push(network);
    } catch (err) {
      report.failed.push({ name, error: err instanceof NsdnsError ? err : new NsdnsError('ERR_UPSTREAM_UNREACHABLE', `etcd: ${err instanceof Error ? err.message : String(err)}`) });
    }
  }
  return report;
}

function createOverlay(cluster: ClusterNetworks | undefined, req: CreateNetworkRequest): Promise<Network> {
  if (cluster === undefined) throw new NsdnsError('ERR_BAD_REQUEST', 'overlay networks need a cluster member: serve --cluster etcd://HOST:PORT/PREFIX');
  return cluster.create(req);
}
