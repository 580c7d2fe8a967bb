// Overlay figures (issue 21), in one run on two simulated hosts: namespaces hostA and hostB on an
// underlay bridge (10.139.250.0/24), each with its own daemon (`--cluster`, `--advertise-address`)
// against one etcd that listens on the underlay bridge's address. Writes RESULTS_DIR/overlay.md. Measures:
//   1. connect on A until the name answers on B (B's host listener on its underlay address);
//   2. connect on an overlay network against connect on a bridge network, same daemon;
//   3. TCP throughput and ping-pong RTT between two containers across the hosts against two on one bridge.
// Connects go straight to the control socket (one request, as the CLI sends it): no CLI start in the figures.
// Everything it creates carries the prefix `ob<tag>` and is removed on exit, INT and TERM.
// Also run inside a container as `overlay.js tcp-server PORT` / `overlay.js tcp-client ADDR PORT SECS`.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { askA } from './ask.js';

const SELF = fileURLToPath(import.meta.url);
const ROOT = path.resolve(path.dirname(SELF), '../..');
const MAIN = path.join(ROOT, 'dist/src/main.js');
const RESULTS = process.env.RESULTS_DIR ?? path.join(ROOT, 'bench/results');
const CONNECTS = Number(process.env.OVL_CONNECTS ?? 30);
const SECS = Number(process.env.OVL_SECS ?? 3);
const PINGS = Number(process.env.OVL_PINGS ?? 2000);
const ROUNDS = Number(process.env.OVL_ROUNDS ?? 3);
const ETCD_PORT = 17000; // and 17001 for its peer port
const LISTEN_PORT = 17053;
const TCP_PORT = 17080;

const pct = (xs: number[], p: number) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]; };
const ms = (x: number) => x.toFixed(1);
const sleep = (t: number) => new Promise((r) => setTimeout(r, t));

// ---- inside a container: the TCP peers of figure 3 ----

/** Echoes ping-pong messages; swallows a stream. Prints "listening" once bound. */
function tcpServer(port: number): void {
  net.createServer((s) => s.on('data', (d) => { if (d.length <= 8) s.write(d); }).on('error', () => undefined))
    .listen(port, () => console.log('listening'));
}

/** SECS of streaming (MB/s), then PINGS ping-pongs of 8 bytes (RTT p50/p99 in ms), on fresh connections. */
async function tcpClient(address: string, port: number, secs: number): Promise<void> {
  const stream = net.connect(port, address);
  await new Promise((r) => stream.once('connect', r));
  const chunk = Buffer.alloc(64 * 1024);
  let sent = 0;
  const start = performance.now();
  while (performance.now() - start < secs * 1000) {
    if (!stream.write(chunk)) await new Promise((r) => stream.once('drain', r));
    sent += chunk.length;
  }
  await new Promise<void>((r) => stream.end(r));
  const mbps = sent / 1e6 / ((performance.now() - start) / 1000);
  const pp = net.connect(port, address);
  pp.setNoDelay(true);
  await new Promise((r) => pp.once('connect', r));
  const rtts: number[] = [];
  for (let i = 0; i < PINGS; i++) {
    const t = performance.now();
    pp.write('ping');
    await new Promise((r) => pp.once('data', r));
    rtts.push(performance.now() - t);
  }
  pp.destroy();
  console.log(JSON.stringify({ mbps, p50: pct(rtts, 50), p99: pct(rtts, 99) }));
}

// ---- the run ----

const tag = randomBytes(2).toString('hex');
const P = `ob${tag}`;
const underlay = { bridge: `${P}u`, gateway: '10.139.250.254' };
/** The run's files (etcd's data, the daemons' state); made by run() only, not by the TCP peers. */
let work = '';
const namespaces: string[] = [];
const links: string[] = [];
const children: ChildProcess[] = [];
let etcd: ChildProcess | undefined;

