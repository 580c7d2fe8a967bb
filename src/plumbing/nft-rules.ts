// The whole nftables table nsdns owns, generated from its own networks as libnftables JSON
// (libnftables-json(5)): every name and address is a JSON string or number, never text nft parses
// as syntax, so no value can add a command. It is replaced in one `nft -j -f -` transaction.
import { NsdnsError } from '../errors.js';
import { isIfname, isIpv4, isPort } from '../registry/fields.js';
import type { Endpoint, Network, NetworkRecord, PortMapping } from '../registry/types.js';
import { parseCidr } from './ipam.js';

type Expr = Record<string, unknown>;
interface Rule { chain: string; comment: string; expr: Expr[] }
export interface NftJson { nftables: Array<Record<string, unknown>> }

/** nft table names: what `--nft-table` may be (letters, digits, '_'; no quoting needed anywhere). */
export function isTableName(value: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(value);
}

const meta = (key: 'iifname' | 'oifname') => ({ meta: { key } });
const match = (left: Expr, right: unknown, op = '==') => ({ match: { op, left, right } });
const payload = (protocol: string, field: string) => ({ payload: { protocol, field } });

type Provisioned = NetworkRecord & { network: Network & { bridge: string } };

/**
 * Networks with a bridge, sorted by name. The caller passes only networks nsdns provisioned;
 * values are checked once more here, the last stop before root's firewall.
 */
function provisioned(records: readonly NetworkRecord[]): Provisioned[] {
  const nets = records.filter((r): r is Provisioned => typeof r.network.bridge === 'string')
    .sort((a, b) => a.network.name.localeCompare(b.network.name));
  for (const { network, endpoints } of nets) {
    if (!isIfname(network.bridge)) throw new NsdnsError('ERR_FIREWALL', `network "${network.name}": bridge is not a valid interface name`);
    for (const e of endpoints) {
      for (const p of e.ports ?? []) {
        if ((p.hostIp !== undefined && !isIpv4(p.hostIp)) || !isPort(p.hostPort) || !isPort(p.containerPort) || (p.protocol !== 'tcp' && p.protocol !== 'udp')) {
          throw new NsdnsError('ERR_FIREWALL', `network "${network.name}", endpoint "${e.name}": invalid published port`);
        }
      }
    }
  }
  return nets;
}

function rules(records: readonly NetworkRecord[]): Rule[] {
  const nets = provisioned(records);
  const bridges = nets.map((r) => r.network.bridge);
  const forward: Rule[] = [];
  const postrouting: Rule[] = [];
  const dnat: Array<Omit<Rule, 'chain'>> = [];
  const drop = { drop: null };
  const masquerade = { masquerade: null };

  for (const { network, endpoints } of nets) {
    const br = network.bridge;
    const others = bridges.filter((b) => b !== br);
    if (network.internal) {
      const comment = `internal ${network.name}`;
      forward.push({ chain: 'forward', comment, expr: [match(meta('iifname'), br), match(meta('oifname'), br, '!='), drop] });
      forward.push({ chain: 'forward', comment, expr: [match(meta('oifname'), br), match(meta('iifname'), br, '!='), drop] });
      continue;
    }
    if (others.length > 0) {
      forward.push({ chain: 'forward', comment: `isolate ${network.name}`, expr: [match(meta('iifname'), br), match(meta('oifname'), { set: others }), drop] });
    }
    for (const s of network.subnets) {
      const cidr = parseCidr(s.subnet);
      const [addr, len] = cidr.text.split('/');
      postrouting.push({ chain: 'postrouting', comment: `outbound ${network.name}`, expr: [
        match(payload(cidr.kind === 'ipv4' ? 'ip' : 'ip6', 'saddr'), { prefix: { addr, len: Number(len) } }),
        match(meta('oifname'), br, '!='), masquerade,
      ] });
    }
    const published = endpoints.flatMap((e) => (e.ports ?? []).map((p) => ({ e, p })));
    if (published.length > 0) {
      // Published ports reached from 127.0.0.1 (route_localnet) and from the same network (hairpin).
      postrouting.push({ chain: 'postrouting', comment: `localhost to ${network.name}`, expr: [
        match(payload('ip', 'saddr'), { prefix: { addr: '127.0.0.0', len: 8 } }), match(meta('oifname'), br), masquerade,
      ] });
      postrouting.push({ chain: 'postrouting', comment: `hairpin ${network.name}`, expr: [
        match(meta('oifname'), br), match(meta('iifname'), br), match({ ct: { key: 'status' } }, 'dnat', 'in'), masquerade,
      ] });
    }
    for (const { e, p } of published) dnat.push(...dnatRules(e, p));
  }
  return [
    ...forward,
    ...dnat.map((r) => ({ ...r, chain: 'prerouting' })),
    ...dnat.map((r) => ({ ...r, chain: 'output' })),
    ...postrouting,
  ];
}

