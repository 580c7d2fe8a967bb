// A real DNS server on loopback (UDP and TCP, port 0) that plays an upstream: it answers from a
// small zone, or misbehaves on request. Every query it gets is recorded, so tests can tell what
// nsdns forwarded and what it kept to itself.
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import { FrameReader, frame } from '../../src/wire/tcp-framing.js';

export type Behaviour = 'answer' | 'servfail' | 'refused' | 'wrong-id' | 'silent' | 'truncate-udp';

export interface Received {
  name: string;
  type: string;
  transport: 'udp' | 'tcp';
  id: number;
  dnssecOk: boolean;
}

export interface FakeUpstreamOptions {
  behaviour?: Behaviour;
  /** name (lower case) → A addresses; anything else is NXDOMAIN with an SOA. */
  zone?: Record<string, string[]>;
  ttl?: number;
  negativeTtl?: number;
  delayMs?: number;
  address?: string;
  /** 0 (default): any free port. */
  port?: number;
}

export class FakeUpstream {
  readonly received: Received[] = [];
  behaviour: Behaviour;
  delayMs: number;
  port = 0;
  private readonly udp: dgram.Socket;
  private readonly tcp: net.Server;
  private readonly sockets = new Set<net.Socket>();

  constructor(private readonly options: FakeUpstreamOptions = {}) {
    this.behaviour = options.behaviour ?? 'answer';
    this.delayMs = options.delayMs ?? 0;
    this.udp = dgram.createSocket(net.isIPv6(this.address) ? 'udp6' : 'udp4');
    this.tcp = net.createServer((socket) => this.serveTcp(socket));
  }

  get address(): string {
    return this.options.address ?? '127.0.0.1';
  }

  /** "host:port" for --upstream. */
  get spec(): string {
    return `${this.address}:${this.port}`;
  }

  static async start(options: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
    const upstream = new FakeUpstream(options);
    await new Promise<void>((resolve, reject) => {
      upstream.udp.once('error', reject);
      upstream.udp.bind(options.port ?? 0, upstream.address, () => resolve());
    });
    upstream.port = upstream.udp.address().port;
    await new Promise<void>((resolve, reject) => {
      upstream.tcp.once('error', reject);
      upstream.tcp.listen(upstream.port, upstream.address, () => resolve());
    });
    upstream.udp.on('message', (msg, rinfo) => {
      void upstream.respond(msg, 'udp').then((reply) => {
        if (reply) upstream.udp.send(reply, rinfo.port, rinfo.address);
      });
    });
    return upstream;
  }

  countFor(name: string): number {
    return this.received.filter((r) => r.name === name.toLowerCase()).length;
  }

  private serveTcp(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => {});
    const reader = new FrameReader();
    socket.on('data', (chunk) => {
      for (const msg of reader.push(chunk)) {
        void this.respond(Buffer.from(msg), 'tcp').then((reply) => { if (reply && !socket.destroyed) socket.write(frame(reply)); });
      }
    });
  }

  private async respond(msg: Buffer, transport: 'udp' | 'tcp'): Promise<Buffer | undefined> {
    const query = dnsPacket.decode(msg);
    const q = query.questions![0];
    const opt = query.additionals?.find((a) => a.type === 'OPT') as { flags?: number } | undefined;
    this.received.push({ name: q.name.toLowerCase(), type: q.type, transport, id: query.id!, dnssecOk: ((opt?.flags ?? 0) & 0x8000) !== 0 });
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    const base = { type: 'response' as const, id: query.id, questions: query.questions, flags: dnsPacket.RECURSION_AVAILABLE | (query.flags! & dnsPacket.RECURSION_DESIRED) };
    switch (this.behaviour) {
      case 'silent':
        return undefined;
      case 'servfail':
        return dnsPacket.encode({ ...base, flags: base.flags | 2 });
      case 'refused':
        return dnsPacket.encode({ ...base, flags: base.flags | 5 });
      case 'wrong-id':
        return dnsPacket.encode({ ...base, id: (query.id! + 1) & 0xffff, answers: [{ type: 'A', name: q.name, ttl: 60, data: '198.51.100.66' }] });
      case 'truncate-udp':
        if (transport === 'udp') return dnsPacket.encode({ ...base, flags: base.flags | dnsPacket.TRUNCATED_RESPONSE });
        break;
      case 'answer':
        break;
    }
    const addresses = this.options.zone?.[q.name.toLowerCase()];
    const ttl = this.options.ttl ?? 60;
    if (addresses && (q.type === 'A' || (q.type as string) === 'ANY')) {
      return dnsPacket.encode({ ...base, answers: addresses.map((data) => ({ type: 'A' as const, name: q.name, ttl, data })) });
    }
    const soa = { type: 'SOA' as const, name: 'test', ttl: 3600, data: { mname: 'ns.test', rname: 'admin.test', serial: 1, refresh: 60, retry: 60, expire: 60, minimum: this.options.negativeTtl ?? 30 } };
    // dns-packet takes the RCODE from the low bits of `flags` only.
    return dnsPacket.encode({ ...base, flags: base.flags | (addresses ? 0 : 3), authorities: [soa] });
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.tcp.close(() => resolve()));
    await new Promise<void>((resolve) => this.udp.close(() => resolve()));
  }
}
