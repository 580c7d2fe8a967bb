// `nsdns serve --host-dns` for real: networks the test creates get a listener on their gateway
// address (port 53), asked with dig from the host and from namespaces on that network (answered) and
// on another one (REFUSED); an internal network's gateway forwards nothing; the bridges are
// registered with "systemd-resolved" through the stand-in fixtures/host-dns/bin/resolvectl put first
// on the daemon's PATH (it records its arguments); `nsdns host-dns` prints the dnsmasq lines.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { Lab, needsRoot } from '../helpers/netns.js';
import { ROOT } from '../helpers/daemon.js';
import { FakeUpstream } from '../helpers/fake-upstream.js';
import { until } from '../helpers/wait.js';

/** dig @server from the host, or from inside `ns`: the status and the answers' data. */
async function ask(server: string, name: string, ns?: string, ...extra: string[]): Promise<{ status: string; answers: string[] }> {
  const args = ['dig', `@${server}`, '+tries=1', '+time=2', ...extra, name];
  const r = ns === undefined ? await execa(args[0], args.slice(1), { reject: false }) : await execa('ip', ['netns', 'exec', ns, ...args], { reject: false });
  const status = /status: (\w+)/.exec(r.stdout)?.[1] ?? 'NO ANSWER';
  const answers = (/;; ANSWER SECTION:\n([\s\S]*?)(?:\n\n|$)/.exec(r.stdout)?.[1] ?? '').split('\n').filter((l) => l && !l.startsWith(';')).map((l) => l.split(/\s+/).slice(4).join(' '));
  return { status, answers };
}

