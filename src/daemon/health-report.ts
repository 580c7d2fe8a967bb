// Readiness, as /readyz and `nsdns status` report it: the registry is loaded, every namespace
// with an endpoint is served at 127.0.0.11, and, when anything may be forwarded, at least one
// upstream is not marked failing by recent answers. Passive only: nothing is sent to find out.
import type { Snapshot } from '../registry/registry.js';
import { parseUpstream } from '../resolver/upstream-address.js';

export interface HealthReport {
  ready: boolean;
  /** What keeps it from being ready, in words; empty when ready. */
  problems: string[];
  registryLoaded: boolean;
  namespaces: { attached: number; served: number; unserved: string[] };
  /** Every upstream configured anywhere (daemon, host resolv.conf, networks, endpoints). */
  upstreams: Array<{ server: string; failing: boolean }>;
}

export interface HealthInputs {
  registryLoaded: boolean;
  snapshot: Snapshot;
  isServed(netns: string): boolean;
  /** The daemon's upstreams and the host's resolvers, as configured. */
  daemonUpstreams: readonly string[];
  isFailing(serverKey: string): boolean;
  /** Links nsdns provisioned that are broken, published ports it cannot hold (plumbing's self-check). */
  plumbingProblems?: readonly string[];
}

/** At most this many names in one report: the body stays short whatever the host holds. */
const MAX_LISTED = 10;
const MAX_UPSTREAMS = 256;

export function healthReport(input: HealthInputs): HealthReport {
  const problems: string[] = [];
  if (!input.registryLoaded) problems.push('the registry is still loading');

  const attached = [...input.snapshot.namespaces().keys()];
  const unserved = attached.filter((ns) => !input.isServed(ns));
  if (unserved.length > 0) {
    const shown = unserved.slice(0, MAX_LISTED).map(printable).join(', ');
    problems.push(`${unserved.length} of ${attached.length} namespaces not served at 127.0.0.11: ${shown}${unserved.length > MAX_LISTED ? ', ...' : ''}`);
  }

  const keys = new Set<string>();
  const add = (list: readonly string[]) => {
    for (const text of list) {
      if (keys.size >= MAX_UPSTREAMS) return;
      try { keys.add(parseUpstream(text).key); } catch { /* invalid ones are reported where they are used */ }
    }
  };
  add(input.daemonUpstreams);
  for (const net of input.snapshot.networks.values()) {
    add(net.network.upstreams);
    for (const e of net.notable) if (e.upstreams.length > 0) add(e.upstreams);
  }
  const upstreams = [...keys].sort().map((server) => ({ server, failing: input.isFailing(server) }));
  if (upstreams.length > 0 && upstreams.every((u) => u.failing)) {
    problems.push(`no upstream is answering: ${upstreams.slice(0, MAX_LISTED).map((u) => u.server).join(', ')} failed their recent queries`);
  }

  const plumbing = input.plumbingProblems ?? [];
  problems.push(...plumbing.slice(0, MAX_LISTED), ...(plumbing.length > MAX_LISTED ? [`... and ${plumbing.length - MAX_LISTED} more plumbing problems`] : []));

  return {
    ready: problems.length === 0,
    problems,
    registryLoaded: input.registryLoaded,
    namespaces: { attached: attached.length, served: attached.length - unserved.length, unserved: unserved.slice(0, MAX_LISTED).map(printable) },
    upstreams,
  };
}

/** Control and non-ASCII characters escaped: a path goes into a log, a terminal and an HTTP body. */
function printable(value: string): string {
  const cut = value.length > 128 ? `${value.slice(0, 128)}...` : value;
  return cut.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