function sh(cmd: string, ...args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function netns(name: string): string {
  sh('ip', 'netns', 'add', name);
  namespaces.push(name);
  return name;
}

/** Ends a child we started, by its PID: SIGTERM, SIGKILL after `graceMs`; resolves once it is gone. */
async function end(c: ChildProcess, graceMs: number): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null || !c.pid) return;
  const gone = new Promise((r) => c.once('exit', r));
  c.kill('SIGTERM');
  const timer = setTimeout(() => c.kill('SIGKILL'), graceMs);
  await gone;
  clearTimeout(timer);
}

let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= removeAll();
  return cleaning;
}

/** Daemons and peers first (they release their leases while etcd is still there), etcd last, then the kernel's objects. */
async function removeAll(): Promise<void> {
  await Promise.all(children.filter((c) => c !== etcd).map((c) => end(c, 10_000)));
  if (etcd) await end(etcd, 5_000);
  for (const ns of namespaces.reverse()) { try { sh('ip', 'netns', 'del', ns); } catch { /* gone */ } rmSync(`/etc/netns/${ns}`, { recursive: true, force: true }); }
  for (const l of links) { try { sh('ip', 'link', 'del', l); } catch { /* gone with its namespace */ } }
  if (work) rmSync(work, { recursive: true, force: true });
}

/** One request on a control socket; resolves with its result, rejects with its error message. */
function call(sock: string, method: string, params: object): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const s = net.connect(sock);
    let buf = '';
    s.on('connect', () => s.write(JSON.stringify({ id: 1, method, params }) + '\n'));
    s.on('data', (d) => {
      buf += d;
      if (!buf.includes('\n')) return;
      s.destroy();
      const r = JSON.parse(buf);
      if (r.ok) resolve(r.result); else reject(new Error(`${method}: ${r.error?.message}`));
    });
    s.on('error', reject);
  });
}

class Host {
  readonly netns: string;
  readonly state: string;
  readonly sock: string;
  constructor(readonly node: string, readonly address: string) {
    this.netns = `${P}-${node}`;
    this.state = mkdtempSync(path.join(work, `${node}-`));
    this.sock = path.join(this.state, 'nsdns.sock');
  }

  plug(): void {
    const link = `${P}${this.node.slice(-1)}`;
    netns(this.netns);
    sh('ip', '-n', this.netns, 'link', 'set', 'lo', 'up');
    sh('ip', 'link', 'add', link, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.netns);
    links.push(link);
    sh('ip', 'link', 'set', link, 'master', underlay.bridge, 'up');
    sh('ip', '-n', this.netns, 'addr', 'add', `${this.address}/24`, 'dev', 'eth0');
    sh('ip', '-n', this.netns, 'link', 'set', 'eth0', 'up');
  }

