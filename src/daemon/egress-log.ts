// `nsdns egress log [TARGET]`: the recent decisions of each namespace under an egress policy. A
// target is an endpoint (NETWORK/NAME, its name, or its id or a prefix of 12 or more) or a
// namespace (its name under /run/netns, or its path).
import { NsdnsError } from '../errors.js';
import type { Decision } from '../egress/decision-log.js';
import { endpointRules } from '../egress/policy.js';
import type { Resolver } from '../resolver/resolver.js';
import { NETNS_RUN_DIR } from '../registry/fields.js';
import type { Registry } from '../registry/registry.js';
import type { Endpoint } from '../registry/types.js';
import { quote } from './control-schemas.js';

export interface NamespaceDecisions {
  netns: string;
  /** Its endpoints, as NETWORK/NAME. */
  endpoints: string[];
  decisions: Decision[];
}

export function egressLog(registry: Registry, resolver: Resolver, target: string | undefined): NamespaceDecisions[] {
  const snapshot = registry.current();
  const networkOf = (name: string) => snapshot.networks.get(name)?.network;
  const governed = [...snapshot.namespaces()].filter(([, endpoints]) => endpoints.some((e) => endpointRules(e, networkOf(e.network)) !== undefined));
  resolver.egress.decisions.retain((netns) => governed.some(([key]) => key === netns));
  const chosen = target === undefined ? governed : governed.filter(([netns, endpoints]) => names(target, netns, endpoints));
  if (target !== undefined && chosen.length === 0) {
    throw new NsdnsError('ERR_NOT_FOUND', `no namespace under an egress policy is ${quote(target)} or has such an endpoint (give NETWORK/NAME, an endpoint name or id, or a namespace)`);
  }
  return chosen.sort(([a], [b]) => a.localeCompare(b)).map(([netns, endpoints]) => ({
    netns, endpoints: endpoints.map((e) => `${e.network}/${e.name}`), decisions: resolver.egress.decisions.of(netns),
  }));
}

/** Whether `target` names this namespace or one of its endpoints. */
function names(target: string, netns: string, endpoints: readonly Endpoint[]): boolean {
  if (target === netns || `${NETNS_RUN_DIR}/${target}` === netns) return true;
  const lower = target.toLowerCase();
  return endpoints.some((e) => `${e.network}/${e.name}`.toLowerCase() === lower || e.name === lower || e.id === lower || (lower.length >= 12 && e.id.startsWith(lower)));
}
