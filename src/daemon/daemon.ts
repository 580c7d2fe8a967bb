// The composition root: builds the registry, its sources, the resolver and the listeners from
// the configuration, and owns the process's lifecycle (SIGTERM/SIGINT drain and exit, SIGHUP
// reloads the config file, SIGUSR2 and `nsdns restart` hand over to a new daemon: handover.ts).
import { Registry } from '../registry/registry.js';
import { namespaceIdentity } from '../namespace-identity.js';
import { AnswerCache } from '../resolver/cache.js';
import { Forwarder, type ForwardOptions } from '../resolver/forwarder.js';
import { Resolver, type ResolverSettings } from '../resolver/resolver.js';
import { exchange } from '../resolver/upstream.js';
import { errorMessage } from '../errors.js';
import { rateLimited, type Logger } from '../log.js';
import { loadConfig, type Config, type ConfigFlags } from './config.js';
import { RegistryFiles } from './registry-files.js';
import { EtcdSource } from '../etcd/etcd-source.js';
import { isEtcdUrl, parseEtcdUrl } from '../etcd/etcd-url.js';
import { nodeName } from '../etcd/node-name.js';
import { nodeOwner } from '../etcd/node-claim.js';
import { ClusterNetworks } from '../etcd/cluster-networks.js';
import { ClusterAddresses } from '../etcd/cluster-addresses.js';
import type { AddressClaims } from '../plumbing/address-claims.js';
import { HostResolvers } from './resolv-conf.js';
import { IntentStore, STATE_SOURCE, StateStore } from '../plumbing/state.js';
import { NetworkManager } from '../plumbing/network-manager.js';
import { NftFirewall, NoFirewall } from '../plumbing/firewall.js';
import { EgressEnforcement } from '../egress/enforcement.js';
import { DEFAULT_POOLS } from '../plumbing/ipam.js';
import { NsdnsError } from '../errors.js';
import { ControlServer } from './control.js';
import { HealthProber } from '../health/prober.js';
import { namespaceLinksKind } from '../plumbing/links.js';
import { TcpBudget } from '../server/tcp-budget.js';
import { ListenerStats } from '../server/listener-stats.js';
import type { ServerShared } from '../server/dns-server.js';
import { closeSockets, ListenerSet, type Listener, type Want } from '../listeners/listener-set.js';
import { NamespaceSpec, type NamespaceWant } from '../listeners/namespace-spec.js';
import { HostSpec, type HostWant } from '../listeners/host-spec.js';
import { GatewaySpec, type GatewayWant } from '../listeners/gateway-spec.js';
import { ResolvedLinks } from '../listeners/resolved-links.js';
import { bindHelperKind } from '../listeners/namespace-sockets.js';
import { clientFilter, localSubnets, refreshingFilter } from '../server/client-filter.js';
import { controlHandlers } from './handlers.js';
import { StateLock } from './state-lock.js';
import { startOnlyChanges } from './start-only.js';
import { healthReport, type HealthReport } from './health-report.js';
import { opsHandlers, timedHandlers } from './ops-handlers.js';
import type { Metrics, MetricsServer } from './metrics.js';
import { formatHostPort, parseHostPort } from '../host-port.js';
import { announceReady, handOver, listenerCount, notifySystemd, receiveHandover, takeOverLock, type Inherited } from './handover.js';
import { z } from 'zod';
import type net from 'node:net';
import { readFileSync } from 'node:fs';
import type { Announcer } from '../etcd/announcer.js';
import { OverlayPeers } from '../plumbing/overlay-peers.js';

