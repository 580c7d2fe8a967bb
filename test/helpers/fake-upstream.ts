// A real DNS server on loopback (UDP and TCP, port 0) that plays an upstream: it answers from a
// small zone, or misbehaves on request. Every query it gets is recorded, so tests can tell what
// nsdns forwarded and what it kept to itself.
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import { FrameReader, frame } from '../../src/wire/tcp-framing.js';

export type Behaviour =
  | 'answer' | 'servfail' | 'refused' | 'wrong-id' | 'silent' | 'truncate-udp'
  /** Over UDP, first a reply with another id, one for another question and a malformed one, then the answer. */
  | 'junk-first'
  /** Answers with the question lower-cased (as a server that does not keep 0x20 case). */
  | 'lower-case'
  /** Adds an unrelated A record (evil.test) to the answer and additional sections. */
  | 'add-junk';

export interface Received {
  name: string;
  /** The question name in the case it arrived in. */
  qname: string;
  type: string;
  transport: 'udp' | 'tcp';
  id: number;
  dnssecOk: boolean;
  /** The OPT record's UDP size, undefined without one. */
  ednsSize: number | undefined;
  recursionDesired: boolean;
  raw: Buffer;
}

/** Stands for the question name in records: replaced by a pointer to the question as it came. */
const QNAME = 'qname-placeholder.invalid';
const QNAME_WIRE = Buffer.from('\x11qname-placeholder\x07invalid\x00', 'latin1');

export interface FakeUpstreamOptions {
  behaviour?: Behaviour;
  /** name (lower case) → A addresses; anything else is NXDOMAIN with an SOA. */
  zone?: Record<string, string[]>;
  /** name (lower case) → AAAA addresses, answered to AAAA questions (a name in either zone exists). */
  zone6?: Record<string, string[]>;
  /** name (lower case) → CNAME target, followed before `zone` is looked up. */
  cnames?: Record<string, string>;
  ttl?: number;
  /** name asked (lower case) → the TTL of its answer's records, instead of `ttl`. */
  ttls?: Record<string, number>;
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
  /** While set, answers wait for it (a test lets them go when it has done what must come first). */
  hold: Promise<void> | undefined;
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
    // The kernel's free UDP port may be taken for TCP: with port 0, try again on another one.
    for (let attempt = 0; ; attempt++) {
      try {
        return await FakeUpstream.bind(options);
      } catch (err) {
        if (options.port || attempt >= 10 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
      }
    }
  }

