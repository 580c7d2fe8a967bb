// Two hosts sharing one registry through a real etcd: each host is a daemon with its own state,
// socket and network namespace (host A the test's own, host B a namespace reached over a veth),
// both provisioning network "hnet" (one subnet, distinct --ip-range) and announcing it. Containers
// are namespaces each daemon connects. What one host connects is answered on the other's listener
// and inside the other's containers; a dead host's names go (within the lease on kill -9, at once
// on a clean stop); and an etcd paused past the lease never makes a live host's name NXDOMAIN.
// ETCD_HOSTS_LOGS=PATH keeps both daemons' logs (PATH.node-a, PATH.node-b) for a failure's reading.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { MAIN, ROOT, RunningDaemon } from '../helpers/daemon.js';
import { dig, digShort } from '../helpers/dig.js';
import { TestEtcd } from '../helpers/etcd.js';
import { needsRoot, sh } from '../helpers/netns.js';
import { decode, queryPacket } from '../helpers/packets.js';
import { until } from '../helpers/wait.js';

/** Small, so that expiry is quick to see (etcd's own minimum lease is about 2 s). */
const TTL = 3;
const GRACE_MS = 5000;
const tag = randomBytes(3).toString('hex');
const prefix = `/nsdns-hosts-${tag}`;
const hostB = `h${tag}`;
/** The veth between this namespace and host B's: etcd is reached over it through a proxy. */
const [linkA, addrA, addrB] = [`e${tag}`, '10.125.0.1', '10.125.0.2'];
const [PROXY_PORT, PORT_A, PORT_B] = [15991, 15993, 15992];

/** One simulated host: a daemon with its own state directory, socket, nft table and link prefix. */
class Host {
  daemon: RunningDaemon | undefined;
  readonly state = mkdtempSync(path.join(tmpdir(), 'nsdns-hosts-'));
  readonly linkPrefix: string;
  readonly containers: string[] = [];

  constructor(readonly node: string, private readonly netns: string | undefined, readonly listen: string, private readonly etcdUrl: string) {
    this.linkPrefix = `${node.slice(-1)}${tag.slice(0, 3)}`;
  }

  async start(): Promise<RunningDaemon> {
    const config = path.join(this.state, 'config.json');
    writeFileSync(config, JSON.stringify({ etcd: { deleteGraceMs: GRACE_MS, checkIntervalMs: 500, maxBackoffMs: 500 } }));
    const args = [MAIN, 'serve', '--config', config, '--no-resolv-conf', '--state-dir', this.state, '--socket', `${this.state}/nsdns.sock`,
      '--nft-table', `nsdns_test_${tag}${this.node.slice(-1)}`, '--link-prefix', this.linkPrefix, '--listen', this.listen,
      '--registry', this.etcdUrl, '--announce', this.etcdUrl, '--node-name', this.node, '--announce-ttl', String(TTL)];
    const proc = this.netns === undefined
      ? spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('ip', ['netns', 'exec', this.netns, process.execPath, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stderr!.resume();
    this.daemon = new RunningDaemon(proc, this.state, true);
    await Promise.race([
      this.daemon.waitForLog((l) => l.msg === 'ready', 60_000),
      this.daemon.waitForExit(61_000).then((code) => { throw new Error(`${this.node} exited with ${code} before ready`); }),
    ]);
    return this.daemon;
  }

  async ok(...args: string[]): Promise<string> {
    const r = await execa(process.execPath, [MAIN, ...args, '--socket', `${this.state}/nsdns.sock`], { reject: false, cwd: ROOT });
    if (r.exitCode !== 0) throw new Error(`${this.node}: nsdns ${args.join(' ')} failed (${r.exitCode}): ${r.stderr}`);
    return r.stdout;
  }

  async container(name: string): Promise<string> {
    const ns = `c${tag}-${name}`;
    await sh('ip', 'netns', 'add', ns);
    this.containers.push(ns);
    await sh('ip', '-n', ns, 'link', 'set', 'lo', 'up');
    return ns;
  }

  async cleanup(): Promise<void> {
    await this.daemon?.stop();
    for (const ns of this.containers) {
      await execa('ip', ['netns', 'del', ns], { reject: false });
      if (existsSync(`/etc/netns/${ns}`)) await execa('rm', ['-rf', `/etc/netns/${ns}`], { reject: false });
    }
    const links = (await sh('ip', '-o', 'link', 'show')).split('\n').map((l) => /^\d+:\s+([^:@]+)/.exec(l)?.[1] ?? '');
    for (const link of links.filter((l) => l.startsWith(this.linkPrefix))) await execa('ip', ['link', 'del', link], { reject: false });
    if (this.netns === undefined) await execa('nft', ['delete', 'table', 'inet', `nsdns_test_${tag}${this.node.slice(-1)}`], { reject: false });
    await execa('rm', ['-rf', this.state], { reject: false });
  }
}

/** dig @127.0.0.11 inside a container: its status and A addresses. */
async function digIn(ns: string, name: string): Promise<{ status: string; addresses: string[] }> {
  const r = await execa('ip', ['netns', 'exec', ns, 'dig', '@127.0.0.11', '+tries=2', '+time=2', name], { reject: false });
  const addresses = [...r.stdout.matchAll(/\sIN\s+A\s+(\S+)$/gm)].map((m) => m[1]).sort();
  return { status: /status: (\w+)/.exec(r.stdout)?.[1] ?? 'NO ANSWER', addresses };
}

/** A TCP relay from host B's side of the veth to etcd on this namespace's loopback. */
async function relay(listenHost: string, listenPort: number, target: string): Promise<net.Server> {
  const [host, port] = target.split(':');
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), host);
    for (const s of [client, upstream]) { sockets.add(s); s.on('close', () => sockets.delete(s)); s.on('error', () => { client.destroy(); upstream.destroy(); }); }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  server.on('close', () => { for (const s of sockets) s.destroy(); });
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(listenPort, listenHost, resolve); });
  return server;
}