function dnatRules(e: Endpoint, p: PortMapping): Array<Omit<Rule, 'chain'>> {
  const target = e.ipv4[0];
  if (!target || !isIpv4(target)) return [];
  const where = p.hostIp ? match(payload('ip', 'daddr'), p.hostIp) : match({ fib: { result: 'type', flags: ['daddr'] } }, 'local');
  return [{ comment: `publish ${e.name}`, expr: [where, match(payload(p.protocol, 'dport'), p.hostPort), { dnat: { family: 'ip', addr: target, port: p.containerPort } }] }];
}

const CHAINS = [
  { name: 'forward', type: 'filter', hook: 'forward', prio: 0 },
  { name: 'prerouting', type: 'nat', hook: 'prerouting', prio: -100 },
  { name: 'output', type: 'nat', hook: 'output', prio: -100 },
  { name: 'postrouting', type: 'nat', hook: 'postrouting', prio: 100 },
];

function checkTable(table: string): void {
  if (!isTableName(table)) throw new NsdnsError('ERR_FIREWALL', 'the nft table name must be letters, digits and "_" (at most 64)');
}

/**
 * One transaction: add the table (a no-op when it exists), delete it (emptying it), and write it
 * anew with its chains and rules. Either all of it applies or none.
 */
export function buildRuleset(table: string, records: readonly NetworkRecord[]): NftJson {
  checkTable(table);
  const t = { family: 'inet', name: table };
  const at = { family: 'inet', table };
  return {
    nftables: [
      { metainfo: { json_schema_version: 1 } },
      { add: { table: t } },
      { delete: { table: t } },
      { add: { table: t } },
      ...CHAINS.map((c) => ({ add: { chain: { ...at, ...c, policy: 'accept' } } })),
      ...rules(records).map((r) => ({ add: { rule: { ...at, chain: r.chain, expr: r.expr, comment: r.comment } } })),
    ],
  };
}

/** Removes the table, whether it exists or not. */
export function deleteTable(table: string): NftJson {
  checkTable(table);
  const t = { family: 'inet', name: table };
  return { nftables: [{ metainfo: { json_schema_version: 1 } }, { add: { table: t } }, { delete: { table: t } }] };
}

/**
 * `nft -j list table` output reduced to what nsdns decides: without the metainfo (nft's version)
 * and the handles (they change with every write), so two listings of the same table compare equal
 * and any rule, chain or setting added, removed or changed by someone else does not.
 */
export function tableFingerprint(listing: string): string {
  const strip = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(strip);
    if (value === null || typeof value !== 'object') return value;
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) if (key !== 'handle') out[key] = strip(v);
    return out;
  };
  const parsed = JSON.parse(listing) as { nftables?: Array<Record<string, unknown>> };
  return JSON.stringify((parsed.nftables ?? []).filter((item) => !('metainfo' in item)).map(strip));
}
