// The plumbing read back from the kernel: bridges, veths, addresses, routes, nftables; bad input
// refused with nothing changed; NAT and published ports carrying real traffic.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { existsSync, readdirSync } from 'node:fs';
import net from 'node:net';
import { execa } from 'execa';
import { Lab, needsRoot, sh } from '../helpers/netns.js';

async function addresses(dev: string, ns?: string): Promise<string[]> {
  const args = ns ? ['-n', ns, '-j', 'addr', 'show', 'dev', dev] : ['-j', 'addr', 'show', 'dev', dev];
  const [link] = JSON.parse(await sh('ip', ...args)) as Array<{ addr_info: Array<{ local: string; prefixlen: number; scope: string }> }>;
  return link.addr_info.filter((a) => a.scope !== 'link').map((a) => `${a.local}/${a.prefixlen}`);
}

describe('networks in the kernel', { skip: needsRoot }, () => {
  const lab = new Lab();
  before(async () => { await lab.start(); });
  after(() => lab.cleanup());

  it('create: allocates a free subnet, makes the bridge with its gateway, and inspect shows it', async () => {
    const id = (await lab.ok('network', 'create', 'auto', '--bridge', `${lab.linkPrefix}auto`)).trim();
    assert.match(id, /^[0-9a-f]{64}$/);
    const [net1] = JSON.parse(await lab.ok('network', 'inspect', 'auto'));
    assert.equal(net1.Id, id);
    assert.equal(net1.Driver, 'bridge');
    const { Subnet, Gateway } = net1.IPAM.Config[0];
    assert.match(Subnet, /^(172\.(1[89]|2\d|3[01])\.0\.0\/16|192\.168\.\d+\.0\/20)$/, "never docker0's 172.17.0.0/16");
    assert.deepEqual(await addresses(`${lab.linkPrefix}auto`), [`${Gateway}/${Subnet.split('/')[1]}`]);
    const ls = JSON.parse(await lab.ok('network', 'ls', '--json'));
    assert.ok(ls.some((n: { Name: string; ID: string }) => n.Name === 'auto' && n.ID === id.slice(0, 12)));
  });

  it('create: IPv6 subnets, MTU and ip-range are applied; connect allocates from the range', async () => {
    await lab.ok('network', 'create', 'dual', '--subnet', '10.210.0.0/24', '--subnet', 'fd10:210::/64', '--ip-range', '10.210.0.128/25', '--mtu', '1400', '--bridge', `${lab.linkPrefix}dual`);
    const ns = await lab.namespace('dual');
    const out = JSON.parse(await lab.ok('network', 'connect', 'dual', ns, '--json', '--mac', '02:aa:bb:cc:dd:ee'));
    assert.deepEqual(out.ipv4, ['10.210.0.128']);
    assert.deepEqual(out.ipv6, ['fd10:210::2']);
    assert.deepEqual(await addresses('eth0', ns), ['10.210.0.128/24', 'fd10:210::2/64']);
    const [link] = JSON.parse(await sh('ip', '-n', ns, '-j', 'link', 'show', 'eth0'));
    assert.equal(link.mtu, 1400);
    assert.equal(link.address, '02:aa:bb:cc:dd:ee');
    assert.match(await sh('ip', '-n', ns, 'route'), /default via 10\.210\.0\.1 dev eth0/);
    const [br] = JSON.parse(await sh('ip', '-j', 'link', 'show', `${lab.linkPrefix}dual`));
    assert.equal(br.mtu, 1400);
    assert.deepEqual(await lab.dig(ns, ns, 'AAAA'), ['fd10:210::2']);
  });

  it('refuses bad input with a clear message and a non-zero exit, changing nothing', async () => {
    const ns = await lab.namespace('bad');
    await lab.ok('network', 'create', 'good', '--subnet', '10.211.0.0/24');
    await lab.ok('network', 'connect', 'good', ns, '--name', 'taken');
    const before = { links: await lab.links(), state: readdirSync(`${lab.state}/networks`).sort(), inspect: await lab.ok('network', 'inspect', 'good') };
    const cases: Array<[string[], RegExp]> = [
      [['network', 'connect', 'nope', ns], /network "nope" not found/],
      [['network', 'create', 'good', '--subnet', '10.212.0.0/24'], /network "good" already exists/],
      [['network', 'create', 'clash', '--subnet', '10.211.0.128/25'], /overlaps 10\.211\.0\.0\/24 \(network good\)/],
      [['network', 'create', 'hostclash', '--subnet', '192.0.2.0/25'], /overlaps 192\.0\.2\.0\/24 \(in use on the host\)/],
      [['network', 'create', 'malformed', '--subnet', '10.300.0.0/24'], /is not a CIDR/],
      [['network', 'create', 'hostbits', '--subnet', '10.73.3.5/24'], /--subnet 10\.73\.3\.5\/24 has host bits set: it should be 10\.73\.3\.0\/24/],
      [['network', 'create', 'gw', '--subnet', '10.213.0.0/24', '--gateway', '10.99.0.1'], /gateway 10\.99\.0\.1 is outside/],
      [['network', 'create', '_bad'], /network name "_bad" is not a valid name/],
      [['network', 'create', 'bad.name'], /network name "bad\.name" is not a valid name/],
      [['network', 'connect', 'good', `${ns}-missing`], /namespace .* not found/],
      [['network', 'connect', 'good', ns], /already connected to network "good"/],
      [['network', 'rm', 'good'], /has 1 endpoint\(s\) attached \(taken\); disconnect them first, or use --disconnect/],
      [['network', 'disconnect', 'good', 'ghost'], /no endpoint "ghost"/],
    ];
    const other = await lab.namespace('other');
    cases.push(
      [['network', 'connect', 'good', other, '--name', 'bad name'], /endpoint name "bad name" is not a valid name/],
      [['network', 'connect', 'good', other, '--alias', '-x'], /alias "-x" is not a valid name/],
      [['network', 'connect', 'good', other, '--alias', '_x.y'], /alias "_x\.y" is not a valid name/],
      [['network', 'connect', 'good', other, '--name', 'taken'], /the name "taken" is already used on network "good"/],
      [['network', 'connect', 'good', other, '--ip', '10.211.0.2'], /10\.211\.0\.2 is already in use/],
      [['network', 'connect', 'good', other, '--ip', '10.1.1.1'], /outside the subnet 10\.211\.0\.0\/24/],
      [['network', 'connect', 'good', other, '--mac', 'zz'], /MAC address "zz"|mac: not a unicast MAC address/],
      [['network', 'connect', 'good', other, '--publish', '99999:80'], /--publish "99999:80"/],
    );
    for (const [args, message] of cases) {
      const r = await lab.nsdns(...args);
      assert.notEqual(r.exitCode, 0, args.join(' '));
      assert.match(r.stderr, message, args.join(' '));
      assert.doesNotMatch(r.stderr, /at .*\.js:\d+/, 'no stack traces for people');
    }
    assert.deepEqual(await lab.links(), before.links);
    assert.deepEqual(readdirSync(`${lab.state}/networks`).sort(), before.state);
    assert.equal(await lab.ok('network', 'inspect', 'good'), before.inspect);
    assert.deepEqual(await sh('ip', '-n', other, '-o', 'link').then((s) => s.split('\n').length), 1, 'only lo in the untouched namespace');
  });

  it('rolls back a connect that fails half way (interface name taken inside the namespace)', async () => {
    await lab.ok('network', 'create', 'roll', '--subnet', '10.214.0.0/24');
    const ns = await lab.namespace('roll');
    await sh('ip', '-n', ns, 'link', 'add', 'eth7', 'type', 'veth', 'peer', 'name', 'eth8');
    const linksBefore = await lab.links();
    const r = await lab.nsdns('network', 'connect', 'roll', ns, '--ifname', 'eth7');
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr, /create eth7 in .* failed: .*(ip failed|eth7 exists already inside the namespace)/);
    assert.deepEqual(await lab.links(), linksBefore, 'no veth left behind');
    assert.deepEqual(JSON.parse(await lab.ok('network', 'inspect', 'roll'))[0].Containers, {});
    assert.ok(!existsSync(`/etc/netns/${ns}/resolv.conf`));
    await lab.ok('network', 'connect', 'roll', ns);
    assert.deepEqual(await lab.dig(ns, ns), ['10.214.0.2'], 'the address was released and given again');
  });

  it('rm and prune leave no link, rule, address or file behind', async () => {
    await lab.ok('network', 'create', 'gone', '--subnet', '10.215.0.0/24', '--bridge', `${lab.linkPrefix}gone`);
    const ns = await lab.namespace('gone');
    await lab.ok('network', 'connect', 'gone', ns, '--publish', '18080:80');
    assert.match(await sh('nft', 'list', 'table', 'inet', lab.nftTable), /dport 18080 dnat ip to 10\.215\.0\.2:80/);
    await lab.ok('network', 'rm', '--disconnect', 'gone');
    assert.ok(!(await lab.links()).includes(`${lab.linkPrefix}gone`));
    assert.doesNotMatch(await sh('nft', 'list', 'table', 'inet', lab.nftTable), /10\.215\.0\.|18080/);
    assert.equal(await sh('ip', '-n', ns, '-o', 'link').then((s) => s.split('\n').length), 1, 'the veth went with it');
    assert.ok(!existsSync(`/etc/netns/${ns}`));
    assert.ok(!existsSync(`${lab.state}/networks/gone.json`));
    await lab.ok('network', 'create', 'unused', '--subnet', '10.216.0.0/24');
    const pruned = JSON.parse(await lab.ok('network', 'prune', '--json'));
    assert.deepEqual([...pruned].sort(), ['auto', 'unused'], 'networks with endpoints stay');
    await lab.ok('network', 'rm', '--disconnect', 'good', 'roll', 'dual');
    assert.deepEqual(await lab.links(), []);
    assert.equal(await lab.nftTableExists(), false, 'the table goes with the last network');
    assert.deepEqual(readdirSync(`${lab.state}/networks`), []);
  });
});

