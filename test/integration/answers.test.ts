// What the resolver answers from the registry, asked by real clients (dig, kdig, Node's resolver)
// of the real daemon on loopback, with a fake upstream that records whatever reaches it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Resolver as NodeResolver } from 'node:dns/promises';
import path from 'node:path';
import { startDaemon, ROOT, type RunningDaemon } from '../helpers/daemon.js';
import { FakeUpstream } from '../helpers/fake-upstream.js';
import { dig, digShort, kdig } from '../helpers/dig.js';
import { tempDir } from '../helpers/tmp.js';

describe('local answers', () => {
  let daemon: RunningDaemon;
  let upstream: FakeUpstream;
  let opsOnly: string;
  const extra = tempDir();

  before(async () => {
    upstream = await FakeUpstream.start({ zone: { 'example.test': ['192.0.2.10'] } });
    const many = Array.from({ length: 60 }, (_, i) => `10.79.${Math.floor(i / 200)}.${10 + i}`);
    extra.write('big.yaml', `name: big\nendpoints:\n  - name: crowd\n    ipv4: [${many.join(', ')}]\n  - name: both\n    ipv4: [10.79.1.2]\n`);
    extra.write('twin.json', JSON.stringify({ name: 'twin', endpoints: [{ name: 'both', ipv4: ['10.79.1.2', '10.79.1.3'] }] }));
    daemon = await startDaemon([
      '--registry', path.join(ROOT, 'fixtures/lab'), '--registry', extra.dir,
      '--listen', '127.0.0.1:0', '--listen', '127.0.0.1:0=ops', '--upstream', upstream.spec,
    ]);
    opsOnly = `127.0.0.1:${daemon.ports[1]}`;
  });
  after(async () => {
    await daemon?.stop();
    await upstream?.stop();
    extra.cleanup();
  });

  it('answers A and AAAA for names and aliases, authoritative, with RA and the local TTL', async () => {
    const web = await dig(daemon.server, 'web.lab', 'A');
    assert.equal(web.status, 'NOERROR');
    assert.deepEqual(web.answers.map((a) => [a.type, a.data, a.ttl]), [['A', '10.77.0.10', 5]]);
    assert.ok(web.flags.includes('aa') && web.flags.includes('ra') && web.flags.includes('rd'), web.flags.join(' '));
    assert.deepEqual(await digShort(daemon.server, 'www', 'A'), ['10.77.0.10']);
    assert.deepEqual(await digShort(daemon.server, 'db', 'AAAA'), ['fd77::11']);
    assert.deepEqual(await digShort(daemon.server, 'mon.ops.example.', 'A'), ['10.78.0.5']);
  });

  it('is case-insensitive and keeps the 0x20 case of the question in the answer', async () => {
    const r = await dig(daemon.server, 'DB.lAb', 'A');
    assert.equal(r.answers[0]?.name, 'DB.lAb.');
    assert.equal(r.answers[0]?.data, '10.77.0.11');
  });

  it('merges a name on several networks without duplicates and rotates the order', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const addrs = await digShort(daemon.server, 'both', 'A');
      assert.deepEqual([...addrs].sort(), ['10.79.1.2', '10.79.1.3']);
      seen.add(addrs.join(','));
    }
    assert.equal(seen.size, 2, 'the first address changes between replies');
  });

  it('gives NODATA with an SOA for a missing family and for other types, and never forwards them', async () => {
    for (const [name, type] of [['web', 'AAAA'], ['web', 'MX'], ['db', 'TXT'], ['web.lab', 'SRV'], ['cache', 'A']]) {
      const r = await dig(daemon.server, name, type);
      assert.equal(r.status, 'NOERROR', `${name} ${type}`);
      assert.equal(r.answers.length, 0, `${name} ${type}`);
      assert.equal(r.authority[0]?.type, 'SOA', `${name} ${type}`);
      // The SOA is the zone's (a short name's network), never owned by the name itself.
      assert.equal(r.authority[0]?.name, 'lab.', `${name} ${type}`);
      assert.ok(r.flags.includes('aa'));
    }
    assert.equal(upstream.countFor('web') + upstream.countFor('web.lab') + upstream.countFor('db') + upstream.countFor('cache'), 0);
  });

  it('answers ANY with the A and AAAA records', async () => {
    const r = await dig(daemon.server, 'db', 'ANY');
    assert.deepEqual(r.answers.map((a) => `${a.type} ${a.data}`).sort(), ['A 10.77.0.11', 'AAAA fd77::11']);
  });

  it('answers PTR for IPv4 and IPv6 with a name that resolves back to the address', async () => {
    const [v4] = await digShort(daemon.server, '-x', '10.77.0.11');
    assert.equal(v4, 'db.lab.');
    assert.deepEqual(await digShort(daemon.server, v4, 'A'), ['10.77.0.11']);
    const [v6] = await digShort(daemon.server, '-x', 'fd77::11');
    assert.equal(v6, 'db.lab.');
    assert.deepEqual(await digShort(daemon.server, v6, 'AAAA'), ['fd77::11']);
    assert.deepEqual(await digShort(daemon.server, '-x', '10.78.0.5'), ['mon.ops.example.']);
  });

  it('answers NXDOMAIN with an SOA inside a local zone, without forwarding', async () => {
    for (const name of ['nope.lab', 'deep.nope.lab', 'nope.ops.example']) {
      const r = await dig(daemon.server, name, 'A');
      assert.equal(r.status, 'NXDOMAIN', name);
      assert.equal(r.authority[0]?.type, 'SOA', name);
      assert.equal(upstream.countFor(name), 0, name);
    }
  });

  it('forwards everything else', async () => {
    assert.deepEqual(await digShort(daemon.server, 'example.test', 'A'), ['192.0.2.10']);
    assert.equal(upstream.countFor('example.test'), 1);
  });

  it('copies RD and CD, and answers with RD clear when it was clear', async () => {
    const r = await dig(daemon.server, 'web', '+norecurse', '+cdflag');
    assert.ok(!r.flags.includes('rd'));
    assert.ok(r.flags.includes('cd'));
  });

  it('scopes a listener to its networks: names elsewhere are forwarded like any unknown name', async () => {
    assert.deepEqual(await digShort(opsOnly, 'mon', 'A'), ['10.78.0.5']);
    const r = await dig(opsOnly, 'web', 'A');
    assert.equal(r.status, 'NXDOMAIN', 'the fake upstream does not know "web"');
    assert.ok(!r.flags.includes('aa'));
    assert.equal(upstream.countFor('web'), 1);
  });

  it('answers kdig over TCP and Node\'s resolver over UDP', async () => {
    const r = await kdig(daemon.server, '+tcp', 'www.lab', 'A');
    assert.deepEqual(r.answers.map((a) => a.data), ['10.77.0.10']);
    assert.ok(r.raw.includes('(TCP)'));
    const node = new NodeResolver({ timeout: 2000, tries: 1 });
    node.setServers([daemon.server]);
    assert.deepEqual(await node.resolve4('web'), ['10.77.0.10']);
    assert.deepEqual(await node.resolve6('db.lab'), ['fd77::11']);
    assert.deepEqual(await node.reverse('10.77.0.10'), ['web.lab']);
  });

  it('truncates a large UDP answer to whole records with TC, and serves all of it over TCP', async () => {
    const plain = await dig(daemon.server, 'crowd', 'A', '+noedns', '+ignore');
    assert.ok(plain.flags.includes('tc'));
    assert.equal(plain.answers.length, Math.floor((512 - 12 - 10) / 16));
    const edns = await dig(daemon.server, 'crowd', 'A', '+bufsize=700', '+ignore');
    assert.ok(edns.flags.includes('tc'));
    assert.equal(edns.answers.length, Math.floor((700 - 12 - 10 - 11) / 16));
    const tcp = await kdig(daemon.server, '+tcp', 'crowd', 'A');
    assert.equal(tcp.answers.length, 60);
    assert.ok(!tcp.flags.includes('tc'));
  });
});
