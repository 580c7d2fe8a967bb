// Plumbing that tells the truth: what `connect`, `status` and a restart say matches what a tenant
// gets. Published host ports are held (a port a host service uses is refused, and nothing takes a
// published one), --publish on an internal network is refused, links lost while the daemon was
// down (or while it runs) are put back, and a connect the daemon was killed in is rolled back.
// Everything lives in this file's namespaces, links, nft tables, ports 25600-25699, 10.176, 10.178-10.180 and 10.60 (10.177 is podman-netavark's).
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { Lab, needsRoot, sh } from '../helpers/netns.js';
import { stopPid, waitForSuccessor } from '../helpers/successor.js';

/** Polls `check` until it holds, or fails saying what was waited for. */
async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A TCP listener of this test process (a "host service"); rejects with the bind error. */
function listenTcp(host: string, port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer((s) => s.end('host service'));
    server.once('error', reject);
    server.listen({ host, port }, () => resolve(server));
  });
}

function bindUdp(address: string, port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    socket.once('error', (err) => { socket.close(); reject(err); });
    socket.bind({ address, port }, () => resolve(socket));
  });
}

const closeServer = (s: net.Server) => new Promise<void>((resolve) => s.close(() => resolve()));

/** What a TCP client at host:port reads, or the error code. */
function fetchFrom(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, host);
    let data = '';
    s.on('data', (c) => { data += c; });
    s.on('end', () => resolve(data));
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    s.setTimeout(2000, () => { s.destroy(); resolve('timeout'); });
  });
}

/** A TCP server inside a namespace that answers "from NAME". */
async function echoServer(ns: string, port: number): Promise<{ kill: () => void }> {
  const code = `require('net').createServer((s) => s.end('from ${ns}')).listen(${port}, () => console.log('up'))`;
  const proc = execa('ip', ['netns', 'exec', ns, process.execPath, '-e', code], { reject: false });
  await new Promise<void>((resolve) => proc.stdout!.once('data', () => resolve()));
  return { kill: () => proc.kill() };
}

async function pings(from: string, to: string): Promise<boolean> {
  return (await execa('ip', ['netns', 'exec', from, 'ping', '-c', '1', '-W', '1', to], { reject: false })).exitCode === 0;
}

async function status(lab: Lab): Promise<{ ready: boolean; problems: string[] }> {
  return JSON.parse((await lab.nsdns('status', '--json')).stdout);
}

async function containers(lab: Lab, network: string): Promise<string[]> {
  return Object.values(JSON.parse(await lab.ok('network', 'inspect', network))[0].Containers as Record<string, { Name: string }>).map((c) => c.Name);
}

