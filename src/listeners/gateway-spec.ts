// `--host-dns`: what is wanted on gateways. Every network nsdns provisioned (it has a bridge
// carrying the gateway address) gets a listener on each gateway address (UDP and TCP, port 53)
// that answers that network's names, for the host itself and for clients that use the gateway as
// their server (the way aardvark-dns is reached). With systemd-resolved running, each bridge is
// registered with it (resolved-links.ts).
//
// Who is answered: the host (loopback and its own addresses) and the network's own subnets. The host
// reaches every bridge without forwarding, so a namespace on network A could otherwise read network
// B's names at B's gateway: other clients on the host's own subnets (other networks, the LAN) get
// REFUSED, so a misdirected client stops retrying at once; anyone further away gets no reply at
// all, as at host listeners (client-filter.ts), so a gateway never reflects spoofed traffic.
import { formatHostPort } from '../host-port.js';
import ipaddr from 'ipaddr.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { Registry, Snapshot } from '../registry/registry.js';
import type { ListenerContext } from '../resolver/resolver.js';
import { clientFilter, hostAddresses, localSubnets, type ClientFilter } from '../server/client-filter.js';
import { DnsServer, type ListenerSockets, type ServerShared } from '../server/dns-server.js';
import { bindHostSockets, portOf } from './host-sockets.js';
import type { CloseReason, Listener, ListenerSpec } from './listener-set.js';
import type { ResolvedLinks } from './resolved-links.js';

export interface GatewayWant {
  /** `NETWORK|ADDRESS` */
  readonly key: string;
  readonly network: string;
  readonly bridge: string;
  readonly address: string;
}

export interface GatewayOptions {
  /** Whether gateway listeners are wanted at all (config hostDns); may change on reload. */
  enabled?: boolean;
  /** The port to listen on; 53 by default (0 in tests: the kernel picks). */
  port?: number;
  /** systemd-resolved registration; none: no registration is attempted. */
  resolved?: ResolvedLinks;
}

export class GatewaySpec implements ListenerSpec<GatewayWant> {
  readonly kind = 'gateway';
  readonly parallel = 1;
  /** An IPv6 address or a recreated bridge may take a moment. */
  readonly retryFailed = true;
  enabled: boolean;
  private readonly port: number;
  private readonly resolved: ResolvedLinks | undefined;
  /** Bridge → what it is registered with in systemd-resolved (servers and zones). */
  private readonly registered = new Map<string, string>();
  /** Who each network's listeners answer, by network; replaced at every pass (subnets and the host's addresses change). */
  private answered = new Map<string, ClientFilter>();
  /** Who gets any reply at all: loopback and the host's connected subnets, as they were at the last pass. */
  private reachable: ClientFilter = clientFilter(localSubnets());

  constructor(private readonly registry: Registry, private readonly shared: ServerShared, private readonly log: Logger, options: GatewayOptions = {}) {
    this.enabled = options.enabled ?? true;
    this.port = options.port ?? 53;
    this.resolved = options.resolved;
  }

  /** Every gateway address of every network nsdns provisioned (a bridge of its own). */
  wanted(): ReadonlyMap<string, GatewayWant> {
    const out = new Map<string, GatewayWant>();
    if (!this.enabled) return out;
    for (const { network } of this.registry.current().networks.values()) {
      // A registry file's network is not ours to listen for: its "gateway" could be any address.
      if (network.bridge === undefined || !this.registry.isProvisioned(network.name)) continue;
      for (const subnet of network.subnets) {
        if (subnet.gateway === undefined || !ipaddr.isValid(subnet.gateway)) continue;
        const address = ipaddr.parse(subnet.gateway).toString();
        const key = `${network.name}|${address}`;
        out.set(key, { key, network: network.name, bridge: network.bridge, address });
      }
    }
    return out;
  }

  bind(want: GatewayWant): Promise<ListenerSockets> {
    return bindHostSockets(want.address, this.port, this.log);
  }

