// Overlay networks across simulated hosts. hostA and hostB are network namespaces joined by an
// underlay bridge the test creates (10.129.250.0/24, outside every overlay subnet of the test);
// each runs its own daemon (own state dir, socket, node name, nftables table, `--cluster` and
// `--advertise-address`) that reaches one real etcd through a relay on the underlay (etcd itself
// listens on this namespace's loopback). "Containers" are namespaces the daemon of their host
// connects; each gets its address with --ip, so the two hosts never pick the same one.
// OVL_DEBUG=1: the daemons log at debug level, and their logs are left in /tmp/ovl-debug-NODE.log.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { MAIN, ROOT, RunningDaemon } from '../helpers/daemon.js';
import { TestEtcd } from '../helpers/etcd.js';
import { needsRoot, sh } from '../helpers/netns.js';
import { until } from '../helpers/wait.js';
import { call } from '../../src/cli/control-client.js';

const TTL = 3;
const tag = randomBytes(3).toString('hex');
const prefix = `/nsdns-overlay-${tag}`;
/** The underlay: a bridge here, one veth per host into it; the relay to etcd listens on the bridge's address. */
const underlay = { bridge: `u${tag}`, gateway: '10.129.250.254', prefixLength: 24 };
const RELAY_PORT = 16290;
const LISTEN_PORT = 16283;
/** The TCP echo server's port inside a container. */
const ECHO_PORT = 16284;
/** A port host A publishes for one of its containers. */
const PUBLISHED_PORT = 16285;

/** One simulated host: a namespace on the underlay, and a daemon inside it. */
class Host {
  daemon: RunningDaemon | undefined;
  url: string | undefined;
  readonly netns: string;
  readonly state = mkdtempSync(path.join(tmpdir(), 'nsdns-overlay-'));
  readonly containers: string[] = [];
  private readonly link: string;

  constructor(readonly node: string, readonly address: string) {
    this.netns = `o${tag}-${node}`;
    this.link = `u${tag}${node.slice(-1)}`;
  }

  async plug(): Promise<void> {
    await sh('ip', 'netns', 'add', this.netns);
    await sh('ip', '-n', this.netns, 'link', 'set', 'lo', 'up');
    await sh('ip', 'link', 'add', this.link, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.netns);
    await sh('ip', 'link', 'set', this.link, 'master', underlay.bridge, 'up');
    await sh('ip', '-n', this.netns, 'addr', 'add', `${this.address}/${underlay.prefixLength}`, 'dev', 'eth0');
    await sh('ip', '-n', this.netns, 'link', 'set', 'eth0', 'up');
  }