describe('host DNS at the gateways (--host-dns)', { skip: needsRoot }, () => {
  const lab = new Lab();
  const [netA, netB, netC] = ['a', 'b', 'c'].map((x) => `hd${lab.tag}${x}`);
  const [gwA, gwB, gwC] = ['10.239.0.1', '10.239.1.1', '10.239.2.1'];
  let upstream: FakeUpstream;
  let dir: string;
  let calls: string;
  const saved = { PATH: process.env.PATH, LOG: process.env.NSDNS_RESOLVECTL_LOG };
  const recorded = () => (existsSync(calls) ? readFileSync(calls, 'utf8').split('\n').filter(Boolean) : []);
  const bridgeOf = async (net: string) => (JSON.parse(await lab.ok('network', 'inspect', net))[0].Options as Record<string, string>)['com.docker.network.bridge.name'];
  let a1: string, a2: string, b1: string;

  before(async () => {
    upstream = await FakeUpstream.start({ zone: { 'www.example.test': ['192.0.2.80'] } });
    dir = mkdtempSync(path.join(tmpdir(), 'nsdns-hostdns-'));
    calls = path.join(dir, 'resolvectl-calls');
    // The daemon is spawned with this process's environment: the stand-in resolvectl comes first.
    process.env.PATH = `${path.join(ROOT, 'fixtures/host-dns/bin')}:${process.env.PATH}`;
    process.env.NSDNS_RESOLVECTL_LOG = calls;
    try {
      await lab.start(['--upstream', upstream.spec, '--no-resolv-conf', '--host-dns']);
    } finally {
      process.env.PATH = saved.PATH;
      if (saved.LOG === undefined) delete process.env.NSDNS_RESOLVECTL_LOG;
      else process.env.NSDNS_RESOLVECTL_LOG = saved.LOG;
    }
    await lab.ok('network', 'create', netA, '--subnet', '10.239.0.0/24', '--domain', `${netA}.test`);
    await lab.ok('network', 'create', netB, '--subnet', '10.239.1.0/24');
    await lab.ok('network', 'create', netC, '--subnet', '10.239.2.0/24', '--internal');
    [a1, a2, b1] = [await lab.namespace('a1'), await lab.namespace('a2'), await lab.namespace('b1')];
    await lab.ok('network', 'connect', netA, a1, '--name', 'web');
    await lab.ok('network', 'connect', netA, a2, '--name', 'client');
    await lab.ok('network', 'connect', netB, b1, '--name', 'db');
  });
  after(async () => {
    await lab.cleanup();
    await upstream?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the host resolves a network\'s names at its gateway, over UDP and TCP, under every zone', async () => {
    const web = await until('the gateway answers', () => ask(gwA, `web.${netA}`), (r) => r.answers.length > 0);
    assert.deepEqual(web, { status: 'NOERROR', answers: ['10.239.0.2'] });
    assert.deepEqual((await ask(gwA, `web.${netA}.test`, undefined, '+tcp')).answers, ['10.239.0.2']);
    assert.deepEqual((await ask(gwB, `db.${netB}`)).answers, ['10.239.1.2']);
    assert.deepEqual((await ask(gwA, `db.${netB}`)).answers, [], 'another network\'s names are not at this gateway');
  });

  it('a namespace on the network is answered at its gateway; one on another network gets REFUSED', async () => {
    assert.deepEqual(await ask(gwA, `web.${netA}`, a2), { status: 'NOERROR', answers: ['10.239.0.2'] });
    assert.deepEqual(await ask(gwA, `web.${netA}`, a2, '+tcp'), { status: 'NOERROR', answers: ['10.239.0.2'] });
    const other = await ask(gwA, `web.${netA}`, b1);
    assert.equal(other.status, 'REFUSED', 'network B reaches A\'s gateway through the host, but may not read A\'s names');
    assert.deepEqual(other.answers, []);
    assert.equal((await ask(gwA, `web.${netA}`, b1, '+tcp')).status, 'REFUSED');
    assert.deepEqual((await ask(gwB, `db.${netB}`, b1)).answers, ['10.239.1.2'], 'its own gateway answers it');
  });

  it('forwards outside names at a network\'s gateway, nothing at an internal network\'s', async () => {
    assert.deepEqual((await ask(gwA, 'www.example.test')).answers, ['192.0.2.80']);
    const before = upstream.received.length;
    const internal = await until('the internal network\'s gateway answers', () => ask(gwC, 'www.example.test'), (r) => r.status !== 'NO ANSWER');
    assert.equal(internal.status, 'REFUSED');
    assert.equal(upstream.received.length, before, 'nothing was asked upstream');
  });

  it('registers each bridge with systemd-resolved (resolvectl dns and domain)', async () => {
    const bridgeA = await bridgeOf(netA);
    const bridgeC = await bridgeOf(netC);
    const lines = await until('resolvectl told of the domain', async () => recorded(), (l) => l.includes(`domain ${bridgeC} ~${netC}`));
    assert.ok(lines.includes('status'), 'it asked whether systemd-resolved runs');
    assert.ok(lines.includes(`dns ${bridgeA} ${gwA}`), lines.join('\n'));
    assert.ok(lines.includes(`domain ${bridgeA} ~${netA} ~${netA}.test`), lines.join('\n'));
    assert.ok(lines.includes(`dns ${bridgeC} ${gwC}`), lines.join('\n'));
  });

  it('nsdns host-dns prints the dnsmasq lines for every network', async () => {
    const text = await lab.ok('host-dns');
    assert.match(text, new RegExp(`^server=/${netA}/${gwA.replace(/\./g, '\\.')}$`, 'm'));
    assert.match(text, new RegExp(`^server=/${netA}\\.test/${gwA.replace(/\./g, '\\.')}$`, 'm'));
    assert.match(text, new RegExp(`^server=/0\\.239\\.10\\.in-addr\\.arpa/${gwA.replace(/\./g, '\\.')}$`, 'm'));
    assert.match(text, new RegExp(`^server=/${netC}/${gwC.replace(/\./g, '\\.')}$`, 'm'));
    const json = JSON.parse(await lab.ok('host-dns', '--format', 'json')) as { networks: Array<{ name: string; gateways: string[]; internal: boolean }> };
    assert.deepEqual(json.networks.filter((n) => n.name.startsWith(`hd${lab.tag}`)).map((n) => [n.name, n.gateways, n.internal]), [[netA, [gwA], false], [netB, [gwB], false], [netC, [gwC], true]]);
  });

  it('a removed network\'s gateway listener and registration go with it', async () => {
    const bridgeC = await bridgeOf(netC);
    await lab.ok('network', 'rm', netC);
    const lines = await until('resolvectl told to revert', async () => recorded(), (l) => l.includes(`revert ${bridgeC}`));
    assert.ok(lines.includes(`revert ${bridgeC}`), lines.join('\n'));
    await lab.daemon!.waitForLog((l) => l.msg === 'gateway listener closed' && l.network === netC);
    // Read back from the kernel (no query: with the bridge gone that address would be routed off the host).
    const sockets = await execa('ss', ['-H', '-nlu', 'src', gwC], { reject: false });
    assert.equal(sockets.stdout.trim(), '', 'no socket on the removed network\'s gateway');
    assert.match((await execa('ss', ['-H', '-nlu', 'src', gwA])).stdout, /:53\b/, 'the other gateways still listen');
  });
});
