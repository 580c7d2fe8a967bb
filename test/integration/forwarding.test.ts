// Forwarding through real sockets to fake upstreams on loopback: failover, anti-spoofing, TCP,
// the cache, in-flight limits, and which upstream a query goes to.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import fs from 'node:fs';
import dnsPacket from 'dns-packet';
import { after, afterEach, describe, it } from 'node:test';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { FakeUpstream } from '../helpers/fake-upstream.js';
import { dig, digShort, kdig, queryTimeMs } from '../helpers/dig.js';
import { tempDir } from '../helpers/tmp.js';
import { queryPacket } from '../helpers/packets.js';
import { waitFor } from '../helpers/wait.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function upstream(options: ConstructorParameters<typeof FakeUpstream>[0] = {}): Promise<FakeUpstream> {
  const u = await FakeUpstream.start({ zone: { 'example.test': ['192.0.2.10'], 'other.test': ['192.0.2.11'] }, ...options });
  cleanups.push(() => u.stop());
  return u;
}

async function daemon(args: string[]): Promise<RunningDaemon> {
  const d = await startDaemon(['--listen', '127.0.0.1:0', ...args]);
  cleanups.push(() => d.stop());
  return d;
}

describe('failover', () => {
  it('moves past a dead upstream, answers well within the client timeout, and puts it last next time', async () => {
    const dead = await upstream({ behaviour: 'silent' });
    const good = await upstream();
    const d = await daemon(['--upstream', dead.spec, '--upstream', good.spec, '--cache-size', '0']);
    const first = await dig(d.server, 'example.test');
    assert.deepEqual(first.answers.map((a) => a.data), ['192.0.2.10']);
    // Before a client gives up (glibc: 5 s), as dig measured it.
    assert.ok(queryTimeMs(first) < 5000, `took ${queryTimeMs(first)} ms`);
    assert.equal((await digShort(d.server, 'other.test')).length, 1, 'answered');
    assert.equal(dead.received.length, 1, 'the dead server was not asked again first');
  });

  it('stops asking an only upstream once it is known dead: SERVFAIL without waiting for it', async () => {
    const dead = await upstream({ behaviour: 'silent' });
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    const d = await daemon(['--upstream', dead.spec, '--cache-size', '0', '--no-resolv-conf', '--config', dir.write('c.yaml', 'forward:\n  timeoutMs: 200\n  budgetMs: 400\n')]);
    for (let i = 0; i < 6; i++) assert.equal((await dig(d.server, `n${i}.test`)).status, 'SERVFAIL');
    assert.equal(dead.received.length, 3, 'asked until known dead (3 timeouts in a row), then not within its probe interval');
  });

  it('moves past an upstream that answers SERVFAIL or REFUSED', async () => {
    const failing = await upstream({ behaviour: 'servfail' });
    const refusing = await upstream({ behaviour: 'refused' });
    const good = await upstream();
    const d = await daemon(['--upstream', failing.spec, '--upstream', refusing.spec, '--upstream', good.spec]);
    assert.deepEqual(await digShort(d.server, 'example.test'), ['192.0.2.10']);
    assert.equal(failing.received.length, 1);
    assert.equal(refusing.received.length, 1);
  });

  it('ignores replies with the wrong id (as it would a spoofed one)', async () => {
    const spoofer = await upstream({ behaviour: 'wrong-id' });
    const good = await upstream();
    const d = await daemon(['--upstream', spoofer.spec, '--upstream', good.spec]);
    const r = await dig(d.server, 'example.test');
    assert.deepEqual(r.answers.map((a) => a.data), ['192.0.2.10'], 'the spoofed 198.51.100.66 was not accepted');
  });

  it('answers SERVFAIL within its budget when every upstream fails', async () => {
    const dead = await upstream({ behaviour: 'silent' });
    const spoofer = await upstream({ behaviour: 'wrong-id' });
    const d = await daemon(['--upstream', dead.spec, '--upstream', spoofer.spec]);
    const r = await dig(d.server, 'example.test');
    assert.equal(r.status, 'SERVFAIL');
    assert.ok(queryTimeMs(r) < 5000, `a glibc client (5 s) would have given up first: ${queryTimeMs(r)} ms`);
  });

  it('uses a fresh random id and source port for each upstream query', async () => {
    const u = await upstream();
    const d = await daemon(['--upstream', u.spec, '--cache-size', '0']);
    const id = 0x4242;
    for (let i = 0; i < 3; i++) await dig(d.server, 'example.test', `+qid=${id}`);
    assert.equal(u.received.length, 3);
    assert.ok(u.received.some((r) => r.id !== id), 'the client id is not reused upstream');
    assert.equal(new Set(u.received.map((r) => r.id)).size, 3);
  });
});

/** Sockets the process has open now (read back from the kernel). */
function openSockets(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).filter((fd) => {
    try { return fs.readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:'); } catch { return false; }
  }).length;
}

