// Standalone listeners on the host (`--listen`), reconciled against the configured set on start
// and on every reload: extras are closed, missing ones are bound, unchanged ones keep running.
import type dgram from 'node:dgram';
import type net from 'node:net';
import { DnsServer, startReceiving } from '../server/dns-server.js';
import type { TcpBudget } from '../server/tcp-budget.js';
import { hostAddresses, type ClientFilter } from '../server/client-filter.js';
import { bindHostSockets, type BoundSockets } from '../server/host-sockets.js';
import type { ListenerContext, Resolver } from '../resolver/resolver.js';
import type { Registry } from '../registry/registry.js';
import { clientViews, Tenants } from '../registry/tenants.js';
import type { Logger } from '../log.js';
import type { ListenConfig } from './config.js';

export interface BoundListener {
  readonly key: string;
  readonly address: string;
  readonly port: number;
  readonly networks: readonly string[] | undefined;
  readonly server: DnsServer;
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

export class HostListeners {
  private readonly bound = new Map<string, BoundListener>();
  private allowed: ClientFilter = () => false;
  /** Handed over by a predecessor, by key; a group's other sockets under groupKey(key, i). */
  private readonly inherited = new Map<string, SocketPair>();
  /** Who is a tenant of which network, shared by every listener. */
  private readonly tenants: () => Tenants;

  constructor(
    private readonly registry: Registry,
    private readonly resolver: Resolver,
    private readonly budget: TcpBudget,
    private readonly log: Logger,
  ) {
    this.tenants = registry.derived((snapshot) => new Tenants(snapshot.networks, hostAddresses()));
  }

  get all(): BoundListener[] {
    return [...this.bound.values()];
  }

  /** "host:port" of every listener, for loop protection. */
  addresses(): Set<string> {
    return new Set(this.all.map((l) => (l.address.includes(':') ? `[${l.address}]:${l.port}` : `${l.address}:${l.port}`)));
  }

  /** `allowed`: the clients every host listener answers (see client-filter.ts). */
  async reconcile(wanted: readonly ListenConfig[], allowed: ClientFilter): Promise<void> {
    this.allowed = allowed;
    const keys = new Set(wanted.map(keyOf));
    for (const [key, listener] of this.bound) {
      if (keys.has(key)) continue;
      this.bound.delete(key);
      await listener.server.close();
      this.log.info({ address: listener.address, port: listener.port }, 'listener closed');
    }
    for (const spec of wanted) {
      const key = keyOf(spec);
      if (this.bound.has(key)) continue;
      const sockets = this.takeInherited(key) ?? await bindHostSockets(spec.address, spec.port, this.log);
      const networks = spec.networks;
      const context = hostContext(`${spec.address}:${sockets.port}`, this.registry, this.tenants, networks);
      // Through a closure, so a reload's new client filter applies to listeners already bound.
      const server = new DnsServer([sockets.udp, ...(sockets.more ?? [])], sockets.tcp, this.resolver, context, this.budget, this.log.child({ listener: context.name }), (a) => this.allowed(a));
      // A socket handed over is paused on arrival (handover.ts): what waited in the buffer is read now.
      if ('inherited' in sockets) for (const udp of server.udps) startReceiving(udp);
      this.bound.set(key, { key, address: spec.address, port: sockets.port, networks, server });
      this.log.info({ address: spec.address, port: sockets.port, networks: networks ?? 'all', udpSockets: server.udps.length, ...('inherited' in sockets && { takenOver: true }) }, 'listening');
    }
    // Handed over but no longer configured: not ours to keep open.
    for (const [key, sockets] of this.inherited) {
      sockets.udp.close();
      if (!GROUP_KEY.test(key)) sockets.tcp.close();
    }
    this.inherited.clear();
  }

  private takeInherited(key: string): (BoundSockets & { inherited: true }) | undefined {
    const sockets = this.inherited.get(key);
    if (!sockets) return undefined;
    this.inherited.delete(key);
    const more: dgram.Socket[] = [];
    for (let i = 1; this.inherited.has(groupKey(key, i)); i++) {
      more.push(this.inherited.get(groupKey(key, i))!.udp);
      this.inherited.delete(groupKey(key, i));
    }
    return { udp: sockets.udp, more, tcp: sockets.tcp, port: sockets.udp.address().port, inherited: true };
  }

  /**
   * Every listener's key and sockets, for a successor (see handover.ts). A socket group goes over
   * whole, so no client's datagrams wait in a socket nobody reads: its other sockets as entries of
   * their own (groupKey), each paired with the listener's TCP server again (the pairs are what the
   * handover carries); adopt() puts the group back together.
   */
  handOff(): Array<{ key: string } & SocketPair> {
    return this.all.flatMap((l) => l.server.udps.map((udp, i) => ({ key: i === 0 ? l.key : groupKey(l.key, i), udp, tcp: l.server.tcp })));
  }

  /**
   * Sockets a predecessor bound, by listener key: reconcile() serves a wanted listener on them
   * instead of binding. Ones the configuration no longer wants are closed by reconcile().
   */
  adopt(inherited: ReadonlyMap<string, SocketPair>): void {
    for (const [key, sockets] of inherited) {
      // A group's other sockets came with copies of the listener's TCP server: one is enough.
      if (GROUP_KEY.test(key)) sockets.tcp.close();
      this.inherited.set(key, sockets);
    }
  }

  /** The successor serves: stop reading, answer what was read, let go. */
  async releaseAll(): Promise<void> {
    await Promise.all(this.all.map((l) => l.server.release()));
    this.bound.clear();
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.all.map((l) => l.server.close()));
    this.bound.clear();
  }
}

interface SocketPair {
  udp: dgram.Socket;
  tcp: net.Server;
}

/** The handover key of the `index`th socket of a listener's group (never a listener's own key: those start with an address). */
function groupKey(key: string, index: number): string {
  return `udp${index}#${key}`;
}
const GROUP_KEY = /^udp\d+#/;

function keyOf(spec: ListenConfig): string {
  return `${spec.address}|${spec.port}|${spec.networks?.join(',') ?? '*'}`;
}
