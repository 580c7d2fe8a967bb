// `nsdns debug`: one namespace as the daemon sees it, and a name resolved there through the same
// pipeline a query takes (Resolver.explain), with the answer printed as dig prints it.
import dnsPacket from 'dns-packet';
import { NsdnsError } from '../errors.js';
import { bindHelperKind } from '../listeners/namespace-sockets.js';
import type { NetworkManager } from '../plumbing/network-manager.js';
import { resolveTarget } from '../plumbing/target.js';
import type { OperationTiming } from '../plumbing/timing.js';
import { presentData } from '../wire/presentation.js';
import type { ParamsOf } from './control-schemas.js';
import { endpointSummary } from './docker-shapes.js';
import type { HandlerDeps } from './handlers.js';

type DebugDeps = Pick<HandlerDeps, 'registry' | 'manager' | 'resolver' | 'namespaces' | 'probes'>;

/**
 * The daemon's last connects and disconnects (any namespace), stage by stage, oldest first. The
 * bind path is the daemon's binder's when the manager was not told it.
 */
function recentTimings(manager: NetworkManager): OperationTiming[] {
  return manager.recentTimings().map((t) => (t.operation === 'connect' && t.paths.bind === undefined ? { ...t, paths: { ...t.paths, bind: bindHelperKind() } } : t));
}

/**
 * `nsdns debug NAMESPACE`: what the daemon knows of one namespace (its endpoints, whether
 * 127.0.0.11 is served, its upstreams and resolv.conf, the last connect timings) and, with
 * `resolve`, how a name would be answered there and by which stage.
 */
export async function debugNamespace(deps: DebugDeps, p: ParamsOf<'debug.namespace'>): Promise<object> {
  const target = resolveTarget(p.target);
  const snapshot = deps.registry.current();
  const endpoints = snapshot.namespaces().get(target.path) ?? [];
  const context = deps.namespaces.context(target.path);
  const out: Record<string, unknown> = {
    namespace: target.path,
    name: target.name ?? null,
    served: deps.namespaces.isServed(target.path),
    bindError: deps.namespaces.failure(target.path) ?? null,
    view: [...new Set(endpoints.map((e) => e.network))],
    endpoints: endpoints.map((e) => endpointSummary(e, { network: snapshot.networks.get(e.network)!.network, endpoints: [] }, { states: deps.registry.health, probes: deps.probes })),
    upstreams: context ? deps.resolver.upstreamsFor(context.view(), { address: '127.0.0.1', transport: 'udp' }, context).map((s) => s.key) : [],
    resolvConf: target.name ? (await deps.manager.resolvConfOf(target.name)) ?? null : null,
    timings: recentTimings(deps.manager),
  };
  if (p.resolve) {
    if (!context) throw new NsdnsError('ERR_NETNS', `${target.shown} is not served by nsdns (no endpoint in it), so there is nothing to resolve from`);
    const type = (p.type ?? 'A') as dnsPacket.RecordType;
    const query = dnsPacket.encode({ type: 'query', id: 1, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: p.resolve, type, class: 'IN' }] });
    const result = await deps.resolver.explain(query, { address: '127.0.0.1', transport: 'udp' }, context);
    if (result) {
      const reply = dnsPacket.decode(result.reply) as dnsPacket.Packet & { rcode?: string };
      out.resolution = {
        name: p.resolve, type, origin: result.origin, rcode: reply.rcode,
        answers: (reply.answers ?? []).map((a) => ({ type: a.type, ttl: 'ttl' in a ? a.ttl : undefined, data: presentData(a.type, (a as { data?: unknown }).data) })),
      };
    }
  }
  return out;
}
