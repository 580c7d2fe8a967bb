// The whole nftables table nsdns owns, generated from the registry's networks: pure text, so it
// can be compared with golden files. It is replaced in one `nft -f -` transaction each time.
import type { Endpoint, Network, NetworkRecord, PortMapping } from '../registry/types.js';
import { parseCidr } from './ipam.js';

const q = (name: string) => `"${name}"`;

/** Networks nsdns provisions itself: the ones with a bridge. */
function provisioned(records: readonly NetworkRecord[]): Array<NetworkRecord & { network: Network & { bridge: string } }> {
  return records.filter((r): r is NetworkRecord & { network: Network & { bridge: string } } => typeof r.network.bridge === 'string')
    .sort((a, b) => a.network.name.localeCompare(b.network.name));
}

export function buildRuleset(table: string, records: readonly NetworkRecord[]): string {
  const nets = provisioned(records);
  const bridges = nets.map((r) => r.network.bridge);
  const forward: string[] = [];
  const postrouting: string[] = [];
  const dnat: string[] = [];

  for (const { network, endpoints } of nets) {
    const br = network.bridge;
    const others = bridges.filter((b) => b !== br);
    if (network.internal) {
      forward.push(`iifname ${q(br)} oifname != ${q(br)} drop comment ${q(`internal ${network.name}`)}`);
      forward.push(`oifname ${q(br)} iifname != ${q(br)} drop comment ${q(`internal ${network.name}`)}`);
      continue;
    }
    if (others.length > 0) forward.push(`iifname ${q(br)} oifname { ${others.map(q).join(', ')} } drop comment ${q(`isolate ${network.name}`)}`);
    for (const s of network.subnets) {
      const family = parseCidr(s.subnet).kind === 'ipv4' ? 'ip' : 'ip6';
      postrouting.push(`${family} saddr ${parseCidr(s.subnet).text} oifname != ${q(br)} masquerade comment ${q(`outbound ${network.name}`)}`);
    }
    const published = endpoints.flatMap((e) => (e.ports ?? []).map((p) => ({ e, p })));
    if (published.length > 0) {
      // Published ports reached from 127.0.0.1 (route_localnet) and from the same network (hairpin).
      postrouting.push(`ip saddr 127.0.0.0/8 oifname ${q(br)} masquerade comment ${q(`localhost to ${network.name}`)}`);
      postrouting.push(`oifname ${q(br)} iifname ${q(br)} ct status dnat masquerade comment ${q(`hairpin ${network.name}`)}`);
    }
    for (const { e, p } of published) dnat.push(...dnatRules(e, p));
  }

  const chain = (name: string, header: string, rules: string[]) =>
    [`  chain ${name} {`, `    ${header}`, ...rules.map((r) => `    ${r}`), '  }'].join('\n');
  return [
    `table inet ${table} {`,
    chain('forward', 'type filter hook forward priority filter; policy accept;', forward),
    chain('prerouting', 'type nat hook prerouting priority dstnat; policy accept;', dnat),
    chain('output', 'type nat hook output priority -100; policy accept;', dnat),
    chain('postrouting', 'type nat hook postrouting priority srcnat; policy accept;', postrouting),
    '}',
    '',
  ].join('\n');
}

function dnatRules(e: Endpoint, p: PortMapping): string[] {
  const target = e.ipv4[0];
  if (!target) return [];
  const where = p.hostIp ? `ip daddr ${p.hostIp}` : 'fib daddr type local';
  return [`${where} ${p.protocol} dport ${p.hostPort} dnat ip to ${target}:${p.containerPort} comment ${q(`publish ${e.name}`)}`];
}

/** One transaction: create the table if missing, empty it by deleting it, and write it anew. */
export function replaceTableScript(table: string, ruleset: string): string {
  return `table inet ${table}\ndelete table inet ${table}\n${ruleset}`;
}

export function deleteTableScript(table: string): string {
  return `table inet ${table}\ndelete table inet ${table}\n`;
}