  async start(etcdUrl: string): Promise<RunningDaemon> {
    this.url = etcdUrl;
    // Quick to notice etcd away and back; deletes held after an outage (docs/etcd.md) only briefly.
    const config = path.join(this.state, 'config.json');
    writeFileSync(config, JSON.stringify({ etcd: { deleteGraceMs: 3000, checkIntervalMs: 500, maxBackoffMs: 500 } }));
    const args = [MAIN, 'serve', '--config', config, '--no-resolv-conf', '--state-dir', this.state, '--socket', `${this.state}/nsdns.sock`,
      '--firewall', 'nftables', '--nft-table', `nsdns_ovl_${tag}${this.node.slice(-1)}`, '--link-prefix', `o${this.node.slice(-1)}`, '--listen', `127.0.0.1:${LISTEN_PORT}`,
      '--cluster', etcdUrl, '--advertise-address', this.address, '--node-name', this.node, '--announce-ttl', String(TTL), ...(process.env.OVL_DEBUG ? ['--log-level', 'debug'] : [])];
    const proc = spawn('ip', ['netns', 'exec', this.netns, process.execPath, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stderr!.resume();
    this.daemon = new RunningDaemon(proc, this.state, true);
    await Promise.race([
      this.daemon.waitForLog((l) => l.msg === 'ready', 60_000),
      this.daemon.waitForExit(61_000).then((code) => { throw new Error(`${this.node} exited with ${code} before ready`); }),
    ]);
    return this.daemon;
  }

  /** A "container": a namespace this host's daemon will connect, deleted at cleanup. */
  async container(name: string): Promise<string> {
    const ns = `o${tag}-${name}`;
    await sh('ip', 'netns', 'add', ns);
    this.containers.push(ns);
    return ns;
  }

  /** A link of this host, read back from the kernel: MTU, MAC, master, IPv4 addresses. */
  async readLink(name: string): Promise<{ mtu: number; address: string; master?: string; addresses: string[] }> {
    const [link] = await inNs(this.netns, 'ip', '-j', 'addr', 'show', 'dev', name);
    return { mtu: link.mtu, address: link.address, master: link.master, addresses: (link.addr_info ?? []).filter((a: any) => a.family === 'inet').map((a: any) => `${a.local}/${a.prefixlen}`) };
  }

  /** The VXLAN device of `network` here (its id in inspect's options), read back from the kernel. */
  async vxlan(network: string): Promise<{ name: string; id: number; port: number; local: string; learning: boolean; proxy: boolean; mtu: number; master: string }> {
    const [inspected] = JSON.parse(await this.ok('network', 'inspect', network));
    const id = Number(inspected.Options['com.docker.network.driver.overlay.vxlanid_list']);
    const links = await inNs(this.netns, 'ip', '-d', '-j', 'link', 'show', 'type', 'vxlan');
    const link = links.find((l: any) => l.linkinfo.info_data.id === id);
    assert.ok(link, `${this.node}: a VXLAN device with id ${id}`);
    const data = link.linkinfo.info_data;
    return { name: link.ifname, id: data.id, port: data.port, local: data.local, learning: data.learning, proxy: data.proxy, mtu: link.mtu, master: link.master };
  }

  /** The forwarding entries of `network`'s VXLAN device here with a destination (none when it has no device). */
  async fdb(network: string): Promise<FdbEntry[]> {
    const links = await inNs(this.netns, 'ip', '-d', '-j', 'link', 'show', 'type', 'vxlan');
    const [inspected] = JSON.parse(await this.ok('network', 'inspect', network));
    const id = Number(inspected.Options['com.docker.network.driver.overlay.vxlanid_list']);
    const link = links.find((l: any) => l.linkinfo.info_data.id === id);
    return link ? this.fdbOf(link.ifname) : [];
  }

  /** The forwarding entries with a destination of one VXLAN device here. */
  async fdbOf(device: string): Promise<FdbEntry[]> {
    return (await inNs(this.netns, 'bridge', '-j', 'fdb', 'show', 'dev', device) as FdbEntry[]).filter((e) => e.dst !== undefined);
  }

  async neighbours(network: string): Promise<Array<{ dst: string; lladdr: string; state: string[] }>> {
    const { name } = await this.vxlan(network);
    return inNs(this.netns, 'ip', '-j', 'neigh', 'show', 'dev', name);
  }

  /** `nsdns ARGS` against this host's daemon: exit code, stdout, stderr. */
  nsdns(...args: string[]) {
    return execa(process.execPath, [MAIN, ...args, '--socket', `${this.state}/nsdns.sock`], { reject: false, cwd: ROOT });
  }

  async ok(...args: string[]): Promise<string> {
    const r = await this.nsdns(...args);
    if (r.exitCode !== 0) throw new Error(`${this.node}: nsdns ${args.join(' ')} failed (${r.exitCode}): ${r.stderr}`);
    return r.stdout;
  }

  async cleanup(): Promise<void> {
    await this.daemon?.stop();
    if (process.env.OVL_DEBUG || process.env.OVL_LOGS) writeFileSync(`/tmp/ovl-debug-${this.node}.log`, this.daemon!.logs.map((l) => JSON.stringify(l)).join('\n'));
    for (const ns of this.containers) {
      await execa('ip', ['netns', 'del', ns], { reject: false });
      if (existsSync(`/etc/netns/${ns}`)) await execa('rm', ['-rf', `/etc/netns/${ns}`], { reject: false });
    }
    // The host's own links (bridges, VXLAN devices, veth ends) go with its namespace.
    await execa('ip', ['netns', 'del', this.netns], { reject: false });
    await execa('ip', ['link', 'del', this.link], { reject: false });
    await execa('rm', ['-rf', this.state], { reject: false });
  }
}

/** A TCP relay from the underlay to etcd on this namespace's loopback. close() ends its open connections too. */
async function relay(listenHost: string, listenPort: number, target: string): Promise<{ close(): Promise<void> }> {
  const [host, port] = target.split(':');
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), host);
    for (const s of [client, upstream]) { sockets.add(s); s.on('close', () => sockets.delete(s)); s.on('error', () => { client.destroy(); upstream.destroy(); }); }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(listenPort, listenHost, resolve); });
  return {
    // server.close() waits for every connection to end: the clients' long-lived watches would keep it (and the test file) open.
    close: () => new Promise<void>((resolve) => { server.close(() => resolve()); for (const s of sockets) s.destroy(); }),
  };
}

