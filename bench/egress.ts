// Egress by name (issue 22), its figures in one run on one daemon (bench/egress.sh runs this):
// 1. what a lookup that adds addresses to a namespace's set adds: p50/p99 of allowed names asked
//    one at a time from a namespace under a policy, against the same queries from a namespace
//    without one (same daemon, same upstream, rounds interleaved);
// 2. the daemon's CPU per such query, with and without the policy (and nft -i's CPU beside it);
// 3. the set elements a busy sandbox holds: after the runs above (long TTL), and in a steady
//    state (EG_RATE q/s of new names with a short TTL T and the grace G: about RATE × (T + G)),
//    under an egress.maxLearned none of them reaches;
//    what one update costs through the nft channel against one nft process per update, and
//    through the egress firewall as the number of governed namespaces grows (egress-updates.ts).
// Every answer is a new address (the upstream counts them out of 10.137.128.0/17), so every
// allowed lookup really adds to the set. The upstream is in this process on loopback; nothing is
// sent to the addresses learned. Writes RESULTS_DIR/egress.tsv and egress.md.
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import dnsPacket from 'dns-packet';
import { execa } from 'execa';
import { keyNames } from '../src/egress/egress-rules.js';
import { writeEgressReport, type Figures } from './egress-report.js';
import { cpuNs, learnCostByNamespaces, median, nftChildrenCpuNs, pct, quiesce, updateCost } from './egress-updates.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MAIN = path.join(ROOT, 'dist/src/main.js');
const CLIENT = path.join(ROOT, 'dist/bench/egress-client.js');
const RESULTS = process.env.RESULTS_DIR ?? path.join(ROOT, 'bench/results');
const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const ROUNDS = env('EG_ROUNDS', 4);
const LAT_QUERIES = env('EG_QUERIES', 1000);
const CPU_QUERIES = env('EG_CPU_QUERIES', 2000);
const WARM = env('EG_WARM', 3000);
const GRACE = env('EG_GRACE', 5);
const BUSY_TTL = env('EG_BUSY_TTL', 2);
const RATE = env('EG_RATE', 200);
const BUSY_SECS = env('EG_BUSY_SECS', 15);
const CHANNEL_UPDATES = env('EG_UPDATES', 500);
const PROCESS_UPDATES = env('EG_PROCESS_UPDATES', 100);
const GOVERNED = (process.env.EG_GOVERNED ?? '1 10 40').split(' ').map(Number);
const UPSTREAM_PORT = env('EG_UPSTREAM_PORT', 16850);
/** TTL of the answers in runs 1 and 2: long enough that every address learned there is still in the set at the count. */
const LONG_TTL = 600;
/**
 * egress.maxLearned for the bench's daemon: above the most addresses a namespace can hold here
 * (the upstream answers 32768 distinct ones, pb-eg-pol keeps about 26 000 for LONG_TTL), so no
 * answer is refused for a full set and every figure is of a write the kernel took.
 */
const MAX_LEARNED = 262_144;

const PREFIX = 'pb-eg';
const TABLE = 'pb_eg';
const NETWORK = 'pbegnet';
// `first` asks names before the measured namespace does (cache hits whose address is new to it);
// `busy` is the steady-state sandbox, kept apart so that its set holds only what that run learned.
const NS = { policy: `${PREFIX}-pol`, open: `${PREFIX}-open`, first: `${PREFIX}-first`, busy: `${PREFIX}-busy` } as const;
/** EG_ONLY=cpu,shared (a quick trial of some figures): latency, cpu, hit, shared, busy, update. */
const ONLY = process.env.EG_ONLY?.split(',');
const wanted = (phase: string) => ONLY === undefined || ONLY.includes(phase);
type Variant = 'policy' | 'open';