export class Daemon {
  readonly registry = new Registry({ identify: namespaceIdentity });
  readonly resolver: Resolver;
  /** `--listen`: standalone listeners on the host. */
  readonly hosts: ListenerSet<HostWant>;
  readonly state: StateStore;
  /** 127.0.0.11:53 in every namespace with an endpoint. */
  readonly namespaces: ListenerSet<NamespaceWant>;
  /** `--host-dns`: the gateways of provisioned networks. */
  readonly gateways: ListenerSet<GatewayWant>;
  /** Every listener set: start, reload, handover and stop go over them all. */
  private readonly listenerSets: ListenerSet<Want>[];
  private readonly namespaceSpec: NamespaceSpec;
  private readonly hostSpec: HostSpec;
  private readonly gatewaySpec: GatewaySpec;
  readonly listenerStats = new ListenerStats();
  readonly manager: NetworkManager;
  private readonly files: RegistryFiles;
  /** `--registry etcd://…`: shared registries, read once at start and watched (made in start(), once the node name is known). */
  etcdSources: EtcdSource[] = [];
  /** The name this daemon announces under (`--announce`), undefined when it does not announce. */
  private node: string | undefined;
  private readonly control: ControlServer;
  private hostResolvers: HostResolvers;
  readonly prober: HealthProber;
  private readonly tcpBudget: TcpBudget;
  private stopping: Promise<void> | undefined;
  private reaper: NodeJS.Timeout | undefined;
  private firewallGuard: NodeJS.Timeout | undefined;
  private readonly firewall: NftFirewall | NoFirewall;
  private lock: StateLock | undefined;
  private readonly startedAt = Date.now();
  /** The registry sources are read and the namespaces reconciled once: readiness needs it. */
  private registryLoaded = false;
  private registryChanges = 0;
  private registryErrors = 0;
  private metrics: Metrics | undefined;
  private metricsServer: MetricsServer | undefined;
  private metricsAddress: string | undefined;
  private handingOver: Promise<void> | undefined;
  /** `--cluster`: the overlay addresses this node holds in etcd, once started. */
  private readonly claims: AddressClaims | undefined;
  private addressAllocator: ClusterAddresses | undefined;
  private addressAllocatorStart: Promise<ClusterAddresses> | undefined;
  /** Egress policies enforced in the kernel (root and nftables only). */
  private egress: EgressEnforcement | undefined;
  /** `--announce`: publishes provisioned networks to etcd. */
  private announcer: Announcer | undefined;
  /** Other hosts' overlay endpoints in this host's VXLAN devices (`--cluster` with `--advertise-address`). */
  private readonly overlayPeers: OverlayPeers | undefined;
  /** `--cluster`: where overlay networks are created. */
  private readonly cluster: ClusterNetworks | undefined;
  /** Handovers that failed, and why the last one did (`nsdns status`, `nsdns restart`). */
  private handoverFailures = 0;
  /** Loopback and the host's own subnets, read again after every registry change. */
  private readonly localClients = refreshingFilter(localSubnets);
  private lastHandoverFailure: string | null = null;

