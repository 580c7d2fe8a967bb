// `--host-dns`: a listener on every provisioned network's gateway address (UDP and TCP, port 53)
// that answers that network's names, for the host itself and for clients that use the gateway as
// their server (the way aardvark-dns is reached). Reconciled against the registry like
// host-listeners.ts is against `--listen`: a network nsdns created (it has a bridge carrying the
// gateway address) gets one listener per gateway address; one that goes loses it. With
// systemd-resolved running, each bridge is registered with it (resolved.ts).
//
// Who is answered: the host (loopback and its own addresses) and the network's own subnets. The host
// reaches every bridge without forwarding, so a namespace on network A could otherwise read network
// B's names at B's gateway: other clients on the host's own subnets (other networks, the LAN) get
// REFUSED, so a misdirected client stops retrying at once; anyone further away gets no reply at
// all, as at host listeners (client-filter.ts), so a gateway never reflects spoofed traffic.
import ipaddr from 'ipaddr.js';
import { DnsServer } from '../server/dns-server.js';
import type { TcpBudget } from '../server/tcp-budget.js';
import { clientFilter, hostAddresses, localSubnets, type ClientFilter } from '../server/client-filter.js';
import { bindHostSockets, type BoundSockets } from '../server/host-sockets.js';
import type { Client, ListenerContext, Resolver } from '../resolver/resolver.js';
import type { Registry, Snapshot } from '../registry/registry.js';
import { STATE_SOURCE } from '../plumbing/state.js';
import { parseQuery } from '../wire/query.js';
import { errorReply, headerOnlyReply } from '../wire/reply.js';
import { RCODE } from '../wire/constants.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { ResolvedLinks } from './resolved.js';

export interface GatewayListenerOptions {
  /** Whether gateway listeners are wanted at all (config hostDns); may change on reload. */
  enabled?: boolean;
  /** The port to listen on; 53 by default (0 in tests: the kernel picks). */
  port?: number;
  /** systemd-resolved registration; none: no registration is attempted. */
  resolved?: ResolvedLinks;
  /** The EDNS size given in REFUSED replies. */
  maxUdpSize?: number;
}

export interface GatewayListener {
  readonly key: string;
  readonly network: string;
  readonly address: string;
  readonly port: number;
  readonly server: DnsServer;
  /** Who it answers; replaced on every reconcile (subnets and the host's addresses may change). */
  filter: ClientFilter;
}

interface Wanted {
  key: string;
  network: string;
  bridge: string;
  address: string;
}

/** Longest wait between attempts to bind a gateway that failed (the bridge not up yet, the port taken). */
const MAX_RETRY_MS = 30_000;

export class GatewayListeners {
  enabled: boolean;
  private readonly port: number;
  private readonly resolved: ResolvedLinks | undefined;
  private readonly maxUdpSize: number;
  private readonly bound = new Map<string, GatewayListener>();
  /** Bridge → what it is registered with in systemd-resolved (servers and zones). */
  private readonly registered = new Map<string, string>();
  /** Gateways whose bind failed, by key: attempts so far. */
  private readonly failures = new Map<string, number>();
  private retry: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private queued: Promise<void> | undefined;
  private closed = false;
  /** Sockets a predecessor handed over, by listener key (see adopt()). */
  private readonly inherited = new Map<string, Omit<BoundSockets, 'port'>>();
  /** Who gets any reply at all: loopback and the host's connected subnets, as they were at the last reconcile. */
  private reachable: ClientFilter = clientFilter(localSubnets());

  constructor(
    private readonly registry: Registry,
    private readonly resolver: Resolver,
    private readonly budget: TcpBudget,
    private readonly log: Logger,
    options: GatewayListenerOptions = {},
  ) {
    this.enabled = options.enabled ?? true;
    this.port = options.port ?? 53;
    this.resolved = options.resolved;
    this.maxUdpSize = options.maxUdpSize ?? 1232;
  }

  get all(): GatewayListener[] {
    return [...this.bound.values()];
  }

  /** "host:port" of every gateway listener, for loop protection (never an upstream). */
  addresses(): Set<string> {
    return new Set(this.all.map((l) => (l.address.includes(':') ? `[${l.address}]:${l.port}` : `${l.address}:${l.port}`)));
  }

  /**
   * Brings the listeners in line with the registry. Calls while one runs are folded into one more
   * run after it, so a burst of registry changes costs at most two passes. Never rejects.
   */
  reconcile(): Promise<void> {
    if (this.queued) return this.queued;
    const next = this.running.then(() => {
      this.queued = undefined;
      return this.reconcileNow().catch((err) => this.log.error({ err }, 'gateway listeners: reconcile failed'));
    });
    this.queued = next;
    this.running = next;
    return next;
  }

