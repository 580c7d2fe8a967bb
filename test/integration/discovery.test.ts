// Service discovery as a client sees it, on a host listener with registry files: SRV for services
// and shared aliases (with the targets' addresses, truncation and TCP for large sets), TXT for
// labels, static records (with PTR and a CNAME chased upstream), and health in the fixture.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import path from 'node:path';
import { startDaemon, ROOT, type RunningDaemon } from '../helpers/daemon.js';
import { FakeUpstream } from '../helpers/fake-upstream.js';
import { dig, digShort, kdig } from '../helpers/dig.js';
import { tempDir } from '../helpers/tmp.js';

/** The ADDITIONAL section of dig's output (the helper parses answer and authority only). */
function additional(raw: string): string[] {
  const m = /;; ADDITIONAL SECTION:\n([\s\S]*?)(?:\n\n|$)/.exec(raw);
  return m ? m[1].split('\n').filter((l) => l && !l.startsWith(';')).map((l) => l.split(/\s+/).filter((_, i) => i !== 1).join(' ')) : [];
}

describe('service discovery answers', () => {
  let daemon: RunningDaemon;
  let upstream: FakeUpstream;
  const extra = tempDir();

  before(async () => {
    upstream = await FakeUpstream.start({ zone: { 'www.example.test': ['192.0.2.80'] } });
    const crowd = Array.from({ length: 100 }, (_, i) => ({
      name: `member${i}`, aliases: ['crowd'], ipv4: [`10.81.${Math.floor(i / 200)}.${10 + i}`], services: [{ name: 'http', port: 8000 + i }],
    }));
    extra.write('crowd.json', JSON.stringify({
      name: 'big', subnets: [{ subnet: '10.81.0.0/16' }], endpoints: crowd,
      records: [
        { name: 'outside', type: 'CNAME', value: 'www.example.test' },
        { name: 'motd', type: 'TXT', value: 'hello from nsdns' },
        { name: '_ldap._tcp', type: 'SRV', priority: 1, weight: 2, port: 389, target: 'member0' },
      ],
    }));
    daemon = await startDaemon(['--registry', path.join(ROOT, 'fixtures/lab'), '--registry', extra.dir, '--listen', '127.0.0.1:0', '--upstream', upstream.spec]);
  });
  after(async () => {
    await daemon?.stop();
    await upstream?.stop();
    extra.cleanup();
  });

  it('answers a service as SRV under every name form, with the target address in the additional section', async () => {
    for (const name of ['_http._tcp.web', '_http._tcp.web.lab', '_HTTP._tcp.Web.Lab.']) {
      const r = await dig(daemon.server, name, 'SRV');
      assert.equal(r.status, 'NOERROR', name);
      assert.ok(r.flags.includes('aa'));
      assert.deepEqual(r.answers.map((a) => [a.type, a.data]), [['SRV', '0 10 8080 web.lab.']], name);
      assert.deepEqual(additional(r.raw), ['web.lab. IN A 10.77.0.10'], name);
    }
  });

  it('answers a shared alias with its healthy holders only (db is unhealthy in the fixture), and keeps db itself answering', async () => {
    assert.deepEqual(await digShort(daemon.server, 'pool', 'A'), ['10.77.0.10']);
    assert.deepEqual(await digShort(daemon.server, '_http._tcp.pool', 'SRV'), ['0 10 8080 web.lab.']);
    assert.deepEqual(await digShort(daemon.server, 'db', 'A'), ['10.77.0.11']);
  });

  it('gives NODATA with SOA for other types at a service name, NXDOMAIN for unknown services, and forwards none of it', async () => {
    const before = upstream.received.length;
    const a = await dig(daemon.server, '_http._tcp.web.lab', 'A');
    assert.equal(a.status, 'NOERROR');
    assert.equal(a.answers.length, 0);
    assert.equal(a.authority[0]?.type, 'SOA');
    for (const name of ['_nope._tcp.web', '_nope._tcp.web.lab', '_http._udp.web', '_http._tcp.mon.ops.example']) {
      const r = await dig(daemon.server, name, 'SRV');
      assert.equal(r.status, 'NXDOMAIN', name);
      assert.equal(r.authority[0]?.type, 'SOA', name);
    }
    assert.equal(upstream.received.length, before, 'nothing was forwarded');
  });

  it('answers 100 endpoints behind one alias: truncated over UDP, complete over TCP, addresses shuffled', async () => {
    const udp = await dig(daemon.server, '_http._tcp.crowd', 'SRV', '+ignore', '+bufsize=1232');
    assert.ok(udp.flags.includes('tc'), udp.flags.join(' '));
    assert.ok(udp.answers.length > 0 && udp.answers.length < 100);
    const tcp = await kdig(daemon.server, '+tcp', '_http._tcp.crowd', 'SRV');
    assert.equal(tcp.answers.length, 100);
    assert.deepEqual(new Set(tcp.answers.map((a) => a.data.split(' ')[2])).size, 100);
    const viaFallback = await digShort(daemon.server, '_http._tcp.crowd.big', 'SRV');
    assert.equal(viaFallback.length, 100, 'dig retries over TCP');
    const first = (await kdig(daemon.server, '+tcp', 'crowd', 'A')).answers.map((a) => a.data);
    assert.equal(first.length, 100);
    assert.deepEqual([...first].sort(), Array.from({ length: 100 }, (_, i) => `10.81.0.${10 + i}`).sort());
    const sorted = [...first].sort((x, y) => Number(x.split('.')[3]) - Number(y.split('.')[3]));
    assert.notDeepEqual(first, sorted, 'the order is shuffled');
  });

  it('gives labels as TXT, one string per label', async () => {
    assert.deepEqual((await digShort(daemon.server, 'web.lab', 'TXT')).sort(), ['"team=lab"', '"tier=frontend"']);
    assert.deepEqual(await digShort(daemon.server, 'motd.big', 'TXT'), ['"hello from nsdns"']);
  });

  it('serves static records: A with PTR, a local CNAME with its target, an outside CNAME with the target resolved upstream, SRV', async () => {
    assert.deepEqual(await digShort(daemon.server, 'printer.lab', 'A'), ['10.77.0.200']);
    assert.deepEqual(await digShort(daemon.server, '-x', '10.77.0.200'), ['printer.lab.']);
    const docs = await dig(daemon.server, 'docs.lab', 'A');
    assert.deepEqual(docs.answers.map((a) => [a.name, a.type, a.data]), [['docs.lab.', 'CNAME', 'web.lab.'], ['web.lab.', 'A', '10.77.0.10']]);
    const out = await dig(daemon.server, 'outside.big', 'A');
    assert.equal(out.status, 'NOERROR');
    assert.deepEqual(out.answers.map((a) => [a.type, a.data]), [['CNAME', 'www.example.test.'], ['A', '192.0.2.80']]);
    assert.ok(upstream.received.some((q) => q.name === 'www.example.test'), 'the target was asked upstream');
    assert.ok(!upstream.received.some((q) => q.name.includes('outside')), 'the CNAME itself was not forwarded');
    const ldap = await dig(daemon.server, '_ldap._tcp.big', 'SRV');
    assert.deepEqual(ldap.answers.map((a) => a.data), ['1 2 389 member0.big.']);
    assert.deepEqual(additional(ldap.raw), ['member0.big. IN A 10.81.0.10']);
  });

  it('gives a standalone listener NXDOMAIN for host.nsdns.internal, without forwarding it', async () => {
    const before = upstream.received.length;
    assert.equal((await dig(daemon.server, 'host.nsdns.internal', 'A')).status, 'NXDOMAIN');
    assert.equal(upstream.received.length, before);
  });
});