  serve(want: GatewayWant, sockets: ListenerSockets): DnsServer {
    const network = want.network;
    // Who it answers from its first query on (sockets handed over hold queries already), not only
    // from the pass's settle: until then its own clients would be REFUSED.
    if (!this.answered.has(network)) this.answered.set(network, this.networkClients(this.registry.current(), network, hostCidrs()));
    const context: ListenerContext = {
      name: formatHostPort(want.address, portOf(sockets)),
      inflight: 0,
      view: this.registry.derived((snapshot) => snapshot.view([network])),
      endpoints: () => undefined,
    };
    const server = new DnsServer(sockets, this.shared, context, this.log.child({ listener: context.name, network }), {
      reachable: (a) => this.reachable(a),
      answered: (a) => (this.answered.get(network) ?? NOBODY)(a),
    });
    return server;
  }

  /** Filters as the subnets and the host's addresses are now; then systemd-resolved. */
  async settle(running: ReadonlyMap<string, Listener<GatewayWant>>, wanted: ReadonlyMap<string, GatewayWant>): Promise<void> {
    const snapshot = this.registry.current();
    // Reading the host's interfaces costs a system call per interface: not at every registry change
    // when no network asks for a gateway listener (the common case, and every file of a large start).
    if (wanted.size > 0 || running.size > 0) {
      this.reachable = clientFilter(localSubnets());
      const host = hostCidrs();
      const answered = new Map<string, ClientFilter>();
      for (const { want } of running.values()) {
        if (!answered.has(want.network)) answered.set(want.network, this.networkClients(snapshot, want.network, host));
      }
      this.answered = answered;
    }
    await this.register(snapshot, running, wanted);
  }

  /** The host and the network's own subnets. */
  private networkClients(snapshot: Snapshot, network: string, host: readonly string[]): ClientFilter {
    const subnets = snapshot.networks.get(network)?.network.subnets.map((s) => s.subnet) ?? [];
    return clientFilter([...host, ...subnets]);
  }

  /** systemd-resolved: each bridge whose gateways are all served, registered once per change of them. */
  private async register(snapshot: Snapshot, running: ReadonlyMap<string, Listener<GatewayWant>>, wanted: ReadonlyMap<string, GatewayWant>): Promise<void> {
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
    const pending = [...links].filter(([, link]) => link.servers.every((s) => running.has(`${link.network}|${s}`)));
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

  /**
   * The daemon stops: the systemd-resolved registrations are dropped while the sockets are still
   * held, so a successor that binds them afterwards never has its fresh registration reverted by us.
   * (A handover does not come here: the registrations are the successor's too.)
   */
  async stopping(): Promise<void> {
    for (const bridge of this.registered.keys()) await this.resolved?.revert(bridge);
    this.registered.clear();
  }

  opened(listener: Listener<GatewayWant>, takenOver: boolean): void {
    this.log.info({ network: listener.want.network, address: listener.want.address, port: listener.port, ...(takenOver && { takenOver: true }) }, 'gateway listener: answering the network\'s names for the host');
  }

  closed(listener: Listener<GatewayWant>, _why: CloseReason): void {
    this.log.info({ network: listener.want.network, address: listener.want.address, port: listener.port }, 'gateway listener closed');
  }

  failed(want: GatewayWant, err: unknown, attempts: number): void {
    // Said once, then quietly retried (and said again now and then).
    if (attempts === 1 || attempts % 20 === 0) this.log.warn({ network: want.network, address: want.address, attempts }, `cannot listen on the gateway of network "${want.network}" yet (will retry): ${errorMessage(err)}`);
  }
}

const NOBODY: ClientFilter = () => false;

/** Loopback and every address of the host's own interfaces, as single-address CIDRs. */
function hostCidrs(): string[] {
  const own = hostAddresses().filter((a) => ipaddr.isValid(a)).map((a) => `${a}/${a.includes(':') ? 128 : 32}`);
  return ['127.0.0.0/8', '::1/128', ...own];
}