  private async reconcileNow(): Promise<void> {
    if (this.closed) return;
    const snapshot = this.registry.current();
    const wanted = this.enabled ? this.wanted(snapshot) : new Map<string, Wanted>();
    for (const [key, listener] of this.bound) {
      if (wanted.has(key)) continue;
      this.bound.delete(key);
      await listener.server.close();
      this.log.info({ network: listener.network, address: listener.address, port: listener.port }, 'gateway listener closed');
    }
    for (const key of this.failures.keys()) if (!wanted.has(key)) this.failures.delete(key);
    // Reading the host's interfaces costs ~0.5 ms: not on every registry change when no network
    // asks for a gateway listener (the common case, and 1 000 changes at a large start).
    const host = wanted.size > 0 || this.bound.size > 0 ? hostCidrs() : [];
    if (wanted.size > 0) this.reachable = clientFilter(localSubnets());
    for (const want of wanted.values()) {
      if (this.bound.has(want.key)) continue;
      await this.bind(want);
    }
    // Subnets and the host's own addresses as they are now, for every listener.
    const filters = new Map<string, ClientFilter>();
    for (const listener of this.bound.values()) {
      let filter = filters.get(listener.network);
      if (!filter) {
        const subnets = snapshot.networks.get(listener.network)?.network.subnets.map((s) => s.subnet) ?? [];
        filter = clientFilter([...host, ...subnets]);
        filters.set(listener.network, filter);
      }
      listener.filter = filter;
    }
    // Handed over for a network that is gone meanwhile: not ours to keep open.
    for (const handed of this.inherited.values()) {
      for (const udp of [handed.udp, ...(handed.more ?? [])]) udp.close();
      handed.tcp.close();
    }
    this.inherited.clear();
    await this.register(snapshot, wanted);
    this.scheduleRetry();
  }

  /** Every gateway address of every network nsdns provisioned (a bridge of its own). */
  private wanted(snapshot: Snapshot): Map<string, Wanted> {
    const out = new Map<string, Wanted>();
    for (const compiled of snapshot.networks.values()) {
      const { network } = compiled;
      // A registry file's network is not ours to listen for: its "gateway" could be any address.
      if (network.bridge === undefined || this.registry.sourceOf(network.name) !== STATE_SOURCE) continue;
      for (const subnet of network.subnets) {
        if (subnet.gateway === undefined || !ipaddr.isValid(subnet.gateway)) continue;
        const address = ipaddr.parse(subnet.gateway).toString();
        const key = `${network.name}|${address}`;
        out.set(key, { key, network: network.name, bridge: network.bridge, address });
      }
    }
    return out;
  }

  private async bind(want: Wanted): Promise<void> {
    let sockets: BoundSockets;
    const handed = this.inherited.get(want.key);
    try {
      this.inherited.delete(want.key);
      sockets = handed ? { ...handed, port: handed.udp.address().port } : await bindHostSockets(want.address, this.port, this.log);
    } catch (err) {
      const attempts = (this.failures.get(want.key) ?? 0) + 1;
      this.failures.set(want.key, attempts);
      // Said once, then quietly retried: an IPv6 address or a recreated bridge may take a moment.
      if (attempts === 1 || attempts % 20 === 0) this.log.warn({ network: want.network, address: want.address, attempts }, `cannot listen on the gateway of network "${want.network}" yet (will retry): ${errorMessage(err)}`);
      return;
    }
    this.failures.delete(want.key);
    const network = want.network;
    const context: ListenerContext = {
      name: `${want.address}:${sockets.port}`,
      inflight: 0,
      view: this.registry.derived((snapshot) => snapshot.view([network])),
      endpoints: () => undefined,
    };
    const listener = { key: want.key, network, address: want.address, port: sockets.port, filter: (() => false) as ClientFilter } as GatewayListener;
    const gate = refusingOthers(this.resolver, (address) => listener.filter(address), this.maxUdpSize);
    (listener as { server: DnsServer }).server = new DnsServer([sockets.udp, ...(sockets.more ?? [])], sockets.tcp, gate, context, this.budget, this.log.child({ listener: context.name, network }), (a) => this.reachable(a));
    this.bound.set(want.key, listener);
    this.log.info({ network, address: want.address, port: sockets.port }, 'gateway listener: answering the network\'s names for the host');
  }