  private constructor(private config: Config, private readonly flags: ConfigFlags, readonly log: Logger) {
    const forwarder = new Forwarder(forwardOptions(config), new AnswerCache(config.cache), exchange, log.child({ module: 'forwarder' }));
    this.hostResolvers = new HostResolvers(config.resolvConf, log);
    this.resolver = new Resolver(this.resolverSettings(), forwarder, log.child({ module: 'resolver' }));
    this.tcpBudget = new TcpBudget(config.tcp);
    const shared: ServerShared = { resolver: this.resolver, budget: this.tcpBudget, stats: this.listenerStats, maxUdpSize: config.maxUdpSize };
    this.namespaceSpec = new NamespaceSpec(this.registry, shared, log.child({ module: 'netns' }));
    this.hostSpec = new HostSpec(this.registry, shared, log.child({ module: 'listener' }));
    this.gatewaySpec = new GatewaySpec(this.registry, shared, log.child({ module: 'gateway' }), { enabled: config.hostDns, resolved: new ResolvedLinks(log.child({ module: 'resolved' })) });
    this.namespaces = new ListenerSet(this.namespaceSpec, log.child({ module: 'netns' }));
    this.hosts = new ListenerSet(this.hostSpec, log.child({ module: 'listener' }));
    this.gateways = new ListenerSet(this.gatewaySpec, log.child({ module: 'gateway' }));
    this.listenerSets = [this.namespaces, this.hosts, this.gateways] as ListenerSet<Want>[];
    this.files = new RegistryFiles(this.registry, countingErrors(log.child({ module: 'registry' }), () => this.registryErrors++), config.registryFiles);
    this.state = new StateStore(config.stateDir);
    this.registry.on('change', () => {
      this.registryChanges++;
      // A bridge came or went with the change: the host's subnets are read again at the next query.
      this.localClients.stale();
      void this.namespaces.reconcile();
      void this.gateways.reconcile().catch((err) => this.log.error({ err }, 'gateway listeners: reconcile failed'));
    });
    const plumbing = config.plumbing;
    this.firewall = plumbing.firewall === 'nftables' ? new NftFirewall(plumbing.nftTable) : new NoFirewall();
    this.claims = this.addressClaims();
    this.manager = new NetworkManager({
      registry: this.registry,
      state: this.state,
      intents: new IntentStore(config.stateDir),
      firewall: this.firewall,
      namespaceReady: (netns) => this.namespaceReady(netns),
      bindPath: bindHelperKind,
      namespaceComing: (netns) => { if (!this.namespaces.get(netns) && !this.namespaces.isStarting(netns)) this.namespaceSpec.sockets.prepare(netns); },
      namespaceNotComing: (netns) => this.namespaceSpec.sockets.cancel(netns),
      log: log.child({ module: 'plumbing' }),
      addressClaims: this.claims,
    }, { linkPrefix: plumbing.linkPrefix, pools: plumbing.pools ?? DEFAULT_POOLS, resolvConfDir: plumbing.resolvConfDir, hostResolvConf: config.resolvConf, advertiseAddress: config.advertiseAddress });
    this.overlayPeers = config.cluster !== undefined && config.advertiseAddress !== undefined
      ? new OverlayPeers(this.registry, config.advertiseAddress, log.child({ module: 'overlay' })) : undefined;
    this.prober = new HealthProber(this.registry, log.child({ module: 'health' }), { scope: { allow: () => this.config.registryFiles.probeAllow } });
    this.cluster = config.cluster === undefined ? undefined : new ClusterNetworks(parseEtcdUrl(config.cluster), config.etcd, this.registry);
    const handlers = {
      ...controlHandlers({
        registry: this.registry, manager: this.manager, resolver: this.resolver, namespaces: this.namespaceStatus(),
        ownAddresses: () => this.ownAddresses(), probes: this.prober, cluster: this.cluster, egress: () => this.egress,
      }),
      ...opsHandlers({ status: () => this.status(), reloadFirewall: () => this.reloadFirewall() }),
      restart: async (params: unknown) => {
        if (!noParams.safeParse(params).success) throw new NsdnsError('ERR_BAD_REQUEST', 'restart takes no parameters');
        // After this answer is sent: the handover waits for the control requests in flight, this one too.
        setImmediate(() => this.restart('nsdns restart'));
        return { pid: process.pid, failures: this.handoverFailures };
      },
    };
    // Timed only when someone reads the times.
    this.control = new ControlServer(config.socket, config.metrics.listen === undefined ? handlers : timedHandlers(handlers, (op, s, ok) => this.metrics?.observeOperation(op, s, ok)),
      log.child({ module: 'control' }), { group: config.socketGroup });
  }

  /** Resolves once 127.0.0.11:53 is served in `netns`; a connect returns only then. */
  private async namespaceReady(netns: string): Promise<void> {
    // A namespace under a policy is handed back governed (the connect fails when it cannot be).
    await this.egress?.settled();
    if (!(await this.namespaces.ready(netns))) {
      throw new NsdnsError('ERR_NETNS_BIND', this.namespaces.failure(netns) ?? `${netns} is not served`);
    }
  }

  /** What `debug` tells of a namespace's listener. */
  private namespaceStatus() {
    return {
      isServed: (netns: string) => this.namespaceSpec.isCurrent(this.namespaces.get(netns)),
      failure: (netns: string) => this.namespaces.failure(netns),
      context: (netns: string) => this.namespaces.get(netns)?.server.context,
    };
  }

  /** "ADDRESS:PORT" of every listener on the host (host listeners and gateways): never an upstream. */
  private ownAddresses(): Set<string> {
    return new Set([...this.hosts.listeners, ...this.gateways.listeners].map((l: Listener<Want>) => formatHostPort(l.address, l.port)));
  }