  private static async bind(options: FakeUpstreamOptions): Promise<FakeUpstream> {
    const upstream = new FakeUpstream(options);
    try {
      await new Promise<void>((resolve, reject) => {
        upstream.udp.once('error', reject);
        upstream.udp.bind(options.port ?? 0, upstream.address, () => resolve());
      });
      upstream.port = upstream.udp.address().port;
      await new Promise<void>((resolve, reject) => {
        upstream.tcp.once('error', reject);
        upstream.tcp.listen(upstream.port, upstream.address, () => resolve());
      });
    } catch (err) {
      // Nothing of a failed attempt stays open (an open socket would keep the test run alive).
      try { upstream.udp.close(); } catch { /* not bound */ }
      upstream.tcp.close();
      throw err;
    }
    upstream.udp.on('message', (msg, rinfo) => {
      void upstream.respond(msg, 'udp').then(async (reply) => {
        if (upstream.behaviour === 'junk-first') {
          for (const junk of junkFor(msg)) upstream.udp.send(junk, rinfo.port, rinfo.address);
          await new Promise((r) => setTimeout(r, 30));
        }
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
    const opt = query.additionals?.find((a) => a.type === 'OPT') as { flags?: number; udpPayloadSize?: number } | undefined;
    this.received.push({
      name: q.name.toLowerCase(), qname: q.name, type: q.type, transport, id: query.id!, dnssecOk: ((opt?.flags ?? 0) & 0x8000) !== 0,
      ednsSize: opt?.udpPayloadSize, recursionDesired: (query.flags! & dnsPacket.RECURSION_DESIRED) !== 0, raw: Buffer.from(msg),
    });
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.hold !== undefined) await this.hold;
    const additionals: dnsPacket.Answer[] = opt ? [{ type: 'OPT', name: '.', udpPayloadSize: 4096 } as dnsPacket.Answer] : [];
    const base = { type: 'response' as const, id: query.id, questions: [{ ...q, name: QNAME }], flags: dnsPacket.RECURSION_AVAILABLE | (query.flags! & dnsPacket.RECURSION_DESIRED), additionals };
    const encode = (packet: dnsPacket.Packet) => echoQuestion(dnsPacket.encode(packet), msg, this.behaviour === 'lower-case');
    switch (this.behaviour) {
      case 'silent':
        return undefined;
      case 'servfail':
        return encode({ ...base, flags: base.flags | 2 });
      case 'refused':
        return encode({ ...base, flags: base.flags | 5 });
      case 'wrong-id':
        return encode({ ...base, id: (query.id! + 1) & 0xffff, answers: [{ type: 'A', name: QNAME, ttl: 60, data: '198.51.100.66' }] });
      case 'truncate-udp':
        if (transport === 'udp') return encode({ ...base, flags: base.flags | dnsPacket.TRUNCATED_RESPONSE });
        break;
      default:
        break;
    }
    const ttl = this.options.ttls?.[q.name.toLowerCase()] ?? this.options.ttl ?? 60;
    const answers: dnsPacket.Answer[] = [];
    let name = q.name.toLowerCase();
    let owner = QNAME;
    for (let hops = 0; this.options.cnames?.[name] && hops < 8; hops++) {
      answers.push({ type: 'CNAME', name: owner, ttl, data: this.options.cnames[name] });
      owner = name = this.options.cnames[name];
    }
    const addresses = this.options.zone?.[name];
    if (addresses && (q.type === 'A' || (q.type as string) === 'ANY')) answers.push(...addresses.map((data) => ({ type: 'A' as const, name: owner, ttl, data })));
    const addresses6 = this.options.zone6?.[name];
    if (addresses6 && q.type === 'AAAA') answers.push(...addresses6.map((data) => ({ type: 'AAAA' as const, name: owner, ttl, data })));
    if (this.behaviour === 'add-junk') {
      const junk = { type: 'A' as const, name: 'evil.test', ttl, data: '198.51.100.99' };
      answers.push(junk);
      additionals.unshift(junk);
    }
    const soa = { type: 'SOA' as const, name: 'test', ttl: 3600, data: { mname: 'ns.test', rname: 'admin.test', serial: 1, refresh: 60, retry: 60, expire: 60, minimum: this.options.negativeTtl ?? 30 } };
    // dns-packet takes the RCODE from the low bits of `flags` only.
    const known = addresses ?? addresses6;
    return encode({ ...base, flags: base.flags | (known ? 0 : 3), answers, authorities: known ? [] : [soa] });
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.tcp.close(() => resolve()));
    await new Promise<void>((resolve) => this.udp.close(() => resolve()));
  }
}

/** Where the question of a query without compression ends. */
function questionEnd(msg: Buffer): number {
  let off = 12;
  while (msg[off] !== 0) off += msg[off] + 1;
  return off + 5;
}

/**
 * The encoded reply with the query's question bytes put back as they came (dns-packet would
 * re-encode a '.' inside a label as two labels) and the placeholder owner names pointing at it.
 */
function echoQuestion(encoded: Buffer, query: Buffer, lowerCase: boolean): Buffer {
  const question = Buffer.from(query.subarray(12, questionEnd(query)));
  if (lowerCase) for (let i = 0; i < question.length - 4; i++) if (question[i] >= 0x41 && question[i] <= 0x5a) question[i] |= 0x20;
  const rest = encoded.subarray(12 + QNAME_WIRE.length + 4);
  const parts: Buffer[] = [encoded.subarray(0, 12), question];
  let from = 0;
  for (let at = rest.indexOf(QNAME_WIRE); at >= 0; at = rest.indexOf(QNAME_WIRE, from)) {
    parts.push(rest.subarray(from, at), Buffer.from([0xc0, 0x0c]));
    from = at + QNAME_WIRE.length;
  }
  parts.push(rest.subarray(from));
  return Buffer.concat(parts);
}

/** Replies a spoofer or a confused server might send first: none of them answers the query. */
function junkFor(msg: Buffer): Buffer[] {
  const id = msg.readUInt16BE(0);
  const q = dnsPacket.decode(msg).questions![0];
  const lie = (over: Partial<dnsPacket.Packet>) => echoQuestion(dnsPacket.encode({
    type: 'response', id, flags: 0x8180, questions: [{ ...q, name: QNAME }], answers: [{ type: 'A', name: QNAME, ttl: 60, data: '198.51.100.66' }], ...over,
  }), msg, false);
  const otherQuestion = dnsPacket.encode({ type: 'response', id, flags: 0x8180, questions: [{ ...q, name: 'junk.test' }], answers: [{ type: 'A', name: 'junk.test', ttl: 60, data: '198.51.100.67' }] });
  const malformed = lie({}).subarray(0, -3);
  return [lie({ id: (id + 1) & 0xffff }), otherQuestion, malformed];
}
