// Attacks on issue 16's walls that the item tests did not try: the same namespace under two
// spellings (a /proc/PID/ns/net path, a second name made by `ip netns attach`), a registry file
// naming a tenant's address its network's gateway, or an endpoint at one of the host's own
// addresses. Seen from the CLI, the log and dig.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { execa, type ResultPromise } from 'execa';
import { FakeUpstream } from '../helpers/fake-upstream.js';
import { MAIN, startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { Lab, needsRoot, sh } from '../helpers/netns.js';
import { tempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

/** A process living in namespace `ns`, and its PID. */
async function sleeperIn(ns: string): Promise<{ pid: string; process: ResultPromise }> {
  const process = execa('ip', ['netns', 'exec', ns, 'sleep', '600'], { reject: false });
  const pid = await waitFor(async () => (await execa('ip', ['netns', 'pids', ns])).stdout.trim().split('\n')[0], { what: `a process in ${ns}` });
  return { pid, process };
}

describe('a namespace belongs to one source, whatever path names it', { skip: needsRoot }, () => {
  const lab = new Lab();
  const dir = tempDir('nsdns-review-');
  const sleepers: ResultPromise[] = [];
  let own: string, filed: string;

  before(async () => {
    [own, filed] = [await lab.namespace('own'), await lab.namespace('filed')];
    dir.write('filed.yaml', `name: filed\nsubnets: [{subnet: 10.181.1.0/24}]\nendpoints:\n  - {name: f1, ipv4: 10.181.1.5, netns: /run/netns/${filed}}\n`);
    await lab.start(['--registry', dir.dir]);
    await lab.ok('network', 'create', 'inside', '--internal', '--subnet', '10.181.0.0/24');
    await waitFor(async () => (await lab.dig(filed, 'f1')).length > 0, { what: 'the file\'s namespace is served' });
  });
  after(async () => {
    for (const s of sleepers) s.kill();
    await lab.cleanup();
    dir.cleanup();
  });

  it('refuses a connect by PID into a namespace a file serves by name, before anything is created', async () => {
    const sleeper = await sleeperIn(filed);
    sleepers.push(sleeper.process);
    const links = await lab.links();
    const r = await lab.nsdns('network', 'connect', 'inside', sleeper.pid, '--name', 'bypid');
    assert.equal(r.exitCode, 1, r.stdout);
    assert.match(r.stderr, new RegExp(`^nsdns: the namespace of PID ${sleeper.pid} is served by network "filed" from registry file .*filed\\.yaml; a namespace belongs to one source`));
    assert.deepEqual(await lab.links(), links);
    assert.deepEqual(await lab.dig(filed, 'f1'), ['10.181.1.5']);
    assert.notEqual(await lab.digStatus(filed, 'bypid.inside'), 'NOERROR');
  });

  it('refuses a file naming, by a second name, a namespace nsdns connected', async () => {
    await lab.ok('network', 'connect', 'inside', own, '--name', 'a');
    const sleeper = await sleeperIn(own);
    sleepers.push(sleeper.process);
    const alias = `ns${lab.tag}-alias`;
    await sh('ip', 'netns', 'attach', alias, sleeper.pid);
    lab.namespaces.push(alias);
    dir.write('hijack.yaml', `name: hijack\nsubnets: [{subnet: 10.181.2.0/24}]\nendpoints:\n  - {name: evil, ipv4: 10.181.2.66, netns: /run/netns/${alias}}\n`);
    const line = await lab.daemon!.waitForLog((l) => l.msg === 'registry file refused' && String(l.file).endsWith('hijack.yaml'));
    assert.match(String((line.err as { message?: string }).message), new RegExp(`namespace /run/netns/${alias} is served by network "inside" from nsdns's own connects`));
    assert.deepEqual(await lab.dig(own, 'a.inside'), ['10.181.0.2']);
    assert.notEqual(await lab.digStatus(own, 'evil.hijack'), 'NOERROR');
  });

  it('refuses a file whose network id begins like a provisioned network\'s: the short id names one network', async () => {
    const id = (JSON.parse(await lab.ok('network', 'inspect', 'inside')) as Array<{ Id: string }>)[0].Id;
    dir.write('copy.yaml', `name: copy\nid: ${id.slice(0, 12)}beef\nendpoints:\n  - {name: c1, ipv4: 10.181.3.5}\n`);
    const line = await lab.daemon!.waitForLog((l) => String(l.msg).startsWith('registry file') && String(l.file).endsWith('copy.yaml'));
    const r = await lab.nsdns('network', 'inspect', id.slice(0, 12));
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as Array<{ Name: string }>)[0].Name, 'inside');
    assert.equal(line.msg, 'registry file refused');
    assert.match(String((line.err as { message?: string }).message), /begins like the id of network "inside" from nsdns's own connects/);
  });
});

describe('a gateway a registry file declares is not the host', { skip: needsRoot }, () => {
  const PORT = 25801;
  const lab = new Lab();
  const dir = tempDir('nsdns-review-gw-');
  let upstream: FakeUpstream;
  let outside: string, secret: string;

  before(async () => {
    upstream = await FakeUpstream.start({ zone: {} });
    // The file's tenant reaches the host on a link of its own: 10.182.0.2 inside, 10.182.0.1 on the host.
    outside = await lab.outsideHost('gw', '10.182.0.1', '10.182.0.2');
    secret = await lab.namespace('secret');
    // Hostile: the file calls its own tenant's address the gateway.
    dir.write('evil.yaml', 'name: evil\nsubnets: [{subnet: 10.182.0.0/24, gateway: 10.182.0.2}]\nendpoints:\n  - {name: e1, ipv4: 10.182.0.50}\n');
    await lab.start(['--registry', dir.dir, '--listen', `10.182.0.1:${PORT}`, '--upstream', upstream.spec]);
    await lab.ok('network', 'create', 'secret', '--subnet', '10.182.1.0/24');
    await lab.ok('network', 'connect', 'secret', secret, '--name', 'hidden');
  });
  after(async () => {
    await lab.cleanup();
    await upstream?.stop();
    dir.cleanup();
  });

  async function digAt(ns: string | undefined, ...args: string[]): Promise<string[]> {
    const dig = ['dig', '@10.182.0.1', '-p', String(PORT), '+short', '+tries=1', '+time=3', ...args];
    const r = ns === undefined ? await execa(dig[0], dig.slice(1), { reject: false }) : await execa('ip', ['netns', 'exec', ns, ...dig], { reject: false });
    return r.stdout.split('\n').filter((l) => l && !l.startsWith(';'));
  }

  it('the tenant at that address sees its own network at a host listener, not the others', async () => {
    assert.deepEqual(await digAt(undefined, 'hidden.secret'), ['10.182.1.2'], 'the host sees every network');
    assert.deepEqual(await digAt(outside, 'e1.evil'), ['10.182.0.50']);
    assert.deepEqual(await digAt(outside, 'hidden.secret'), []);
    assert.deepEqual(await digAt(outside, '-x', '10.182.1.2'), []);
  });
});

describe('an endpoint a registry file puts at the host\'s own address does not make the host its tenant', () => {
  const PORT = 25802;
  const dir = tempDir('nsdns-review-host-');
  let good: FakeUpstream, evil: FakeUpstream;
  let daemon: RunningDaemon;

  before(async () => {
    good = await FakeUpstream.start({ zone: { 'outside.test': ['192.0.2.7'] } });
    evil = await FakeUpstream.start({ zone: { 'outside.test': ['192.0.2.66'] } });
    dir.write('other.yaml', 'name: other\nendpoints:\n  - {name: web, ipv4: 10.183.0.5}\n');
    // Hostile: an "endpoint" at 127.0.0.1, with the file's own upstream.
    dir.write('evil.yaml', `name: evil\nendpoints:\n  - {name: loop, ipv4: 127.0.0.1, upstreams: ["${evil.spec}"]}\n`);
    daemon = await startDaemon(['--registry', dir.dir, '--listen', `127.0.0.1:${PORT}`, '--upstream', good.spec]);
  });
  after(async () => {
    await daemon?.stop();
    await good?.stop();
    await evil?.stop();
    dir.cleanup();
  });

  const dig = async (...args: string[]) => (await execa('dig', ['@127.0.0.1', '-p', String(PORT), '+short', '+tries=1', '+time=3', ...args], { reject: false })).stdout.split('\n').filter(Boolean);

  it('the host still sees every network and forwards to the daemon\'s upstream, not the file\'s', async () => {
    assert.deepEqual(await dig('web.other'), ['10.183.0.5']);
    assert.deepEqual(await dig('outside.test'), ['192.0.2.7']);
    assert.equal(evil.received.length, 0, 'the file\'s upstream was asked for the host');
  });
});

describe('a registry file cannot claim a provisioned tenant\'s address at host listeners', { skip: needsRoot }, () => {
  const PORT = 25803;
  const lab = new Lab();
  const dir = tempDir('nsdns-review-claim-');
  let evil: FakeUpstream;
  let tenant: string, address: string;

  before(async () => {
    evil = await FakeUpstream.start({ zone: { 'outside.test': ['192.0.2.66'] } });
    tenant = await lab.namespace('tenant');
    await lab.start(['--registry', dir.dir, '--listen', `0.0.0.0:${PORT}`]);
    await lab.ok('network', 'create', 'priv', '--internal', '--subnet', '10.184.0.0/24');
    const line = await lab.ok('network', 'connect', 'priv', tenant, '--name', 'a');
    address = /: (\S+) via /.exec(line)![1];
  });
  after(async () => {
    await lab.cleanup();
    await evil?.stop();
    dir.cleanup();
  });

  async function digAt(...args: string[]): Promise<string> {
    const r = await execa('ip', ['netns', 'exec', tenant, 'dig', '@10.184.0.1', '-p', String(PORT), '+tries=1', '+time=3', ...args], { reject: false });
    return r.stdout;
  }

  async function assertOwnOnly(): Promise<void> {
    assert.match(await digAt('a.priv'), new RegExp(`a\\.priv\\.\\s+\\d+\\s+IN\\s+A\\s+${address.replace(/\./g, '\\.')}`));
    assert.match(await digAt('outside.test'), /status: REFUSED/, 'an internal-only tenant gets nothing forwarded');
    assert.equal(evil.received.length, 0, 'the file\'s upstream was asked for the tenant');
  }

  it('a file endpoint at the tenant\'s address, in a network without subnets', async () => {
    dir.write('bare.yaml', `name: bare\nendpoints:\n  - {name: spy, ipv4: ${address}, upstreams: ["${evil.spec}"]}\n`);
    await lab.daemon!.waitForLog((l) => String(l.msg).startsWith('registry file') && String(l.file).endsWith('bare.yaml'));
    await assertOwnOnly();
  });

  it('a file network whose subnet overlaps the tenant\'s network is refused', async () => {
    dir.write('overlap.yaml', `name: overlap\nsubnets: [{subnet: 10.184.0.0/16}]\nendpoints:\n  - {name: spy2, ipv4: ${address}, upstreams: ["${evil.spec}"]}\n`);
    const line = await lab.daemon!.waitForLog((l) => String(l.msg).startsWith('registry file') && String(l.file).endsWith('overlap.yaml'));
    await assertOwnOnly();
    assert.equal(line.msg, 'registry file refused');
    assert.match(String((line.err as { message?: string }).message), /subnet 10\.184\.0\.0\/16 overlaps 10\.184\.0\.0\/24 of network "priv" from nsdns's own connects/);
  });
});

describe('readiness is about the daemon\'s own upstreams, not a registry file\'s', () => {
  const PORT = 25804;
  const dir = tempDir('nsdns-review-ready-');
  let dead: FakeUpstream;
  let daemon: RunningDaemon;

  before(async () => {
    dead = await FakeUpstream.start({ behaviour: 'silent' });
    // The daemon has no upstream of its own; the file's endpoint (the client at 127.0.0.2) names a dead one.
    dir.write('filed.yaml', `name: filed\nendpoints:\n  - {name: me, ipv4: 127.0.0.2, upstreams: ["${dead.spec}"]}\n`);
    const config = dir.write('c.yaml', 'forward:\n  timeoutMs: 300\n  budgetMs: 600\n');
    daemon = await startDaemon(['--config', config, '--no-resolv-conf', '--registry', dir.dir, '--listen', `127.0.0.1:${PORT}`]);
  });
  after(async () => {
    await daemon?.stop();
    await dead?.stop();
    dir.cleanup();
  });

  it('a file\'s dead upstream is no reason to be unready', async () => {
    const r = await execa('dig', ['@127.0.0.1', '-p', String(PORT), '-b', '127.0.0.2', '+tries=1', '+time=5', 'outside.test'], { reject: false });
    assert.match(r.stdout, /status: SERVFAIL/);
    assert.ok(dead.received.length > 0, 'the file\'s upstream was asked');
    const status = await execa(process.execPath, [MAIN, 'status', '--json', '--socket', `${daemon.stateDir}/nsdns.sock`], { reject: false });
    const json = JSON.parse(status.stdout) as { ready: boolean; problems: string[] };
    assert.deepEqual(json.problems, []);
    assert.equal(json.ready, true);
    assert.equal(status.exitCode, 0);
  });
});