  static async start(flags: ConfigFlags, log: Logger, config = loadConfig(flags)): Promise<Daemon> {
    const daemon = new Daemon(config, flags, log);
    let inherited: Inherited | undefined;
    try {
      // Started by a running daemon (SIGUSR2, `nsdns restart`): its sockets first (handover.ts).
      inherited = await receiveHandover(log);
      if (inherited) await takeOverLock(config.stateDir, inherited.predecessor);
      // Both before anything is restored: a second daemon must stop here, having touched nothing.
      daemon.lock = await StateLock.acquire(config.stateDir);
      if (!inherited?.control) await daemon.control.checkFree();
      // After the lock: a default node name keeps its id in the state directory.
      daemon.node = config.announce === undefined ? undefined : await nodeName(config.nodeName, config.stateDir);
      daemon.etcdSources = daemon.sharedRegistries();
      for (const record of await daemon.state.load()) daemon.registry.setNetwork(record, STATE_SOURCE);
      await daemon.files.watch(registryDirectories(config));
      await Promise.all(daemon.etcdSources.map((source) => source.start()));
      if (process.getuid?.() === 0) {
        for (const line of await daemon.manager.recover({ holdPorts: !inherited })) log.warn(line);
        await daemon.startEgress();
      }
      // Listeners handed over are served on the very sockets their clients send to: no bind.
      for (const set of daemon.listenerSets) set.adopt(inherited?.listeners.get(set.kind) ?? new Map());
      // A kind this daemon does not have (a predecessor of another version): not ours to keep open.
      for (const [kind, handed] of inherited?.listeners ?? []) {
        if (!daemon.listenerSets.some((set) => set.kind === kind)) for (const sockets of handed.values()) closeSockets(sockets);
      }
      // The first bind pass of every set: nothing was bound while the registry loaded (see ListenerSet.open).
      daemon.hostSpec.configure(config.listen, daemon.hostClients());
      for (const set of daemon.listenerSets) await set.open();
      if (inherited?.control) daemon.control.adopt(inherited.control.server, inherited.control.held);
      else await daemon.startControl();
      daemon.startReaper();
      daemon.startFirewallGuard();
      if (inherited) daemon.holdPortsAfter(inherited.predecessor);
      daemon.resolver.configure(daemon.resolverSettings());
      daemon.registryLoaded = true;
      daemon.prober.start();
      await daemon.startMetrics(inherited?.metrics);
      await daemon.startAnnouncer();
      daemon.overlayPeers?.start();
      daemon.reclaimOverlayAddresses();
    } catch (err) {
      await daemon.stop();
      throw err;
    }
    // Before "ready": a supervisor may signal the moment it reads that line.
    daemon.handleSignals();
    await notifySystemd(log);
    if (inherited) {
      await announceReady();
      log.info({ predecessor: inherited.predecessor, listeners: listenerCount(inherited), ...Object.fromEntries([...inherited.listeners].map(([kind, set]) => [kind, set.size])) }, 'handover: took over from the old daemon');
    }
    log.info({
      listeners: daemon.hosts.listeners.map((l) => ({ address: l.address, port: l.port })),
      networks: [...daemon.registry.current().networks.keys()],
      namespaces: daemon.namespaces.listeners.length,
      upstreams: config.upstreams,
      ...(daemon.metricsAddress && { metrics: daemon.metricsAddress }),
    }, 'ready');
    return daemon;
  }

  /**
   * The control socket. As root it must work (the network commands depend on it); an unprivileged
   * standalone resolver (a lab host's) runs without it when it may not create one.
   */
  private async startControl(): Promise<void> {
    try {
      await this.control.start();
    } catch (err) {
      if (process.getuid?.() === 0 || err instanceof NsdnsError) throw err;
      this.log.warn({ err, socket: this.config.socket }, 'no control socket (not root?): the network commands are unavailable; names are served as usual');
    }
  }

  /** The metrics listener, when `metrics.listen` asks for one; counting on the query path starts with it. */
  private async startMetrics(inherited?: net.Server): Promise<void> {
    const listen = this.config.metrics.listen;
    if (listen === undefined) return;
    const { host, port } = parseHostPort(listen)!;
    // Loaded only here: a daemon without metrics never loads prom-client.
    const { Metrics, MetricsServer } = await import('./metrics.js');
    this.metrics = new Metrics({
      resolver: this.resolver,
      listeners: this.listenerStats,
      tcpConnections: () => this.tcpBudget.connections,
      registryChanges: () => this.registryChanges,
      registryErrors: () => this.registryErrors,
      inventory: () => this.inventory(),
      health: () => this.health(),
      probes: () => ({ results: this.prober.results, states: this.prober.states() }),
    });
    this.metricsServer = new MetricsServer(this.metrics, () => this.health(), this.log.child({ module: 'metrics' }));
    // Handed over: the scraper's address never stops answering. A changed address is bound anew.
    const sameAddress = inherited !== undefined && sameListenAddress(inherited, host, port);
    if (inherited && !sameAddress) inherited.close();
    const bound = sameAddress ? await this.metricsServer.adopt(inherited!) : await this.metricsServer.listen(host, port);
    this.resolver.stats.enabled = true;
    this.resolver.forwarder.stats.enabled = true;
    this.metricsAddress = formatHostPort(bound.address, bound.port);
    this.log.info({ metrics: this.metricsAddress }, 'metrics served at /metrics, /healthz and /readyz');
  }

