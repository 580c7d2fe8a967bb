// Service discovery in real namespaces, as programs there see it: glibc (getent ahosts) for a shared
// alias, dig for SRV, TXT, static records and host.nsdns.internal, a DNS server on an internal
// network, and a namespace resolv.conf that keeps the host's search domains.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { Lab, needsRoot } from '../helpers/netns.js';
import { FakeUpstream } from '../helpers/fake-upstream.js';
import { resolvConfText } from '../../src/plumbing/netns-resolv.js';
import { parseResolvConf } from '../../src/plumbing/host-resolv-conf.js';

describe('service discovery in namespaces', { skip: needsRoot }, () => {
  const lab = new Lab();
  let upstream: FakeUpstream;
  const net = `sd${lab.tag}`;
  before(async () => {
    upstream = await FakeUpstream.start({ zone: { 'web.corp.test': ['192.0.2.99'], 'www.example.test': ['192.0.2.80'] } });
    await lab.start(['--upstream', upstream.spec, '--no-resolv-conf']);
  });
  const cleanupsOutside: Array<() => Promise<void>> = [];
  after(async () => {
    for (const stop of cleanupsOutside) await stop();
    await lab.cleanup();
    await upstream?.stop();
  });

  it('a shared alias answers every holder to glibc, and its service as SRV with the targets', async () => {
    await lab.ok('network', 'create', net, '--subnet', '10.66.0.0/24', '--label', 'purpose=test',
      '--record', 'printer=10.66.0.200', '--record', 'docs=CNAME:web1', '--record', 'out=CNAME:www.example.test');
    const [a, b] = [await lab.namespace('web1'), await lab.namespace('web2')];
    await lab.ok('network', 'connect', net, a, '--name', 'web1', '--alias', 'pool', '--service', 'http:8080', '--label', 'tier=front');
    await lab.ok('network', 'connect', net, b, '--name', 'web2', '--alias', 'pool', '--service', 'http:8081/tcp');
    const getent = await execa('ip', ['netns', 'exec', a, 'getent', 'ahosts', 'pool'], { reject: false });
    const addresses = new Set(getent.stdout.split('\n').map((l) => l.split(/\s+/)[0]).filter(Boolean));
    assert.deepEqual([...addresses].sort(), ['10.66.0.2', '10.66.0.3']);
    assert.deepEqual((await lab.dig(a, 'SRV', '_http._tcp.pool')).sort(), [`0 0 8080 web1.${net}.`, `0 0 8081 web2.${net}.`]);
    assert.deepEqual(await lab.dig(b, 'SRV', `_http._tcp.web1.${net}`), [`0 0 8080 web1.${net}.`]);
    assert.equal(await lab.digStatus(a, 'SRV', '_nope._tcp.web1'), 'NXDOMAIN');
    assert.deepEqual(await lab.dig(b, 'TXT', 'web1'), ['"tier=front"']);
    const [inspect] = JSON.parse(await lab.ok('network', 'inspect', net));
    assert.deepEqual(inspect.Labels, { purpose: 'test' });
    const web1 = Object.values(inspect.Containers as Record<string, { Name: string; Labels?: object; Services?: object[]; Health?: { Status: string } }>).find((c) => c.Name === 'web1')!;
    assert.deepEqual([web1.Labels, web1.Services, web1.Health?.Status], [{ tier: 'front' }, [{ name: 'http', port: 8080, protocol: 'tcp', priority: 0, weight: 0 }], 'healthy']);
    assert.ok((await lab.ok('network', 'ls', '-q', '--filter', 'label=purpose=test')).split('\n').includes(net));
  });

  it('refuses a second endpoint with the same own name, an alias that is another endpoint\'s name or id, and garbage services and labels', async () => {
    const c = await lab.namespace('web3');
    const [inspect] = JSON.parse(await lab.ok('network', 'inspect', net));
    const web1Id = Object.entries(inspect.Containers as Record<string, { Name: string }>).find(([, e]) => e.Name === 'web1')![0];
    const shortId = web1Id.slice(0, 12);
    const isId = new RegExp(`the name "${shortId}" is already used on network "sd\\w+" by endpoint "web1" as its id`);
    for (const [args, message] of [
      [['--name', shortId], isId],
      [['--name', 'web3', '--alias', shortId], isId],
      [['--name', 'web1'], /the name "web1" is already used on network "sd\w+" by endpoint "web1"$/m],
      [['--name', 'pool'], /the name "pool" is already used on network "sd\w+" by endpoint "web\d" as an alias \(an endpoint's own name must be unique\)/],
      [['--alias', 'web2'], /the name "web2" is already used on network "sd\w+" by endpoint "web2" \(an alias may be shared, but not be another endpoint's name\)/],
      [['--alias', 'printer'], /the name "printer" is already used on network "sd\w+" by a static record/],
      [['--service', 'http'], /--service "http": expected NAME:PORT/],
      [['--service', '_x:80'], /expected NAME:PORT/],
      [['--label', `k=${'v'.repeat(300)}`], /labels: a label is longer than 255 bytes/],
    ] as const) {
      const r = await lab.nsdns('network', 'connect', net, c, ...args);
      assert.equal(r.exitCode, 1, args.join(' '));
      assert.match(r.stderr, message, args.join(' '));
    }
    assert.deepEqual(await lab.dig(`ns${lab.tag}-web1`, shortId), ['10.66.0.2'], 'the short id still answers web1 alone');
    const bad = await lab.nsdns('network', 'create', `bad${lab.tag}`, '--record', 'x=MX:foo');
    assert.match(bad.stderr, /--record "x=MX:foo": the value is not an address/);
  });

  it('answers static records (with PTR and CNAMEs, local and outside) and host.nsdns.internal', async () => {
    const a = `ns${lab.tag}-web1`;
    assert.deepEqual(await lab.dig(a, 'printer'), ['10.66.0.200']);
    assert.deepEqual(await lab.dig(a, '-x', '10.66.0.200'), [`printer.${net}.`]);
    assert.deepEqual(await lab.dig(a, 'docs'), [`web1.${net}.`, '10.66.0.2']);
    assert.deepEqual(await lab.dig(a, 'out'), ['www.example.test.', '192.0.2.80']);
    const getent = await execa('ip', ['netns', 'exec', a, 'getent', 'ahosts', 'out'], { reject: false });
    assert.match(getent.stdout, /^192\.0\.2\.80\s/m, 'glibc gets the outside target through the CNAME');
    assert.deepEqual(await lab.dig(a, 'host.nsdns.internal'), ['10.66.0.1']);
  });

  it('a namespace only on an internal network gets NXDOMAIN for host.nsdns.internal, and uses a DNS server inside that network', async () => {
    const inner = `in${lab.tag}`;
    await lab.ok('network', 'create', inner, '--internal', '--subnet', '10.67.0.0/24');
    const server = await lab.namespace('dnssrv');
    const client = await lab.namespace('inner');
    const outsider = await lab.namespace('outsider');
    await lab.ok('network', 'connect', inner, server, '--ip', '10.67.0.50');
    await lab.ok('network', 'connect', inner, client, '--dns', '10.67.0.50');
    // An outside server (on the gateway of the network of the first test, reachable from the host).
    const outside = await FakeUpstream.start({ address: '10.66.0.1', zone: { 'www.example.test': ['192.0.2.80'] } });
    cleanupsOutside.push(() => outside.stop());
    await lab.ok('network', 'connect', inner, outsider, '--dns', outside.spec);
    // A DNS server in the server namespace, on the internal network's address.
    const script = `import { FakeUpstream } from '${process.cwd()}/dist/test/helpers/fake-upstream.js';
const u = await FakeUpstream.start({ address: '10.67.0.50', port: 53, zone: { 'svc.inner.test': ['10.67.0.77'] } });
console.log('ready'); process.stdin.resume(); process.stdin.on('end', () => u.stop().then(() => process.exit(0)));`;
    const proc = execa('ip', ['netns', 'exec', server, process.execPath, '--input-type=module', '-e', script], { reject: false, stdin: 'pipe' });
    try {
      await new Promise<void>((resolve, reject) => {
        proc.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('ready')) resolve(); });
        setTimeout(() => reject(new Error('the DNS server in the namespace did not start')), 10_000);
      });
      assert.deepEqual(await lab.dig(client, 'svc.inner.test'), ['10.67.0.77']);
      const before = upstream.received.length;
      assert.equal(await lab.digStatus(outsider, 'www.example.test'), 'REFUSED', 'an outside server is never asked');
      assert.equal(upstream.received.length, before);
      assert.equal(outside.received.length, 0);
      assert.equal(await lab.digStatus(client, 'host.nsdns.internal'), 'NXDOMAIN');
    } finally {
      proc.stdin!.end();
      await Promise.race([proc, new Promise((r) => setTimeout(r, 3000))]);
      if (proc.exitCode === null && proc.pid) process.kill(proc.pid);
    }
  });

  it('a resolv.conf with the host search domains still answers a local short name locally (not web.corp.test)', async () => {
    const ns = await lab.namespace('web');
    await lab.ok('network', 'connect', net, ns, '--name', 'web');
    const host = parseResolvConf('nameserver 192.0.2.53\nsearch corp.test\noptions timeout:1 attempts:2 rotate\n');
    const text = resolvConfText(ns, ['example.org'], host);
    assert.match(text, /^search example\.org corp\.test$/m);
    assert.match(text, /^options ndots:0 timeout:1 attempts:2$/m);
    writeFileSync(`/etc/netns/${ns}/resolv.conf`, text);
    const local = await execa('ip', ['netns', 'exec', ns, 'getent', 'ahosts', 'web'], { reject: false });
    assert.match(local.stdout, /^10\.66\.0\.\d+\s/m);
    assert.doesNotMatch(local.stdout, /192\.0\.2\.99/);
    const viaSearch = await execa('ip', ['netns', 'exec', ns, 'getent', 'ahosts', 'web.corp.test'], { reject: false });
    assert.match(viaSearch.stdout, /^192\.0\.2\.99\s/m, 'the host search domain name itself still resolves upstream');
  });
});
