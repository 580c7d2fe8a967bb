// What is wanted on the host: the standalone listeners of the configuration (`--listen
// ADDR:PORT[=NETWORK,...]`), each optionally limited to some networks. Who gets a reply at all is
// the configuration's `allow` (client-filter.ts); a tenant of a network (registry/tenants.ts) sees
// only its own networks among the listener's, as it would at its own 127.0.0.11.
import { formatHostPort } from '../host-port.js';
import type { Logger } from '../log.js';
import { isRemoteSource, type Registry } from '../registry/registry.js';
import { clientViews, Tenants } from '../registry/tenants.js';
import type { ListenerContext } from '../resolver/resolver.js';
import { hostAddresses, type ClientFilter } from '../server/client-filter.js';
import { DnsServer, type ListenerSockets, type ServerShared } from '../server/dns-server.js';
import { bindHostSockets, portOf } from './host-sockets.js';
import type { CloseReason, Listener, ListenerSpec } from './listener-set.js';

/** One `--listen` of the configuration. */
export interface HostListenerConfig {
  readonly address: string;
  readonly port: number;
  readonly networks?: readonly string[];
}

export interface HostWant extends HostListenerConfig {
  readonly key: string;
}

export class HostSpec implements ListenerSpec<HostWant> {
  readonly kind = 'host';
  readonly parallel = 1;
  /** The daemon must not start (or reload into) a configuration whose listener it cannot have. */
  readonly failHard = true;
  private configured: ReadonlyMap<string, HostWant> = new Map();
  /** Who gets any reply; read through a closure, so a reload's filter applies to listeners already bound. */
  private allowed: ClientFilter = () => false;
  /** Who is a tenant of which network, shared by every host listener. */
  private readonly tenants: () => Tenants;

  constructor(private readonly registry: Registry, private readonly shared: ServerShared, private readonly log: Logger) {
    this.tenants = registry.derived((snapshot) => new Tenants(snapshot.networks, hostAddresses(), (network) => !isRemoteSource(registry.sourceOf(network) ?? '')));
  }

  /** The listeners the configuration asks for, and who they answer; the next pass applies them. */
  configure(listen: readonly HostListenerConfig[], allowed: ClientFilter): void {
    this.configured = new Map(listen.map((l) => {
      const key = `${l.address}|${l.port}|${l.networks?.join(',') ?? '*'}`;
      return [key, { ...l, key }];
    }));
    this.allowed = allowed;
  }

  wanted(): ReadonlyMap<string, HostWant> {
    return this.configured;
  }

  bind(want: HostWant): Promise<ListenerSockets> {
    return bindHostSockets(want.address, want.port, this.log);
  }

  serve(want: HostWant, sockets: ListenerSockets): DnsServer {
    const context = hostContext(formatHostPort(want.address, portOf(sockets)), this.registry, this.tenants, want.networks);
    const server = new DnsServer(sockets, this.shared, context, this.log.child({ listener: context.name }), { reachable: (a) => this.allowed(a) });
    return server;
  }

  opened(listener: Listener<HostWant>, takenOver: boolean): void {
    const { want, server } = listener;
    this.log.info({ address: want.address, port: listener.port, networks: want.networks ?? 'all', udpSockets: server.udps.length, ...(takenOver && { takenOver: true }) }, 'listening');
  }

  closed(listener: Listener<HostWant>, _why: CloseReason): void {
    this.log.info({ address: listener.want.address, port: listener.port }, 'listener closed');
  }

  failed(): void {
    // failHard: the pass fails with the error, and the caller says it.
  }
}

/**
 * A host listener's window on the registry, rebuilt only when the snapshot changes: a tenant of a
 * network sees its own networks among `networks`, everyone else all of `networks`.
 */
function hostContext(name: string, registry: Registry, tenants: () => Tenants, networks: readonly string[] | undefined): ListenerContext {
  const clients = registry.derived((snapshot) => clientViews(snapshot, tenants(), networks));
  return {
    name, inflight: 0, view: registry.derived((snapshot) => snapshot.view(networks)), clientView: (address) => clients()(address), endpoints: () => undefined,
    // Only a tenant is an endpoint: the host never gets the upstreams of a file's endpoint at its address.
    clientEndpoints: (address, view) => (tenants().of(address) === null ? [] : view.endpointsAt(address)),
  };
}
