// Overlay networks across simulated hosts. hostA and hostB are network namespaces joined by an
// underlay bridge the test creates (10.128.250.0/24); each runs its own daemon (own state dir,
// socket, node name, `--cluster` and `--advertise-address`) that reaches one real etcd through a
// relay on the underlay (etcd itself listens on this namespace's loopback). "Containers" are
// namespaces the daemon of their host connects.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { MAIN, ROOT, RunningDaemon } from '../helpers/daemon.js';
import { TestEtcd } from '../helpers/etcd.js';
import { needsRoot, sh } from '../helpers/netns.js';
import { until } from '../helpers/wait.js';

const TTL = 3;
const tag = randomBytes(3).toString('hex');
const prefix = `/nsdns-overlay-${tag}`;
/** The underlay: a bridge here, one veth per host into it; the relay to etcd listens on the bridge's address. */
const underlay = { bridge: `u${tag}`, gateway: '10.128.250.254', prefixLength: 24 };
const RELAY_PORT = 16290;
const LISTEN_PORT = 16283;

/** One simulated host: a namespace on the underlay, and a daemon inside it. */
class Host {
  daemon: RunningDaemon | undefined;
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
    const args = [MAIN, 'serve', '--no-resolv-conf', '--state-dir', this.state, '--socket', `${this.state}/nsdns.sock`,
      '--firewall', 'none', '--link-prefix', `o${this.node.slice(-1)}`, '--listen', `127.0.0.1:${LISTEN_PORT}`,
      '--cluster', etcdUrl, '--advertise-address', this.address, '--node-name', this.node, '--announce-ttl', String(TTL)];
    const proc = spawn('ip', ['netns', 'exec', this.netns, process.execPath, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stderr!.resume();
    this.daemon = new RunningDaemon(proc, this.state, true);
    await Promise.race([
      this.daemon.waitForLog((l) => l.msg === 'ready', 60_000),
      this.daemon.waitForExit(61_000).then((code) => { throw new Error(`${this.node} exited with ${code} before ready`); }),
    ]);
    return this.daemon;
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
  const a = new Host('host-a', '10.128.250.1');
  const b = new Host('host-b', '10.128.250.2');

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
    await b.ok('network', 'create', '--driver', 'overlay', '--subnet', '10.129.0.0/16', '-o', 'vni=5000', 'other');
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

  it('says that overlay endpoints are not there yet, instead of "not provisioned by nsdns"', async () => {
    const container = `o${tag}-c1`;
    await sh('ip', 'netns', 'add', container);
    a.containers.push(container);
    for (const args of [['network', 'connect', 'app', container], ['network', 'rm', 'app']]) {
      const r = await a.nsdns(...args);
      assert.notEqual(r.exitCode, 0, args.join(' '));
      assert.match(r.stderr, /"app" is an overlay network of the cluster: connect, disconnect and rm are not supported on overlay networks yet/, args.join(' '));
    }
    assert.equal((await a.ok('network', 'ls', '--quiet')).split('\n').filter((n) => n === 'app').length, 1, 'app is still there');
  });
});
