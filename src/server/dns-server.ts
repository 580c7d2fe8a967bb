// Serves one listener's sockets: a UDP socket (or a group of them on one address, host-sockets.ts)
// and a TCP server, already bound (on the host, or inside a namespace and handed over). Reads a
// message, asks the resolver, writes the reply: the only place a reply is written. Knows nothing of
// names or upstreams. TCP connections are shared fairly: per client address, per listener and over
// the daemon (TcpBudget); when a limit is reached the longest-idle connection makes room (RFC 7766
// §6.2.3), else the newcomer is refused.
// A UDP socket whose datagrams mostly go unanswered is read less (FloodGate): a namespace's own
// socket, or one socket of a host listener's group (each carries only the clients steered to it).
import type dgram from 'node:dgram';
import type net from 'node:net';
import { rateLimited, type Logger } from '../log.js';
import type { Client, ListenerContext, Resolver } from '../resolver/resolver.js';
import { ANSWER_ALL, type ClientPolicy } from './client-policy.js';
import type { ListenerStats } from './listener-stats.js';
import { refusal } from '../wire/reply.js';
import { FloodGate } from './flood-gate.js';
import type { TcpBudget } from './tcp-budget.js';
import { TcpConnection, type ConnectionOwner } from './tcp-connection.js';

/** A listener's sockets: UDP (one socket, or a group on one address) and TCP, already bound. */
export interface ListenerSockets {
  /** The first is the one a handover names; the rest of a group are served and closed with it. */
  readonly udps: readonly dgram.Socket[];
  readonly tcp: net.Server;
}

/** What every DnsServer of a daemon shares. */
export interface ServerShared {
  readonly resolver: Resolver;
  readonly budget: TcpBudget;
  readonly stats: ListenerStats;
  /** The EDNS size given in REFUSED replies (the resolver's own limit). */
  readonly maxUdpSize: number;
}

export class DnsServer implements ConnectionOwner {
  private closing = false;
  private pending = 0;
  private readonly connections = new Set<TcpConnection>();
  private readonly perClient = new Map<string, number>();
  private sweeper: NodeJS.Timeout | undefined;
  private drained: (() => void) | undefined;
  private readonly warnRefused = rateLimited(10_000);
  private readonly warnFlood = rateLimited(10_000);
  /** Every flood gate: one over a namespace's own socket, or one per socket of a host group. */
  private readonly gates: FloodGate[] = [];

  /** The UDP socket a handover names: the only one, or a reuseport group's first (host-sockets.ts). */
  readonly udp: dgram.Socket;
  /** Every UDP socket served: `udp`, then the rest of its group. Each reply leaves by the socket its query came in on. */
  readonly udps: readonly dgram.Socket[];

  readonly tcp: net.Server;
  private readonly resolver: Resolver;
  private readonly budget: TcpBudget;
  private readonly stats: ListenerStats;
  private readonly maxUdpSize: number;
  /** Bound once: the per-query path reads two fields, not the policy object. */
  private readonly reachable: ClientPolicy['reachable'];
  private readonly answered: ClientPolicy['answered'];

  constructor(
    sockets: ListenerSockets,
    shared: ServerShared,
    readonly context: ListenerContext,
    private readonly log: Logger,
    policy: ClientPolicy = ANSWER_ALL,
  ) {
    ({ resolver: this.resolver, budget: this.budget, stats: this.stats, maxUdpSize: this.maxUdpSize } = shared);
    this.reachable = policy.reachable;
    this.answered = policy.answered;
    this.udps = sockets.udps;
    this.udp = this.udps[0];
    this.tcp = sockets.tcp;
    const tcp = this.tcp;
    const gates = this.floodGates();
    this.udps.forEach((socket, i) => {
      // Each socket's gate (or none) is bound here, once: the per-datagram path looks nothing up.
      const gate = gates[i];
      socket.on('message', (msg, rinfo) => this.onDatagram(socket, gate, msg, rinfo));
      socket.on('error', (err) => this.log.error({ err }, 'udp socket error'));
    });
    // A client may send its questions and half-close ("that is all I ask"): it still gets every
    // answer, forwarded ones included, before TcpConnection ends the connection. Node's default
    // would end our side at once. Set here, for every listener's server (bound here, by a helper
    // or by a predecessor), as a server property read at each connection.
    Object.assign(tcp, { allowHalfOpen: true });
    tcp.on('connection', (socket) => this.onConnection(socket));
    tcp.on('error', (err) => this.log.error({ err }, 'tcp server error'));
  }

