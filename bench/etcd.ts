// Shared registry in etcd (issue 20) beside a file registry of the same size, in one run: 10 000
// endpoints on 100 networks (ETCD_NETWORKS × ETCD_PER). For each: start-up until every name is
// served, RSS then, and the time from a change (an etcd put; a file rewritten) to the answer
// changing at the daemon (ETCD_CHANGES changes, median and p99). Then the time until a killed
// host's names are gone: a process that holds a lease (ETCD_TTL s, the announcer's default) with
// 100 endpoints on it is killed with SIGKILL. Writes RESULTS_DIR/etcd.tsv and etcd-figures.md (with the ratios).
// Everything is on loopback: etcd on ETCD_PORT (15970) and ETCD_PORT+1, daemons on port 0.
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';
import { askA } from './ask.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MAIN = path.join(ROOT, 'dist/src/main.js');
const RESULTS = process.env.RESULTS_DIR ?? path.join(ROOT, 'bench/results');
const NETWORKS = Number(process.env.ETCD_NETWORKS ?? 100);
const PER = Number(process.env.ETCD_PER ?? 100);
const CHANGES = Number(process.env.ETCD_CHANGES ?? 100);
const TTL = Number(process.env.ETCD_TTL ?? 10);
const PORT = Number(process.env.ETCD_PORT ?? 15970);
const PREFIX = '/pb-etcd';
const endpoint = `127.0.0.1:${PORT}`;

const address = (n: number, i: number, bump = 0) => `10.${100 + Math.floor(n / 250)}.${n % 250}.${10 + i + bump}`;

/** Asks until `ok` holds; resolves with the time it first did (ms since `from`). */
async function until(port: number, name: string, ok: (r: { rcode?: string; data?: string } | undefined) => boolean, from: number, limitMs = 60_000): Promise<number> {
  for (;;) {
    if (ok(await askA(port, name))) return performance.now() - from;
    if (performance.now() - from > limitMs) throw new Error(`${name}: no change within ${limitMs} ms`);
  }
}

function rssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}

const pct = (xs: number[], p: number) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]; };

async function startEtcd(dir: string): Promise<ChildProcess> {
  const child = spawn('etcd', ['--name', 'pb-etcd', '--data-dir', dir, '--listen-client-urls', `http://${endpoint}`, '--advertise-client-urls', `http://${endpoint}`,
    '--listen-peer-urls', `http://127.0.0.1:${PORT + 1}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${PORT + 1}`,
    '--initial-cluster', `pb-etcd=http://127.0.0.1:${PORT + 1}`, '--log-level', 'error', '--logger', 'zap', '--quota-backend-bytes', String(1 << 30)],
  { stdio: 'ignore' });
  const client = new Etcd3({ hosts: `http://${endpoint}` });
  for (let i = 0; ; i++) {
    try { await client.get('/').exec(); break; } catch (err) { if (i > 300) throw err; await new Promise((r) => setTimeout(r, 100)); }
  }
  client.close();
  return child;
}

