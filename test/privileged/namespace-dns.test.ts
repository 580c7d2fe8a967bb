// Name resolution inside real namespaces: each connected namespace gets 127.0.0.11:53, scoped to
// its networks, asked with dig and with glibc's getent through /etc/netns/NAME/resolv.conf.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { FakeUpstream } from '../helpers/fake-upstream.js';
import { Lab, needsRoot, sh } from '../helpers/netns.js';
import { MAIN } from '../helpers/daemon.js';

describe('DNS inside namespaces', { skip: needsRoot }, () => {
  const lab = new Lab();
  let upstream: FakeUpstream;
  let web: string, db: string, both: string, lonely: string;

  before(async () => {
    upstream = await FakeUpstream.start({ zone: { 'outside.test': ['192.0.2.77'], 'fresh.test': ['192.0.2.78'] } });
    await lab.start(['--upstream', upstream.spec]);
    [web, db, both, lonely] = await Promise.all(['web', 'db', 'both', 'lonely'].map((n) => lab.namespace(n)));
    await lab.ok('network', 'create', 'front', '--subnet', '10.201.0.0/24');
    await lab.ok('network', 'create', 'back', '--subnet', '10.202.0.0/24');
    await lab.ok('network', 'connect', 'front', web, '--name', 'web', '--alias', 'www', '--alias', 'site.example');
    await lab.ok('network', 'connect', 'front', db, '--name', 'db');
    await lab.ok('network', 'connect', 'front', both, '--name', 'both');
    await lab.ok('network', 'connect', 'back', both, '--name', 'both');
    await lab.ok('network', 'connect', 'back', lonely, '--name', 'lonely');
  });
  after(async () => {
    await lab.cleanup();
    await upstream?.stop();
  });

  it('resolves names, aliases and short ids with dig right after connect', async () => {
    assert.deepEqual(await lab.dig(db, 'web'), ['10.201.0.2']);
    assert.deepEqual(await lab.dig(db, 'www'), ['10.201.0.2']);
    assert.deepEqual(await lab.dig(db, 'site.example'), ['10.201.0.2']);
    assert.deepEqual(await lab.dig(web, 'db.front'), ['10.201.0.3']);
    const inspect = JSON.parse(await lab.ok('network', 'inspect', 'front'))[0];
    const webId = Object.values(inspect.Containers as Record<string, { Name: string; EndpointID: string }>).find((c) => c.Name === 'web')!.EndpointID;
    assert.deepEqual(await lab.dig(db, webId.slice(0, 12)), ['10.201.0.2']);
  });

  it('resolves through glibc (getent hosts) with the resolv.conf nsdns writes', async () => {
    assert.equal(await lab.getent(db, 'web'), '10.201.0.2');
    assert.equal(await lab.getent(web, 'db'), '10.201.0.3');
    const conf = await sh('cat', `/etc/netns/${web}/resolv.conf`);
    assert.match(conf, /^nameserver 127\.0\.0\.11$/m);
    assert.match(conf, /^options ndots:0$/m);
  });

  it('carries traffic across the bridge: ping by name', async () => {
    const r = await execa('ip', ['netns', 'exec', db, 'ping', '-c', '1', '-W', '2', 'web'], { reject: false });
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, /10\.201\.0\.2/);
  });

  it('scopes each namespace to its networks', async () => {
    assert.deepEqual(await lab.dig(both, 'web'), ['10.201.0.2']);
    assert.deepEqual(await lab.dig(both, 'lonely'), ['10.202.0.3']);
    assert.deepEqual(await lab.dig(lonely, 'both'), ['10.202.0.2']);
    assert.equal(await lab.digStatus(lonely, 'web'), 'NXDOMAIN', 'forwarded like any unknown name; the fake upstream does not know it');
    assert.equal(upstream.countFor('web'), 1);
    assert.equal(upstream.countFor('lonely'), 0, 'names of its own networks are never forwarded');
  });

  it('forwards unknown names to the upstream', async () => {
    assert.deepEqual(await lab.dig(web, 'outside.test'), ['192.0.2.77']);
  });

  it('answers PTR for endpoint addresses', async () => {
    assert.deepEqual(await lab.dig(db, '-x', '10.201.0.2'), ['web.front.']);
  });

  it('answers over TCP inside the namespace too', async () => {
    const r = await execa('ip', ['netns', 'exec', db, 'kdig', '@127.0.0.11', '+tcp', '+short', 'web']);
    assert.equal(r.stdout.trim(), '10.201.0.2');
  });

  it('stops resolving a name at once on disconnect, and closes the sockets of an emptied namespace', async () => {
    const temp = await lab.namespace('temp');
    await lab.ok('network', 'connect', 'front', temp, '--name', 'temp');
    assert.deepEqual(await lab.dig(db, 'temp'), ['10.201.0.5']);
    assert.match(await sh('ip', 'netns', 'exec', temp, 'ss', '-Hlnu'), /127\.0\.0\.11:53/);
    await lab.ok('network', 'disconnect', 'front', temp);
    assert.deepEqual(await lab.dig(db, 'temp'), []);
    assert.equal(await lab.digStatus(db, 'temp.front'), 'NXDOMAIN');
    assert.doesNotMatch(await sh('ip', 'netns', 'exec', temp, 'ss', '-Hlnu'), /127\.0\.0\.11:53/);
    assert.equal(await lab.getent(temp, 'web'), undefined, 'resolv.conf removed with the last endpoint');
  });

  it('debug shows the attachments, the view and where an answer came from', async () => {
    const report = JSON.parse(await lab.ok('debug', both, '--resolve', 'web', '--json'));
    assert.equal(report.listening53, true);
    assert.deepEqual([...report.daemon.view].sort(), ['back', 'front']);
    assert.equal(report.daemon.resolution.origin.source, 'registry');
    assert.ok(report.interfaces.some((i: { name: string; addresses: string[] }) => i.name === 'eth1' && i.addresses.includes('10.202.0.2/24')));
    const forwarded = JSON.parse(await lab.ok('debug', both, '--resolve', 'fresh.test', '--json'));
    assert.equal(forwarded.daemon.resolution.origin.source, 'upstream');
    assert.equal(forwarded.daemon.resolution.origin.server, upstream.spec);
    const again = JSON.parse(await lab.ok('debug', both, '--resolve', 'fresh.test', '--json'));
    assert.equal(again.daemon.resolution.origin.source, 'cache');
    const q = await execa(process.execPath, [MAIN, 'query', '--netns', db, 'www', '--json'], { reject: false });
    assert.equal(q.exitCode, 0, q.stderr);
    assert.deepEqual(JSON.parse(q.stdout).answers.map((a: { data: string }) => a.data), ['10.201.0.2']);
  });
});