  async start(cluster: string): Promise<void> {
    const id = this.node.slice(-1);
    const args = [MAIN, 'serve', '--no-resolv-conf', '--state-dir', this.state, '--socket', this.sock, '--firewall', 'nftables',
      '--nft-table', `${P}_${id}`, '--link-prefix', `ob${id}`, '--listen', `${this.address}:${LISTEN_PORT}`,
      '--cluster', cluster, '--advertise-address', this.address, '--node-name', `${P}-${this.node}`];
    const proc = spawn('ip', ['netns', 'exec', this.netns, process.execPath, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(proc);
    let buf = '';
    await new Promise<void>((resolve, reject) => {
      proc.stdout!.on('data', (d) => { buf += d; if (buf.includes('"msg":"ready"')) { buf = ''; resolve(); } else if (buf.length > 1e6) buf = buf.slice(-1000); });
      proc.once('exit', (code) => reject(new Error(`${this.node}: daemon exited with ${code} before ready`)));
    });
    proc.stdout!.removeAllListeners('data');
    proc.stdout!.resume();
  }

  connect(params: object): Promise<unknown> { return call(this.sock, 'network.connect', params); }
}

async function startEtcd(): Promise<void> {
  const url = `http://${underlay.gateway}:${ETCD_PORT}`;
  const peer = `http://${underlay.gateway}:${ETCD_PORT + 1}`;
  etcd = spawn('etcd', ['--name', P, '--data-dir', path.join(work, 'etcd'), '--listen-client-urls', url, '--advertise-client-urls', url,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `${P}=${peer}`, '--log-level', 'error'], { stdio: 'ignore' });
  children.push(etcd);
  for (let i = 0; ; i++) {
    try { execFileSync('etcdctl', ['--endpoints', url, 'endpoint', 'health'], { stdio: 'ignore' }); return; } catch (err) { if (i > 100) throw err; await sleep(100); }
  }
}

type Tcp = { mbps: number; p50: number; p99: number };
const medians = (runs: Tcp[]): Tcp => ({ mbps: pct(runs.map((r) => r.mbps), 50), p50: pct(runs.map((r) => r.p50), 50), p99: pct(runs.map((r) => r.p99), 50) });

/** Starts `overlay.js tcp-server` in `server`, runs the client in `client`; its figures. */
async function tcpFigures(server: string, client: string, address: string): Promise<Tcp> {
  const srv = spawn('ip', ['netns', 'exec', server, process.execPath, SELF, 'tcp-server', String(TCP_PORT)], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(srv);
  await new Promise((r) => srv.stdout!.once('data', r));
  try {
    return JSON.parse(sh('ip', 'netns', 'exec', client, process.execPath, SELF, 'tcp-client', address, String(TCP_PORT), String(SECS)));
  } finally {
    srv.kill('SIGTERM');
  }
}

async function run(): Promise<void> {
  const load = loadavg();
  work = mkdtempSync(path.join(tmpdir(), `${P}-`));
  sh('ip', 'link', 'add', underlay.bridge, 'type', 'bridge');
  links.push(underlay.bridge);
  sh('ip', 'addr', 'add', `${underlay.gateway}/24`, 'dev', underlay.bridge);
  sh('ip', 'link', 'set', underlay.bridge, 'up');
  await startEtcd();
  const a = new Host('host-a', '10.139.250.1');
  const b = new Host('host-b', '10.139.250.2');
  a.plug();
  b.plug();
  const cluster = `etcd://${underlay.gateway}:${ETCD_PORT}/${P}`;
  await Promise.all([a.start(cluster), b.start(cluster)]);
  await call(a.sock, 'network.create', { name: 'ovl', driver: 'overlay', subnets: ['10.139.0.0/20'] });
  await call(a.sock, 'network.create', { name: 'br', subnets: ['10.139.16.0/24'] });
  // B must know the network before a name on it can answer there.
  for (let i = 0; ; i++) {
    if (JSON.stringify(await call(b.sock, 'network.ls', {}).catch(() => [])).includes('"ovl"')) break;
    if (i > 200) throw new Error('host B never saw network ovl');
    await sleep(50);
  }

  // Figures 1 and 2: interleaved, overlay connect (timed until B answers) then bridge connect.
  const toAnswer: number[] = [];
  /** From connect's reply on A to B's first answer: the etcd round trip and B's registry update. */
  const afterReply: number[] = [];
  const overlayConnect: number[] = [];
  const bridgeConnect: number[] = [];
  for (let i = 0; i < CONNECTS; i++) {
    const o = netns(`${P}-o${i}`);
    const name = `w${i}.ovl`;
    const t0 = performance.now();
    await a.connect({ network: 'ovl', target: o, name: `w${i}` });
    overlayConnect.push(performance.now() - t0);
    for (;;) {
      const r = await askA(LISTEN_PORT, name, b.address);
      if (r?.rcode === 'NOERROR' && r.data) break;
      if (performance.now() - t0 > 30_000) throw new Error(`${name}: no answer on host B within 30 s`);
    }
    toAnswer.push(performance.now() - t0);
    afterReply.push(toAnswer[i] - overlayConnect[i]);
    const br = netns(`${P}-b${i}`);
    const t1 = performance.now();
    await a.connect({ network: 'br', target: br, name: `v${i}` });
    bridgeConnect.push(performance.now() - t1);
  }

  // Figure 3: a container on B reached from A's first overlay container; two bridge containers on A.
  const far = netns(`${P}-far`);
  await b.connect({ network: 'ovl', target: far, ip: '10.139.15.200' });
  const near = netns(`${P}-near`);
  await a.connect({ network: 'br', target: near, ip: '10.139.16.200' });
  const runs = { across: [] as Tcp[], bridged: [] as Tcp[] };
  for (let i = 0; i < ROUNDS; i++) { // interleaved: a busy neighbour hurts both kinds alike
    runs.across.push(await tcpFigures(far, `${P}-o0`, '10.139.15.200'));
    runs.bridged.push(await tcpFigures(near, `${P}-b0`, '10.139.16.200'));
  }
  const across = medians(runs.across);
  const bridged = medians(runs.bridged);

  const rows = [
    ['connect on A until the name answers on B', `median ${ms(pct(toAnswer, 50))} ms, p99 ${ms(pct(toAnswer, 99))} ms`, '< 200 ms'],
    ['… of which after connect replied on A', `median ${ms(pct(afterReply, 50))} ms, p99 ${ms(pct(afterReply, 99))} ms`, ''],
    ['connect, overlay network (median)', `${ms(pct(overlayConnect, 50))} ms (p99 ${ms(pct(overlayConnect, 99))})`, ''],
    ['connect, bridge network (median)', `${ms(pct(bridgeConnect, 50))} ms (p99 ${ms(pct(bridgeConnect, 99))})`, ''],
    ['overlay / bridge connect', `${(pct(overlayConnect, 50) / pct(bridgeConnect, 50)).toFixed(2)}×`, '≤ 1.5×'],
    ['TCP stream, across hosts (VXLAN)', `${across.mbps.toFixed(0)} MB/s`, ''],
    ['TCP stream, one bridge', `${bridged.mbps.toFixed(0)} MB/s`, ''],
    ['across / bridge throughput', `${(across.mbps / bridged.mbps).toFixed(2)}×`, 'for the record'],
    ['TCP ping-pong RTT, across hosts', `p50 ${across.p50.toFixed(3)} ms, p99 ${across.p99.toFixed(3)} ms`, ''],
    ['TCP ping-pong RTT, one bridge', `p50 ${bridged.p50.toFixed(3)} ms, p99 ${bridged.p99.toFixed(3)} ms`, ''],
    ['across / bridge RTT (p50)', `${(across.p50 / bridged.p50).toFixed(2)}×`, 'for the record'],
  ];
  const table = ['| figure | measured | target |', '| --- | --- | --- |', ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
  const out = path.join(RESULTS, 'overlay.md');
  writeFileSync(out, [
    '# Overlay networks: figures',
    '',
    'Two simulated hosts (namespaces on an underlay bridge, one nsdns daemon each with `--cluster` and',
    '`--advertise-address`, one etcd on the underlay), measured in one run by `bench/overlay.sh`',
    '(`sudo bash bench/overlay.sh` on a built tree; etcd and etcdctl installed). Connects are one request',
    'on the control socket (no CLI start), interleaved overlay / bridge; the name is asked of host B\'s',
    'host listener on its underlay address until it answers. TCP: a Node stream for a few seconds, then',
    '8-byte ping-pongs on one connection (TCP_NODELAY), container to container; rounds interleaved.',
    '',
    table,
    '',
    `Machine: ${cpus().length} cores, load average ${load.map((x) => x.toFixed(2)).join(', ')} (1, 5, 15 min) at the start of the run: ` +
      `${load[0] > cpus().length ? 'a busy shared machine, so the tails (p99) say more about the neighbours than about nsdns' : 'otherwise idle'}. ` +
      `${CONNECTS} connects per kind; TCP: medians of ${ROUNDS} interleaved rounds of a ${SECS} s stream and ${PINGS} ping-pongs (OVL_CONNECTS, OVL_ROUNDS, OVL_SECS, OVL_PINGS).`,
    '',
  ].join('\n'));
  console.log(table);
  console.log(`written to ${out}`);
}

const [mode, ...rest] = process.argv.slice(2);
if (mode === 'tcp-server') tcpServer(Number(rest[0]));
else if (mode === 'tcp-client') await tcpClient(rest[0], Number(rest[1]), Number(rest[2]));
else {
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { void cleanup().finally(() => process.exit(130)); });
  try { await run(); } finally { await cleanup(); }
}