/** Starts `nsdns serve` with `args`; resolves once every network's last name answers, with the times. */
async function startDaemon(args: string[], state: string): Promise<{ proc: ChildProcess; port: number; readyMs: number; allMs: number }> {
  const t0 = performance.now();
  const proc = spawn(process.execPath, [MAIN, 'serve', ...args, '--listen', '127.0.0.1:0', '--state-dir', state, '--socket', `${state}/nsdns.sock`,
    '--no-resolv-conf', '--nft-table', 'pb_etcd', '--link-prefix', 'pbe'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let partial = '';
  const ready = await new Promise<{ port: number }>((resolve, reject) => {
    proc.on('exit', (code) => reject(new Error(`nsdns exited with ${code}`)));
    proc.stdout!.on('data', (c: Buffer) => {
      const lines = (partial + c.toString()).split('\n');
      partial = lines.pop()!;
      for (const l of lines) if (l.includes('"msg":"ready"')) resolve({ port: JSON.parse(l).listeners[0].port });
    });
  });
  const readyMs = performance.now() - t0;
  for (let n = 0; n < NETWORKS; n++) await until(ready.port, `n${n}e${PER - 1}.net${n}`, (r) => r?.data === address(n, PER - 1), t0, 120_000);
  return { proc, port: ready.port, readyMs, allMs: performance.now() - t0 };
}

async function stop(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  await exited;
}

const rows: Array<Record<string, string | number>> = [];

function row(fields: Record<string, string | number>): void {
  rows.push(fields);
  const file = path.join(RESULTS, 'etcd.tsv');
  const line = Object.values(fields).map((v) => (typeof v === 'number' ? v.toFixed(1) : v)).join('\t');
  appendFileSync(file, `${line}\n`);
  console.log(Object.entries(fields).map(([k, v]) => `${k}=${typeof v === 'number' ? v.toFixed(1) : v}`).join(' '));
}

async function main(): Promise<void> {
  const work = mkdtempSync(path.join(tmpdir(), 'pb-etcd-'));
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(path.join(RESULTS, 'etcd.tsv'), 'registry\tmetric\tmedian_ms\tp99_ms\tvalue\n');
  const etcd = await startEtcd(path.join(work, 'etcd'));
  const client = new Etcd3({ hosts: `http://${endpoint}` });
  const daemons: ChildProcess[] = [];
  try {
    // The same registry twice: in etcd, and as files.
    const files = path.join(work, 'files');
    mkdirSync(files);
    for (let n = 0; n < NETWORKS; n++) {
      const endpoints = Array.from({ length: PER }, (_, i) => ({ name: `n${n}e${i}`, ipv4: address(n, i) }));
      writeFileSync(path.join(files, `net${n}.json`), JSON.stringify({ name: `net${n}`, endpoints }));
      await client.put(`${PREFIX}/networks/net${n}`).value(JSON.stringify({ name: `net${n}` })).exec();
      await Promise.all(endpoints.map((e, i) => client.put(`${PREFIX}/endpoints/net${n}/pb-host/e${i}`).value(JSON.stringify({ name: e.name, ipv4: e.ipv4 })).exec()));
    }

    const viaEtcd = await startDaemon(['--registry', `etcd://${endpoint}${PREFIX}`], path.join(work, 'state-etcd'));
    daemons.push(viaEtcd.proc);
    const viaFiles = await startDaemon(['--registry', files], path.join(work, 'state-files'));
    daemons.push(viaFiles.proc);
    for (const [label, d] of [['etcd', viaEtcd], ['file', viaFiles]] as const) {
      row({ registry: label, metric: 'ready', median: d.readyMs, p99: d.readyMs, value: `${NETWORKS * PER} endpoints` });
      row({ registry: label, metric: 'all-served', median: d.allMs, p99: d.allMs, value: `${NETWORKS * PER} endpoints` });
      row({ registry: label, metric: 'rss-mb', median: rssMb(d.proc.pid!), p99: rssMb(d.proc.pid!), value: 'after all served' });
    }

    // A change to the answer changing: alternately one address moved and moved back, on a random network.
    const etcdTimes: number[] = [];
    const fileTimes: number[] = [];
    for (let k = 0; k < CHANGES; k++) {
      const n = Math.floor(Math.random() * NETWORKS);
      const bump = k % 2 === 0 ? 100 : 0;
      let t0 = performance.now();
      await client.put(`${PREFIX}/endpoints/net${n}/pb-host/e0`).value(JSON.stringify({ name: `n${n}e0`, ipv4: address(n, 0, bump) })).exec();
      etcdTimes.push(await until(viaEtcd.port, `n${n}e0.net${n}`, (r) => r?.data === address(n, 0, bump), t0));
      const endpoints = Array.from({ length: PER }, (_, i) => ({ name: `n${n}e${i}`, ipv4: address(n, i, i === 0 ? bump : 0) }));
      const file = path.join(files, `net${n}.json`);
      t0 = performance.now();
      writeFileSync(`${file}.tmp`, JSON.stringify({ name: `net${n}`, endpoints }));
      renameSync(`${file}.tmp`, file);
      fileTimes.push(await until(viaFiles.port, `n${n}e0.net${n}`, (r) => r?.data === address(n, 0, bump), t0));
      // Both back to the original between changes (odd k), so the next one starts from a known state.
    }
    row({ registry: 'etcd', metric: 'change-to-answer', median: pct(etcdTimes, 50), p99: pct(etcdTimes, 99), value: `${CHANGES} puts` });
    row({ registry: 'file', metric: 'change-to-answer', median: pct(fileTimes, 50), p99: pct(fileTimes, 99), value: `${CHANGES} rewrites` });

    // A host that dies: a process holding a lease with 100 endpoints on it, killed with SIGKILL.
    const holder = spawn(process.execPath, ['--input-type=module', '-e', `
      import { Etcd3 } from 'etcd3';
      const c = new Etcd3({ hosts: 'http://${endpoint}' });
      const lease = c.lease(${TTL});
      await lease.grant();
      await Promise.all(Array.from({ length: 100 }, (_, i) => lease.put('${PREFIX}/endpoints/net0/pb-dead/d' + i).value(JSON.stringify({ name: 'dead' + i, ipv4: '10.100.0.' + (150 + i % 100) })).exec()));
      console.log('held');
      setInterval(() => {}, 1000);`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((resolve) => holder.stdout!.once('data', resolve));
    await until(viaEtcd.port, 'dead99.net0', (r) => r?.data !== undefined, performance.now());
    const killed = performance.now();
    holder.kill('SIGKILL');
    const goneMs = await until(viaEtcd.port, 'dead99.net0', (r) => r?.rcode === 'NXDOMAIN', killed, (TTL + 30) * 1000);
    row({ registry: 'etcd', metric: 'killed-host-gone', median: goneMs, p99: goneMs, value: `lease TTL ${TTL} s` });
  } finally {
    for (const d of daemons) await stop(d);
    client.close();
    etcd.kill('SIGTERM');
    await new Promise((r) => etcd.once('exit', r));
    rmSync(work, { recursive: true, force: true });
  }
}

/** etcd.md: each figure for both registries side by side, etcd / file, and the targets. */
function report(): void {
  const get = (registry: string, metric: string) => rows.find((r) => r.registry === registry && r.metric === metric);
  const ms = (v: number | string | undefined) => (typeof v === 'number' ? (v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(1)} ms`) : '—');
  const lines = ['| figure | etcd | file | etcd / file | target (issue 20) |', '| --- | --- | --- | --- | --- |'];
  const pair = (label: string, metric: string, field: 'median' | 'p99', format: (v: number | string | undefined) => string, target = '') => {
    const [e, f] = [get('etcd', metric)?.[field], get('file', metric)?.[field]];
    const ratio = typeof e === 'number' && typeof f === 'number' && f > 0 ? `${(e / f).toFixed(2)}×` : '—';
    lines.push(`| ${label} | ${format(e)} | ${format(f)} | ${ratio} | ${target} |`);
  };
  pair('start until ready', 'ready', 'median', ms);
  pair('start until all names are served', 'all-served', 'median', ms);
  pair('RSS once all are served', 'rss-mb', 'median', (v) => (typeof v === 'number' ? `${v.toFixed(0)} MB` : '—'));
  pair(`change to answer, median (${CHANGES} changes)`, 'change-to-answer', 'median', ms, '< 50 ms');
  pair('change to answer, p99', 'change-to-answer', 'p99', ms, '< 200 ms');
  pair(`killed host's names gone (lease ${TTL} s)`, 'killed-host-gone', 'median', ms, 'within the lease TTL + 1 s');
  const [load] = readFileSync('/proc/loadavg', 'utf8').split(' ').map(Number);
  const cores = cpus().length;
  const machine = load > cores / 2 ? `**The machine was loaded** (load average ${load.toFixed(1)} on ${cores} cores at the end of the run): absolute times are high, the ratios are the figures to read.` : `Load average ${load.toFixed(1)} on ${cores} cores at the end of the run.`;
  writeFileSync(path.join(RESULTS, 'etcd.md'), `# Shared registry in etcd beside a file registry (bench/etcd.sh)

${NETWORKS * PER} endpoints on ${NETWORKS} networks, once in etcd (one daemon with \`--registry etcd://…\`) and once as
registry files (another daemon), in the same run on loopback. *Change to answer*: from an etcd put
(the put's own round trip included) or a file rewritten (rename) to the daemon answering the new
address, asked over UDP without pause. *Killed host*: a process holding a lease with 100 endpoints
on it is killed with SIGKILL; the time until the daemon answers NXDOMAIN for them (etcd's lease
expiry, then the watch).

${lines.join('\n')}

${machine}
`);
}

await main();
report();
