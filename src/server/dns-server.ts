// Serves one listener's sockets: a UDP socket and a TCP server, already bound (on the host, or
// inside a namespace and handed over). Reads a message, asks the resolver, writes the reply: the
// only place a reply is written. Knows nothing of names or upstreams.
import type dgram from 'node:dgram';
import type net from 'node:net';
import { FrameReader, frame } from '../wire/tcp-framing.js';
import type { Logger } from '../log.js';
import type { Client, ListenerContext, Resolver } from '../resolver/resolver.js';

export interface TcpOptions {
  /** An idle connection is closed after this long, ms (RFC 7766 §6.2.3). */
  idleTimeoutMs: number;
  /** Connections beyond this are refused by the kernel's accept path. */
  maxConnections: number;
}

export class DnsServer {
  private closing = false;
  private pending = 0;
  private readonly connections = new Set<net.Socket>();
  private drained: (() => void) | undefined;

  constructor(
    readonly udp: dgram.Socket,
    readonly tcp: net.Server,
    private readonly resolver: Resolver,
    readonly context: ListenerContext,
    private readonly tcpOptions: TcpOptions,
    private readonly log: Logger,
  ) {
    udp.on('message', (msg, rinfo) => this.onDatagram(msg, rinfo));
    udp.on('error', (err) => this.log.error({ err }, 'udp socket error'));
    tcp.maxConnections = tcpOptions.maxConnections;
    tcp.on('connection', (socket) => this.onConnection(socket));
    tcp.on('error', (err) => this.log.error({ err }, 'tcp server error'));
  }

  private onDatagram(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.closing) return;
    const client: Client = { address: rinfo.address, transport: 'udp' };
    const reply = this.answer(msg, client);
    if (reply === null) return;
    if (!(reply instanceof Promise)) {
      this.udp.send(reply, rinfo.port, rinfo.address);
      return;
    }
    this.pending++;
    // Settled only once the datagram has left: closing the socket earlier would drop it.
    reply.then(
      (buf) => this.udp.send(buf, rinfo.port, rinfo.address, () => this.settle()),
      (err) => { this.log.error({ err }, 'resolver failed'); this.settle(); },
    );
  }

  private answer(msg: Buffer, client: Client): Buffer | null | Promise<Buffer> {
    try {
      return this.resolver.handle(msg, client, this.context);
    } catch (err) {
      this.log.error({ err }, 'resolver threw; message dropped');
      return null;
    }
  }

  private onConnection(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    this.connections.add(socket);
    const reader = new FrameReader();
    const client: Client = { address: socket.remoteAddress ?? '', transport: 'tcp' };
    let open = 0;
    let ended = false;
    const finishIfDone = () => {
      if (ended && open === 0) socket.end();
    };
    socket.setTimeout(this.tcpOptions.idleTimeoutMs, () => socket.destroy());
    socket.on('data', (chunk) => {
      // Pipelined queries are answered as each is ready (RFC 7766 §6.2.1.1 allows any order).
      for (const msg of reader.push(chunk)) {
        const reply = this.answer(msg, client);
        if (reply === null) continue;
        if (!(reply instanceof Promise)) {
          socket.write(frame(reply));
          continue;
        }
        open++;
        this.pending++;
        reply.then((buf) => { if (!socket.destroyed) socket.write(frame(buf)); }, (err) => this.log.error({ err }, 'resolver failed'))
          .finally(() => { open--; this.settle(); finishIfDone(); });
      }
    });
    socket.on('end', () => {
      // A client that stops half way through a frame gets no more of our time.
      if (reader.buffered > 0) socket.destroy();
      ended = true;
      finishIfDone();
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.connections.delete(socket));
  }

  private settle(): void {
    this.pending--;
    if (this.pending === 0) this.drained?.();
  }

  /** Stops taking queries, lets the ones in flight be answered, then closes the sockets. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const tcpClosed = new Promise<void>((resolve) => this.tcp.close(() => resolve()));
    if (this.pending > 0) await new Promise<void>((resolve) => { this.drained = resolve; });
    for (const socket of this.connections) socket.end();
    await new Promise<void>((resolve) => this.udp.close(() => resolve()));
    setTimeout(() => { for (const socket of this.connections) socket.destroy(); }, 1000).unref();
    await tcpClosed;
  }
}