describe('overlay networks across simulated hosts', { skip: needsRoot }, () => {
  let etcd: TestEtcd;
  let proxy: { close(): Promise<void> } | undefined;
  const a = new Host('host-a', '10.129.250.1');
  const b = new Host('host-b', '10.129.250.2');

  before(async () => {
    etcd = await TestEtcd.start({ portBase: 16200, portCount: 80 }); // 16200-16279: the relay's fixed port is not etcd's;
    await sh('ip', 'link', 'add', underlay.bridge, 'type', 'bridge');
    await sh('ip', 'addr', 'add', `${underlay.gateway}/${underlay.prefixLength}`, 'dev', underlay.bridge);
    await sh('ip', 'link', 'set', underlay.bridge, 'up');
    proxy = await relay(underlay.gateway, RELAY_PORT, etcd.hostPort);
    await a.plug();
    await b.plug();
    const url = `etcd://${underlay.gateway}:${RELAY_PORT}${prefix}`;
    await Promise.all([a.start(url), b.start(url)]);
  });
  after(async () => {
    for (const host of [a, b]) await host.cleanup().catch(() => undefined);
    await proxy?.close();
    await execa('ip', ['link', 'del', underlay.bridge], { reject: false });
    await etcd?.stop();
  });

  it('network create --driver overlay on one host: kept in etcd with a VXLAN id, listed on every host', async () => {
    await a.ok('network', 'create', '--driver', 'overlay', '--subnet', '10.128.0.0/16', 'app');
    const stored = await etcd.list(`${prefix}/`);
    assert.deepEqual(JSON.parse(stored.get(`${prefix}/networks/app`)!).overlay, { vni: 4096 });
    assert.equal(stored.get(`${prefix}/vnis/4096`), 'app');
    for (const host of [a, b]) {
      const rows = await until(`app on ${host.node}`, async () => JSON.parse(await host.ok('network', 'ls', '--json')) as Array<{ Name: string; Driver: string; Scope: string }>,
        (r) => r.some((n) => n.Name === 'app'));
      assert.deepEqual(rows.filter((n) => n.Name === 'app').map((n) => [n.Driver, n.Scope]), [['overlay', 'swarm']], host.node);
      const [inspected] = JSON.parse(await host.ok('network', 'inspect', 'app'));
      assert.equal(inspected.Options['com.docker.network.driver.overlay.vxlanid_list'], '4096');
      assert.equal(inspected.IPAM.Config[0].Subnet, '10.128.0.0/16');
    }
  });

  it('one name, one id: a second create of the name or of a taken id is refused on any host; -o vni=N is kept', async () => {
    const again = await b.nsdns('network', 'create', '--driver', 'overlay', '--subnet', '10.129.0.0/16', 'app');
    assert.notEqual(again.exitCode, 0);
    assert.match(again.stderr, /network "app" already exists in the cluster/);
    const taken = await b.nsdns('network', 'create', '--driver', 'overlay', '--subnet', '10.129.0.0/16', '-o', 'vni=4096', 'other');
    assert.notEqual(taken.exitCode, 0);
    assert.match(taken.stderr, /VXLAN id 4096 is taken/);
    await b.ok('network', 'create', '--driver', 'overlay', '--subnet', '10.129.0.0/17', '-o', 'vni=5000', 'other');
    const [inspected] = await until('other on host A', async () => {
      const r = await a.nsdns('network', 'inspect', 'other');
      return r.exitCode === 0 ? JSON.parse(r.stdout) : [];
    }, (list) => list.length === 1);
    assert.equal(inspected.Options['com.docker.network.driver.overlay.vxlanid_list'], '5000');
    const auto = await a.nsdns('network', 'create', '--driver', 'overlay', '--subnet', '10.128.0.0/33', 'bad');
    assert.notEqual(auto.exitCode, 0);
    assert.match(auto.stderr, /not an IPv4 CIDR/);
    assert.equal((await etcd.list(`${prefix}/networks/bad`)).size, 0);
  });

  it('connect on both hosts: a bridge and a VXLAN device on each, the other host\'s endpoint in the forwarding table; ping, TCP, names and PTR across hosts', async () => {
    const c1 = await a.container('c1');
    const c2 = await b.container('c2');
    await a.ok('network', 'connect', '--ip', '10.128.0.10', '--name', 'web1', 'app', c1);
    await b.ok('network', 'connect', '--ip', '10.128.0.20', '--name', 'web2', 'app', c2);
    for (const host of [a, b]) {
      const vx = await host.vxlan('app');
      assert.deepEqual([vx.id, vx.port, vx.local, vx.learning, vx.proxy, vx.mtu], [4096, 4789, host.address, false, true, 1450], host.node);
      const bridge = await host.readLink(vx.master);
      assert.deepEqual([bridge.mtu, bridge.address, bridge.addresses], [1450, '02:6f:76:00:10:00', ['10.128.0.1/16']], `${host.node}: one gateway address and MAC on every host`);
    }
    assert.equal((await inNs(c1, 'ip', '-j', 'link', 'show', 'eth0'))[0].mtu, 1450);
    const mac2 = await macOf(c2);
    const fdb = await until('web2 in host A\'s forwarding table', () => a.fdb('app'), (entries) => entries.some((e) => e.mac === mac2));
    assert.deepEqual(fdb.filter((e) => e.mac === mac2).map((e) => [e.dst, e.state]), [[b.address, 'permanent']]);
    assert.deepEqual((await a.neighbours('app')).filter((n) => n.dst === '10.128.0.20').map((n) => n.lladdr), [mac2]);
    await until('host B has web1', () => b.fdb('app'), (entries) => entries.length === 1);
    await ping(c1, '10.128.0.20');
    await ping(c2, '10.128.0.10');
    assert.equal(await tcpEcho(c2, c1, '10.128.0.20', 'across hosts'), 'across hosts');
    const name = await until('web2.app on host A', () => dig(c1, 'web2.app'), (r) => r.status === 'NOERROR');
    assert.deepEqual(name.addresses, ['10.128.0.20']);
    assert.deepEqual((await dig(c2, 'web1.app')).addresses, ['10.128.0.10']);
    assert.deepEqual((await dig(c1, '-x', '10.128.0.20')).ptr, ['web2.app.']);
  });

  it('addresses are the cluster\'s: 50 connects at once on each host get 100 distinct addresses, held in etcd by their node; --ip of another host\'s address is refused; disconnects give them back', async () => {
    await a.ok('network', 'create', '--driver', 'overlay', '--subnet', '10.130.0.0/24', 'many');
    await until('many on host B', async () => (await b.ok('network', 'ls', '--quiet')).split('\n'), (names) => names.includes('many'));
    const made = await Promise.all([a, b].flatMap((host) => Array.from({ length: Number(process.env.OVL_MANY ?? 50) }, (_, i) => host.container(`m${host.node.slice(-1)}${i}`).then((ns) => ({ host, ns, name: `m${host.node.slice(-1)}${i}` })))));
    // Straight to the control socket (what the CLI sends): 100 CLI starts would be most of the time.
    const connected = await Promise.all(made.map(async ({ host, ns, name }) => {
      await call(`${host.state}/nsdns.sock`, 'network.connect', { network: 'many', target: ns, name });
      const [addr] = (await inNs(ns, 'ip', '-j', '-4', 'addr', 'show', 'dev', 'eth0'))[0].addr_info.map((x: any) => x.local);
      return { host, addr };
    }));
    const addresses = connected.map((c) => c.addr);
    assert.equal(new Set(addresses).size, made.length, 'no address given twice');
    assert.ok(addresses.every((x) => /^10\.130\.0\.\d+$/.test(x) && x !== '10.130.0.1'), 'in the subnet, never the gateway');
    const held = await etcd.list(`${prefix}/addresses/many/`);
    for (const { host, addr } of connected) assert.equal(held.get(`${prefix}/addresses/many/${addr}`), host.node, `${addr} held by ${host.node}`);
    const taken = connected.find((c) => c.host === b)!.addr;
    const extra = await a.container('mtaken');
    const refused = await a.nsdns('network', 'connect', '--ip', taken, '--name', 'mtaken', 'many', extra);
    assert.notEqual(refused.exitCode, 0);
    // Refused by the planner (host B announced it) or by etcd (held by host B): either way named.
    const shown = taken.replace(/\./g, '\\.');
    assert.match(refused.stderr, new RegExp(`${shown} is already in use on network "many"|address ${shown} is taken in the cluster by node "host-b"`));
    await Promise.all(made.map(({ host, name }) => call(`${host.state}/nsdns.sock`, 'network.disconnect', { network: 'many', target: name })));
    assert.equal((await etcd.list(`${prefix}/addresses/many/`)).size, 0, 'every address given back');
    await a.ok('network', 'rm', 'many');
  });

  it('leaving the network: out of the host through its own gateway (masquerade); a published port of a host\'s endpoint answers at that host; a packet larger than the overlay MTU is refused, not lost', async () => {
    const c1 = `o${tag}-c1`;
    await ping(c1, underlay.gateway);
    const c5 = await a.container('c5');
    await a.ok('network', 'connect', '--ip', '10.128.0.11', '--publish', `${PUBLISHED_PORT}:${ECHO_PORT}`, 'app', c5);
    assert.equal(await tcpEcho(c5, undefined, a.address, 'published', PUBLISHED_PORT), 'published', 'from the underlay to host A\'s published port');
    await a.ok('network', 'disconnect', 'app', c5);
    // 1400 bytes of payload + 28 of headers fit 1450 without fragments; 1472 (a 1500-byte packet) do not, and the sender is told.
    await ping(c1, '10.128.0.20', '-s', '1400', '-M', 'do');
    const big = await execa('ip', ['netns', 'exec', c1, 'ping', '-c', '1', '-W', '1', '-s', '1472', '-M', 'do', '10.128.0.20'], { reject: false });
    assert.notEqual(big.exitCode, 0);
    assert.match(big.stdout + big.stderr, /message too long|mtu = 1450/i);
  });

  it('disconnect on host B: its entries leave host A and its own bridge and VXLAN device go; rm is refused while a host has endpoints', async () => {
    const c2 = `o${tag}-c2`;
    const mac2 = await macOf(c2);
    await b.ok('network', 'disconnect', 'app', c2);
    await until('web2 gone from host A\'s forwarding table', () => a.fdb('app'), (entries) => !entries.some((e) => e.mac === mac2));
    assert.deepEqual((await a.neighbours('app')).filter((n) => n.dst === '10.128.0.20'), []);
    assert.deepEqual(await inNs(b.netns, 'ip', '-j', 'link', 'show', 'type', 'vxlan'), [], 'no VXLAN device left on host B');
    await until('web2.app gone on host A', () => dig(`o${tag}-c1`, 'web2.app'), (r) => r.status === 'NXDOMAIN');
    const refused = await b.nsdns('network', 'rm', 'app');
    assert.notEqual(refused.exitCode, 0);
    assert.match(refused.stderr, /overlay network "app" has endpoints on 1 host\(s\) \(host-a\)/);
    assert.equal((await a.ok('network', 'rm', 'other')).trim(), 'other');
    assert.ok(!(await a.ok('network', 'ls', '--quiet')).split('\n').includes('other'), 'gone from this host\'s list when rm answers');
    const stored = await etcd.list(`${prefix}/`);
    assert.deepEqual([stored.has(`${prefix}/networks/other`), stored.has(`${prefix}/vnis/5000`), stored.has(`${prefix}/networks/app`)], [false, false, true]);
    await b.ok('network', 'connect', '--ip', '10.128.0.20', '--name', 'web2', 'app', c2);
    await until('web2 back in host A\'s forwarding table', () => a.fdb('app'), (entries) => entries.some((e) => e.mac === mac2));
    await ping(`o${tag}-c1`, '10.128.0.20');
  });

  it('self-heal: a VXLAN device deleted by hand comes back with its forwarding entries', async () => {
    const mac2 = await macOf(`o${tag}-c2`);
    const { name } = await a.vxlan('app');
    await sh('ip', '-n', a.netns, 'link', 'del', name);
    await until('the VXLAN device back with web2\'s entry', () => a.fdb('app'), (entries) => entries.some((e) => e.mac === mac2), 20_000);
    await ping(`o${tag}-c1`, '10.128.0.20');
  });

  it('an internal overlay: the other host\'s container is reached, nothing outside is', async () => {
    await a.ok('network', 'create', '--driver', 'overlay', '--internal', '--mtu', '1400', '--subnet', '10.130.0.0/16', 'priv');
    await until('priv on host B', async () => (await b.ok('network', 'ls', '--quiet')).split('\n'), (names) => names.includes('priv'));
    const c3 = await a.container('c3');
    const c4 = await b.container('c4');
    await a.ok('network', 'connect', '--ip', '10.130.0.10', 'priv', c3);
    await b.ok('network', 'connect', '--ip', '10.130.0.20', 'priv', c4);
    assert.deepEqual(await inNs(c3, 'ip', '-j', 'route', 'show', 'default'), [], 'no default route');
    assert.deepEqual([(await a.vxlan('priv')).mtu, (await b.vxlan('priv')).mtu, (await inNs(c4, 'ip', '-j', 'link', 'show', 'eth0'))[0].mtu], [1400, 1400, 1400], '--mtu on every host');
    await ping(c3, '10.130.0.20');
    const out = await execa('ip', ['netns', 'exec', c3, 'ping', '-c', '1', '-W', '1', b.address], { reject: false });
    assert.notEqual(out.exitCode, 0, 'the underlay is not reachable from an internal overlay');
  });

  it('host B stopped cleanly: its endpoints leave host A\'s names and forwarding table at once, and come back with it', async () => {
    const mac2 = await macOf(`o${tag}-c2`);
    await b.daemon!.stop();
    await until('web2 gone from host A\'s forwarding table', () => a.fdb('app'), (entries) => !entries.some((e) => e.mac === mac2));
    assert.equal((await dig(`o${tag}-c1`, 'web2.app')).status, 'NXDOMAIN');
    await b.start(b.url!);
    await until('web2 back in host A\'s forwarding table', () => a.fdb('app'), (entries) => entries.some((e) => e.mac === mac2), 20_000);
    await until('web2.app back on host A', () => dig(`o${tag}-c1`, 'web2.app'), (r) => r.status === 'NOERROR');
    await ping(`o${tag}-c1`, '10.128.0.20');
  });

  it(`host B killed (SIGKILL): its endpoints leave host A within the lease TTL (${TTL} s) + 1 s`, async (t) => {
    const macs = [await macOf(`o${tag}-c2`), await macOf(`o${tag}-c4`)];
    // Read before: each check after the kill is then two quick reads of the kernel.
    const devices = [(await a.vxlan('app')).name, (await a.vxlan('priv')).name];
    b.daemon!.signal('SIGKILL');
    await b.daemon!.waitForExit();
    const killed = Date.now();
    await until('host B\'s endpoints gone from host A', async () => [...await a.fdbOf(devices[0]), ...await a.fdbOf(devices[1])], (entries) => !entries.some((e) => macs.includes(e.mac)), (TTL + 1) * 1000);
    t.diagnostic(`forwarding entries gone ${Date.now() - killed} ms after the kill`);
    await until('web2.app gone on host A', () => dig(`o${tag}-c1`, 'web2.app'), (r) => r.status === 'NXDOMAIN', Math.max(1, (TTL + 1) * 1000 - (Date.now() - killed)));
  });

  it('host B started again after the kill: its endpoints come back; then etcd paused: traffic and names across hosts keep working', async () => {
    const [c1, c2] = [`o${tag}-c1`, `o${tag}-c2`];
    const mac2 = await macOf(c2);
    await b.start(b.url!);
    await until('web2 back in host A\'s forwarding table', () => a.fdb('app'), (entries) => entries.some((e) => e.mac === mac2), 20_000);
    await ping(c1, '10.128.0.20');
    etcd.pause();
    try {
      const end = Date.now() + (TTL + 2) * 1000; // past the lease: what the hosts hold must not depend on etcd answering
      while (Date.now() < end) {
        assert.equal((await execa('ip', ['netns', 'exec', c1, 'ping', '-c', '1', '-W', '2', '10.128.0.20'], { reject: false })).exitCode, 0, 'ping while etcd is paused');
        assert.deepEqual((await dig(c1, 'web2.app')).addresses, ['10.128.0.20'], 'name while etcd is paused');
      }
    } finally {
      etcd.resume();
    }
    // Back: the leases may have lapsed meanwhile; the entries come back with the announcements.
    await until('web2 in host A\'s forwarding table after etcd is back', () => a.fdb('app'), (entries) => entries.some((e) => e.mac === mac2), 20_000);
  });
});