  /**
   * The gate of each UDP socket, by index (undefined: none). A namespace's own listener has one
   * gate over all its sockets: the namespace is one tenant. A host listener's group has one gate
   * per socket: the BPF program steers each source address to one socket, so a socket carries only
   * the clients whose address hashes to it (about 1 in 16), and they already share its kernel queue
   * with any flooder among them: the flood keeps that queue full, and one of their datagrams gets
   * in only where the daemon has just read one of the flood's. Paused, the socket is read little,
   * so for as long as the flood lasts those clients lose most of their UDP queries (they lose many
   * even when the daemon reads the flood whole, for the queue is the flood's either way); TCP still
   * answers them, and they are answered again within a pause (at most 250 ms) of the flood's end.
   * In exchange the daemon stops spending its one thread on the flood, and every other socket,
   * namespace and client is read on time (host-socket-fairness test; bench/ has the figures). A host
listener of a single socket keeps no gate: a pause would shut out every client at once.
   */
  private floodGates(): (FloodGate | undefined)[] {
    if (this.context.endpoints() !== undefined) {
      const gate = new FloodGate({
        stopReading: () => this.udps.every((socket) => stopReceiving(socket)),
        startReading: () => { for (const socket of this.udps) startReceiving(socket); },
        paused: (ms) => {
          this.stats.floodPauses++;
          this.warnFlood((suppressed) => this.log.warn({ pauseMs: ms, suppressed }, 'namespace floods its resolver with queries that go unanswered; not reading its UDP socket for a while'));
        },
      });
      this.gates.push(gate);
      return this.udps.map(() => gate);
    }
    if (this.udps.length < 2) return [];
    return this.udps.map((socket, index) => {
      const gate = new FloodGate({
        stopReading: () => stopReceiving(socket),
        startReading: () => startReceiving(socket),
        paused: (ms) => {
          this.stats.floodPauses++;
          // The listener is named by the logger (listeners/host-spec.ts), the socket by its index in the
          // group; never a client's address or data (one socket carries many clients, some forged).
          this.warnFlood((suppressed) => this.log.warn({ socket: index, sockets: this.udps.length, pauseMs: ms, suppressed }, 'clients steered to one socket of this listener flood it with queries that go unanswered; not reading that socket for a while (the others are read as usual)'));
        },
      });
      this.gates.push(gate);
      return gate;
    });
  }

