// Egress by name for a registry file's namespaces (issue 22): the user made the veths, nsdns finds
// their host ends and enforces the policy as for its own links. One namespace on a test bridge,
// one routed (no bridge: a host route to its subnet), one routed with an IPv6 address only, one
// whose veth's peer is in another namespace (no host end: not enforced, and `network inspect` says
// why). A policy on macvlan through the CLI is refused: its traffic bypasses the host's firewall.
// The "outside" is a namespace routed through the host with a TCP server (IPv4 and IPv6); the
// upstream is a fake on loopback answering with its addresses.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { execa, type ResultPromise } from 'execa';
import { FakeUpstream } from '../helpers/fake-upstream.js';
import { Lab, needsRoot, sh } from '../helpers/netns.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

// A TCP server on every address of the namespace, IPv4 and IPv6: each connection is told "hello".
const SERVER = `require('net').createServer((s) => s.end('hello\\n')).listen(+process.argv[1], '::', () => console.log('up'));`;
// One connect, from a given source address if one is given: "hello", an error code, or "timeout".
const CLIENT = `const [host, port, localAddress] = process.argv.slice(1); const s = require('net').connect({ host, port: +port, ...(localAddress && { localAddress }) });
const done = (t) => { console.log(t); process.exit(0); }; setTimeout(() => done('timeout'), 1500); s.on('data', (d) => done(String(d).trim())); s.on('error', (e) => done(e.code));`;
const PORT = '16731';

