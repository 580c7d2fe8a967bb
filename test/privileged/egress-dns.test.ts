// Egress by name, the DNS side, in real namespaces (issue 22): a namespace under a policy resolves
// only the names it is allowed (and its networks' own), the rest is NXDOMAIN with EDE 15 and never
// leaves the host; a namespace without a policy is as before. Policies from `connect
// --egress-allow`, `network create --egress-policy` and a registry file; `egress log` shows the
// decisions; bad policy input is refused and changes nothing. No firewall yet: nothing is opened.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { FakeUpstream } from '../helpers/fake-upstream.js';
import { Lab, needsRoot } from '../helpers/netns.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

describe('egress by name: what DNS answers', { skip: needsRoot }, () => {
  const lab = new Lab();
  const dir = tempDir('nsdns-egress-');
  const files = tempDir('nsdns-egress-policy-');
  const net = `eg${lab.tag}`;
  let upstream: FakeUpstream;
  let sandbox: string, free: string, filed: string;

  before(async () => {
    upstream = await FakeUpstream.start({
      ttl: 2,
      zone: { 'pypi.org': ['192.0.2.10'], 'files.pythonhosted.org': ['192.0.2.11'], 'pythonhosted.org': ['192.0.2.12'], 'evil.test': ['192.0.2.66'], 'github.com': ['192.0.2.20'] },
    });
    [sandbox, free, filed] = [await lab.namespace('sandbox'), await lab.namespace('free'), await lab.namespace('filed')];
    dir.write('filed.yaml', [`name: filed${lab.tag}`, 'subnets: [{subnet: 10.134.2.0/24}]', 'endpoints:',
      `  - {name: f1, ipv4: 10.134.2.5, netns: /run/netns/${filed}, egress: [github.com, {cidr: 10.134.9.0/24, port: 443, protocol: tcp}]}`, ''].join('\n'));
    await lab.start(['--upstream', upstream.spec, '--no-resolv-conf', '--registry', dir.dir, '--metrics', '127.0.0.1:0']);
    await lab.ok('network', 'create', net, '--subnet', '10.134.1.0/24');
    await lab.ok('network', 'connect', net, sandbox, '--name', 'job', '--egress-allow', 'pypi.org', '--egress-allow', '*.pythonhosted.org', '--egress-allow', '10.0.5.0/24:443/tcp');
    await lab.ok('network', 'connect', net, free, '--name', 'free');
  });
  after(async () => {
    await lab.cleanup();
    await upstream?.stop();
    dir.cleanup();
    files.cleanup();
  });

  const digFull = async (ns: string, ...args: string[]) => (await execa('ip', ['netns', 'exec', ns, 'dig', '@127.0.0.11', '+tries=1', '+time=3', ...args], { reject: false })).stdout;
  const asked = (name: string) => upstream.received.filter((r) => r.name === name).length;

  it('answers the allowed names; a denied one is NXDOMAIN with EDE 15 (Blocked) and is never forwarded', async () => {
    assert.deepEqual(await lab.dig(sandbox, 'pypi.org'), ['192.0.2.10']);
    assert.deepEqual(await lab.dig(sandbox, 'files.pythonhosted.org'), ['192.0.2.11']);
    const denied = await digFull(sandbox, 'evil.test');
    assert.match(denied, /status: NXDOMAIN/);
    assert.match(denied, /; EDE: 15 \(Blocked\)/);
    const plain = await digFull(sandbox, '+noedns', 'evil.test');
    assert.match(plain, /status: NXDOMAIN/);
    assert.doesNotMatch(plain, /EDE/);
    assert.equal(asked('evil.test'), 0, 'a denied name does not leave the host');
  });

  it('a wildcard allows the names below its zone, not the zone itself; an exact name nothing below it', async () => {
    assert.equal(await lab.digStatus(sandbox, 'pythonhosted.org'), 'NXDOMAIN');
    assert.equal(await lab.digStatus(sandbox, 'www.pypi.org'), 'NXDOMAIN');
    assert.equal(asked('pythonhosted.org') + asked('www.pypi.org'), 0);
  });

  it("the network's own names still answer in the sandbox", async () => {
    assert.deepEqual(await lab.dig(sandbox, 'free'), ['10.134.1.3']);
    assert.deepEqual(await lab.dig(sandbox, `job.${net}`), ['10.134.1.2']);
  });

  it('a namespace without a policy answers everything as before', async () => {
    assert.deepEqual(await lab.dig(free, 'evil.test'), ['192.0.2.66']);
    assert.deepEqual(await lab.dig(free, 'job'), ['10.134.1.2']);
  });

  it('a policy from a registry file governs its namespace', async () => {
    assert.deepEqual(await lab.dig(filed, 'github.com'), ['192.0.2.20']);
    assert.equal(await lab.digStatus(filed, 'pypi.org'), 'NXDOMAIN');
    assert.deepEqual(await lab.dig(filed, 'f1'), ['10.134.2.5']);
    const [inspect] = JSON.parse(await lab.ok('network', 'inspect', `filed${lab.tag}`));
    assert.deepEqual((Object.values(inspect.Containers) as Array<{ Egress?: string[] }>)[0].Egress, ['github.com', '10.134.9.0/24:443/tcp']);
  });

  it('a registry file edit changes the policy at once', async () => {
    dir.write('filed.yaml', [`name: filed${lab.tag}`, 'subnets: [{subnet: 10.134.2.0/24}]', 'endpoints:',
      `  - {name: f1, ipv4: 10.134.2.5, netns: /run/netns/${filed}, egress: [pypi.org]}`, ''].join('\n'));
    await until('pypi.org allowed in the filed namespace', () => lab.digStatus(filed, 'pypi.org'), (s) => s === 'NOERROR');
    assert.equal(await lab.digStatus(filed, 'github.com'), 'NXDOMAIN');
    dir.write('filed.yaml', [`name: filed${lab.tag}`, 'subnets: [{subnet: 10.134.2.0/24}]', 'endpoints:',
      `  - {name: f1, ipv4: 10.134.2.5, netns: /run/netns/${filed}, egress: [github.com, {cidr: 10.134.9.0/24, port: 443, protocol: tcp}]}`, ''].join('\n'));
    await until('github.com allowed again', () => lab.digStatus(filed, 'github.com'), (s) => s === 'NOERROR');
  });

  it('network inspect shows the policy; egress log shows the decisions, by endpoint or namespace', async () => {
    const [inspect] = JSON.parse(await lab.ok('network', 'inspect', net));
    const containers = Object.values(inspect.Containers) as Array<{ Name: string; Egress?: string[] }>;
    assert.deepEqual(containers.find((c) => c.Name === 'job')!.Egress, ['pypi.org', '*.pythonhosted.org', '10.0.5.0/24:443/tcp']);
    assert.equal(containers.find((c) => c.Name === 'free')!.Egress, undefined);
    const text = await lab.ok('egress', 'log', `${net}/job`);
    assert.match(text, new RegExp(`^/run/netns/${sandbox} \\(${net}/job\\):`));
    assert.match(text, /allowed +pypi\.org/);
    assert.match(text, /denied +evil\.test/);
    const [log] = JSON.parse(await lab.ok('egress', 'log', sandbox, '--json')) as Array<{ netns: string; decisions: Array<{ name: string; allowed: boolean }> }>;
    assert.equal(log.netns, `/run/netns/${sandbox}`);
    assert.deepEqual(log.decisions.filter((d) => d.name === 'www.pypi.org').map((d) => d.allowed), [false]);
    const all = JSON.parse(await lab.ok('egress', 'log', '--json')) as Array<{ netns: string }>;
    assert.deepEqual(all.map((l) => l.netns).sort(), [`/run/netns/${filed}`, `/run/netns/${sandbox}`].sort(), 'only namespaces under a policy');
    const ready = lab.daemon!.logs.find((l) => l.msg === 'ready')!;
    const metrics = await (await fetch(`http://${String(ready.metrics)}/metrics`)).text();
    const count = (decision: string) => Number(new RegExp(`^nsdns_egress_decisions_total\\{network="${net}",decision="${decision}"\\} (\\d+)$`, 'm').exec(metrics)?.[1]);
    assert.ok(count('allowed') >= 2 && count('denied') >= 4, metrics);
    assert.doesNotMatch(metrics, /evil\.test/, 'never a name in the metrics');
    const none = await lab.nsdns('egress', 'log', 'free');
    assert.equal(none.exitCode, 1);
    assert.match(none.stderr, /no namespace under an egress policy is "free"/);
  });

  it('network create --egress-policy FILE: the default of the network\'s endpoints', async () => {
    const policy = files.write('policy.yaml', '- github.com\n- cidr: 10.134.8.0/24\n');
    await lab.ok('network', 'create', `pol${lab.tag}`, '--subnet', '10.134.3.0/24', '--egress-policy', policy);
    const ns = await lab.namespace('inherits');
    await lab.ok('network', 'connect', `pol${lab.tag}`, ns, '--name', 'inh');
    assert.deepEqual(await lab.dig(ns, 'github.com'), ['192.0.2.20']);
    assert.equal(await lab.digStatus(ns, 'pypi.org'), 'NXDOMAIN');
    const [inspect] = JSON.parse(await lab.ok('network', 'inspect', `pol${lab.tag}`));
    assert.deepEqual(inspect.Egress, ['github.com', '10.134.8.0/24']);
  });

  it('bad policy input: a clear error naming the entry, exit 1, and nothing stored', async () => {
    const ns = await lab.namespace('refused');
    const links = await lab.links();
    const before = await lab.ok('network', 'inspect', net);
    for (const [entry, message] of [
      ['bad name!', /egress\.1: "bad name!": not a name, \*\.name, CIDR/],
      ['10.0.0.0/33', /egress\.1: "10\.0\.0\.0\/33": not a name/],
      ['10.0.0.0/8:99999', /port out of range/],
      ['evil\u001b[31m.org', /"evil\\u001b\[31m\.org": not a name/],
    ] as const) {
      const r = await lab.nsdns('network', 'connect', net, ns, '--name', 'x', '--egress-allow', 'ok.org', '--egress-allow', entry);
      assert.equal(r.exitCode, 1, entry);
      assert.match(r.stderr, message, entry);
      assert.doesNotMatch(r.stderr, /\u001b/);
    }
    assert.equal(await lab.ok('network', 'inspect', net), before);
    assert.deepEqual(await lab.links(), links);

    const bad = files.write('bad.yaml', '- pypi.org\n- {cidr: nonsense}\n');
    const r = await lab.nsdns('network', 'create', `bad${lab.tag}`, '--subnet', '10.134.4.0/24', '--egress-policy', bad);
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr, /bad\.yaml: entry 1: cidr "nonsense": not an IPv4 or IPv6 CIDR/);
    const broken = files.write('broken.yaml', 'secret: [unclosed\n');
    const s = await lab.nsdns('network', 'create', `bad${lab.tag}`, '--subnet', '10.134.4.0/24', '--egress-policy', broken);
    assert.equal(s.exitCode, 1);
    assert.match(s.stderr, /broken\.yaml: not valid YAML/);
    assert.doesNotMatch(s.stderr, /secret/);
    assert.equal((await lab.nsdns('network', 'inspect', `bad${lab.tag}`)).exitCode, 1, 'no network was created');

    dir.write('shared-like.yaml', 'name: nope\nendpoints: [{name: n, egress: [42]}]\n');
    const line = await lab.daemon!.waitForLog((l) => l.msg === 'registry file refused' && String(l.file).endsWith('shared-like.yaml'));
    assert.match(String((line.err as { message?: string }).message), /endpoints\.0\.egress\.0: not a name/);
  });

  it('the policy survives a daemon restart (state file)', async () => {
    await lab.daemon!.stop();
    await lab.start(['--upstream', upstream.spec, '--no-resolv-conf', '--registry', dir.dir]);
    assert.equal(await lab.digStatus(sandbox, 'evil.test'), 'NXDOMAIN');
    assert.deepEqual(await lab.dig(sandbox, 'pypi.org'), ['192.0.2.10']);
  });
});
