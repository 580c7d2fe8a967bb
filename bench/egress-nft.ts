// What opening one learned address costs (egress by name): one element add through the long-lived
// `nft -i` channel against one `nft -f FILE` process per add (the channel's fallback), one at a time
// so each figure is one caller's wait; then a burst of parallel learn() calls through the
// EgressFirewall (batched into few transactions). Root; a throwaway table, removed at the end:
//   node dist/bench/egress-nft.js [ADDS]       (default 500)
import { execa } from 'execa';
import { EgressFirewall } from '../src/egress/egress-firewall.js';
import { NftChannel } from '../src/egress/nft-channel.js';

const N = Number(process.argv[2] ?? 500);
const TABLE = `nsdns_egress_bench_${process.pid}`;
const address = (i: number) => `10.133.${(i >> 8) & 255}.${i & 255}`;

function percentiles(samples: number[]): string {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))].toFixed(3);
  return `p50 ${at(0.5)} ms  p99 ${at(0.99)} ms  (n=${s.length})`;
}

async function timed(n: number, add: (i: number) => Promise<void>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const start = process.hrtime.bigint();
    await add(i);
    out.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return out;
}

async function main(): Promise<void> {
  await execa('nft', [`add table inet ${TABLE}; add set inet ${TABLE} s { type ipv4_addr; flags timeout; }`]);
  try {
    const channel = new NftChannel();
    await channel.submit(`add element inet ${TABLE} s { ${address(0)} timeout 60s }`); // starts nft -i
    console.log(`channel (nft -i)       ${percentiles(await timed(N, (i) => channel.submit(`add element inet ${TABLE} s { ${address(i)} timeout 60s }`)))}`);
    await channel.close();
    console.log(`nft argv per add      ${percentiles(await timed(Math.min(N, 200), async (i) => void await execa('nft', [`add element inet ${TABLE} s { ${address(i)} timeout 60s }`])))}`);
    const once = new NftChannel({ command: ['/nonexistent/nft'] }); // cannot start: one nft -f per batch
    console.log(`fallback (nft -f FILE) ${percentiles(await timed(Math.min(N, 200), (i) => once.submit(`add element inet ${TABLE} s { ${address(i)} timeout 60s }`)))}`);
    await once.close();

    const { firewall: fw } = await EgressFirewall.open(TABLE, new Map());
    await fw.setPolicy('bench', { sources: [{ hostIf: 'nsdnsbench0', ipv4: ['10.132.255.2'], ipv6: [] }], cidrs: [], ownSubnets: [], gateways: [] });
    const start = process.hrtime.bigint();
    await Promise.all(Array.from({ length: 1000 }, (_, i) => fw.learn('bench', [address(1000 + i)], 60)));
    const total = Number(process.hrtime.bigint() - start) / 1e6;
    console.log(`burst of 1000 learn() in parallel: ${total.toFixed(1)} ms in all, ${fw.processesStarted} nft process(es)`);
    await fw.close();
  } finally {
    for (const family of ['inet', 'bridge']) await execa('nft', ['delete', 'table', family, TABLE], { reject: false });
  }
}

await main();
