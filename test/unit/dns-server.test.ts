// DnsServer (src/server/dns-server.ts) on real loopback sockets, with the answer table's resolver
// (test/helpers/answer-table.ts): a UDP query and pipelined TCP queries are answered, a flood of
// junk pauses a namespace's socket and not a single-socket host listener's, a client the filter
// refuses gets nothing, and a client at its connection limit makes room by closing its own idle
// connection.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { afterEach, describe, it } from 'node:test';
import dnsPacket from 'dns-packet';
import { DnsServer } from '../../src/server/dns-server.js';
import { TcpBudget, type TcpLimits } from '../../src/server/tcp-budget.js';
import { ListenerStats } from '../../src/server/listener-stats.js';
import type { ClientPolicy } from '../../src/server/client-policy.js';
import { silentLogger } from '../../src/log.js';
import { buildTable, type ListenerName, type Table } from '../helpers/answer-table.js';
import { queryPacket } from '../helpers/packets.js';
import { waitFor } from '../helpers/wait.js';

const LIMITS: TcpLimits = {
  idleTimeoutMs: 60_000, messageTimeoutMs: 60_000, maxConnections: 10, maxConnectionsPerClient: 10, maxTotalConnections: 10,
  maxPendingPerConnection: 10, maxQueriesPerConnection: 100, maxUnsentBytes: 1 << 20, maxTotalUnsentBytes: 1 << 20,
};
/** Two questions: answered FORMERR, which counts as unanswered for the flood gate. */
const JUNK = dnsPacket.encode({ type: 'query', id: 1, questions: [{ name: 'a', type: 'A' }, { name: 'b', type: 'A' }] });

interface Running { server: DnsServer; table: Table; stats: ListenerStats; udpPort: number; tcpPort: number }
const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => { for (const c of cleanup.splice(0)) await c(); });

async function serve(listener: ListenerName, options: { limits?: Partial<TcpLimits>; policy?: ClientPolicy } = {}): Promise<Running> {
  const table = buildTable();
  const udp = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
  const tcp = net.createServer();
  await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
  const stats = new ListenerStats();
  const shared = { resolver: table.resolver, budget: new TcpBudget({ ...LIMITS, ...options.limits }), stats, maxUdpSize: 1232 };
  const server = new DnsServer({ udps: [udp], tcp }, shared, table.listeners[listener], silentLogger, options.policy);
  cleanup.push(() => server.close());
  return { server, table, stats, udpPort: udp.address().port, tcpPort: (tcp.address() as net.AddressInfo).port };
}

async function udpClient(): Promise<dgram.Socket> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  cleanup.push(() => { socket.close(); });
  return socket;
}

/** Sends `raw` until a reply with its id comes back (UDP may be dropped under load). */
async function udpAsk(port: number, raw: Buffer): Promise<dnsPacket.Packet & { rcode?: string }> {
  const socket = await udpClient();
  let reply: Buffer | undefined;
  socket.on('message', (m) => { if (m.readUInt16BE(0) === raw.readUInt16BE(0)) reply = m; });
  return waitFor(() => {
    if (reply) return dnsPacket.decode(reply) as dnsPacket.Packet & { rcode?: string };
    socket.send(raw, port, '127.0.0.1');
    return undefined;
  }, { what: 'a UDP reply', everyMs: 200 });
}

async function tcpClient(port: number): Promise<{ socket: net.Socket; replies: Buffer[] }> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  cleanup.push(() => { socket.destroy(); });
  const replies: Buffer[] = [];
  let buffered = Buffer.alloc(0);
  socket.on('data', (chunk) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
      replies.push(buffered.subarray(2, 2 + buffered.readUInt16BE(0)));
      buffered = buffered.subarray(2 + buffered.readUInt16BE(0));
    }
  });
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  return { socket, replies };
}

const framed = (m: Buffer) => Buffer.concat([Buffer.from([m.length >> 8, m.length & 0xff]), m]);

/** Floods `port` with junk until `done` holds (or `bursts` bursts were sent); counts the FORMERR replies. */
async function flood(port: number, done: () => boolean, bursts: number, answered = { count: 0 }): Promise<number> {
  const socket = await udpClient();
  socket.on('message', () => answered.count++);
  let sent = 0;
  for (let b = 0; b < bursts && !done(); b++) {
    for (let i = 0; i < 100; i++) socket.send(JUNK, port, '127.0.0.1');
    sent += 100;
    await new Promise((resolve) => setImmediate(resolve));
  }
  return sent;
}

