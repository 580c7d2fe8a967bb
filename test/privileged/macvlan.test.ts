// macvlan networks against the kernel: a veth stands for the LAN (its host end is the parent, its
// other end sits in a "lan" namespace holding the gateway 192.168.126.1). Endpoints get a macvlan
// link of the parent inside their namespace, read back with `ip -d link`; names answer at
// 127.0.0.11 as on bridges; the refusals leave nothing behind; a restart keeps the endpoints; a
// parent deleted under a running network is reported, not repaired in a loop. Subnets
// 192.168.126.0/24 and 10.126.7.0/24, this Lab's links.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { Lab, needsRoot, sh } from '../helpers/netns.js';

interface KernelLink { ifname: string; flags: string[]; link_index?: number; linkinfo?: { info_kind?: string; info_data?: { mode?: string } }; addr_info?: Array<{ local: string; prefixlen: number; family: string }> }

async function linkIn(ns: string, ifname: string): Promise<KernelLink | undefined> {
  const r = await execa('ip', ['-n', ns, '-j', '-d', 'addr', 'show', 'dev', ifname], { reject: false });
  return r.exitCode === 0 ? (JSON.parse(r.stdout) as KernelLink[])[0] : undefined;
}

async function pings(from: string, to: string): Promise<boolean> {
  return (await execa('ip', ['netns', 'exec', from, 'ping', '-c', '1', '-W', '2', to], { reject: false })).exitCode === 0;
}

async function ifindex(name: string): Promise<number> {
  return (JSON.parse(await sh('ip', '-j', 'link', 'show', 'dev', name)) as Array<{ ifindex: number }>)[0].ifindex;
}