type FdbEntry = { mac: string; dst?: string; state?: string; flags?: string[] };

/** `ip -j ARGS` (or `bridge -j`) inside a namespace, parsed. */
async function inNs(netns: string, ...args: string[]): Promise<any[]> {
  const out = await sh('ip', 'netns', 'exec', netns, ...args);
  return out.trim() === '' ? [] : JSON.parse(out);
}

async function macOf(netns: string): Promise<string> {
  return (await inNs(netns, 'ip', '-j', 'link', 'show', 'eth0'))[0].address;
}

async function ping(netns: string, address: string, ...options: string[]): Promise<void> {
  await until(`ping ${options.join(' ')} ${address} from ${netns}`, async () => (await execa('ip', ['netns', 'exec', netns, 'ping', '-c', '1', '-W', '1', ...options, address], { reject: false })).exitCode, (code) => code === 0);
}

/** dig @127.0.0.11 inside a container: its status, A addresses and PTR names. */
async function dig(netns: string, ...args: string[]): Promise<{ status: string; addresses: string[]; ptr: string[] }> {
  const r = await execa('ip', ['netns', 'exec', netns, 'dig', '@127.0.0.11', '+tries=1', '+time=2', ...args], { reject: false });
  const answers = (r.stdout.match(/;; ANSWER SECTION:\n([\s\S]*?)(?:\n\n|$)/)?.[1] ?? '').split('\n').filter(Boolean).map((l) => l.split(/\s+/));
  return {
    status: /status: (\w+)/.exec(r.stdout)?.[1] ?? 'NONE',
    addresses: answers.filter((f) => f[3] === 'A').map((f) => f[4]),
    ptr: answers.filter((f) => f[3] === 'PTR').map((f) => f[4]),
  };
}

/** A TCP echo server in `server` (socat, ended by its PID); what a client in `client` (undefined: this namespace) gets back from address:port. */
async function tcpEcho(server: string, client: string | undefined, address: string, text: string, port = ECHO_PORT): Promise<string> {
  const listener = spawn('ip', ['netns', 'exec', server, 'socat', `TCP-LISTEN:${ECHO_PORT},reuseaddr,fork`, 'PIPE'], { stdio: 'ignore' });
  try {
    const socat = ['socat', '-T', '2', '-', `TCP:${address}:${port}`];
    const reply = await until(`TCP to ${address}:${port}`, async () => (await execa(client ? 'ip' : socat[0], client ? ['netns', 'exec', client, ...socat] : socat.slice(1), { input: text, reject: false })).stdout, (out) => out === text);
    return reply;
  } finally {
    listener.kill('SIGTERM');
  }
}
