// The forwarder against hostile or odd upstreams and clients, through real sockets: what goes
// upstream is our own query, junk replies are ignored, answers are scrubbed, cache keys are
// one-to-one, 0x20 falls back for servers that do not keep case, and one client's flood is
// refused without touching another client.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { afterEach, describe, it } from 'node:test';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { FakeUpstream, type FakeUpstreamOptions } from '../helpers/fake-upstream.js';
import { dig, digShort } from '../helpers/dig.js';
import { decode, queryPacket } from '../helpers/packets.js';
import { tempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function upstream(options: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
  const u = await FakeUpstream.start({ zone: { 'example.test': ['192.0.2.10'], 'other.test': ['192.0.2.11'] }, ...options });
  cleanups.push(() => u.stop());
  return u;
}

async function daemon(args: string[], config?: string): Promise<RunningDaemon> {
  const extra: string[] = [];
  if (config) {
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    extra.push('--config', dir.write('c.yaml', config), '--no-resolv-conf');
  }
  const d = await startDaemon(['--listen', '127.0.0.1:0', ...extra, ...args]);
  cleanups.push(() => d.stop());
  return d;
}

/** One crafted query over UDP from `source`; the reply and how long it took. */
async function ask(server: string, packet: Buffer, source = '127.0.0.1'): Promise<{ reply: Buffer; ms: number }> {
  const port = Number(server.slice(server.lastIndexOf(':') + 1));
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, source, () => resolve()));
  const start = Date.now();
  try {
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no reply within 4 s')), 4000);
      socket.once('message', (reply) => { clearTimeout(timer); resolve({ reply, ms: Date.now() - start }); });
      socket.send(packet, port, '127.0.0.1');
    });
  } finally {
    socket.close();
  }
}

const addresses = (reply: Buffer) => decode(reply).answers!.filter((a) => a.type === 'A').map((a) => (a as { data: string }).data);
const optOf = (reply: Buffer) => decode(reply).additionals!.find((a) => a.type === 'OPT') as { udpPayloadSize: number } | undefined;

describe('the upstream query is ours', () => {
  it('a client joining an exchange in flight with another case, id and EDNS gets its own correct reply', async () => {
    const u = await upstream({ delayMs: 400 });
    const d = await daemon(['--upstream', u.spec]);
    const [first, joined] = await Promise.all([
      ask(d.server, queryPacket('example.test', 'A', { id: 1, edns: { udpSize: 4096 } })),
      waitFor(() => u.received.length > 0, { what: 'the first query in flight upstream' }).then(() => ask(d.server, queryPacket('ExAmPlE.TeSt', 'A', { id: 2 }))),
    ]);
    assert.equal(u.countFor('example.test'), 1, 'the second client joined the first one\'s exchange');
    const a = decode(first.reply);
    const b = decode(joined.reply);
    assert.equal(a.id, 1);
    assert.equal(b.id, 2);
    assert.equal(b.questions![0].name, 'ExAmPlE.TeSt');
    assert.deepEqual(addresses(first.reply), ['192.0.2.10']);
    assert.deepEqual(addresses(joined.reply), ['192.0.2.10']);
    assert.equal(optOf(first.reply)?.udpPayloadSize, 1232, 'our OPT, not the upstream\'s 4096');
    assert.equal(optOf(joined.reply), undefined, 'no OPT for a client that sent none (RFC 6891 §7)');
  });

  it('sends the daemon\'s EDNS size (1232) upstream whatever the client advertised', async () => {
    const u = await upstream();
    const d = await daemon(['--upstream', u.spec]);
    await dig(d.server, '+bufsize=4096', 'example.test');
    const plain = await dig(d.server, '+noedns', 'other.test');
    assert.deepEqual(u.received.map((r) => r.ednsSize), [1232, 1232]);
    assert.deepEqual(plain.answers.map((a) => a.data), ['192.0.2.11']);
    assert.equal(plain.ednsUdp, undefined, 'the client without EDNS gets no OPT back');
  });

  it('ignores replies with another id, for another question, or malformed, and takes the real answer', async () => {
    const u = await upstream({ behaviour: 'junk-first' });
    const d = await daemon(['--upstream', u.spec]);
    const r = await dig(d.server, 'example.test');
    assert.equal(r.status, 'NOERROR');
    assert.deepEqual(r.answers.map((a) => a.data), ['192.0.2.10']);
  });
});

describe('cache keys', () => {
  it('a dot inside a label and a backslash at the end of one are different names', async () => {
    // dig: `ok-c\\.example` is the labels `ok-c\` and `example`; `ok-c\.example` is one label.
    const u = await upstream({ zone: { 'ok-c\\.example': ['192.0.2.21'], 'ok-c.example': ['192.0.2.22'] } });
    const d = await daemon(['--upstream', u.spec]);
    assert.deepEqual(await digShort(d.server, 'ok-c\\\\.example'), ['192.0.2.21']);
    assert.deepEqual(await digShort(d.server, 'ok-c\\.example'), ['192.0.2.22']);
    assert.equal(u.received.length, 2);
  });

  it('RD=0 and RD=1 never share an answer', async () => {
    const u = await upstream();
    const d = await daemon(['--upstream', u.spec]);
    await dig(d.server, '+norecurse', 'example.test');
    await dig(d.server, '+recurse', 'example.test');
    assert.deepEqual(u.received.map((r) => r.recursionDesired), [false, true]);
  });
});