describe('upstreams from a namespace', { skip: needsRoot }, () => {
  const lab = new Lab();
  const ups: FakeUpstream[] = [];

  after(async () => {
    await lab.cleanup();
    for (const u of ups) await u.stop();
  });

  it("uses the endpoint's --dns, then the network's --dns-upstream, then the daemon's; internal networks none", async () => {
    const ofDaemon = await FakeUpstream.start({ zone: { 'x.test': ['192.0.2.1'] } });
    ups.push(ofDaemon);
    await lab.start(['--upstream', ofDaemon.spec]);
    const [a, b, c, d] = await Promise.all(['a', 'b', 'c', 'd'].map((n) => lab.namespace(n)));
    // A namespace's own servers are reachable from the host, not on its loopback: here on the
    // gateway of the network "plain" (10.204.0.1).
    await lab.ok('network', 'create', 'plain', '--subnet', '10.204.0.0/24');
    const [ofEndpoint, ofNetwork] = await Promise.all([0, 1].map(() => FakeUpstream.start({ address: '10.204.0.1', zone: { 'x.test': ['192.0.2.1'] } })));
    ups.push(ofEndpoint, ofNetwork);
    await lab.ok('network', 'create', 'withdns', '--subnet', '10.203.0.0/24', '--dns-upstream', ofNetwork.spec);
    await lab.ok('network', 'create', 'sealed', '--subnet', '10.205.0.0/24', '--internal');
    await lab.ok('network', 'connect', 'withdns', a, '--dns', ofEndpoint.spec);
    await lab.ok('network', 'connect', 'withdns', b);
    await lab.ok('network', 'connect', 'plain', c);
    await lab.ok('network', 'connect', 'sealed', d);
    await lab.dig(a, 'a.x.test');
    await lab.dig(b, 'b.x.test');
    await lab.dig(c, 'c.x.test');
    assert.deepEqual([ofEndpoint.received, ofNetwork.received, ofDaemon.received].map((r) => r.map((q) => q.name)), [['a.x.test'], ['b.x.test'], ['c.x.test']]);
    assert.equal(await lab.digStatus(d, 'd.x.test'), 'REFUSED');
    assert.equal(ofDaemon.countFor('d.x.test'), 0);
    assert.deepEqual(await lab.dig(d, d), ['10.205.0.2'], 'its own name still resolves');
    assert.doesNotMatch(await sh('ip', '-n', d, 'route'), /default/, 'no route out of an internal network');
  });
});