  private inventory(): { networks: number; endpoints: number; namespaces: number; served: number } {
    const snapshot = this.registry.current();
    let endpoints = 0;
    for (const net of snapshot.networks.values()) endpoints += net.endpointCount;
    const attached = [...snapshot.namespaces().keys()];
    return { networks: snapshot.networks.size, endpoints, namespaces: attached.length, served: attached.filter((ns) => this.namespaceSpec.isCurrent(this.namespaces.get(ns))).length };
  }

  health(): HealthReport {
    return healthReport({
      registryLoaded: this.registryLoaded,
      snapshot: this.registry.current(),
      isServed: (ns) => this.namespaceSpec.isCurrent(this.namespaces.get(ns)),
      isProvisioned: (network) => this.registry.isProvisioned(network),
      daemonUpstreams: [...this.config.upstreams, ...this.hostResolvers.current],
      isFailing: (key) => this.resolver.forwarder.health.isDead(key),
      plumbingProblems: this.manager.plumbingProblems(),
      sharedRegistries: this.etcdSources.map((source) => source.status()),
      announceConflict: this.announcer?.nodeConflict(),
    });
  }

  /** `nsdns status`: readiness and the numbers behind it. */
  status(): object {
    const report = this.health();
    const inv = this.inventory();
    return {
      pid: process.pid,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      ready: report.ready,
      problems: report.problems,
      warnings: report.warnings,
      registryLoaded: report.registryLoaded,
      networks: inv.networks,
      endpoints: inv.endpoints,
      namespaces: report.namespaces,
      upstreams: report.upstreams,
      sharedRegistries: report.sharedRegistries,
      listeners: this.hosts.listeners.map((l) => formatHostPort(l.address, l.port)),
      metrics: this.metricsAddress ?? null,
      forwardInflight: this.resolver.forwarder.inflightCount,
      cacheEntries: this.resolver.forwarder.cache.size,
      tcpConnections: this.tcpBudget.connections,
      gateways: this.gateways.listeners.map((l) => `${l.want.network} ${formatHostPort(l.address, l.port)}`),
      // The optional native fast paths (src/native): in use, or their Node/iproute2 fallbacks.
      helpers: { bind: bindHelperKind(), links: namespaceLinksKind(), probe: this.prober.kind },
      handover: { running: this.handingOver !== undefined, failures: this.handoverFailures, lastFailure: this.lastHandoverFailure },
      announce: this.announcer?.status() ?? null,
      clusterAddresses: this.addressAllocator?.status() ?? null,
    };
  }

  /**
   * `--cluster`: overlay addresses claimed in etcd (cluster-addresses.ts), so two hosts never hand
   * out one address. Started at the first claim, or at start when overlay endpoints are here.
   */
  private addressClaims(): AddressClaims | undefined {
    const cluster = this.config.cluster;
    if (cluster === undefined) return undefined;
    const allocator = () => (this.addressAllocatorStart ??= ClusterAddresses.start({
      location: parseEtcdUrl(cluster), access: this.config.etcd, node: this.node!, ttlSeconds: this.config.announceTtl, log: this.log.child({ module: 'addresses' }),
    }).then((started) => (this.addressAllocator = started), (err: unknown) => {
      this.addressAllocatorStart = undefined;
      throw err;
    }));
    return {
      claim: async (network, subnet, options) => (await allocator()).claim(network, subnet, options),
      release: async (network, ip) => (await allocator()).release(network, ip),
    };
  }

  /**
   * After a restart: the overlay endpoints kept in the state claim their addresses again under this
   * run's lease (their keys outlive a stop for the lease's TTL, then would be free for others).
   */
  private reclaimOverlayAddresses(): void {
    const claims = this.claims;
    if (claims === undefined) return;
    const snapshot = this.registry.current();
    const held = [...snapshot.networks.values()].filter((c) => c.network.overlay !== undefined && this.registry.isProvisioned(c.network.name))
      .flatMap((c) => (c.primary ?? c).endpoints.flatMap((e) => e.ipv4.map((ip) => ({ network: c.network, ip }))));
    for (const { network, ip } of held) {
      const subnet = network.subnets.find((s) => s.subnet.includes('.'));
      if (subnet === undefined) continue;
      claims.claim(network.name, subnet.subnet, { ip }).catch((err: unknown) => this.log.warn({ network: network.name, address: ip, err: errorMessage(err) }, 'an overlay endpoint\'s address could not be claimed again in the cluster'));
    }
  }