describe('0x20', () => {
  const name = 'abcdefghijklmnopqrstuvwxyz.example.test';

  it('asks in random case when forward.randomizeCase is on', async () => {
    const u = await upstream({ zone: { [name]: ['192.0.2.30'] } });
    const d = await daemon(['--upstream', u.spec, '--cache-size', '0'], 'forward: { randomizeCase: true }\n');
    assert.deepEqual(await digShort(d.server, name), ['192.0.2.30']);
    assert.deepEqual(await digShort(d.server, name), ['192.0.2.30']);
    for (const r of u.received) assert.notEqual(r.qname, name, `sent all lower case: ${r.qname}`);
    assert.notEqual(u.received[0].qname, u.received[1].qname);
  });

  it('asks a server that changes the case again without it, and remembers', async () => {
    const u = await upstream({ behaviour: 'lower-case', zone: { [name]: ['192.0.2.30'], 'other.test': ['192.0.2.11'] } });
    const d = await daemon(['--upstream', u.spec], 'forward: { randomizeCase: true }\n');
    assert.deepEqual(await digShort(d.server, name), ['192.0.2.30']);
    assert.deepEqual(await digShort(d.server, 'other.test'), ['192.0.2.11']);
    const sent = u.received.map((r) => r.qname);
    assert.equal(sent.length, 3, sent.join(' '));
    assert.notEqual(sent[0], name);
    assert.deepEqual(sent.slice(1), [name, 'other.test'], 'retried without 0x20, then asked without it');
    await d.waitForLog((l) => String(l.msg).startsWith('upstream does not keep the case'));
  });
});

describe('scrubbing', () => {
  it('removes records for unrelated names and keeps the CNAME chain', async () => {
    const u = await upstream({ behaviour: 'add-junk', cnames: { 'www.test': 'example.test' } });
    const d = await daemon(['--upstream', u.spec]);
    const r = await dig(d.server, 'www.test');
    assert.equal(r.status, 'NOERROR');
    assert.deepEqual(r.answers.map((a) => `${a.name} ${a.type} ${a.data}`), ['www.test. CNAME example.test.', 'example.test. A 192.0.2.10']);
    assert.doesNotMatch(r.raw, /evil|198\.51\.100\.99/);
    assert.doesNotMatch((await dig(d.server, 'www.test')).raw, /evil/, 'nor from the cache');
  });
});

describe('fair shares', () => {
  it('refuses a client over its in-flight share at once while another client is forwarded', async () => {
    const u = await upstream({ delayMs: 800 });
    const d = await daemon(['--upstream', u.spec], 'forward: { maxInflightPerClient: 2 }\n');
    const held = ['a.test', 'b.test'].map((n) => ask(d.server, queryPacket(n), '127.0.0.2'));
    await waitFor(() => u.received.length >= 2, { what: 'the two held queries in flight upstream' });
    const over = await ask(d.server, queryPacket('c.test'), '127.0.0.2');
    // At once: REFUSED without asking the upstream (asked, it would be answered 800 ms later).
    assert.equal(decode(over.reply).rcode, 'REFUSED');
    const other = await ask(d.server, queryPacket('example.test'), '127.0.0.3');
    assert.deepEqual(addresses(other.reply), ['192.0.2.10']);
    await Promise.all(held);
    assert.equal(u.countFor('c.test'), 0);
    const warned = d.logs.filter((l) => String(l.msg).startsWith('client over its share'));
    assert.equal(warned.length, 1);
    assert.equal(warned[0].client, '127.0.0.2');
  });

  it('refuses a client over its rate (then one query in 4 over UDP) while another client is forwarded; cache hits are not limited', async () => {
    const u = await upstream();
    const d = await daemon(['--upstream', u.spec], 'forward: { clientQueriesPerSecond: 3 }\n');
    const rcodes: string[] = [];
    for (const n of ['a', 'b', 'c', 'd']) rcodes.push(decode((await ask(d.server, queryPacket(`${n}.test`), '127.0.0.2')).reply).rcode!);
    assert.deepEqual(rcodes, ['NXDOMAIN', 'NXDOMAIN', 'NXDOMAIN', 'REFUSED']);
    // Still over: over UDP only one query in 4 is answered (REFUSED), the others are dropped.
    const more = await Promise.allSettled(['e', 'f', 'g', 'h'].map((n) => ask(d.server, queryPacket(`${n}.test`), '127.0.0.2')));
    assert.deepEqual(more.map((r) => (r.status === 'fulfilled' ? decode(r.value.reply).rcode : 'dropped')).sort(), ['REFUSED', 'dropped', 'dropped', 'dropped']);
    assert.equal(decode((await ask(d.server, queryPacket('a.test'), '127.0.0.2')).reply).rcode, 'NXDOMAIN', 'from the cache');
    assert.deepEqual(addresses((await ask(d.server, queryPacket('example.test'), '127.0.0.3')).reply), ['192.0.2.10']);
  });
});
