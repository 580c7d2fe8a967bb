// What is wanted inside namespaces: 127.0.0.11:53 in every namespace that has an endpoint in the
// registry. A namespace that gains its first endpoint gets a listener; one that loses its last has
// its sockets closed at once (an open socket would keep the namespace alive). Each listener knows
// which namespace it bound in (namespace-identity.ts): when the path names another one (deleted and
// added again), the old sockets are closed and the new namespace is served.
import type { Logger } from '../log.js';
import { namespaceIdentity } from '../namespace-identity.js';
import type { Registry } from '../registry/registry.js';
import type { Endpoint } from '../registry/types.js';
import type { ListenerContext } from '../resolver/resolver.js';
import { ANSWER_ALL } from '../server/client-policy.js';
import { DnsServer, type ListenerSockets, type ServerShared } from '../server/dns-server.js';
import type { CloseReason, Listener, ListenerSpec } from './listener-set.js';
import { NamespaceSocketSource } from './namespace-sockets.js';
import { endpointRules, namespacePolicy } from '../egress/policy.js';
import type { NamespaceEgress } from '../egress/egress-dns.js';
import type { Snapshot } from '../registry/snapshot.js';

export interface NamespaceWant {
  /** The namespace's path (/run/netns/NAME, /proc/PID/ns/net). */
  readonly key: string;
  readonly endpoints: readonly Endpoint[];
}

/** What the control handlers may ask of the namespace listeners (`debug`). */
export interface NamespaceStatus {
  isServed(netns: string): boolean;
  failure(netns: string): string | undefined;
  context(netns: string): ListenerContext | undefined;
}

export class NamespaceSpec implements ListenerSpec<NamespaceWant> {
  readonly kind = 'namespace';
  readonly parallel: number;

  constructor(
    private readonly registry: Registry,
    private readonly shared: ServerShared,
    private readonly log: Logger,
    readonly sockets = new NamespaceSocketSource(),
  ) {
    this.parallel = sockets.parallel;
  }

  wanted(): ReadonlyMap<string, NamespaceWant> {
    return wantedNamespaces(this.registry.current().namespaces());
  }

  bind(want: NamespaceWant): Promise<ListenerSockets & { boundIn?: string }> {
    // The helper says where it bound: a look at the path from here, before or after, can see the
    // namespace deleted or its successor not yet mounted, and the next replacement would go unseen.
    return this.sockets.bind(want.key);
  }

  boundInNow(want: NamespaceWant): string | undefined {
    return namespaceIdentity(want.key);
  }

  serve(want: NamespaceWant, sockets: ListenerSockets): DnsServer {
    const context = namespaceContext(want.key, this.registry);
    // A namespace's own address: only the namespace reaches it, and every client there is answered.
    return new DnsServer(sockets, this.shared, context, this.log.child({ netns: want.key }), ANSWER_ALL);
  }

  /**
   * At a registry change: the listener serves another namespace than its endpoints were connected
   * to, and not the one the path names now (a stale endpoint is the reaper's; the listener then stays).
   */
  outdated(listener: Listener<NamespaceWant>, want: NamespaceWant): boolean {
    if (listener.boundIn === undefined) return false;
    const connected = want.endpoints.find((e) => e.netnsIdentity !== undefined)?.netnsIdentity;
    if (connected === undefined || connected === listener.boundIn) return false;
    return namespaceIdentity(want.key) !== listener.boundIn;
  }

  /** At the reaper's pass: the path names another namespace, or none (the sockets would keep the old one alive). */
  stale(listener: Listener<NamespaceWant>): boolean {
    return !this.isCurrent(listener);
  }

  /** A failed bind may succeed now: its namespace exists again (no registry change would bring it back). */
  exists(netns: string): boolean {
    return namespaceIdentity(netns) !== undefined;
  }

  /** Served, and in the namespace the path names now (not one deleted and added again since). */
  isCurrent(listener: Listener<NamespaceWant> | undefined): boolean {
    return listener !== undefined && (listener.boundIn === undefined || listener.boundIn === namespaceIdentity(listener.want.key));
  }

  opened(listener: Listener<NamespaceWant>, takenOver: boolean): void {
    const netns = listener.want.key;
    if (takenOver) this.log.info({ netns }, 'serving DNS at 127.0.0.11:53 in namespace (sockets taken over)');
    else this.log.info({ netns, networks: listener.server.context.view().networkNames }, 'serving DNS at 127.0.0.11:53 in namespace');
  }

  closed(listener: Listener<NamespaceWant>, why: CloseReason): void {
    const netns = listener.want.key;
    if (why === 'unwanted') this.log.info({ netns }, 'namespace has no endpoint left; its resolver sockets are closed');
    else if (namespaceIdentity(netns) === undefined) this.log.warn({ netns }, 'namespace is gone; its resolver sockets are closed');
    else this.log.warn({ netns }, 'namespace was replaced by a new one of the same name; the old one\'s resolver sockets are closed');
  }

  failed(want: NamespaceWant, err: unknown, _attempts: number, repeated: boolean): void {
    // Every registry change tries an unserved namespace again, and a namespace a registry file
    // names may not exist for a long time: one failure, one line (the next that differs is logged).
    if (repeated) this.log.debug({ netns: want.key, reason: (err as Error).message }, 'still cannot serve DNS in namespace');
    else this.log.warn({ err, netns: want.key }, 'cannot serve DNS in namespace');
  }
}

/** The wanted map of one snapshot's namespaces, kept as long as the snapshot's map is the same. */
const wantedOf = new WeakMap<ReadonlyMap<string, readonly Endpoint[]>, ReadonlyMap<string, NamespaceWant>>();

function wantedNamespaces(namespaces: ReadonlyMap<string, readonly Endpoint[]>): ReadonlyMap<string, NamespaceWant> {
  let wanted = wantedOf.get(namespaces);
  if (!wanted) {
    wanted = new Map([...namespaces].map(([key, endpoints]) => [key, { key, endpoints }]));
    wantedOf.set(namespaces, wanted);
  }
  return wanted;
}

/**
 * What a namespace sees: the networks its endpoints are on; its endpoints pick the upstreams and
 * its egress policy (compiled once per registry change, undefined when none has one).
 */
function namespaceContext(netns: string, registry: Registry): ListenerContext {
  const current = registry.derived((snapshot) => {
    const endpoints = snapshot.namespaces().get(netns) ?? [];
    return { endpoints, view: snapshot.view([...new Set(endpoints.map((e) => e.network))]), egress: namespaceEgress(netns, endpoints, snapshot) };
  });
  return { name: `netns:${netns}`, inflight: 0, view: () => current().view, endpoints: () => current().endpoints, egress: () => current().egress };
}

function namespaceEgress(key: string, endpoints: readonly Endpoint[], snapshot: Snapshot): NamespaceEgress | undefined {
  const networkOf = (name: string) => snapshot.networks.get(name)?.network;
  const policy = namespacePolicy(endpoints, networkOf);
  if (policy === undefined) return undefined;
  const networks = [...new Set(endpoints.filter((e) => endpointRules(e, networkOf(e.network)) !== undefined).map((e) => e.network))];
  return { key, policy, networks };
}