  /**
   * Every firewallCheckMs, the nft table is compared to what was applied and restored when someone
   * deleted or changed it (`nft flush ruleset`, a firewall reload): NAT and published ports come
   * back within seconds, without waiting for `nsdns firewall-reload`.
   */
  private startFirewallGuard(): void {
    const every = this.config.plumbing.firewallCheckMs;
    const firewall = this.firewall;
    if (every === 0 || !(firewall instanceof NftFirewall) || process.getuid?.() !== 0) return;
    let running = false;
    const warnFailed = rateLimited(60_000);
    this.firewallGuard = setInterval(() => {
      if (running) return;
      running = true;
      firewall.verify().then((verdict) => {
        if (verdict === 'restored-gone') this.log.warn({ table: firewall.table }, `nft table inet ${firewall.table} was deleted outside nsdns; restored it`);
        else if (verdict === 'restored-changed') this.log.warn({ table: firewall.table }, `nft table inet ${firewall.table} was changed outside nsdns; restored it`);
      }, (err) => warnFailed((suppressed) => this.log.error({ err, suppressed }, `checking or restoring nft table inet ${firewall.table} failed`)))
        .finally(() => { running = false; });
    }, every);
    this.firewallGuard.unref();
  }

  private async reloadFirewall(): Promise<object> {
    const firewall = this.firewall;
    if (!(firewall instanceof NftFirewall)) return { table: null, action: 'the firewall driver is "none": nothing to reload' };
    const action = await firewall.reload();
    this.log.info({ table: firewall.table }, `firewall reload: ${action}`);
    return { table: firewall.table, action };
  }

  /**
   * Every reapIntervalMs: endpoints whose namespace is gone are removed, and the links and
   * published ports of the rest are read back and repaired (plumbing's self-heal).
   */
  private startReaper(): void {
    const every = this.config.plumbing.reapIntervalMs;
    if (every === 0 || process.getuid?.() !== 0) return;
    let running = false;
    this.reaper = setInterval(() => {
      if (running) return;
      running = true;
      this.manager.reapVanished().then(
        (lines) => lines.forEach((line) => this.log.warn(line)),
        (err) => this.log.error({ err }, 'looking for vanished namespaces failed'),
      ).then(() => this.manager.heal()).then(
        (lines) => lines.forEach((line) => this.log.warn(line)),
        (err) => this.log.error({ err }, 'checking links and published ports failed'),
      ).then(() => this.overlayPeers?.reconcile()).then(
        (lines) => lines?.forEach((line) => this.log.warn(line)),
        (err) => this.log.error({ err }, 'checking overlay forwarding entries failed'),
      // Then the listeners whose namespace was replaced but whose endpoints stay (registry files').
      ).then(() => this.namespaces.recheck((netns) => this.namespaceSpec.exists(netns))).catch((err) => this.log.error({ err }, 'closing the listeners of replaced namespaces failed'))
        // A registry file's namespace or veth made again: its new host end is looked up.
        .then(() => this.egress?.recheck()).catch((err) => this.log.error({ err }, 'looking for new egress host ends failed'))
        .finally(() => { running = false; });
    }, every);
    this.reaper.unref();
  }

  /**
   * A successor in a handover: the old daemon holds the published host ports until it exits, so
   * they are taken once its process is gone (a few hundred ms after "ready").
   */
  private holdPortsAfter(predecessor: number): void {
    const poll = setInterval(() => {
      if (processAlive(predecessor)) return;
      clearInterval(poll);
      if (this.stopping) return;
      this.manager.heal().then((lines) => lines.forEach((line) => this.log.warn(line)), (err) => this.log.error({ err }, 'holding the published ports failed'));
    }, 100);
    poll.unref();
  }

  get currentConfig(): Config {
    return this.config;
  }

