// What one learned-address update costs in the kernel's nftables, for bench/egress.ts: over
// netlink, through the nft channel and as one `nft -f -` process per update (a bare set in a table
// of its own), and through the egress firewall itself, both ways, as the number of governed
// namespaces grows (before each `add element`, nft reads back the elements of every interval set
// on the host, and each governed namespace brings one; netlink reads nothing back).
import { readdirSync, readFileSync } from 'node:fs';
import { execa } from 'execa';
import { EgressFirewall } from '../src/egress/egress-firewall.js';
import { NftChannel } from '../src/egress/nft-channel.js';
import { NftNetlink } from '../src/egress/nft-netlink.js';

export interface Percentiles { p50: number; p99: number }
export interface UpdateCost { netlink: Percentiles & { n: number }; channel: Percentiles & { n: number }; process: Percentiles & { n: number } }
export interface ByNamespaces { via: 'netlink' | 'nft'; governed: number; p50: number; p99: number; nftUs: number; daemonUs: number }

export const pct = (xs: number[], p: number) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]; };
export const median = (xs: number[]) => pct(xs, 50);

/** Nanoseconds on CPU of every thread of `pid` (schedstat: finer than /proc/PID/stat's ticks). */
export function cpuNs(pid: number | 'self'): number {
  let total = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try { total += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')[0]); } catch { /* a thread that ended */ }
  }
  return total;
}

/**
 * Waits until `pid` is idle (under 2 % of a CPU over 100 ms; at most 5 s): the garbage and the
 * compiler work of what came before are not counted in the next measured run.
 */
export async function quiesce(pid: number): Promise<void> {
  for (const stop = Date.now() + 5000; Date.now() < stop;) {
    const before = cpuNs(pid);
    await new Promise((r) => setTimeout(r, 100));
    if (cpuNs(pid) - before < 2_000_000) return;
  }
}

const TICKS_PER_SECOND = 100; // USER_HZ: the unit of /proc/PID/stat's times on Linux

/**
 * CPU (ns) of `pid`'s `nft` children so far: the reaped ones (cutime + cstime) and the live ones.
 * A counter: its difference over a run is what nft used in it, even when the channel replaced
 * its process in between.
 */
export function nftChildrenCpuNs(pid: number | 'self'): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 16 and 17 (cutime, cstime) of stat(5), counted from the state (field 3) here.
  let total = ((Number(fields[13]) + Number(fields[14])) / TICKS_PER_SECOND) * 1e9;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    for (const child of readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(' ').filter(Boolean)) {
      try {
        if (readFileSync(`/proc/${child}/comm`, 'utf8').trim() === 'nft') total += cpuNs(Number(child));
      } catch { /* ended meanwhile: in cutime from now on */ }
    }
  }
  return total;
}

const address = (i: number) => `10.137.${64 + ((i >> 8) & 63)}.${i & 255}`;

/** p50/p99 (ms) of one `add element` over netlink, through a channel, and as one `nft -f -` process each. */
export async function updateCost(table: string, channelUpdates: number, processUpdates: number): Promise<UpdateCost> {
  await execa('nft', ['-f', '-'], { input: `add table inet ${table}\nadd set inet ${table} s { type ipv4_addr; flags timeout; }\n` });
  const channel = new NftChannel();
  const opened = NftNetlink.open();
  if (!('writer' in opened)) throw new Error(`no netlink socket: ${opened.reason}`);
  try {
    const viaNetlink: number[] = [];
    for (let i = 0; i < channelUpdates; i++) {
      const t = performance.now();
      await opened.writer.addElements(table, [{ set: 's', elements: [{ address: address(channelUpdates + processUpdates + i), ttl: 60 }] }]);
      viaNetlink.push(performance.now() - t);
    }
    const viaChannel: number[] = [];
    const viaProcess: number[] = [];
    await channel.submit(`add element inet ${table} s { 10.137.127.255 timeout 60s }`);
    for (let i = 0; i < channelUpdates; i++) {
      const t = performance.now();
      await channel.submit(`add element inet ${table} s { ${address(i)} timeout 60s }`);
      viaChannel.push(performance.now() - t);
    }
    for (let i = 0; i < processUpdates; i++) {
      const t = performance.now();
      await execa('nft', ['-f', '-'], { input: `add element inet ${table} s { ${address(channelUpdates + i)} timeout 60s }\n` });
      viaProcess.push(performance.now() - t);
    }
    const of = (xs: number[]) => ({ p50: median(xs), p99: pct(xs, 99), n: xs.length });
    return { netlink: of(viaNetlink), channel: of(viaChannel), process: of(viaProcess) };
  } finally {
    opened.writer.close();
    await channel.close();
    await execa('nft', ['delete', 'table', 'inet', table], { reject: false });
  }
}

/**
 * One learned address at a time through EgressFirewall.learn (the daemon's own path) with
 * `governed` namespaces under a policy in the table: latency (ms), and CPU per update (µs) of its
 * `nft -i` and of this process (the daemon's share). A fresh table per count; links need not exist.
 */
export async function learnCostByNamespaces(table: string, counts: readonly number[], updates: number): Promise<ByNamespaces[]> {
  const out: ByNamespaces[] = [];
  for (const governed of counts) for (const via of ['netlink', 'nft'] as const) {
    const { firewall } = await EgressFirewall.open(table, new Map(), { learnVia: via });
    if (firewall.learnedVia !== via) throw new Error(`learned addresses were to go ${via === 'netlink' ? 'over netlink' : 'through nft'}, they go ${firewall.learnedVia === 'netlink' ? 'over netlink' : 'through nft'}`);
    try {
      for (let k = 0; k < governed; k++) {
        await firewall.setPolicy(`/run/netns/pb-eg-s${k}`, {
          sources: [{ hostIf: `pbegs${k}`, ipv4: [`10.137.2.${k + 2}`], ipv6: [] }], cidrs: [], ownSubnets: ['10.137.2.0/24'], gateways: ['10.137.2.1'],
        });
      }
      const lat: number[] = [];
      const nft0 = nftChildrenCpuNs('self');
      const self0 = cpuNs('self');
      for (let i = 0; i < updates; i++) {
        const t = performance.now();
        await firewall.learn('/run/netns/pb-eg-s0', [address(i)], 600);
        lat.push(performance.now() - t);
      }
      out.push({ via, governed, p50: median(lat), p99: pct(lat, 99), nftUs: (nftChildrenCpuNs('self') - nft0) / 1000 / updates, daemonUs: (cpuNs('self') - self0) / 1000 / updates });
    } finally {
      await firewall.close();
      for (const family of ['inet', 'bridge']) await execa('nft', ['delete', 'table', family, table], { reject: false });
    }
  }
  return out;
}
