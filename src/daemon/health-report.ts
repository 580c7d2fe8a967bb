// Readiness, as /readyz and `nsdns status` report it: the registry is loaded, every namespace
// with an endpoint of a provisioned network is served at 127.0.0.11, and, when anything may be forwarded, at least one
// of the daemon's own upstreams (its configuration's, the host's, its provisioned networks') is not
// marked failing by recent answers. Passive only: nothing is sent to find out.
// Readiness is about what the daemon owns: a namespace only a registry file names (one that may
// not exist yet) is a warning, never a reason to take the daemon out of service.
import type { Snapshot } from '../registry/registry.js';
import { parseUpstream } from '../resolver/upstream-address.js';
import type { EtcdSourceStatus } from '../etcd/etcd-source.js';

export interface HealthReport {
  ready: boolean;
  /** What keeps it from being ready, in words; empty when ready. */
  problems: string[];
  /** Worth knowing, not a reason to be unready (a registry file's namespace not served). */
  warnings: string[];
  registryLoaded: boolean;
  namespaces: { attached: number; served: number; unserved: string[] };
  /** Every upstream configured anywhere (daemon, host resolv.conf, networks, endpoints). */
  upstreams: Array<{ server: string; failing: boolean }>;
  /** Shared registries (etcd://): stale while etcd cannot be reached, the last snapshot serving. */
  sharedRegistries: EtcdSourceStatus[];
}

export interface HealthInputs {
  registryLoaded: boolean;
  snapshot: Snapshot;
  isServed(netns: string): boolean;
  /** Whether `network` is one the daemon provisioned (its own state), not a registry file's. */
  isProvisioned(network: string): boolean;
  /** The daemon's upstreams and the host's resolvers, as configured. */
  daemonUpstreams: readonly string[];
  isFailing(serverKey: string): boolean;
  /** Links nsdns provisioned that are broken, published ports it cannot hold (plumbing's self-check). */
  plumbingProblems?: readonly string[];
  sharedRegistries?: readonly EtcdSourceStatus[];
  /** `--announce`: why the node name cannot be had (another daemon holds it). */
  announceConflict?: string;
}

/** At most this many names in one report: the body stays short whatever the host holds. */
const MAX_LISTED = 10;
const MAX_UPSTREAMS = 256;

export function healthReport(input: HealthInputs): HealthReport {
  const problems: string[] = [];
  if (!input.registryLoaded) problems.push('the registry is still loading');

  const warnings: string[] = [];
  const namespaces = input.snapshot.namespaces();
  const attached = [...namespaces.keys()];
  const unserved = attached.filter((ns) => !input.isServed(ns));
  const owned = unserved.filter((ns) => namespaces.get(ns)!.some((e) => input.isProvisioned(e.network)));
  const named = unserved.filter((ns) => !owned.includes(ns));
  if (owned.length > 0) problems.push(`${owned.length} of ${attached.length} namespaces not served at 127.0.0.11: ${listed(owned)}`);
  if (named.length > 0) warnings.push(`${named.length} namespaces named by registry files not served at 127.0.0.11 (missing?): ${listed(named)}`);

  // Every upstream is listed; only the daemon's own and its provisioned networks' decide readiness
  // (a registry file's server, dead or alive, neither flips it nor hides that the daemon's are down).
  const keys = new Set<string>();
  const ownKeys = new Set<string>();
  const add = (list: readonly string[], own: boolean) => {
    for (const text of list) {
      if (keys.size >= MAX_UPSTREAMS) return;
      try {
        const key = parseUpstream(text).key;
        keys.add(key);
        if (own) ownKeys.add(key);
      } catch { /* invalid ones are reported where they are used */ }
    }
  };
  add(input.daemonUpstreams, true);
  for (const net of input.snapshot.networks.values()) {
    const own = input.isProvisioned(net.network.name);
    add(net.network.upstreams, own);
    for (const e of net.notable) if (e.upstreams.length > 0) add(e.upstreams, own);
  }
  const upstreams = [...keys].sort().map((server) => ({ server, failing: input.isFailing(server) }));
  const decisive = upstreams.filter((u) => ownKeys.has(u.server));
  if (decisive.length > 0 && decisive.every((u) => u.failing)) {
    problems.push(`no upstream is answering: ${decisive.slice(0, MAX_LISTED).map((u) => u.server).join(', ')} failed their recent queries`);
  }

  // A stale shared registry is a warning: the daemon answers from its last snapshot, as it should.
  const shared = input.sharedRegistries ?? [];
  for (const r of shared) {
    if (r.stale) warnings.push(`shared registry ${printable(r.registry)} is stale since ${r.staleSince}: etcd cannot be reached, the last snapshot answers`);
    else if (!r.synchronised) warnings.push(`shared registry ${printable(r.registry)} has not been read yet: etcd does not answer`);
  }

  // Names are still answered; only this daemon's endpoints are missing from the other hosts.
  if (input.announceConflict !== undefined) warnings.push(input.announceConflict);

  const plumbing = input.plumbingProblems ?? [];
  problems.push(...plumbing.slice(0, MAX_LISTED), ...(plumbing.length > MAX_LISTED ? [`... and ${plumbing.length - MAX_LISTED} more plumbing problems`] : []));

  return {
    ready: problems.length === 0,
    problems,
    warnings,
    registryLoaded: input.registryLoaded,
    namespaces: { attached: attached.length, served: attached.length - unserved.length, unserved: unserved.slice(0, MAX_LISTED).map(printable) },
    upstreams,
    sharedRegistries: [...shared],
  };
}

function listed(namespaces: readonly string[]): string {
  return `${namespaces.slice(0, MAX_LISTED).map(printable).join(', ')}${namespaces.length > MAX_LISTED ? ', ...' : ''}`;
}

/** Control and non-ASCII characters escaped: a path goes into a log, a terminal and an HTTP body. */
function printable(value: string): string {
  const cut = value.length > 128 ? `${value.slice(0, 128)}...` : value;
  return cut.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