  /** SIGHUP: re-read the config file and apply what changed; on a bad file keep running as before. */
  async reload(): Promise<void> {
    let next: Config;
    try {
      next = loadConfig(this.flags);
    } catch (err) {
      this.log.error({ err }, `reload refused, keeping the running configuration: ${errorMessage(err)}`);
      return;
    }
    const previous = this.config;
    this.config = next;
    this.log.level = next.logLevel;
    if (next.resolvConf !== previous.resolvConf) {
      await this.hostResolvers.close();
      this.hostResolvers = new HostResolvers(next.resolvConf, this.log);
    }
    if (JSON.stringify(next.cache) !== JSON.stringify(previous.cache)) this.resolver.forwarder.cache = new AnswerCache(next.cache);
    this.resolver.forwarder.configure(forwardOptions(next));
    if (JSON.stringify(registryDirectories(next)) !== JSON.stringify(registryDirectories(previous))) await this.files.watch(registryDirectories(next));
    this.tcpBudget.limits = next.tcp;
    this.hostSpec.configure(next.listen, this.hostClients());
    this.gatewaySpec.enabled = next.hostDns;
    // A listener the new configuration asks for but cannot have (its port taken) is said; the rest applies.
    await Promise.all(this.listenerSets.map((set) => set.reconcile().catch((err) => this.log.error({ err }, `reload: ${set.kind} listener not started: ${errorMessage(err)}`))));
    this.resolver.configure(this.resolverSettings());
    const restartNeeded = startOnlyChanges(previous, next);
    // Kept as they were: these are read once, at start. Say so rather than pretend they applied.
    if (restartNeeded.length > 0) this.log.warn({ settings: restartNeeded }, `changed settings that apply only at start (restart nsdns to apply them): ${restartNeeded.join(', ')}`);
    this.log.info({ listeners: this.hosts.listeners.map((l) => formatHostPort(l.address, l.port)), upstreams: next.upstreams, ...(restartNeeded.length > 0 && { restartNeeded }) }, 'configuration reloaded');
  }

  /** Who host listeners answer: `allow`, else loopback and the host's own subnets as they are now. */
  private hostClients() {
    if (this.config.allow) return clientFilter(this.config.allow);
    this.localClients.stale();
    return this.localClients.filter;
  }

  private resolverSettings(): ResolverSettings {
    const hostResolvers = () => this.hostResolvers.current;
    return {
      ttl: this.config.ttl,
      maxUdpSize: this.config.maxUdpSize,
      upstreams: this.config.upstreams,
      hostUpstreams: hostResolvers,
      ownAddresses: this.hosts === undefined ? new Set() : this.ownAddresses(),
      hostName: this.config.dns.hostName,
      egress: { graceSeconds: this.config.egress.grace, logDecisions: this.config.egress.logDecisions },
    };
  }

  /**
   * SIGUSR2 and `nsdns restart`: hand every socket to a new daemon started from the files on disk,
   * then exit (handover.ts). When the new one fails, log why and go on serving.
   */
  restart(why: string): Promise<void> {
    if (this.stopping) return Promise.resolve();
    this.handingOver ??= (async () => {
      this.log.info({ trigger: why }, 'handover: starting a new daemon to take over');
      clearInterval(this.reaper);
      clearInterval(this.firewallGuard);
      const result = await handOver({
        stateDir: this.config.stateDir,
        control: this.control,
        freezeListeners: async () => (await Promise.all(this.listenerSets.map(async (set) => (await set.freeze()).map((l) => ({ set: set.kind, ...l }))))).flat(),
        metrics: this.metricsServer?.listening,
        resume: async () => {
          this.startReaper();
          this.startFirewallGuard();
          await Promise.all(this.listenerSets.map((set) => set.thaw()));
        },
      }, this.log);
      if (!result.ok) {
        this.handoverFailures++;
        this.lastHandoverFailure = result.reason;
        this.log.error({ reason: result.reason }, `handover failed, this daemon goes on serving: ${result.reason}`);
        return;
      }
      this.log.info({ successor: result.successor }, 'handover: the new daemon serves; answering what was read, then exiting');
      // Nothing new is read from here on; what is in the sockets' buffers is the successor's.
      await Promise.all(this.listenerSets.map((set) => set.release()));
      await this.stop();
      this.log.info({ successor: result.successor }, 'stopped after handover');
      this.log.flush?.();
      process.exit(0);
    })().catch((err) => { this.log.error({ err }, 'handover failed'); }).finally(() => { this.handingOver = undefined; });
    return this.handingOver;
  }