describe('published host ports are held, as docker-proxy holds them', { skip: needsRoot }, () => {
  const lab = new Lab();
  const closers: Array<() => Promise<void> | void> = [];
  let successor: number | undefined;
  before(async () => {
    await lab.start();
    await lab.ok('network', 'create', 'ports', '--subnet', '10.176.0.0/24');
  });
  after(async () => {
    for (const c of closers) await c();
    // A handover's successor is not the test's child: stopped by its PID before the lab goes.
    await stopPid(successor);
    await lab.cleanup();
  });

  it('refuses a host port a host service listens on, names it, changes nothing, and the service keeps answering', async () => {
    const service = await listenTcp('127.0.0.1', 25601);
    closers.push(() => closeServer(service));
    const ns = await lab.namespace('busy');
    const linksBefore = await lab.links();
    const r = await lab.nsdns('network', 'connect', 'ports', ns, '--publish', '25601:80');
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr, /host port 25601\/tcp is already in use on the host/);
    assert.deepEqual(await containers(lab, 'ports'), [], 'nothing connected');
    assert.deepEqual(await lab.links(), linksBefore, 'no veth left behind');
    assert.doesNotMatch(await sh('nft', 'list', 'table', 'inet', lab.nftTable), /25601/, 'no DNAT rule');
    assert.equal(await fetchFrom('127.0.0.1', 25601), 'host service');
    const onAddress = await lab.nsdns('network', 'connect', 'ports', ns, '--publish', '127.0.0.1:25601:80');
    assert.equal(onAddress.exitCode, 1);
    assert.match(onAddress.stderr, /host port 25601\/tcp is already in use on 127\.0\.0\.1/);
  });

  it('holds a published port while it is published (TCP and UDP), and lets it go at disconnect', async () => {
    const ns = await lab.namespace('held');
    await lab.ok('network', 'connect', 'ports', ns, '--publish', '127.0.0.1:25602:80', '--publish', '25603:53/udp');
    await assert.rejects(listenTcp('127.0.0.1', 25602), { code: 'EADDRINUSE' });
    await assert.rejects(bindUdp('0.0.0.0', 25603), { code: 'EADDRINUSE' });
    await lab.ok('network', 'disconnect', 'ports', ns);
    const free = await listenTcp('127.0.0.1', 25602);
    await closeServer(free);
    (await bindUdp('0.0.0.0', 25603)).close();
  });

  it('after a restart holds them again; one taken meanwhile is logged, shown in status (not ready), and held once free', async () => {
    const kept = await lab.namespace('kept');
    const lost = await lab.namespace('lost');
    await lab.ok('network', 'connect', 'ports', kept, '--publish', '25604:80');
    await lab.ok('network', 'connect', 'ports', lost, '--publish', '25605:80');
    await lab.daemon!.stop();
    const squatter = await listenTcp('127.0.0.1', 25605);
    const daemon = await lab.start();
    await assert.rejects(listenTcp('0.0.0.0', 25604), { code: 'EADDRINUSE' }, 'held again after the start');
    await daemon.waitForLog((l) => /publishes a host port nsdns cannot hold: host port 25605\/tcp is already in use/.test(l.msg));
    const s = await status(lab);
    assert.equal(s.ready, false);
    assert.ok(s.problems.some((p) => /endpoint "ns\w+-lost" .*25605\/tcp is already in use/.test(p)), JSON.stringify(s.problems));
    await closeServer(squatter);
    await waitFor('the freed port is held and status is ready', async () => (await status(lab)).ready);
    await assert.rejects(listenTcp('127.0.0.1', 25605), { code: 'EADDRINUSE' });
    await lab.ok('network', 'disconnect', 'ports', kept);
    await lab.ok('network', 'disconnect', 'ports', lost);
  });

  it('after a handover (SIGUSR2, nsdns restart) the new daemon holds the published ports once the old one has exited', async () => {
    const ns = await lab.namespace('handed');
    await lab.ok('network', 'connect', 'ports', ns, '--publish', '25607:80');
    const daemon = lab.daemon!;
    const oldPid = daemon.proc.pid!;
    daemon.signal('SIGUSR2');
    successor = await waitForSuccessor(lab.state, lab.socket, oldPid);
    assert.equal(await daemon.waitForExit(), 0);
    // A probe that gets the port gives it back at once; the successor's next pass takes it.
    await waitFor('the successor holds 25607', () => listenTcp('0.0.0.0', 25607).then(async (probe) => { await closeServer(probe); return false; }, (err: NodeJS.ErrnoException) => err.code === 'EADDRINUSE'));
    await waitFor('status is ready', async () => (await status(lab)).ready);
    await lab.ok('network', 'disconnect', 'ports', ns);
  });

  it('refuses --publish on an internal network, as docker does, and connects nothing', async () => {
    await lab.ok('network', 'create', 'sealed', '--subnet', '10.176.1.0/24', '--internal');
    const ns = await lab.namespace('sealed');
    const r = await lab.nsdns('network', 'connect', 'sealed', ns, '--publish', '25606:80');
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr, /--publish: network "sealed" is internal/);
    assert.deepEqual(await containers(lab, 'sealed'), []);
    await listenTcp('127.0.0.1', 25606).then(closeServer);
  });
});