describe('egress by name, a registry file\'s namespaces', { skip: needsRoot }, () => {
  const lab = new Lab();
  const dir = tempDir('nsdns-egress-registry-');
  const policies = tempDir('nsdns-egress-registry-policy-');
  const link = (what: string) => {
    const name = `rg${lab.tag.slice(0, 3)}${what}`;
    lab.extraLinks.push(name);
    return name;
  };
  const [bridgeNet, routedNet, routed6Net, lostNet] = ['b', 'r', '6', 'l'].map((n) => `rg${n}${lab.tag}`);
  let upstream: FakeUpstream;
  let bridged = '', routed = '', routed6 = '', lost = '';
  let routed6End = '';
  let server: ResultPromise | undefined;

  const connect = async (ns: string, host: string, source?: string) =>
    (await execa('ip', ['netns', 'exec', ns, process.execPath, '-e', CLIENT, host, PORT, ...(source ? [source] : [])], { timeout: 10_000 })).stdout.trim();
  const ifsMap = async () => (await execa('nft', ['list', 'map', 'inet', `${lab.nftTable}_egress`, 'ifs'], { reject: false })).stdout;
  const endpointOf = async (network: string) => {
    const [inspect] = JSON.parse(await lab.ok('network', 'inspect', network));
    return (Object.values(inspect.Containers) as Array<{ EgressEnforced?: object; EgressNotEnforced?: string }>)[0];
  };
  const file = (network: string, subnet: string, address: string, ns: string) => dir.write(`${network}.yaml`, [
    `name: ${network}`, `subnets: [{subnet: ${subnet}.0/24, gateway: ${subnet}.1}]`, 'endpoints:',
    `  - {name: job, ipv4: ${address}, netns: /run/netns/${ns}, egress: [allowed.test]}`, ''].join('\n'));

  before(async () => {
    upstream = await FakeUpstream.start({
      ttl: 2, zone: { 'allowed.test': ['10.74.10.3'], 'denied.test': ['10.74.10.4'] }, zone6: { 'allowed.test': ['fd00:86:10::3'], 'denied.test': ['fd00:86:10::4'] },
    });
    const outside = await lab.outsideHost('out', '10.74.9.1', '10.74.9.2');
    const outsideEnd = `${lab.linkPrefix}out`;
    await sh('ip', '-n', outside, 'route', 'add', 'default', 'via', '10.74.9.1');
    for (const a of ['10.74.10.3/32', '10.74.10.4/32']) await sh('ip', '-n', outside, 'addr', 'add', a, 'dev', 'lo');
    await sh('ip', 'route', 'add', '10.74.10.0/24', 'via', '10.74.9.2');
    // The same outside over IPv6 (without DAD, so the addresses are usable at once).
    await sh('ip', 'addr', 'add', 'fd00:86:9::1/64', 'dev', outsideEnd, 'nodad');
    await sh('ip', '-n', outside, 'addr', 'add', 'fd00:86:9::2/64', 'dev', 'eth0', 'nodad');
    await sh('ip', '-n', outside, '-6', 'route', 'add', 'default', 'via', 'fd00:86:9::1');
    for (const a of ['fd00:86:10::3/128', 'fd00:86:10::4/128']) await sh('ip', '-n', outside, 'addr', 'add', a, 'dev', 'lo');
    await sh('ip', '-6', 'route', 'add', 'fd00:86:10::/64', 'via', 'fd00:86:9::2');
    server = execa('ip', ['netns', 'exec', outside, process.execPath, '-e', SERVER, PORT]);
    server.catch(() => {});
    await new Promise<void>((resolve, reject) => { server!.stdout!.once('data', () => resolve()); server!.once('exit', () => reject(new Error('the outside server did not start'))); });

    // On a bridge whose address is the network's gateway, as a user of registry files sets it up.
    bridged = await lab.namespace('bridged');
    const bridge = link('br');
    const bridgedEnd = link('b');
    await sh('ip', 'link', 'add', bridge, 'type', 'bridge');
    await sh('ip', 'addr', 'add', '10.74.1.1/24', 'dev', bridge);
    await sh('ip', 'link', 'set', bridge, 'up');
    await sh('ip', 'link', 'add', bridgedEnd, 'master', bridge, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', bridged);
    await sh('ip', 'link', 'set', bridgedEnd, 'up');
    await sh('ip', '-n', bridged, 'addr', 'add', '10.74.1.2/24', 'dev', 'eth0');
    await sh('ip', '-n', bridged, 'link', 'set', 'eth0', 'up');
    await sh('ip', '-n', bridged, 'route', 'add', 'default', 'via', '10.74.1.1');

    // Routed: the gateway on the host end, and the whole subnet routed to it (so a reply to a
    // spoofed source of the subnet would find its way back).
    routed = await lab.namespace('routed');
    const routedEnd = link('r');
    await sh('ip', 'link', 'add', routedEnd, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', routed);
    await sh('ip', 'addr', 'add', '10.75.1.1/32', 'dev', routedEnd);
    await sh('ip', 'link', 'set', routedEnd, 'up');
    await sh('ip', 'route', 'add', '10.75.1.0/24', 'dev', routedEnd);
    await sh('ip', '-n', routed, 'addr', 'add', '10.75.1.2/24', 'dev', 'eth0');
    await sh('ip', '-n', routed, 'link', 'set', 'eth0', 'up');
    await sh('ip', '-n', routed, 'route', 'add', 'default', 'via', '10.75.1.1');

    // Routed the same way, with an IPv6 address only.
    routed6 = await lab.namespace('routed6');
    routed6End = link('6');
    await sh('ip', 'link', 'add', routed6End, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', routed6);
    await sh('ip', 'addr', 'add', 'fd00:86:1::1/128', 'dev', routed6End, 'nodad');
    await sh('ip', 'link', 'set', routed6End, 'up');
    await sh('ip', '-6', 'route', 'add', 'fd00:86:1::/64', 'dev', routed6End);
    await sh('ip', '-n', routed6, 'addr', 'add', 'fd00:86:1::2/64', 'dev', 'eth0', 'nodad');
    await sh('ip', '-n', routed6, 'link', 'set', 'eth0', 'up');
    await sh('ip', '-n', routed6, '-6', 'route', 'add', 'default', 'via', 'fd00:86:1::1');
    // The host's IPv6 forwarding stays as it is: it is turned on for these two links only
    // (force_forwarding, Linux 6.17+; the setting goes with the links).
    for (const end of [outsideEnd, routed6End]) await execa('sysctl', ['-qw', `net.ipv6.conf.${end}.force_forwarding=1`], { reject: false });

    // Its veth's peer is in another namespace, not the host's: nothing to enforce on.
    lost = await lab.namespace('lost');
    const far = await lab.namespace('far');
    await sh('ip', '-n', lost, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', far);
    await sh('ip', '-n', lost, 'addr', 'add', '10.76.1.2/24', 'dev', 'eth0');
    await sh('ip', '-n', lost, 'link', 'set', 'eth0', 'up');

    file(bridgeNet, '10.74.1', '10.74.1.2', bridged);
    file(routedNet, '10.75.1', '10.75.1.2', routed);
    dir.write(`${routed6Net}.yaml`, [
      `name: ${routed6Net}`, 'subnets: [{subnet: "fd00:86:1::/64", gateway: "fd00:86:1::1"}]', 'endpoints:',
      `  - {name: job, ipv6: "fd00:86:1::2", netns: /run/netns/${routed6}, egress: [allowed.test]}`, ''].join('\n'));
    file(lostNet, '10.76.1', '10.76.1.2', lost);
    await lab.start(['--upstream', upstream.spec, '--no-resolv-conf', '--registry', dir.dir]);
  });
  after(async () => {
    server?.kill();
    await lab.cleanup();
    await execa('ip', ['route', 'del', '10.74.10.0/24'], { reject: false });
    await execa('ip', ['-6', 'route', 'del', 'fd00:86:10::/64'], { reject: false });
    await upstream?.stop();
    dir.cleanup();
    policies.cleanup();
  });

  it('on a bridge: the allowed name\'s address connects after the lookup, a literal address does not, a denied name is NXDOMAIN', async () => {
    assert.equal(await connect(bridged, '10.74.10.3'), 'timeout', 'not answered yet');
    assert.deepEqual(await lab.dig(bridged, 'allowed.test'), ['10.74.10.3']);
    assert.equal(await connect(bridged, '10.74.10.3'), 'hello');
    assert.equal(await connect(bridged, '10.74.10.4'), 'timeout', 'a literal address never answered');
    assert.equal(await lab.digStatus(bridged, 'denied.test'), 'NXDOMAIN');
    assert.ok((await endpointOf(bridgeNet)).EgressEnforced, 'inspect shows the live figures');
  });

  it('routed, no bridge: the same; a source address that is not its own does not get out', async () => {
    assert.equal(await connect(routed, '10.74.10.3'), 'timeout', 'not answered yet');
    assert.deepEqual(await lab.dig(routed, 'allowed.test'), ['10.74.10.3']);
    assert.equal(await connect(routed, '10.74.10.3'), 'hello');
    assert.equal(await connect(routed, '10.74.10.4'), 'timeout', 'a literal address never answered');
    assert.equal(await lab.digStatus(routed, 'denied.test'), 'NXDOMAIN');
    // An address of its subnet nobody governs: the host routes replies to it back, so only the
    // anti-spoofing on the host end stops it.
    await sh('ip', '-n', routed, 'addr', 'add', '10.75.1.50/24', 'dev', 'eth0');
    assert.equal(await connect(routed, '10.74.10.4', '10.75.1.50'), 'timeout', 'spoofed source, an address never answered');
    assert.equal(await connect(routed, '10.74.10.3', '10.75.1.50'), 'timeout', 'spoofed source, an answered address');
    assert.equal(await connect(routed, '10.74.10.3'), 'hello', 'its own address still gets out');
    assert.ok((await endpointOf(routedNet)).EgressEnforced, 'inspect shows the live figures');
  });

  /** A new veth `end` into the routed namespace, without addresses or routes. */
  async function routedVeth(end: string): Promise<void> {
    await sh('ip', 'link', 'add', end, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', routed);
    await sh('ip', 'link', 'set', end, 'up');
    await sh('ip', '-n', routed, 'link', 'set', 'eth0', 'up');
  }

  /** The routed namespace's addresses (its own and one to spoof) and routes, through the host end `end`. */
  async function routedAddresses(end: string): Promise<void> {
    await sh('ip', 'addr', 'add', '10.75.1.1/32', 'dev', end);
    // The old host end may live on while nsdns still holds a socket in the old namespace.
    await sh('ip', 'route', 'replace', '10.75.1.0/24', 'dev', end);
    await sh('ip', '-n', routed, 'addr', 'add', '10.75.1.2/24', 'dev', 'eth0');
    await sh('ip', '-n', routed, 'addr', 'add', '10.75.1.50/24', 'dev', 'eth0');
    await sh('ip', '-n', routed, 'route', 'add', 'default', 'via', '10.75.1.1');
  }

  /** The new host end `end` is governed: found, spoof-proof, and the policy holds. */
  async function governedThrough(end: string): Promise<void> {
    // Within two reaper rounds and a retry (a round that looked mid-setup waits 5 s to look again).
    await until('the new host end governed', ifsMap, (text) => text.includes(`"${end}"`), 30_000);
    assert.equal(await connect(routed, '10.74.10.4'), 'timeout', 'a literal address never answered');
    assert.deepEqual(await lab.dig(routed, 'allowed.test'), ['10.74.10.3']);
    assert.equal(await connect(routed, '10.74.10.3', '10.75.1.50'), 'timeout', 'spoofed source');
    assert.equal(await connect(routed, '10.74.10.3'), 'hello');
  }

  it('routed, its namespace made again with a new veth: the new host end is found without a registry change', async () => {
    const newEnd = link('s');
    await sh('ip', 'netns', 'del', routed);
    await sh('ip', 'netns', 'add', routed);
    await sh('ip', '-n', routed, 'link', 'set', 'lo', 'up');
    await routedVeth(newEnd);
    await routedAddresses(newEnd);
    await governedThrough(newEnd);
  });

  it('routed, its veth made again in the same namespace: the new host end is found without a registry change', async () => {
    const newerEnd = link('t');
    await sh('ip', 'link', 'del', `rg${lab.tag.slice(0, 3)}s`);
    await routedVeth(newerEnd);
    await routedAddresses(newerEnd);
    await governedThrough(newerEnd);
  });

  it('routed, its veth gone and made again without an address: the new veth guards it at once, and its host end is found once the address is there, without a registry change', async () => {
    const newestEnd = link('u');
    await sh('ip', 'link', 'del', `rg${lab.tag.slice(0, 3)}t`);
    await routedVeth(newestEnd);
    // No interface inside holds the address yet: the host's veth into the namespace guards it meanwhile.
    await until('the new veth governed before its address is there', ifsMap, (text) => text.includes(`"${newestEnd}"`), 30_000);
    const src4 = await sh('nft', 'list', 'map', 'inet', `${lab.nftTable}_egress`, 'src4');
    assert.match(src4, /10\.75\.1\.2 : jump eg_/, 'governed by its address too');
    await routedAddresses(newestEnd);
    await governedThrough(newestEnd);
  });

  it('routed, its address moved by root inside onto a veth whose peer is in another namespace, across a daemon restart: its veth still guards it, and a source that is not its own does not get out', async () => {
    const end = `rg${lab.tag.slice(0, 3)}u`;
    // What root in the namespace can do (the other namespace: one it makes with unshare -n).
    const cage = await lab.namespace('cage');
    await sh('ip', '-n', routed, 'addr', 'flush', 'dev', 'eth0');
    await sh('ip', '-n', routed, 'addr', 'add', '10.75.1.50/24', 'dev', 'eth0');
    await sh('ip', '-n', routed, 'route', 'replace', 'default', 'via', '10.75.1.1');
    await sh('ip', '-n', routed, 'link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1', 'netns', cage);
    await sh('ip', '-n', routed, 'addr', 'add', '10.75.1.2/32', 'dev', 'd0');
    await lab.daemon!.stop();
    await lab.start(['--upstream', upstream.spec, '--no-resolv-conf', '--registry', dir.dir]);
    assert.equal((await endpointOf(routedNet)).EgressNotEnforced, "its veth's peer is not in the host's namespace", 'its endpoint is not found by its address');
    // Guarded from the start (the veths into it are read with the first lookup).
    assert.equal(await connect(routed, '10.74.10.4', '10.75.1.50'), 'timeout', 'an address never answered, from a source not its own');
    assert.deepEqual(await lab.dig(routed, 'allowed.test'), ['10.74.10.3']);
    assert.equal(await connect(routed, '10.74.10.3', '10.75.1.50'), 'timeout', 'an answered address, from a source not its own');
    assert.ok((await ifsMap()).includes(`"${end}"`), 'its veth guards it');
    // The control: without a policy the same source gets out (what the veth guarding it stops above).
    dir.write(`${routedNet}.yaml`, [`name: ${routedNet}`, 'subnets: [{subnet: 10.75.1.0/24, gateway: 10.75.1.1}]', 'endpoints:',
      `  - {name: job, ipv4: 10.75.1.2, netns: /run/netns/${routed}}`, ''].join('\n'));
    await until('let go', ifsMap, (text) => !text.includes(`"${end}"`), 30_000);
    assert.equal(await connect(routed, '10.74.10.4', '10.75.1.50'), 'hello', 'ungoverned, a source not its own gets out');
    file(routedNet, '10.75.1', '10.75.1.2', routed);
    await until('governed again', ifsMap, (text) => text.includes(`"${end}"`), 30_000);
    assert.equal(await connect(routed, '10.74.10.4', '10.75.1.50'), 'timeout', 'guarded again');
    // Put back as it was.
    await sh('ip', '-n', routed, 'link', 'del', 'd0');
    await sh('ip', '-n', routed, 'addr', 'add', '10.75.1.2/24', 'dev', 'eth0');
    await sh('ip', '-n', routed, 'route', 'replace', 'default', 'via', '10.75.1.1', 'src', '10.75.1.2');
    // Let go and governed again, its learned addresses went with it: answered again first.
    assert.deepEqual(await lab.dig(routed, 'allowed.test'), ['10.74.10.3']);
    assert.equal(await connect(routed, '10.74.10.3'), 'hello', 'its own address gets out again');
  });

  it('routed, IPv6: the allowed name\'s AAAA connects after the lookup, a literal address does not; a source address that is not its own does not get out', async (t) => {
    if (!existsSync(`/proc/sys/net/ipv6/conf/${routed6End}/force_forwarding`)) return t.skip('IPv6 is not routed to the outside here (force_forwarding needs Linux 6.17)');
    assert.equal(await connect(routed6, 'fd00:86:10::3'), 'timeout', 'not answered yet');
    assert.deepEqual(await lab.dig(routed6, 'AAAA', 'allowed.test'), ['fd00:86:10::3']);
    assert.equal(await connect(routed6, 'fd00:86:10::3'), 'hello');
    assert.equal(await connect(routed6, 'fd00:86:10::4'), 'timeout', 'a literal address never answered');
    assert.equal(await lab.digStatus(routed6, 'AAAA', 'denied.test'), 'NXDOMAIN');
    // Another address of its subnet, which the host routes replies to: only the anti-spoofing on
    // the host end stops it. Deprecated (preferred_lft 0), so the namespace's own connections keep
    // its own address as their source, and this one is used only when asked for.
    await sh('ip', '-n', routed6, 'addr', 'add', 'fd00:86:1::50/64', 'dev', 'eth0', 'nodad', 'preferred_lft', '0');
    assert.equal(await connect(routed6, 'fd00:86:10::4', 'fd00:86:1::50'), 'timeout', 'spoofed source, an address never answered');
    assert.equal(await connect(routed6, 'fd00:86:10::3', 'fd00:86:1::50'), 'timeout', 'spoofed source, an answered address');
    assert.equal(await connect(routed6, 'fd00:86:10::3'), 'hello', 'its own address still gets out');
    assert.ok((await endpointOf(routed6Net)).EgressEnforced, 'inspect shows the live figures');
  });

  it('a namespace whose veth\'s peer is not on the host is shown as not enforced, with why, and said once in the log', async () => {
    const endpoint = await endpointOf(lostNet);
    assert.equal(endpoint.EgressEnforced, undefined);
    assert.equal(endpoint.EgressNotEnforced, "its veth's peer is not in the host's namespace");
    assert.equal(await lab.digStatus(lost, 'denied.test'), 'NXDOMAIN', 'its names are filtered all the same');
    // Its address still chooses its chain wherever its traffic passes the host: a namespace whose
    // link is not found (at a restart, a lookup that failed) is never left open.
    assert.match(await sh('nft', 'list', 'map', 'inet', `${lab.nftTable}_egress`, 'src4'), /10\.76\.1\.2 : jump eg_/);
    const warned = lab.daemon!.logs.filter((l) => l.msg.startsWith('egress policy not enforced') && l.netns === `/run/netns/${lost}`);
    assert.equal(warned.length, 1);
    assert.equal(warned[0].reason, endpoint.EgressNotEnforced);
  });

  it('is looked up again when the registry changes: a host end made later is enforced', async () => {
    // The user gives it a veth to the host now, and edits the file (a new address on it).
    const lateEnd = link('l');
    await sh('ip', 'link', 'add', lateEnd, 'type', 'veth', 'peer', 'name', 'eth1', 'netns', lost);
    await sh('ip', '-n', lost, 'addr', 'add', '10.76.1.3/24', 'dev', 'eth1');
    await sh('ip', '-n', lost, 'link', 'set', 'eth1', 'up');
    file(lostNet, '10.76.1', '10.76.1.3', lost);
    await until('the endpoint enforced', () => endpointOf(lostNet), (e) => e.EgressEnforced !== undefined);
    assert.equal((await endpointOf(lostNet)).EgressNotEnforced, undefined);
  });

  it('macvlan via the CLI: a policy is refused with a clear error, whichever comes first, and nothing is stored', async () => {
    // The parent: a veth whose other end stands for the LAN.
    const parent = link('p');
    const lan = await lab.namespace('lan');
    await sh('ip', 'link', 'add', parent, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', lan);
    await sh('ip', 'link', 'set', parent, 'up');
    const policy = policies.write('policy.yaml', '- allowed.test\n');
    const [mv, plain] = [`rgm${lab.tag}`, `rgp${lab.tag}`];
    const ns = await lab.namespace('mv');
    const refused = async (args: string[], message: RegExp) => {
      const r = await lab.nsdns(...args);
      assert.notEqual(r.exitCode, 0, args.join(' '));
      assert.match(r.stderr, message, args.join(' '));
    };
    const cannot = /is a macvlan network: .*cannot be enforced there/;
    await refused(['network', 'create', '--driver', 'macvlan', '--subnet', '10.77.1.0/24', '-o', `parent=${parent}`, '--egress-policy', policy, mv], cannot);
    assert.doesNotMatch(await lab.ok('network', 'ls'), new RegExp(mv), 'not created');

    await lab.ok('network', 'create', '--driver', 'macvlan', '--subnet', '10.77.1.0/24', '-o', `parent=${parent}`, mv);
    await lab.ok('network', 'create', '--subnet', '10.77.2.0/24', '--egress-policy', policy, plain);
    await refused(['network', 'connect', mv, ns, '--name', 'job', '--egress-allow', 'allowed.test'], cannot);
    assert.deepEqual(JSON.parse(await lab.ok('network', 'inspect', mv))[0].Containers, {}, 'not connected');
    await lab.ok('network', 'connect', mv, ns, '--name', 'job');
    await refused(['endpoint', 'egress', mv, 'job', '--allow', 'allowed.test'], cannot);
    // A namespace with a macvlan link gets no policy from a second network, and the reverse.
    await refused(['network', 'connect', plain, ns, '--name', 'job2'], cannot);
    assert.deepEqual(JSON.parse(await lab.ok('network', 'inspect', plain))[0].Containers, {});
    await lab.ok('network', 'disconnect', mv, 'job');
    await lab.ok('network', 'connect', plain, ns, '--name', 'job2');
    await refused(['network', 'connect', mv, ns, '--name', 'job'], /is under an egress policy, and network .* is a macvlan network/);
    assert.equal(await lab.digStatus(ns, 'denied.test'), 'NXDOMAIN', 'the namespace stays under its policy');
    // A policy of its own for an endpoint whose namespace is also on macvlan: refused the same way.
    const free = `rgf${lab.tag}`;
    const both = await lab.namespace('both');
    await lab.ok('network', 'create', '--subnet', '10.77.3.0/24', free);
    await lab.ok('network', 'connect', mv, both, '--name', 'job3');
    await lab.ok('network', 'connect', free, both, '--name', 'job4');
    await refused(['endpoint', 'egress', free, 'job4', '--allow', 'allowed.test'], /job4 is also on another network, and network .* is a macvlan network/);
    const containers = JSON.parse(await lab.ok('network', 'inspect', free))[0].Containers as Record<string, { Egress?: string[] }>;
    assert.deepEqual(Object.values(containers).map((c) => c.Egress), [undefined], 'nothing stored');
  });
});
