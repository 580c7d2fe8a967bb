// Answers on the gateway sockets with nsdns's own resolver until the listeners (src/listeners)
// take them as one more spec: every client of a listener sees that listener's network, local
// names answer with TTL 0 as aardvark's do, and other names go to the container's DNS servers,
// the network's, then resolv.conf's. Not yet: a client on two networks seeing both (the spec's
// per-client view), forwarding policy beyond the resolver's own.
import { validate } from '../daemon/config.js';
import { HostResolvers } from '../daemon/resolv-conf.js';
import type { Logger } from '../log.js';
import type { Registry } from '../registry/registry.js';
import { AnswerCache } from '../resolver/cache.js';
import { Forwarder } from '../resolver/forwarder.js';
import { Resolver, type ListenerContext, type ResolverSettings } from '../resolver/resolver.js';
import { exchange } from '../resolver/upstream.js';
import { DnsServer } from '../server/dns-server.js';
import { TcpBudget } from '../server/tcp-budget.js';
import { endpointText, type GatewaySockets } from './gateway-sockets.js';

/** aardvark answers its own names with TTL 0: a container that moves is found at once. */
const LOCAL_TTL = 0;

export class Answering {
  private readonly config = validate({}, 'aardvark-dns drop-in');
  private readonly hostResolvers: HostResolvers;
  private readonly resolver: Resolver;
  private readonly budget = new TcpBudget(this.config.tcp);

  constructor(private readonly registry: Registry, private readonly log: Logger, resolvConf: string | false) {
    this.hostResolvers = new HostResolvers(resolvConf, log);
    const forwarder = new Forwarder({ ...this.config.forward, maxUdpSize: this.config.maxUdpSize }, new AnswerCache(this.config.cache), exchange, log.child({ module: 'forwarder' }));
    this.resolver = new Resolver(this.settings(new Set()), forwarder, log.child({ module: 'resolver' }));
  }

  /** Our listen addresses (`address:port`): never used as an upstream, so we cannot ask ourselves. */
  listeningOn(addresses: ReadonlySet<string>): void {
    this.resolver.configure(this.settings(addresses));
  }

  private settings(ownAddresses: ReadonlySet<string>): ResolverSettings {
    return { ttl: LOCAL_TTL, maxUdpSize: this.config.maxUdpSize, upstreams: [], hostUpstreams: () => this.hostResolvers.current, ownAddresses };
  }

  /** Serves `network` on `sockets`; close the returned server to stop. */
  serve(network: string, address: string, sockets: GatewaySockets, port: number): DnsServer {
    const view = this.registry.derived((snapshot) => snapshot.view([network]));
    const context: ListenerContext = { name: `${network} ${endpointText(address, port)}`, inflight: 0, view, endpoints: () => undefined };
    return new DnsServer([sockets.udp, ...(sockets.more ?? [])], sockets.tcp, this.resolver, context, this.budget, this.log.child({ network, address }));
  }

  async close(): Promise<void> {
    await this.hostResolvers.close();
  }
}