describe('links are read back and repaired: at start and while running', { skip: needsRoot }, () => {
  const lab = new Lab();
  let a: string, b: string;
  const servers: Array<{ kill: () => void }> = [];
  const bridge = `${lab.linkPrefix}br77`;
  before(async () => {
    await lab.start();
    a = await lab.namespace('a');
    b = await lab.namespace('b');
    await lab.ok('network', 'create', 'mend', '--subnet', '10.60.0.0/24', '--bridge', bridge);
    await lab.ok('network', 'connect', 'mend', a);
    await lab.ok('network', 'connect', 'mend', b, '--publish', '127.0.0.1:25610:8080');
    servers.push(await echoServer(b, 8080));
  });
  after(async () => {
    for (const s of servers) s.kill();
    await lab.cleanup();
  });

  const working = async () => await pings(a, '10.60.0.3') && await fetchFrom('127.0.0.1', 25610) === `from ${b}`;

  it('a bridge deleted while the daemon was down is recreated at start with its ports attached: pings and the published port work, status is ready', async () => {
    assert.ok(await working(), 'works before');
    await lab.daemon!.stop();
    await sh('ip', 'link', 'del', bridge);
    const daemon = await lab.start();
    assert.ok(await pings(a, '10.60.0.3'), 'a pings b');
    assert.equal(await fetchFrom('127.0.0.1', 25610), `from ${b}`);
    assert.ok(daemon.logs.some((l) => /attached \w+ to bridge .* again/.test(l.msg)), 'the repair is logged');
    const s = await status(lab);
    assert.equal(s.ready, true, s.problems.join('; '));
  });

  it('a bridge deleted while the daemon runs comes back with its ports within the self-heal pass', async () => {
    await sh('ip', 'link', 'del', bridge);
    await waitFor('pings and the published port work again', working);
  });

  it('a veth that is gone cannot be repaired: status names it and is not ready until it is disconnected', async () => {
    const [, endpoint] = Object.values(JSON.parse(await lab.ok('network', 'inspect', 'mend'))[0].Containers as Record<string, { Name: string }>)
      .map((c) => c.Name).sort();
    const hostIf = (JSON.parse(readFileSync(`${lab.state}/networks/mend.json`, 'utf8')).endpoints as Array<{ name: string; hostIf: string }>).find((e) => e.name === endpoint)!.hostIf;
    await sh('ip', 'link', 'del', hostIf);
    await waitFor('status reports the lost link', async () => (await status(lab)).problems.some((p) => p.includes(`its link ${hostIf} is gone`)));
    assert.equal((await lab.nsdns('status')).exitCode, 1);
    await lab.ok('network', 'disconnect', 'mend', endpoint);
    await waitFor('ready again', async () => (await status(lab)).ready);
  });
});

describe('a connect the daemon is killed in is rolled back at the next start', { skip: needsRoot }, () => {
  const lab = new Lab();
  before(async () => {
    await lab.start();
    await lab.ok('network', 'create', 'cut', '--subnet', '10.178.0.0/24');
  });
  after(() => lab.cleanup());

  it('the CLI says what to expect; after the restart the endpoint is gone and the same connect succeeds', async () => {
    const ns = await lab.namespace('cut');
    // A slow step after the endpoint is saved: reading the namespace's resolv.conf (a FIFO here)
    // waits for a writer, so the daemon is killed with the connect committed but unanswered.
    await sh('mkdir', '-p', `/etc/netns/${ns}`);
    await sh('mkfifo', `/etc/netns/${ns}/resolv.conf`);
    const connect = lab.nsdns('network', 'connect', 'cut', ns, '--publish', '25620:80');
    const stateFile = `${lab.state}/networks/cut.json`;
    await waitFor('the endpoint is saved', () => existsSync(stateFile) && JSON.parse(readFileSync(stateFile, 'utf8')).endpoints.length === 1);
    lab.daemon!.signal('SIGKILL');
    await lab.daemon!.waitForExit();
    const r = await connect;
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr, /the daemon stopped before it finished connecting "ns\w+-cut" to "cut"; when it starts again it rolls that connect back, so run the same connect again then/);
    await sh('rm', '-rf', `/etc/netns/${ns}`);

    const daemon = await lab.start();
    assert.ok(daemon.logs.some((l) => /rolled back the connect of "ns\w+-cut" to network "cut"/.test(l.msg)), 'the rollback is logged');
    assert.deepEqual(await containers(lab, 'cut'), []);
    assert.deepEqual((await sh('ip', '-n', ns, '-o', 'link')).split('\n').length, 1, 'only lo is left in the namespace');
    assert.doesNotMatch(await sh('nft', 'list', 'table', 'inet', lab.nftTable), /25620/);
    await lab.ok('network', 'connect', 'cut', ns, '--publish', '25620:80');
    assert.deepEqual(await lab.dig(ns, ns), ['10.178.0.2']);
    assert.equal((await status(lab)).ready, true);
  });
});
