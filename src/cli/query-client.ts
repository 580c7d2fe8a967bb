// A small DNS client for `nsdns query` and for scripts: one question, UDP or TCP, decoded reply.
import DgramAsPromised from 'dgram-as-promised';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import { FrameReader, frame } from '../wire/tcp-framing.js';
import { NsdnsError } from '../errors.js';
import { formatHostPort } from '../host-port.js';

export interface QueryRequest {
  name: string;
  type: string;
  host: string;
  port: number;
  tcp: boolean;
  timeoutMs: number;
}

export interface QueryResult {
  packet: dnsPacket.Packet;
  raw: Buffer;
  elapsedMs: number;
}

export async function sendQuery(req: QueryRequest): Promise<QueryResult> {
  const id = Math.floor(Math.random() * 65536);
  const message = dnsPacket.encode({
    type: 'query', id, flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name: req.name, type: req.type.toUpperCase() as dnsPacket.RecordType, class: 'IN' }],
  });
  const started = process.hrtime.bigint();
  const raw = req.tcp ? await overTcp(message, req) : await overUdp(message, req, id);
  return { packet: dnsPacket.decode(raw), raw, elapsedMs: Number(process.hrtime.bigint() - started) / 1e6 };
}

function noAnswer(req: QueryRequest): NsdnsError {
  return new NsdnsError('ERR_UPSTREAM_UNREACHABLE', `no answer from ${formatHostPort(req.host, req.port)} over ${req.tcp ? 'tcp' : 'udp'} within ${req.timeoutMs} ms`);
}

/** One datagram out, the first reply with our id back: what dgram-as-promised is made for. */
async function overUdp(message: Buffer, req: QueryRequest, id: number): Promise<Buffer> {
  const socket = DgramAsPromised.createSocket(net.isIPv6(req.host) ? 'udp6' : 'udp4');
  const timer = setTimeout(() => void socket.close().catch(() => {}), req.timeoutMs);
  try {
    await socket.send(message, req.port, req.host);
    for (let packet = await socket.recv(); packet !== undefined; packet = await socket.recv()) {
      if (packet.msg.length >= 2 && packet.msg.readUInt16BE(0) === id) return packet.msg;
    }
    throw noAnswer(req);
  } finally {
    clearTimeout(timer);
    await socket.close().catch(() => {});
  }
}

function overTcp(message: Buffer, req: QueryRequest): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: req.host, port: req.port });
    const reader = new FrameReader();
    const done = (err?: Error, reply?: Buffer) => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(reply!);
    };
    const timer = setTimeout(() => done(noAnswer(req)), req.timeoutMs);
    socket.on('connect', () => socket.write(frame(message)));
    socket.on('data', (chunk) => { const [reply] = reader.push(chunk); if (reply) done(undefined, Buffer.from(reply)); });
    socket.on('error', (err) => done(err));
    socket.on('end', () => done(noAnswer(req)));
  });
}

/** dig-like text for people. */
export function formatResult(result: QueryResult, req: QueryRequest): string {
  const p = result.packet as dnsPacket.Packet & { rcode?: string };
  const flags = ['qr', 'aa', 'tc', 'rd', 'ra'].filter((f) => {
    const bit = { qr: 0x8000, aa: 0x400, tc: 0x200, rd: 0x100, ra: 0x80 }[f]!;
    return ((p.flags ?? 0) & bit) !== 0;
  });
  const lines = [`;; ${p.rcode ?? 'NOERROR'}, id ${p.id}, flags: ${flags.join(' ')}`];
  const section = (title: string, records: readonly dnsPacket.Answer[] | undefined) => {
    const list = (records ?? []).filter((r) => r.type !== 'OPT');
    if (list.length === 0) return;
    lines.push(`;; ${title}`);
    for (const r of list) lines.push(`${r.name}.\t${'ttl' in r ? r.ttl : ''}\tIN\t${r.type}\t${formatData(r)}`);
  };
  section('ANSWER', p.answers);
  section('AUTHORITY', p.authorities);
  lines.push(`;; from ${formatHostPort(req.host, req.port)} over ${req.tcp ? 'tcp' : 'udp'} in ${result.elapsedMs.toFixed(1)} ms`);
  return lines.join('\n');
}

export function formatData(r: dnsPacket.Answer): string {
  const data = (r as { data?: unknown }).data;
  if (Buffer.isBuffer(data)) return data.toString('hex');
  if (typeof data === 'object' && data !== null) return Object.values(data as object).join(' ');
  return String(data);
}

export function resultJson(result: QueryResult, req: QueryRequest): object {
  const p = result.packet as dnsPacket.Packet & { rcode?: string };
  const records = (list: readonly dnsPacket.Answer[] | undefined) => (list ?? []).filter((r) => r.type !== 'OPT').map((r) => ({
    name: r.name, type: r.type, ttl: 'ttl' in r ? r.ttl : undefined, data: formatData(r),
  }));
  return {
    server: formatHostPort(req.host, req.port), transport: req.tcp ? 'tcp' : 'udp', elapsedMs: Number(result.elapsedMs.toFixed(3)),
    id: p.id, rcode: p.rcode, flags: p.flags,
    aa: ((p.flags ?? 0) & 0x400) !== 0, tc: ((p.flags ?? 0) & 0x200) !== 0, ra: ((p.flags ?? 0) & 0x80) !== 0,
    question: p.questions?.[0], answers: records(p.answers), authorities: records(p.authorities),
  };
}