/** The upstream: every A question gets one new address, with the TTL the name carries (-t<TTL>.). */
function startUpstream(): Promise<{ socket: dgram.Socket; answered: () => number }> {
  const socket = dgram.createSocket('udp4');
  let next = 0;
  socket.on('message', (m, rinfo) => {
    const q = dnsPacket.decode(m);
    const question = q.questions?.[0];
    if (question === undefined) return;
    const n = next++ % 32768;
    const ttl = Number(/-t(\d+)\./.exec(question.name)?.[1] ?? 60);
    const answers = question.type === 'A' ? [{ name: question.name, type: 'A' as const, class: 'IN' as const, ttl, data: `10.137.${128 + (n >> 8)}.${n & 255}` }] : [];
    socket.send(dnsPacket.encode({ type: 'response', id: q.id, flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE, questions: [question], answers }), rinfo.port, rinfo.address);
  });
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(UPSTREAM_PORT, '127.0.0.1', () => resolve({ socket, answered: () => next }));
  });
}

async function startDaemon(state: string): Promise<ChildProcess> {
  const config = path.join(state, 'config.yaml');
  writeFileSync(config, `egress:\n  grace: ${GRACE}\n  maxLearned: ${MAX_LEARNED}\n`);
  // EG_PROFILE=DIR: the daemon writes a V8 CPU profile there when it exits (where its time goes).
  const profile = process.env.EG_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.EG_PROFILE}`] : [];
  // EG_NODE_FLAGS: more of node's flags for the daemon (e.g. --perf-basic-prof, for perf record -p).
  const flags = (process.env.EG_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  const proc = spawn(process.execPath, [...profile, ...flags, MAIN, 'serve', '--config', config, '--state-dir', state, '--socket', `${state}/nsdns.sock`, '--no-resolv-conf',
    '--nft-table', TABLE, '--link-prefix', 'pbeg', '--upstream', `127.0.0.1:${UPSTREAM_PORT}`, '--log-level', 'info'], { stdio: ['ignore', 'pipe', 'inherit'] });
  writeFileSync(path.join(state, 'daemon.pid'), String(proc.pid));
  let partial = '';
  await new Promise<void>((resolve, reject) => {
    proc.once('exit', (code) => reject(new Error(`nsdns exited with ${code} before ready`)));
    proc.stdout!.on('data', (c: Buffer) => {
      const lines = (partial + c.toString()).split('\n');
      partial = lines.pop()!;
      if (lines.some((l) => l.includes('"msg":"ready"'))) resolve();
    });
  });
  return proc;
}

async function cli(state: string, ...args: string[]): Promise<void> {
  await execa(process.execPath, [MAIN, ...args, '--socket', `${state}/nsdns.sock`]);
}

/** Runs the client in `ns`; its JSON line. */
async function client(ns: string, tag: string, count: number, ttl: number, rate = 0, same = false): Promise<{ latenciesMs: number[]; failed: number }> {
  const r = await execa('ip', ['netns', 'exec', ns, process.execPath, CLIENT, tag, String(count), String(ttl), String(rate), same ? '1' : '0'], { maxBuffer: 64 * 1024 * 1024 });
  return JSON.parse(r.stdout) as { latenciesMs: number[]; failed: number };
}

async function setSize(ns: string): Promise<number> {
  const r = await execa('nft', ['-j', 'list', 'set', 'inet', `${TABLE}_egress`, keyNames(`/run/netns/${ns}`).learned4], { maxBuffer: 256 * 1024 * 1024 });
  const set = (JSON.parse(r.stdout) as { nftables: Array<{ set?: { elem?: unknown[] } }> }).nftables.find((i) => i.set)?.set;
  return set?.elem?.length ?? 0;
}

async function main(): Promise<void> {
  const state = process.env.EG_STATE ?? mkdtempSync(path.join(tmpdir(), 'pb-eg-'));
  const upstream = await startUpstream();
  let daemon: ChildProcess | undefined;
  const stop = async () => {
    if (daemon && daemon.exitCode === null) {
      for (const name of Object.values(NS)) await cli(state, 'network', 'disconnect', NETWORK, name.replace(`${PREFIX}-`, 'eg')).catch(() => {});
      await cli(state, 'network', 'rm', NETWORK).catch(() => {});
      const exited = new Promise((r) => daemon!.once('exit', r));
      daemon.kill('SIGTERM');
      await exited;
    }
    // The egress tables outlive the daemon by design (a stopped daemon opens nothing): ours go here.
    for (const [family, table] of [['inet', TABLE], ['inet', `${TABLE}_egress`], ['bridge', `${TABLE}_egress`], ['inet', `${TABLE}_chan`], ['inet', `${TABLE}_scale`], ['bridge', `${TABLE}_scale`]]) {
      await execa('nft', ['delete', 'table', family, table], { reject: false });
    }
    for (const ns of Object.values(NS)) await execa('ip', ['netns', 'del', ns], { reject: false });
    upstream.socket.close();
    if (!process.env.EG_STATE) rmSync(state, { recursive: true, force: true });
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void stop().finally(() => process.exit(130)));
  try {
    for (const ns of Object.values(NS)) await execa('ip', ['netns', 'add', ns]);
    daemon = await startDaemon(state);
    await cli(state, 'network', 'create', NETWORK, '--subnet', '10.137.1.0/24');
    await cli(state, 'network', 'connect', NETWORK, NS.open, '--name', 'egopen');
    for (const ns of [NS.policy, NS.first, NS.busy]) await cli(state, 'network', 'connect', NETWORK, ns, '--name', ns.replace(`${PREFIX}-`, 'eg'), '--egress-allow', '*.allow.test');
    const ns = (v: Variant) => NS[v];
    const order = (round: number): Variant[] => (round % 2 === 0 ? ['policy', 'open'] : ['open', 'policy']);
    let sent = 0;
    const failed: Record<Variant, number> = { policy: 0, open: 0 };
    const run = async (v: Variant, tag: string, count: number, same = false) => {
      // Names of their own per namespace: the daemon's cache is shared by clients of the same
      // upstreams, so a name one namespace asked would be a cache hit for the other.
      const r = await client(ns(v), `${tag}${v[0]}`, count, LONG_TTL, 0, same);
      // Asked again and again, one name brings one address.
      sent += v === 'policy' ? (same ? 1 : count) : 0;
      // A lost query (no answer in 2 s) on a loaded machine is counted, not fatal; many are a broken run.
      failed[v] += r.failed;
      if (r.failed > count / 100) throw new Error(`${r.failed} of ${count} queries from ${v} failed`);
      return r.latenciesMs;
    };
    // Warm-up of every kind of query measured, long enough for the JIT to settle: with 300 misses
    // only, the first measured runs compiled about a hundred functions each (--trace-opt), a good
    // part of their CPU, and ratios moved by half from run to run.
    for (const v of ['policy', 'open'] as const) {
      await run(v, 'w', WARM);
      await run(v, 'wh', WARM, true);
      await client(NS.first, `wk${v[0]}`, WARM, LONG_TTL);
      await run(v, 'wk', WARM);
    }

    const latency: Record<Variant, number[]> = { policy: [], open: [] };
    for (let round = 0; round < ROUNDS && wanted('latency'); round++) for (const v of order(round)) latency[v].push(...await run(v, `l${round}x`, LAT_QUERIES));

    const cpu: Record<Variant, number[]> = { policy: [], open: [] };
    const nftCpu: number[] = [];
    for (let round = 0; round < ROUNDS && wanted('cpu'); round++) {
      for (const v of order(round)) {
        await quiesce(daemon.pid!);
        const before = cpuNs(daemon.pid!);
        const nftBefore = nftChildrenCpuNs(daemon.pid!);
        await run(v, `c${round}x`, CPU_QUERIES);
        cpu[v].push((cpuNs(daemon.pid!) - before) / 1000 / CPU_QUERIES);
        if (v === 'policy') nftCpu.push((nftChildrenCpuNs(daemon.pid!) - nftBefore) / 1000 / CPU_QUERIES);
      }
    }
    // The same name again and again: answered from the cache, its address already open (no kernel write).
    const cpuHit: Record<Variant, number[]> = { policy: [], open: [] };
    for (let round = 0; round < ROUNDS && wanted('hit'); round++) {
      for (const v of order(round)) {
        await quiesce(daemon.pid!);
        const before = cpuNs(daemon.pid!);
        await run(v, `h${round}`, CPU_QUERIES, true);
        cpuHit[v].push((cpuNs(daemon.pid!) - before) / 1000 / CPU_QUERIES);
      }
    }
    // Cache hits whose address is new to the asking namespace: pb-eg-first (not measured) asked the
    // names first, so the measured namespace is answered from the cache, and under a policy every
    // answer still brings an address to write (a fleet of sandboxes asking the same names).
    const cpuShared: Record<Variant, number[]> = { policy: [], open: [] };
    for (let round = 0; round < ROUNDS && wanted('shared'); round++) {
      for (const v of order(round)) {
        await client(NS.first, `k${round}x${v[0]}`, CPU_QUERIES, LONG_TTL);
        await quiesce(daemon.pid!);
        const before = cpuNs(daemon.pid!);
        await run(v, `k${round}x`, CPU_QUERIES);
        cpuShared[v].push((cpuNs(daemon.pid!) - before) / 1000 / CPU_QUERIES);
      }
    }
    const held = await setSize(NS.policy);

    // Steady state: new names at RATE for BUSY_SECS with TTL BUSY_TTL; the set sampled each second.
    const samples: number[] = [];
    const busy = client(NS.busy, 'b', wanted('busy') ? RATE * BUSY_SECS : 0, BUSY_TTL, RATE);
    let running = true;
    busy.then(() => { running = false; }, () => { running = false; });
    while (running) {
      await new Promise((r) => setTimeout(r, 1000));
      if (running) samples.push(await setSize(NS.busy));
    }
    const busyResult = await busy;

    const update = await updateCost(`${TABLE}_chan`, wanted('update') ? CHANNEL_UPDATES : 1, wanted('update') ? PROCESS_UPDATES : 1);
    const byNamespaces = await learnCostByNamespaces(`${TABLE}_scale`, wanted('update') ? GOVERNED : [], CHANNEL_UPDATES);
    const figures: Figures = {
      date: new Date().toISOString(), load: loadavg(), rounds: ROUNDS, latQueries: LAT_QUERIES, cpuQueries: CPU_QUERIES, grace: GRACE, maxLearned: MAX_LEARNED,
      latency: { policy: { p50: median(latency.policy), p99: pct(latency.policy, 99) }, open: { p50: median(latency.open), p99: pct(latency.open, 99) } },
      failed,
      cpuUs: { policy: median(cpu.policy), open: median(cpu.open), nft: nftCpu.length ? median(nftCpu) : undefined, rounds: cpu },
      cachedCpuUs: { policy: median(cpuHit.policy), open: median(cpuHit.open), rounds: cpuHit },
      sharedCpuUs: { policy: median(cpuShared.policy), open: median(cpuShared.open), rounds: cpuShared },
      held: { elements: held, allowedAnswers: sent, ttl: LONG_TTL },
      busy: { rate: RATE, secs: BUSY_SECS, ttl: BUSY_TTL, samples, failed: busyResult.failed, predicted: RATE * (BUSY_TTL + GRACE) },
      nftVersion: (await execa('nft', ['--version'])).stdout.trim(),
      update, byNamespaces,
    };
    writeEgressReport(RESULTS, figures);
  } finally {
    await stop();
  }
}

main().catch((err: unknown) => { console.error(err); process.exitCode = 1; });