/** rcode of one UDP query (undefined: no answer within a second). */
function ask(server: string, name: string): Promise<string | undefined> {
  const [host, port] = [server.slice(0, server.lastIndexOf(':')), Number(server.slice(server.lastIndexOf(':') + 1))];
  return new Promise((resolve) => {
    const socket = dgram.createSocket('udp4');
    const timer = setTimeout(() => { socket.close(); resolve(undefined); }, 1000);
    socket.on('message', (msg) => { clearTimeout(timer); socket.close(); resolve(decode(msg).rcode); });
    socket.send(queryPacket(name), port, host);
  });
}

describe('etcd: several hosts share one registry', { skip: needsRoot }, () => {
  let etcd: TestEtcd;
  let proxy: net.Server;
  let a: Host;
  let b: Host;
  let ca: string;
  let cb: string;
  const [serverA, serverB] = [`127.0.0.1:${PORT_A}`, `${addrB}:${PORT_B}`];

  before(async () => {
    etcd = await TestEtcd.start({ portBase: 15900, portCount: 80 }); // 15900-15979: the fixed ports above are not etcd's
    await sh('ip', 'netns', 'add', hostB);
    await sh('ip', '-n', hostB, 'link', 'set', 'lo', 'up');
    await sh('ip', 'link', 'add', linkA, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', hostB);
    await sh('ip', 'addr', 'add', `${addrA}/30`, 'dev', linkA);
    await sh('ip', 'link', 'set', linkA, 'up');
    await sh('ip', '-n', hostB, 'addr', 'add', `${addrB}/30`, 'dev', 'eth0');
    await sh('ip', '-n', hostB, 'link', 'set', 'eth0', 'up');
    proxy = await relay(addrA, PROXY_PORT, etcd.hostPort);
    a = new Host('node-a', undefined, serverA, `etcd://${etcd.hostPort}${prefix}`);
    b = new Host('node-b', hostB, serverB, `etcd://${addrA}:${PROXY_PORT}${prefix}`);
    await Promise.all([a.start(), b.start()]);
    // One network on both hosts: the same subnet, each host allocating from its own range.
    await a.ok('network', 'create', 'hnet', '--subnet', '10.125.1.0/24', '--ip-range', '10.125.1.0/25');
    await until('hnet in etcd', async () => (await etcd.list(`${prefix}/networks/hnet`)).size, (n) => n === 1);
    await b.ok('network', 'create', 'hnet', '--subnet', '10.125.1.0/24', '--ip-range', '10.125.1.128/25');
    [ca, cb] = [await a.container('ca'), await b.container('cb')];
    await a.ok('network', 'connect', 'hnet', ca, '--name', 'ca');
    await b.ok('network', 'connect', 'hnet', cb, '--name', 'cb');
  });
  after(async () => {
    if (process.env.ETCD_HOSTS_LOGS) for (const host of [a, b]) writeFileSync(`${process.env.ETCD_HOSTS_LOGS}.${host?.node}`, (host?.daemon?.logs ?? []).map((l) => JSON.stringify(l)).join('\n'));
    for (const host of [a, b]) await host?.cleanup().catch(() => undefined);
    proxy?.close();
    await execa('ip', ['link', 'del', linkA], { reject: false });
    await execa('ip', ['netns', 'del', hostB], { reject: false });
    await etcd?.stop();
  });

  it('answers a connect on either host on both hosts\' listeners and inside both hosts\' containers, each name once', async () => {
    for (const server of [serverA, serverB]) {
      const [ipA] = await until(`ca.hnet on ${server}`, () => digShort(server, 'ca.hnet'), (r) => r.length === 1);
      const [ipB] = await until(`cb.hnet on ${server}`, () => digShort(server, 'cb.hnet'), (r) => r.length === 1);
      assert.match(ipA, /^10\.125\.1\.([0-9]|[1-9][0-9]|1[01][0-9]|12[0-7])$/, 'host A allocates from its range');
      assert.match(ipB, /^10\.125\.1\.(12[89]|1[3-9][0-9]|2[0-5][0-9])$/, 'host B allocates from its range');
    }
    for (const ns of [ca, cb]) {
      for (const name of ['ca', 'cb', 'ca.hnet', 'cb.hnet']) {
        const r = await until(`${name} in ${ns}`, () => digIn(ns, name), (v) => v.addresses.length > 0);
        assert.equal(r.addresses.length, 1, `${name} in ${ns}: ${r.addresses.join(',')}`);
      }
    }
    // The network as each host shows it: its own definition, both hosts' endpoints.
    for (const host of [a, b]) {
      const inspected = JSON.parse(await host.ok('network', 'inspect', 'hnet'));
      const shown = JSON.stringify(inspected);
      assert.match(shown, /"ca"/, `${host.node} inspect shows ca`);
      assert.match(shown, /"cb"/, `${host.node} inspect shows cb`);
      assert.match(await host.ok('status'), /registry: +etcd:\/\/\S+: in sync/, `${host.node} status`);
    }
  });

  it('answers a put made with etcdctl on both hosts', async () => {
    await etcd.put(`${prefix}/endpoints/hnet/lab/manual1`, JSON.stringify({ name: 'manual', ipv4: '10.125.1.250' }));
    for (const server of [serverA, serverB]) {
      await until(`manual.hnet on ${server}`, () => digShort(server, 'manual.hnet'), (r) => r[0] === '10.125.1.250');
    }
    await etcd.del(`${prefix}/endpoints/hnet/lab/manual1`);
    for (const server of [serverA, serverB]) {
      await until(`manual.hnet gone on ${server}`, async () => (await dig(server, 'manual.hnet')).status, (s) => s === 'NXDOMAIN');
    }
  });

  it('etcd paused for twice the lease: no live host\'s name is ever NXDOMAIN; a disconnect meanwhile is gone at once on its own host', async (t) => {
    const cx = await a.container('cx');
    await a.ok('network', 'connect', 'hnet', cx, '--name', 'cx');
    await until('cx.hnet on host B', () => digShort(serverB, 'cx.hnet'), (r) => r.length === 1);
    const checks: Array<[string, string]> = [[serverA, 'ca.hnet'], [serverA, 'cb.hnet'], [serverB, 'ca.hnet'], [serverB, 'cb.hnet']];
    const wrong: string[] = [];
    let asked = 0;
    let stopAsking = false;
    const client = (async () => {
      while (!stopAsking) {
        const rcodes = await Promise.all(checks.map(([server, name]) => ask(server, name)));
        asked++;
        rcodes.forEach((rcode, i) => { if (rcode !== undefined && rcode !== 'NOERROR') wrong.push(`${checks[i][1]} at ${checks[i][0]}: ${rcode}`); });
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    etcd.pause();
    try {
      // While etcd is away, host A's own disconnect is its own state's: gone there at once.
      await a.ok('network', 'disconnect', 'hnet', cx);
      assert.equal((await dig(serverA, 'cx.hnet')).status, 'NXDOMAIN', 'a disconnected name on its own host while etcd is away');
      await new Promise((resolve) => setTimeout(resolve, 2 * TTL * 1000)); // the outage itself, not a wait for a condition
    } finally {
      etcd.resume();
    }
    const resumed = Date.now();
    // 30 s after, as the issue asks: well past the grace for deletes held after the outage.
    await until('the time after the outage', () => Date.now() - resumed > Math.max(30_000, GRACE_MS + 3000), (v) => v, 45_000);
    stopAsking = true;
    await client;
    t.diagnostic(`${asked} rounds of 4 queries during and after the pause`);
    assert.deepEqual(wrong, []);
    assert.ok(asked >= 20, `the client asked throughout (${asked} rounds)`);
  });

  it('a network created here with other subnets than etcd\'s does not take etcd\'s endpoints; removed, etcd\'s is served again', async () => {
    await etcd.put(`${prefix}/networks/dnet`, JSON.stringify({ name: 'dnet', subnets: [{ subnet: '10.125.2.0/24' }] }));
    await etcd.put(`${prefix}/endpoints/dnet/lab/far1`, JSON.stringify({ name: 'far', ipv4: '10.125.2.200' }));
    await until('far.dnet from etcd on host A', () => digShort(serverA, 'far.dnet'), (r) => r[0] === '10.125.2.200');
    await a.ok('network', 'create', 'dnet', '--subnet', '10.125.3.0/24');
    const line = await a.daemon!.waitForLog((l) => l.network === 'dnet' && String(l.msg).includes('another definition'));
    assert.match(String(line.problem), /subnets 10\.125\.2\.0\/24 in etcd, 10\.125\.3\.0\/24 here/);
    await until('far.dnet NXDOMAIN on host A', async () => (await dig(serverA, 'far.dnet')).status, (s) => s === 'NXDOMAIN');
    await a.ok('network', 'rm', 'dnet');
    await until('far.dnet from etcd again on host A', () => digShort(serverA, 'far.dnet'), (r) => r[0] === '10.125.2.200');
  });

  it('a clean stop takes a host\'s names away at once; kill -9 within the lease TTL + 1 s; the network\'s zone stays', async (t) => {
    const stopping = Date.now();
    await b.daemon!.stop();
    await until('cb.hnet NXDOMAIN on host A after a clean stop', async () => (await dig(serverA, 'cb.hnet')).status, (s) => s === 'NXDOMAIN', 1500);
    t.diagnostic(`clean stop: gone on host A ${Date.now() - stopping} ms after the stop began`);
    assert.equal((await digShort(serverA, 'ca.hnet')).length, 1);

    await b.start();
    await until('cb.hnet back on host A', () => digShort(serverA, 'cb.hnet'), (r) => r.length === 1, 20_000);
    b.daemon!.signal('SIGKILL');
    await b.daemon!.waitForExit();
    const killed = Date.now();
    await until('cb.hnet NXDOMAIN on host A after kill -9', async () => (await dig(serverA, 'cb.hnet')).status, (s) => s === 'NXDOMAIN', (TTL + 1) * 1000);
    t.diagnostic(`kill -9: gone on host A ${Date.now() - killed} ms after (TTL ${TTL} s)`);
    assert.equal((await digShort(serverA, 'ca.hnet')).length, 1, 'host A\'s own name still answers: the zone stays');
  });
});