describe('macvlan networks', { skip: needsRoot }, () => {
  const lab = new Lab();
  const parent = `${lab.linkPrefix}lan`;
  const net = `mv${lab.tag}`;
  let lan: string;

  /** A "LAN": `hostEnd` up on the host (no address), its peer in a new namespace with `gateway`/24. */
  async function makeLan(name: string, hostEnd: string, gateway: string): Promise<string> {
    const ns = await lab.namespace(name);
    lab.extraLinks.push(hostEnd);
    await sh('ip', 'link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    await sh('ip', 'link', 'set', hostEnd, 'up');
    await sh('ip', '-n', ns, 'addr', 'add', `${gateway}/24`, 'dev', 'eth0');
    await sh('ip', '-n', ns, 'link', 'set', 'eth0', 'up');
    return ns;
  }

  before(async () => {
    await lab.start();
    lan = await makeLan('lan', parent, '192.168.126.1');
  });
  after(() => lab.cleanup());

  it('create: stored with driver macvlan, mode bridge and its parent; no bridge is made', async () => {
    const before = await lab.links();
    const id = (await lab.ok('network', 'create', '--driver', 'macvlan', '--subnet', '192.168.126.0/24', '--gateway', '192.168.126.1',
      '--ip-range', '192.168.126.64/26', '--aux-address', 'printer=192.168.126.64', '-o', `parent=${parent}`, net)).trim();
    assert.match(id, /^[0-9a-f]{64}$/);
    assert.deepEqual(await lab.links(), before, 'no link on the host');
    const rules = await execa('nft', ['list', 'table', 'inet', lab.nftTable], { reject: false });
    assert.doesNotMatch(rules.stdout, new RegExp(`${parent}|192\\.168\\.126`), 'no firewall rules for it');
    const [inspect] = JSON.parse(await lab.ok('network', 'inspect', net));
    assert.equal(inspect.Driver, 'macvlan');
    assert.equal(inspect.Options.parent, parent);
    assert.equal(inspect.Options.macvlan_mode, 'bridge');
    assert.deepEqual(inspect.IPAM.Config, [{ Subnet: '192.168.126.0/24', Gateway: '192.168.126.1', IPRange: '192.168.126.64/26', AuxiliaryAddresses: { printer: '192.168.126.64' } }]);
    const row = (await lab.ok('network', 'ls')).split('\n').find((l) => l.split(/\s+/)[1] === net)!;
    assert.match(row, new RegExp(`^\\w+\\s+${net}\\s+macvlan\\s+192\\.168\\.126\\.0/24\\s+false\\s+0\\s+-\\s+${parent}\\s+nsdns$`));
  });

  it('connect: a macvlan link of the parent in the namespace, its address from the range (not the aux address), the default route via the gateway', async () => {
    const [a, b] = [await lab.namespace('a'), await lab.namespace('b')];
    await lab.ok('network', 'connect', net, a, '--name', 'web', '--alias', 'www', '--service', 'http:8080', '--label', 'tier=front');
    await lab.ok('network', 'connect', net, b, '--name', 'db');
    const link = (await linkIn(a, 'eth0'))!;
    assert.equal(link.linkinfo?.info_kind, 'macvlan');
    assert.equal(link.linkinfo?.info_data?.mode, 'bridge');
    assert.equal(link.link_index, await ifindex(parent), 'the parent is the LAN veth');
    assert.ok(link.flags.includes('UP'));
    assert.deepEqual(link.addr_info!.filter((x) => x.family === 'inet').map((x) => `${x.local}/${x.prefixlen}`), ['192.168.126.65/24']);
    assert.deepEqual(((await linkIn(b, 'eth0'))!.addr_info ?? []).filter((x) => x.family === 'inet').map((x) => x.local), ['192.168.126.66']);
    const routes = JSON.parse(await sh('ip', '-n', a, '-j', 'route', 'show', 'default')) as Array<{ gateway: string; dev: string }>;
    assert.deepEqual(routes.map((r) => [r.gateway, r.dev]), [['192.168.126.1', 'eth0']]);
    assert.ok(await pings(a, '192.168.126.1'), 'the LAN answers');
    assert.ok(await pings(lan, '192.168.126.66'), 'the endpoint is on the LAN');
    assert.ok(await pings(a, '192.168.126.66'), 'two endpoints reach each other');
    const aux = await lab.nsdns('network', 'connect', net, await lab.namespace('aux'), '--ip', '192.168.126.64');
    assert.equal(aux.exitCode, 1);
    assert.match(aux.stderr, /--ip 192\.168\.126\.64 is the auxiliary address "printer" of network "mv\w+"; give another address/);
  });

  it('a health probe of a macvlan endpoint says the host cannot reach it, instead of timing out', async () => {
    await lab.ok('network', 'connect', net, await lab.namespace('hc'), '--name', 'checked', '--health', 'tcp:80');
    const line = await lab.daemon!.waitForLog((l) => /endpoint "checked" on network "mv\w+" \(state\) is not probed/.test(l.msg));
    assert.match(line.msg, /a macvlan endpoint cannot be reached from its own host through the parent interface t\w+lan \(as in Docker\), so the host cannot probe it$/);
    await lab.ok('network', 'disconnect', net, 'checked');
  });

  it('names, aliases, PTR, SRV and TXT answer at 127.0.0.11 as on a bridge, and glibc finds them', async () => {
    const [a, b] = [`ns${lab.tag}-a`, `ns${lab.tag}-b`];
    assert.deepEqual(await lab.dig(b, 'web'), ['192.168.126.65']);
    assert.deepEqual(await lab.dig(b, `www.${net}`), ['192.168.126.65']);
    assert.deepEqual(await lab.dig(a, 'db'), ['192.168.126.66']);
    assert.deepEqual(await lab.dig(a, '-x', '192.168.126.66'), [`db.${net}.`]);
    assert.deepEqual(await lab.dig(b, 'SRV', '_http._tcp.web'), [`0 0 8080 web.${net}.`]);
    assert.deepEqual(await lab.dig(b, 'TXT', 'web'), ['"tier=front"']);
    assert.equal(await lab.digStatus(b, `nosuch.${net}`), 'NXDOMAIN');
    assert.equal(await lab.getent(b, 'www'), '192.168.126.65');
  });

  it('refuses --publish, a missing or down parent, a parent shared in another mode and a bridge port, leaving nothing behind', async () => {
    const ns = await lab.namespace('pub');
    const publish = await lab.nsdns('network', 'connect', net, ns, '--publish', '16001:80');
    assert.equal(publish.exitCode, 1);
    assert.match(publish.stderr, /--publish: network "mv\w+" is a macvlan network; its endpoints are reached at their own address on the LAN, so nothing is published/);
    assert.equal(await linkIn(ns, 'eth0'), undefined);
    const down = `${lab.linkPrefix}dwn`;
    lab.extraLinks.push(down);
    await sh('ip', 'link', 'add', down, 'type', 'veth', 'peer', 'name', `${down}p`);
    const port = `${lab.linkPrefix}prt`;
    lab.extraLinks.push(port, `${lab.linkPrefix}brx`);
    await sh('ip', 'link', 'add', port, 'type', 'veth', 'peer', 'name', `${port}p`);
    await sh('ip', 'link', 'add', `${lab.linkPrefix}brx`, 'type', 'bridge');
    await sh('ip', 'link', 'set', port, 'master', `${lab.linkPrefix}brx`, 'up');
    const before = await lab.ok('network', 'ls', '-q');
    for (const [opts, message] of [
      [['-o', `parent=${lab.linkPrefix}none`], /parent interface t\w+none does not exist on the host/],
      [['-o', `parent=${down}`], /parent interface t\w+dwn is down; set it up first/],
      [['-o', `parent=${parent}`, '-o', 'macvlan_mode=private'], /parent interface t\w+lan already carries macvlan network "mv\w+" in mode bridge; a macvlan network in mode private cannot share it/],
      [['-o', `parent=${port}`], /parent interface t\w+prt is a port of t\w+brx/],
      [['-o', `parent=${parent}`, '-o', 'macvlan_mode=loud'], /-o macvlan_mode="loud" is not a macvlan mode \(bridge, private, vepa, passthru\)/],
      [[], /a macvlan network needs its parent interface: -o parent=IFACE/],
    ] as const) {
      const r = await lab.nsdns('network', 'create', '--driver', 'macvlan', '--subnet', '10.126.7.0/24', ...opts, `bad${lab.tag}`);
      assert.equal(r.exitCode, 1, opts.join(' '));
      assert.match(r.stderr, message, opts.join(' '));
    }
    assert.equal(await lab.ok('network', 'ls', '-q'), before, 'no network was made');
  });

  it('ipvlan: created where the kernel has it, else a clear error', async (t) => {
    const ipvParent = `${lab.linkPrefix}ipv`;
    await makeLan('ipvlan', ipvParent, '10.126.8.1');
    const r = await lab.nsdns('network', 'create', '--driver', 'ipvlan', '--subnet', '10.126.8.0/24', '-o', `parent=${ipvParent}`, '-o', 'ipvlan_mode=l2', `ipv${lab.tag}`);
    if (r.exitCode === 1 && /ipvlan is not available in this kernel/.test(r.stderr)) {
      assert.doesNotMatch(await lab.ok('network', 'ls', '-q'), new RegExp(`ipv${lab.tag}`));
      assert.doesNotMatch(await sh('ip', '-o', 'link', 'show'), /nsprobe/, 'the probe link is gone');
      t.skip('this kernel has no ipvlan: the error said so');
      return;
    }
    assert.equal(r.exitCode, 0, r.stderr);
    const ns = await lab.namespace('ipv');
    await lab.ok('network', 'connect', `ipv${lab.tag}`, ns, '--name', 'ipv');
    assert.equal((await linkIn(ns, 'eth0'))?.linkinfo?.info_kind, 'ipvlan');
    assert.deepEqual(await lab.dig(ns, 'ipv'), ['10.126.8.2']);
    assert.ok(await pings(ns, '10.126.8.1'));
    await lab.ok('network', 'rm', '--disconnect', `ipv${lab.tag}`);
  });

  it('a daemon restart keeps the endpoints and reconciles their links (one set down meanwhile comes up); names still answer', async () => {
    const a = `ns${lab.tag}-a`;
    await lab.daemon!.stop();
    await sh('ip', '-n', a, 'link', 'set', 'eth0', 'down');
    const daemon = await lab.start();
    assert.ok(daemon.logs.some((l) => /endpoint "web" of macvlan network "mv\w+": set eth0 up again/.test(l.msg)), 'the link set down while stopped was reconciled');
    assert.equal((await linkIn(a, 'eth0'))?.linkinfo?.info_kind, 'macvlan');
    assert.ok((await linkIn(a, 'eth0'))!.flags.includes('UP'));
    const routes = JSON.parse(await sh('ip', '-n', a, '-j', 'route', 'show', 'default')) as Array<{ gateway: string; dev: string }>;
    assert.deepEqual(routes.map((r) => [r.gateway, r.dev]), [['192.168.126.1', 'eth0']], 'the default route the kernel dropped with the link is back');
    assert.deepEqual(await lab.dig(a, 'db'), ['192.168.126.66']);
    const [inspect] = JSON.parse(await lab.ok('network', 'inspect', net));
    assert.deepEqual(Object.values(inspect.Containers as Record<string, { Name: string }>).map((c) => c.Name).sort(), ['db', 'web']);
    assert.equal((await lab.nsdns('status')).exitCode, 0);
    assert.ok(!daemon.logs.some((l) => /removed|gone/.test(l.msg)), 'nothing was dropped or reported gone');
    assert.ok(await pings(a, '192.168.126.1'));
  });

  it('a connect the daemon was killed in (its note left) is rolled back at the next start: link, state and name go', async () => {
    const cut = await lab.namespace('cut');
    await lab.ok('network', 'connect', net, cut, '--name', 'cut');
    const [inspect] = JSON.parse(await lab.ok('network', 'inspect', net));
    const id = Object.entries(inspect.Containers as Record<string, { Name: string }>).find(([, e]) => e.Name === 'cut')![0];
    await lab.daemon!.stop();
    // As a daemon killed before it answered leaves it: the endpoint saved, its note still there.
    writeFileSync(`${lab.state}/pending/${id}.json`, JSON.stringify({ endpointId: id, network: net, ifname: 'eth0', netns: `/run/netns/${cut}` }));
    const daemon = await lab.start();
    await daemon.waitForLog((l) => /rolled back the connect of "cut" to network "mv\w+": the daemon stopped before it finished/.test(l.msg));
    assert.equal(await linkIn(cut, 'eth0'), undefined, 'its macvlan link is gone');
    assert.deepEqual(await lab.dig(`ns${lab.tag}-a`, 'cut'), []);
    await lab.ok('network', 'connect', net, cut, '--name', 'cut');
    assert.equal((await linkIn(cut, 'eth0'))?.linkinfo?.info_kind, 'macvlan', 'the same connect then succeeds');
    await lab.ok('network', 'disconnect', net, 'cut');
  });

  it('disconnect removes the link from the namespace; network rm removes the network', async () => {
    const [a, b] = [`ns${lab.tag}-a`, `ns${lab.tag}-b`];
    await lab.ok('network', 'disconnect', net, b);
    assert.equal(await linkIn(b, 'eth0'), undefined);
    assert.deepEqual(await lab.dig(a, 'db'), []);
    const busy = await lab.nsdns('network', 'rm', net);
    assert.equal(busy.exitCode, 1);
    assert.equal((await lab.ok('network', 'rm', '--disconnect', net)).trim(), net);
    assert.equal(await linkIn(a, 'eth0'), undefined);
    assert.ok(await linkIn(lan, 'eth0'), 'the LAN is left as it was');
  });

  it('a parent set down or deleted under a running network is reported truthfully (status too), and not repaired', async () => {
    const lan2 = `${lab.linkPrefix}ln2`;
    await makeLan('lan2', lan2, '10.126.9.1');
    const daemon = lab.daemon!;
    await lab.ok('network', 'create', '--driver', 'macvlan', '--subnet', '10.126.9.0/24', '-o', `parent=${lan2}`, `gone${lab.tag}`);
    const c = await lab.namespace('c');
    await lab.ok('network', 'connect', `gone${lab.tag}`, c, '--name', 'orphan');
    await sh('ip', 'link', 'set', lan2, 'down');
    await daemon.waitForLog((l) => /parent interface t\w+ln2 of macvlan network "gone\w+" is down; its 1 endpoint\(s\) are cut off from the LAN until it is up/.test(l.msg), 30_000);
    assert.equal((await sh('ip', '-j', 'link', 'show', 'dev', lan2)).includes('"UP"'), false, 'the parent is the user\'s: not set up by nsdns');
    await sh('ip', 'link', 'del', lan2);
    const line = await daemon.waitForLog((l) => /parent interface t\w+ln2 of macvlan network "gone\w+" is gone/.test(l.msg), 30_000);
    assert.match(line.msg, /its 1 endpoint\(s\) have no macvlan link/);
    assert.equal(await linkIn(c, 'eth0'), undefined, 'the kernel took the link with its parent');
    const status = await lab.nsdns('status');
    assert.match(status.stdout + status.stderr, /parent interface t\w+ln2 of macvlan network "gone\w+" is gone/);
  });
});