describe('traffic: published ports, masquerade, internal networks', { skip: needsRoot }, () => {
  const lab = new Lab();
  let app: string, outside: string;

  before(async () => {
    await lab.start();
    app = await lab.namespace('app');
    // An "outside" host on its own link (not nsdns's), routed through this host.
    outside = await lab.outsideHost('outside', '198.18.7.1', '198.18.7.2');
    await lab.ok('network', 'create', 'pub', '--subnet', '10.220.0.0/24');
    await lab.ok('network', 'connect', 'pub', app, '--publish', '127.0.0.1:18081:8080', '--publish', '18082:8080');
  });
  after(() => lab.cleanup());

  /** A TCP server inside a namespace that answers with the address it sees the client at. */
  function echoServer(ns: string, port: number) {
    const code = `require('net').createServer((s) => s.end(s.remoteAddress)).listen(${port}, () => console.log('up'))`;
    const proc = execa('ip', ['netns', 'exec', ns, process.execPath, '-e', code], { reject: false });
    const ready = new Promise<void>((resolve) => proc.stdout!.on('data', () => resolve()));
    return { proc, ready };
  }

  function fetchFrom(host: string, port: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, host);
      let data = '';
      s.on('data', (c) => { data += c; });
      s.on('end', () => resolve(data));
      s.on('error', reject);
      s.setTimeout(3000, () => { s.destroy(); reject(new Error('timeout')); });
    });
  }

  it('publishes a port on the host, reachable at 127.0.0.1 and at the gateway address', async () => {
    const server = echoServer(app, 8080);
    try {
      await server.ready;
      assert.ok((await fetchFrom('127.0.0.1', 18081)).length > 0);
      assert.ok((await fetchFrom('10.220.0.1', 18082)).length > 0);
    } finally {
      server.proc.kill();
    }
  });

  it('masquerades traffic leaving the network: the outside server sees the host address', async () => {
    const server = echoServer(outside, 9090);
    try {
      await server.ready;
      const r = await execa('ip', ['netns', 'exec', app, process.execPath, '-e',
        "const s=require('net').connect(9090,'198.18.7.2');let d='';s.on('data',c=>d+=c);s.on('end',()=>{console.log(d)})"], { timeout: 5000 });
      assert.equal(r.stdout.trim().replace(/^::ffff:/, ''), '198.18.7.1');
    } finally {
      server.proc.kill();
    }
  });

  it('gives an internal network no route out, and drops forwarding from it', async () => {
    await lab.ok('network', 'create', 'sealed', '--subnet', '10.221.0.0/24', '--internal');
    const inner = await lab.namespace('inner');
    await lab.ok('network', 'connect', 'sealed', inner);
    assert.doesNotMatch(await sh('ip', '-n', inner, 'route'), /default/);
    await sh('ip', '-n', inner, 'route', 'add', 'default', 'via', '10.221.0.1');
    const ping = await execa('ip', ['netns', 'exec', inner, 'ping', '-c', '1', '-W', '1', '198.18.7.2'], { reject: false });
    assert.notEqual(ping.exitCode, 0, 'even with a route added by hand, the firewall drops it');
    assert.match(await sh('nft', 'list', 'table', 'inet', lab.nftTable), /internal sealed/);
  });
});