  /**
   * The shared registries. This daemon's own endpoints come back through their watch: they are
   * skipped there (ownNode), served from its own state only, so a disconnect is gone at once.
   */
  private sharedRegistries(): EtcdSource[] {
    return [...new Set(this.config.registries.filter(isEtcdUrl))].map((url) => new EtcdSource(this.registry, countingErrors(this.log.child({ module: 'etcd' }), () => this.registryErrors++), {
      location: parseEtcdUrl(url), access: this.config.etcd, ...this.config.etcd, ownNode: this.node,
    }));
  }

  /**
   * Egress by name enforced by nftables (root, firewall driver nftables): taken over from the
   * kernel before any namespace is served, so no allowed answer is released unlearned.
   */
  private async startEgress(): Promise<void> {
    if (!(this.firewall instanceof NftFirewall)) return;
    this.egress = await EgressEnforcement.open(this.registry, `${this.firewall.table}_egress`, this.log.child({ module: 'egress' }), { logDrops: this.config.egress.logDrops, maxLearned: this.config.egress.maxLearned });
    this.resolver.egress.learner = this.egress.firewall;
  }

  /** etcd3 (gRPC) is loaded only when announcing. */
  private async startAnnouncer(): Promise<void> {
    if (this.config.announce === undefined) return;
    const { Announcer } = await import('../etcd/announcer.js');
    this.announcer = await Announcer.start(this.registry, {
      location: parseEtcdUrl(this.config.announce), access: this.config.etcd, node: this.node!, owner: nodeOwner(this.config.stateDir), advertiseAddress: this.config.advertiseAddress,
      ttlSeconds: this.config.announceTtl, log: this.log.child({ module: 'announce' }),
    });
  }

  /** Stops taking queries, answers those in flight, releases everything. Safe to call twice. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      // A handover's successor announces the same endpoints: the lease is left to expire, not revoked.
      await this.announcer?.stop(this.handingOver === undefined);
      await this.overlayPeers?.stop();
      await this.prober.stop();
      clearInterval(this.reaper);
      clearInterval(this.firewallGuard);
      await this.control.close();
      await this.metricsServer?.close();
      await Promise.all(this.listenerSets.map((set) => set.close()));
      // The rules stay in the kernel: a stopped daemon opens no namespace.
      await this.egress?.close();
      await this.manager.ports.close();
      await this.files.close();
      await Promise.all(this.etcdSources.map((source) => source.close()));
      await this.cluster?.close();
      // Not revoked: the endpoints keep their addresses while the daemon is down (for the lease's TTL).
      await this.addressAllocatorStart?.then((a) => a.close(), () => undefined);
      await this.hostResolvers.close();
      await this.lock?.release();
    })();
    return this.stopping;
  }

  /** Wires SIGTERM/SIGINT (drain, exit 0) and SIGHUP (reload). */
  private handleSignals(): void {
    const shutdown = (signal: string) => {
      this.log.info({ signal }, 'stopping');
      this.stop().then(() => {
        this.log.info('stopped');
        process.exit(0);
      }, (err) => {
        this.log.error({ err }, 'stop failed');
        process.exit(1);
      });
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
    process.on('SIGHUP', () => void this.reload());
    process.on('SIGUSR2', () => void this.restart('SIGUSR2'));
  }
}

const noParams = z.strictObject({});

/** Whether `pid` still runs: an exited process whose parent has not reaped it yet (a zombie) does not. */
function processAlive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/s.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** True when the handed-over metrics socket is bound where the configuration now asks. */
function sameListenAddress(server: net.Server, host: string, port: number): boolean {
  const bound = server.address();
  return typeof bound === 'object' && bound !== null && bound.address === host && (port === 0 || bound.port === port);
}

/** `log` with its error lines counted (the registry's: a refused file is logged at error). */
function countingErrors(log: Logger, count: () => void): Logger {
  const counted = Object.create(log) as Logger;
  counted.error = ((...args: Parameters<Logger['error']>) => {
    count();
    return log.error(...args);
  }) as Logger['error'];
  return counted;
}

/** The registry directories among `registries` (the rest are etcd:// URLs). */
function registryDirectories(config: Config): string[] {
  return config.registries.filter((r) => !isEtcdUrl(r));
}

function forwardOptions(config: Config): ForwardOptions {
  return { ...config.forward, maxUdpSize: config.maxUdpSize };
}