describe('DNS server', () => {
  it('answers a UDP query from the registry', async () => {
    const { udpPort } = await serve('web');
    const reply = await udpAsk(udpPort, queryPacket('web', 'A', { id: 101 }));
    assert.equal(reply.rcode, 'NOERROR');
    assert.deepEqual(reply.answers!.map((a) => (a as { data: string }).data), ['10.190.0.10']);
  });

  it('answers pipelined TCP queries on one connection', async () => {
    const { tcpPort } = await serve('web');
    const { socket, replies } = await tcpClient(tcpPort);
    socket.write(Buffer.concat([framed(queryPacket('web', 'A', { id: 1 })), framed(queryPacket('www.example.com', 'A', { id: 2 })), framed(queryPacket('nope.lab', 'A', { id: 3 }))]));
    await waitFor(() => replies.length === 3, { what: 'three replies' });
    const byId = Object.fromEntries(replies.map((r) => dnsPacket.decode(r) as dnsPacket.Packet & { rcode?: string }).map((p) => [p.id, p.rcode]));
    assert.deepEqual(byId, { 1: 'NOERROR', 2: 'NOERROR', 3: 'NXDOMAIN' });
  });

  it('answers what a half-closing client asked, forwarded answers still on their way included, then ends', async () => {
    const { tcpPort } = await serve('web');
    const { socket, replies } = await tcpClient(tcpPort);
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    // "These are my questions" (write, then end): common for one-shot TCP clients.
    socket.end(Buffer.concat([framed(queryPacket('a.slow.example.com', 'A', { id: 7 })), framed(queryPacket('web', 'A', { id: 8 }))]));
    await closed;
    const byId = Object.fromEntries(replies.map((r) => dnsPacket.decode(r) as dnsPacket.Packet & { rcode?: string }).map((p) => [p.id, p.rcode]));
    assert.deepEqual(byId, { 7: 'NOERROR', 8: 'NOERROR' }, 'both answered before the server ended the connection');
  });

  it("pauses a namespace's socket that floods it with junk, and answers it again afterwards", async () => {
    const { udpPort, stats } = await serve('web');
    await flood(udpPort, () => stats.floodPauses > 0, 1000);
    await waitFor(() => stats.floodPauses > 0, { what: 'a flood pause' });
    const reply = await udpAsk(udpPort, queryPacket('web', 'A', { id: 102 }));
    assert.equal(reply.rcode, 'NOERROR', 'answered again after the pause');
  });

  it('never pauses a host listener of one socket: that would shut out every client', async () => {
    const { udpPort, stats } = await serve('host');
    const answered = { count: 0 };
    const sent = await flood(udpPort, () => false, 30, answered);
    // The junk the server read and answered FORMERR: past the gate's limit, it would have paused.
    await waitFor(() => answered.count > 256, { what: 'the junk answered' });
    const reply = await udpAsk(udpPort, queryPacket('mon.ops.example', 'A', { id: 103 }));
    assert.equal(reply.rcode, 'NOERROR');
    assert.equal(stats.floodPauses, 0, `no pause after ${sent} junk datagrams`);
  });

  it('a client the policy does not reach gets no answer over UDP, and its TCP connection is closed', async () => {
    const { udpPort, tcpPort, stats } = await serve('host', { policy: { reachable: () => false } });
    const socket = await udpClient();
    let replies = 0;
    socket.on('message', () => replies++);
    await waitFor(() => {
      socket.send(queryPacket('web'), udpPort, '127.0.0.1');
      return stats.notAllowed > 0;
    }, { what: 'the datagram read and refused' });
    const tcp = net.connect(tcpPort, '127.0.0.1');
    tcp.on('error', () => {});
    let data = 0;
    tcp.on('data', () => data++);
    await new Promise<void>((resolve) => tcp.once('close', () => resolve()));
    assert.equal(data, 0);
    assert.equal(replies, 0);
  });

  it('a client the policy reaches but does not answer gets REFUSED over UDP and TCP, its question echoed', async () => {
    const { udpPort, tcpPort } = await serve('host', { policy: { answered: (address) => address !== '127.0.0.1' } });
    const reply = await udpAsk(udpPort, queryPacket('mon.ops.example', 'A', { id: 104 }));
    assert.equal(reply.rcode, 'REFUSED');
    assert.deepEqual(reply.questions, [{ name: 'mon.ops.example', type: 'A', class: 'IN' }]);
    assert.deepEqual(reply.answers, []);
    const { socket, replies } = await tcpClient(tcpPort);
    socket.write(framed(queryPacket('mon.ops.example', 'A', { id: 105 })));
    await waitFor(() => replies.length === 1, { what: 'the TCP reply' });
    assert.equal((dnsPacket.decode(replies[0]) as { rcode?: string }).rcode, 'REFUSED');
    // A response sent to the listener deserves no reply, refused client or not.
    const client = await udpClient();
    let got = 0;
    client.on('message', () => got++);
    const response = dnsPacket.encode({ type: 'response', id: 106, questions: [{ name: 'x', type: 'A' }] });
    client.send(response, udpPort, '127.0.0.1');
    const after = await udpAsk(udpPort, queryPacket('mon.ops.example', 'A', { id: 107 }));
    assert.equal(after.rcode, 'REFUSED');
    assert.equal(got, 0, 'the response got no reply');
  });

  it('at its connection limit, a client makes room by closing its own idle connection', async () => {
    const { tcpPort } = await serve('web', { limits: { maxConnectionsPerClient: 1 } });
    const first = await tcpClient(tcpPort);
    first.socket.write(framed(queryPacket('web', 'A', { id: 1 })));
    await waitFor(() => first.replies.length === 1, { what: 'the first connection answered' });
    const firstClosed = new Promise<void>((resolve) => first.socket.once('close', () => resolve()));
    const second = await tcpClient(tcpPort);
    second.socket.write(framed(queryPacket('web', 'A', { id: 2 })));
    await firstClosed;
    await waitFor(() => second.replies.length === 1, { what: 'the second connection answered' });
  });
});