  private onDatagram(udp: dgram.Socket, gate: FloodGate | undefined, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.closing) return;
    if (this.reachable && !this.reachable(rinfo.address)) {
      this.stats.notAllowed++;
      // Unanswered too: a flood from outside the allowed clients is as costly to read.
      gate?.waste();
      return;
    }
    const client: Client = { address: rinfo.address, transport: 'udp' };
    const reply = this.answer(msg, client);
    // Only what goes unanswered counts (and costs a clock read): an answered query, however busy
    // its client (a NAT of many hosts), never brings a pause closer.
    if (gate && (reply === null || (!(reply instanceof Promise) && isJunkReply(reply)))) gate.waste();
    if (reply === null) return;
    if (!(reply instanceof Promise)) {
      udp.send(reply, rinfo.port, rinfo.address);
      return;
    }
    this.started();
    // Settled only once the datagram has left: closing the socket earlier would drop it.
    reply.then(
      (buf) => (buf === null ? this.settled() : udp.send(buf, rinfo.port, rinfo.address, () => this.settled())),
      (err) => { this.log.error({ err }, 'resolver failed'); this.settled(); },
    );
  }

  answer(msg: Buffer, client: Client): Buffer | null | Promise<Buffer | null> {
    try {
      if (this.answered && !this.answered(client.address)) return refusal(msg, this.maxUdpSize);
      return this.resolver.handle(msg, client, this.context);
    } catch (err) {
      this.log.error({ err }, 'resolver threw; message dropped');
      return null;
    }
  }

  private onConnection(socket: net.Socket): void {
    const address = socket.remoteAddress ?? '';
    const notAllowed = this.reachable !== undefined && !this.reachable(address);
    if (notAllowed) this.stats.tcpRefused['not-allowed']++;
    if (this.closing || notAllowed || !this.makeRoom(address)) {
      socket.destroy();
      return;
    }
    const connection = new TcpConnection(socket, this, this.budget);
    this.connections.add(connection);
    this.perClient.set(address, (this.perClient.get(address) ?? 0) + 1);
    this.sweeper ??= setInterval(() => this.sweep(), this.sweepEveryMs()).unref();
  }

  /** True when a new connection from `address` fits, after closing idle ones if it must. */
  private makeRoom(address: string): boolean {
    const limits = this.budget.limits;
    while ((this.perClient.get(address) ?? 0) >= limits.maxConnectionsPerClient) {
      if (!this.evictIdle(address)) return this.refuse('per-client');
    }
    while (this.connections.size >= limits.maxConnections || this.budget.full) {
      if (!this.evictIdle() && !this.evictFromHog(address)) return this.refuse(this.budget.full ? 'daemon-wide' : 'per-listener');
    }
    return true;
  }

  /** Closes the longest-idle connection (of `address`, when given); false when none is idle. */
  private evictIdle(address?: string): boolean {
    let oldest: TcpConnection | undefined;
    for (const c of this.connections) {
      if (c.socket.destroyed || !c.idle || (address !== undefined && c.client.address !== address)) continue;
      if (!oldest || c.lastActive < oldest.lastActive) oldest = c;
    }
    if (!oldest) return false;
    this.forget(oldest);
    oldest.socket.destroy();
    return true;
  }

  /**
   * With every slot busy: the oldest connection of the client holding the most slots here makes
   * room, busy or not, when that client holds more than the newcomer's would with it. Many
   * addresses each within their own share can then never lock a newcomer out.
   */
  private evictFromHog(address: string): boolean {
    let hog: string | undefined;
    let most = (this.perClient.get(address) ?? 0) + 1;
    for (const [client, count] of this.perClient) if (count > most) { hog = client; most = count; }
    if (hog === undefined) return false;
    let oldest: TcpConnection | undefined;
    for (const c of this.connections) if (c.client.address === hog && !c.socket.destroyed && (!oldest || c.lastActive < oldest.lastActive)) oldest = c;
    if (!oldest) return false;
    this.forget(oldest);
    oldest.abort();
    return true;
  }

  private refuse(limit: 'per-client' | 'per-listener' | 'daemon-wide'): false {
    this.stats.tcpRefused[limit]++;
    this.warnRefused((suppressed) => this.log.warn({ limit, connections: this.connections.size, total: this.budget.connections, suppressed }, `tcp connection limit reached (${limit}); refusing new connections from busy clients`));
    return false;
  }

  /** Deadlines, checked a few times per timeout rather than with a timer per connection. */
  private sweep(): void {
    const { idleTimeoutMs, messageTimeoutMs } = this.budget.limits;
    const now = Date.now();
    for (const c of this.connections) {
      const stuck = (c.partialSince > 0 && now - c.partialSince > messageTimeoutMs) || (c.overSince > 0 && now - c.overSince > messageTimeoutMs);
      // Quiet: nothing open, nothing half-sent; unread replies left behind do not keep it open.
      if (stuck || (c.quiet && now - c.lastActive > idleTimeoutMs)) c.abort();
      // Paused for the daemon-wide memory cap: see whether it has room again.
      else c.process();
    }
  }

  private sweepEveryMs(): number {
    const { idleTimeoutMs, messageTimeoutMs } = this.budget.limits;
    return Math.max(20, Math.min(250, idleTimeoutMs / 4, messageTimeoutMs / 4));
  }

  started(): void {
    this.pending++;
  }

  settled(): void {
    this.pending--;
    if (this.pending === 0) this.drained?.();
  }

  closed(connection: TcpConnection): void {
    this.forget(connection);
  }

  private forget(connection: TcpConnection): void {
    if (!this.connections.delete(connection)) return;
    const address = connection.client.address;
    const left = (this.perClient.get(address) ?? 1) - 1;
    if (left > 0) this.perClient.set(address, left);
    else this.perClient.delete(address);
    if (this.connections.size === 0) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  /**
   * Handover: another process now reads the same sockets. Stop reading datagrams at once (what
   * arrives from now on waits in the shared kernel buffer for the successor), answer the queries
   * already read, close the TCP connections this process accepted once their answers are out, then
   * let go of our copies. Unlike close(), nothing new is read and dropped on the way.
   */
  async release(): Promise<void> {
    for (const gate of this.gates) gate.close();
    for (const udp of this.udps) {
      // No way to stop reading without closing: close now, the replies in flight are lost.
      if (!stopReceiving(udp)) udp.close();
    }
    await this.close();
  }

  /** Stops taking queries, lets the ones in flight be answered, then closes the sockets. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const gate of this.gates) gate.close();
    const tcpClosed = new Promise<void>((resolve) => this.tcp.close(() => resolve()));
    if (this.pending > 0) await new Promise<void>((resolve) => { this.drained = resolve; });
    const open = [...this.connections];
    for (const c of open) c.socket.end();
    await Promise.all(this.udps.map((udp) => new Promise<void>((resolve) => {
      try {
        udp.close(() => resolve());
      } catch {
        resolve(); // already closed by release()
      }
    })));
    setTimeout(() => { for (const c of open) c.socket.destroy(); }, 1000).unref();
    await tcpClosed;
  }
}

/**
 * FORMERR or NOTIMP: what junk brings back. Not REFUSED: an internal network's namespace is
 * refused every outside name, and a client over its upstream share is mostly dropped already.
 */
function isJunkReply(reply: Buffer): boolean {
  const rcode = reply.length > 3 ? reply[3] & 0x0f : 0;
  return rcode === 1 || rcode === 4;
}

/**
 * Stops libuv reading `udp` while the socket stays open for the replies still to be sent. Node
 * has no public call for it (close() does it internally), so this reaches the handle through
 * dgram's state symbol; false when that is not there (another Node version).
 */
export function stopReceiving(udp: dgram.Socket): boolean {
  const handle = udpHandle(udp);
  if (typeof handle?.recvStop !== 'function') return false;
  handle.recvStop();
  return true;
}

/** Reading again after stopReceiving (a socket handed over, once its server listens). */
export function startReceiving(udp: dgram.Socket): void {
  udpHandle(udp)?.recvStart?.();
}

function udpHandle(udp: dgram.Socket): { recvStop?: () => number; recvStart?: () => number } | undefined {
  const symbol = Object.getOwnPropertySymbols(udp).find((s) => s.description === 'state symbol');
  return symbol === undefined ? undefined : (udp as unknown as Record<symbol, { handle?: { recvStop?: () => number; recvStart?: () => number } } | undefined>)[symbol]?.handle;
}