  /** systemd-resolved: each bridge whose gateways are all served, registered once per change of them. */
  private async register(snapshot: Snapshot, wanted: ReadonlyMap<string, Wanted>): Promise<void> {
    if (!this.resolved) return;
    const links = new Map<string, { network: string; servers: string[] }>();
    for (const want of wanted.values()) {
      const link = links.get(want.bridge) ?? { network: want.network, servers: [] };
      link.servers.push(want.address);
      links.set(want.bridge, link);
    }
    for (const bridge of [...this.registered.keys()]) {
      if (links.has(bridge)) continue;
      this.registered.delete(bridge);
      await this.resolved.revert(bridge);
    }
    const pending = [...links].filter(([, link]) => link.servers.every((s) => this.bound.has(`${link.network}|${s}`)));
    if (pending.length === 0 || !(await this.resolved.running())) return;
    for (const [bridge, link] of pending) {
      const zones = snapshot.networks.get(link.network)?.zones ?? [];
      const signature = `${link.servers.join(',')} ${zones.join(',')}`;
      if (this.registered.get(bridge) === signature) continue;
      try {
        if (await this.resolved.register({ bridge, servers: link.servers, zones })) this.registered.set(bridge, signature);
      } catch (err) {
        // A zone resolvectl would not take (a network name that is no DNS name): the names stay at the gateway.
        this.log.warn({ network: link.network, bridge }, `network "${link.network}" not registered with systemd-resolved: ${errorMessage(err)}`);
        this.registered.set(bridge, signature);
      }
    }
  }

  private scheduleRetry(): void {
    clearTimeout(this.retry);
    this.retry = undefined;
    if (this.failures.size === 0 || this.closed) return;
    const attempts = Math.max(...this.failures.values());
    const delay = Math.min(MAX_RETRY_MS, 250 * 2 ** Math.min(attempts - 1, 10));
    this.retry = setTimeout(() => void this.reconcile(), delay).unref();
  }

  /**
   * Every listener's key and sockets, for a successor (see handover.ts); keys are `NETWORK|ADDRESS`.
   * Only a socket group's first socket (the daemon does not hand gateways over yet; when it does,
   * the group's other sockets must go too, as HostListeners.handOff does).
   */
  handOff(): Array<{ key: string; udp: BoundSockets['udp']; tcp: BoundSockets['tcp'] }> {
    return this.all.map((l) => ({ key: l.key, udp: l.server.udp, tcp: l.server.tcp }));
  }

  /** Sockets a predecessor bound, by key: the next reconcile serves them instead of binding. */
  adopt(inherited: ReadonlyMap<string, Omit<BoundSockets, 'port'>>): void {
    for (const [key, sockets] of inherited) this.inherited.set(key, sockets);
  }

  /**
   * The successor serves: answer what is in flight and let go; the registrations stay (they are the
   * successor's too). (Once DnsServer.release() is committed, use it here as HostListeners does.)
   */
  async releaseAll(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    await this.running;
    this.registered.clear();
    await Promise.all(this.all.map((l) => l.server.close()));
    this.bound.clear();
  }

  /**
   * Stops every gateway listener. `unregister` (the daemon stops): the systemd-resolved registrations
   * are dropped first, while the sockets are still held, so a successor that binds them afterwards
   * (a handover passes false and keeps them) never has its fresh registration reverted by us.
   */
  async closeAll(unregister = true): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    await this.running;
    if (unregister) for (const bridge of this.registered.keys()) await this.resolved?.revert(bridge);
    this.registered.clear();
    await Promise.all(this.all.map((l) => l.server.close()));
    this.bound.clear();
  }
}

/** Loopback and every address of the host's own interfaces, as single-address CIDRs. */
function hostCidrs(): string[] {
  const own = hostAddresses().filter((a) => ipaddr.isValid(a)).map((a) => `${a}/${a.includes(':') ? 128 : 32}`);
  return ['127.0.0.0/8', '::1/128', ...own];
}

/**
 * The resolver as a listener sees it, answering REFUSED to clients `allowed` turns away: one map
 * lookup per query (the filter memoizes), no allocation for allowed clients.
 */
export function refusingOthers(resolver: Resolver, allowed: ClientFilter, maxUdpSize: number): Resolver {
  const gate = Object.create(resolver) as Resolver;
  gate.handle = (raw: Buffer, client: Client, listener: ListenerContext) => {
    if (allowed(client.address)) return resolver.handle(raw, client, listener);
    const parsed = parseQuery(raw);
    if (parsed.kind === 'drop') return null;
    if (parsed.kind === 'reject') return headerOnlyReply(raw, parsed.rcode, parsed.edns, maxUdpSize);
    return errorReply(parsed, RCODE.REFUSED, false, maxUdpSize);
  };
  return gate;
}