describe('upstream sockets', () => {
  it('gives each upstream query its own source port, and closes it once answered', async () => {
    // An upstream that notes the source port of every query and answers it.
    const ports: number[] = [];
    const up = dgram.createSocket('udp4');
    up.on('message', (msg, rinfo) => {
      ports.push(rinfo.port);
      const q = dnsPacket.decode(msg);
      up.send(dnsPacket.encode({ type: 'response', id: q.id, flags: 0x8180, questions: q.questions, answers: [{ type: 'A', name: q.questions![0].name, ttl: 60, data: '192.0.2.7' }] }), rinfo.port, rinfo.address);
    });
    await new Promise<void>((resolve) => up.bind(0, '127.0.0.1', resolve));
    cleanups.push(() => up.close());
    const d = await daemon(['--upstream', `127.0.0.1:${up.address().port}`, '--cache-size', '0']);
    const client = dgram.createSocket('udp4');
    cleanups.push(() => client.close());
    await new Promise<void>((resolve) => client.bind(0, '127.0.0.1', resolve));
    const ask = (name: string) => new Promise<dnsPacket.Packet>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer for ${name}`)), 3000);
      client.once('message', (msg) => { clearTimeout(timer); resolve(dnsPacket.decode(msg)); });
      client.send(queryPacket(name), d.port, '127.0.0.1');
    });
    await ask('warm.test');
    const before = openSockets(d.proc.pid!);
    const N = 400;
    for (let i = 0; i < N; i++) {
      const r = await ask(`n${i}.test`);
      assert.deepEqual(r.answers?.map((a) => (a as { data: unknown }).data), ['192.0.2.7']);
    }
    const grown = openSockets(d.proc.pid!) - before;
    // A few sockets bound ahead of need, not one left open per query.
    assert.ok(grown < 64, `${grown} more sockets open after ${N} upstream queries`);
    // Random ports collide now and then (birthday), but are not reused query after query.
    assert.equal(ports.length, N + 1);
    assert.ok(new Set(ports).size > N - 40, `${new Set(ports).size} distinct source ports for ${N + 1} queries`);
    assert.ok(ports.every((p, i) => i === 0 || p !== ports[i - 1]), 'a source port was used twice in a row');
  });
});

describe('transport', () => {
  it('forwards over TCP what came over TCP, and over UDP what came over UDP', async () => {
    const u = await upstream();
    const d = await daemon(['--upstream', u.spec, '--cache-size', '0']);
    await kdig(d.server, '+tcp', 'example.test');
    await dig(d.server, 'other.test');
    assert.deepEqual(u.received.map((r) => `${r.name} ${r.transport}`), ['example.test tcp', 'other.test udp']);
  });

  it('passes an upstream TC on to a UDP client, which then gets the answer over TCP', async () => {
    const u = await upstream({ behaviour: 'truncate-udp' });
    const d = await daemon(['--upstream', u.spec]);
    const r = await dig(d.server, 'example.test');
    assert.deepEqual(r.answers.map((a) => a.data), ['192.0.2.10'], 'dig retried over TCP');
    assert.deepEqual(u.received.map((x) => x.transport), ['udp', 'tcp']);
  });
});

describe('cache', () => {
  it('answers a repeat from the cache with the TTL counting down', async () => {
    const u = await upstream({ ttl: 100 });
    const d = await daemon(['--upstream', u.spec]);
    const first = await dig(d.server, 'example.test');
    assert.equal(first.answers[0].ttl, 100);
    await new Promise((r) => setTimeout(r, 1100));
    const second = await dig(d.server, 'EXAMPLE.test');
    assert.match(second.raw, /;EXAMPLE\.test\.\s+IN\s+A/, 'the question keeps the case the client asked in');
    assert.ok(second.answers[0].ttl <= 99, `ttl ${second.answers[0].ttl}`);
    assert.equal(u.countFor('example.test'), 1);
  });

  it('caches NXDOMAIN for the SOA minimum, and keeps types and DO bits apart', async () => {
    const u = await upstream({ negativeTtl: 30 });
    const d = await daemon(['--upstream', u.spec]);
    const nx = await dig(d.server, 'missing.test');
    assert.equal(nx.status, 'NXDOMAIN');
    assert.equal((await dig(d.server, 'missing.test')).status, 'NXDOMAIN');
    assert.equal(u.countFor('missing.test'), 1);
    await dig(d.server, 'missing.test', 'AAAA');
    await dig(d.server, 'missing.test', '+dnssec');
    assert.equal(u.countFor('missing.test'), 3);
  });

  it('never caches local answers: a registry change is seen at once', async () => {
    const u = await upstream();
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    dir.write('n.yaml', 'name: n\nendpoints: [{name: app, ipv4: 10.80.0.2}]\n');
    const d = await daemon(['--upstream', u.spec, '--registry', dir.dir]);
    assert.deepEqual(await digShort(d.server, 'app'), ['10.80.0.2']);
    dir.write('n.yaml', 'name: n\nendpoints: [{name: app, ipv4: 10.80.0.3}]\n');
    await d.waitForLog((l) => l.msg === 'registry file loaded' && (d.logs.filter((x) => x.msg === 'registry file loaded').length >= 2));
    assert.deepEqual(await digShort(d.server, 'app'), ['10.80.0.3']);
    assert.equal(u.received.length, 0);
  });
});

describe('in-flight limits', () => {
  it('sends identical queries in flight upstream once', async () => {
    const u = await upstream({ delayMs: 300 });
    const d = await daemon(['--upstream', u.spec]);
    const answers = await Promise.all(Array.from({ length: 5 }, () => digShort(d.server, 'example.test')));
    assert.ok(answers.every((a) => a[0] === '192.0.2.10'));
    assert.equal(u.countFor('example.test'), 1);
  });

  it('answers SERVFAIL at once over the limit, and logs it rate-limited', async () => {
    const u = await upstream({ behaviour: 'silent' });
    const conf = tempDir();
    cleanups.push(conf.cleanup);
    const config = conf.write('c.yaml', 'forward: { maxInflight: 2, timeoutMs: 1500, budgetMs: 1500 }\n');
    const d = await daemon(['--config', config, '--upstream', u.spec, '--no-resolv-conf']);
    const slow = [dig(d.server, 'a.test'), dig(d.server, 'b.test')];
    await waitFor(() => u.received.length >= 2, { what: 'the two slow queries reach the upstream' });
    const fast = await dig(d.server, 'c.test');
    assert.equal(fast.status, 'SERVFAIL');
    // Answered without asking: a query sent upstream would also end SERVFAIL, but only at the timeout.
    assert.equal(u.countFor('c.test'), 0, 'the query over the limit never went upstream');
    await dig(d.server, 'd.test');
    await Promise.all(slow);
    assert.equal(d.logs.filter((l) => String(l.msg).startsWith('forwarding limit reached')).length, 1);
  });
});

describe('which upstream', () => {
  it('endpoint servers first, then the network\'s, then the daemon\'s, then resolv.conf', async () => {
    const ofEndpoint = await upstream();
    const ofNetwork = await upstream();
    const ofDaemon = await upstream();
    const ofHost53 = process.getuid?.() === 0 ? await upstream({ address: '127.0.0.153', port: 53, zone: { 'four.test': ['192.0.2.54'] } }) : undefined!;
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    // The client is 127.0.0.2 (dig -b), registered as an endpoint on a network (127.0.0.1, the
    // host's own address, is never taken for an endpoint: the host would get a file's upstreams).
    dir.write('a.yaml', `name: a\nupstreams: ["${ofNetwork.spec}"]\nendpoints: [{name: me, ipv4: 127.0.0.2, upstreams: ["${ofEndpoint.spec}"]}]\n`);
    const resolv = dir.write('resolv.conf', 'nameserver 127.0.0.153\n');
    let d = await daemon(['--registry', dir.dir, '--upstream', ofDaemon.spec, '--resolv-conf', resolv]);
    await dig(d.server, '-b', '127.0.0.2', 'one.test');
    assert.equal(ofEndpoint.countFor('one.test'), 1);

    dir.write('a.yaml', `name: a\nupstreams: ["${ofNetwork.spec}"]\nendpoints: [{name: me, ipv4: 127.0.0.2}]\n`);
    await d.waitForLog(() => d.logs.filter((x) => x.msg === 'registry file loaded').length >= 2);
    await dig(d.server, '-b', '127.0.0.2', 'two.test');
    assert.equal(ofNetwork.countFor('two.test'), 1);

    dir.write('a.yaml', 'name: a\nendpoints: [{name: me, ipv4: 127.0.0.3}]\n');
    await d.waitForLog(() => d.logs.filter((x) => x.msg === 'registry file loaded').length >= 3);
    await dig(d.server, '-b', '127.0.0.2', 'three.test');
    assert.equal(ofDaemon.countFor('three.test'), 1);
    await d.stop();

    // resolv.conf names no port: its server is a fake upstream on port 53 of a loopback address.
    if (process.getuid?.() === 0) {
      d = await daemon(['--registry', dir.dir, '--resolv-conf', resolv]);
      assert.deepEqual(await digShort(d.server, 'four.test'), ['192.0.2.54']);
      assert.equal(ofHost53.countFor('four.test'), 1);
    }
    assert.equal(ofEndpoint.received.length + ofNetwork.received.length + ofDaemon.received.length, 3, 'nothing else was asked');
  });

  it('never uses its own listening address as an upstream', async () => {
    const probe = await startDaemon(['--listen', '127.0.0.1:0']);
    const port = probe.port;
    await probe.stop();
    const d = await daemon(['--listen', `127.0.0.1:${port}`, '--upstream', `127.0.0.1:${port}`]);
    const r = await dig(`127.0.0.1:${port}`, 'loop.test');
    assert.equal(r.status, 'REFUSED', 'no usable upstream is left');
    assert.equal(d.logs.length > 0, true);
  });
});
after(() => undefined);
