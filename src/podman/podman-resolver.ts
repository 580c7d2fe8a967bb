// The resolver the drop-in answers with, and what its DNS servers share: local names answer with
// TTL 0 as aardvark's do, PTR gives every name and alias (bare, as aardvark's), and other names go
// to the container's DNS servers, the network's, then resolv.conf's; when none of them answers, the
// client gets no reply, as from aardvark (a SERVFAIL makes clients give up instead of retrying).
// Which listener sees which network is the listeners' (listeners/aardvark-spec.ts).
import { validate } from '../daemon/config.js';
import { HostResolvers } from '../daemon/resolv-conf.js';
import type { Logger } from '../log.js';
import { AnswerCache } from '../resolver/cache.js';
import { Forwarder } from '../resolver/forwarder.js';
import { Resolver, type ResolverSettings } from '../resolver/resolver.js';
import { exchange } from '../resolver/upstream.js';
import type { ServerShared } from '../server/dns-server.js';
import { ListenerStats } from '../server/listener-stats.js';
import { TcpBudget } from '../server/tcp-budget.js';

/** aardvark answers its own names with TTL 0: a container that moves is found at once. */
const LOCAL_TTL = 0;
/**
 * aardvark's answers to what it does not forward (src/dns/coredns.rs): NXDOMAIN to a container
 * on internal networks only, and nothing when it knows no upstream at all (the client's own
 * timeout then says so, as with a dead upstream).
 */
const NOT_FORWARDED = { internal: 'nxdomain', noUpstream: 'drop' } as const;

export class PodmanResolver {
  private readonly config = validate({}, 'aardvark-dns drop-in');
  readonly hostResolvers: HostResolvers;
  readonly resolver: Resolver;
  /** What every listener's DnsServer shares. */
  readonly shared: ServerShared;

  constructor(log: Logger, resolvConf: string | false) {
    this.hostResolvers = new HostResolvers(resolvConf, log);
    const forwarder = new Forwarder({ ...this.config.forward, maxUdpSize: this.config.maxUdpSize, silentWhenUnanswered: true, firstAnswerWins: true }, new AnswerCache(this.config.cache), exchange, log.child({ module: 'forwarder' }));
    this.resolver = new Resolver(this.settings(new Set()), forwarder, log.child({ module: 'resolver' }));
    this.shared = { resolver: this.resolver, budget: new TcpBudget(this.config.tcp), stats: new ListenerStats(), maxUdpSize: this.config.maxUdpSize };
  }

  /** Our listen addresses (`address:port`): never used as an upstream, so we cannot ask ourselves. */
  listeningOn(addresses: ReadonlySet<string>): void {
    this.resolver.configure(this.settings(addresses));
  }

  private settings(ownAddresses: ReadonlySet<string>): ResolverSettings {
    return {
      ttl: LOCAL_TTL, maxUdpSize: this.config.maxUdpSize, upstreams: [], hostUpstreams: () => this.hostResolvers.current, ownAddresses,
      ptrEveryName: true, notForwarded: NOT_FORWARDED, recursionAlwaysAvailable: true,
    };
  }

  async close(): Promise<void> {
    await this.hostResolvers.close();
  }
}
