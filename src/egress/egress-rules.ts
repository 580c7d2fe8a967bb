// Pure: a governed namespace's egress rules → nft command text, for the channel (nft-channel.ts)
// that speaks nft's text syntax. Every value is checked here first, the last stop before root's
// firewall: addresses and prefixes are parsed by ipaddr.js and written back in their canonical
// form (so nft never sees a hostname it would resolve), interface names pass the link-name rule,
// and names of nft objects are made by us from a hash of the key.
//
// Two tables of one name, both owned by nsdns:
// - bridge TABLE: anti-spoofing. A frame entering from a governed endpoint's bridge port must
//   carry one of that endpoint's addresses (IPv4, IPv6, ARP), or be IPv6 neighbour discovery from
//   a link-local or unspecified source; anything else (another source, other ethertypes, VLAN
//   tags) is dropped. This is what makes matching by source address below safe.
// - inet TABLE, first: the same check for a host end that is routed, not a bridge port (a registry
//   file's veth). Its packets never pass the bridge family, and the policy below is chosen by
//   source address: from an address that is not its own a namespace would escape it. So a packet
//   arriving on a governed host end must carry one of its endpoint's addresses (or be neighbour
//   discovery from a link-local or unspecified source), checked before conntrack's accept, as the
//   bridge check is before routing. Only host ends seen routed are listed (host-end.ts): a name
//   that is a bridge or the uplink would match every tenant's packets in the inet hooks.
// - inet TABLE: the policy, in the forward and input hooks (input covers the host's own
//   addresses). Established and related traffic passes; a packet from a governed source jumps to
//   its namespace's chain: neighbour discovery, the gateways (except DNS), the own subnets, then
//   no DNS (53/853) anywhere else, then the learned sets and the listed CIDRs; everything else is
//   counted and dropped.
import { createHash } from 'node:crypto';
import ipaddr from 'ipaddr.js';
import { NsdnsError } from '../errors.js';
import { isIfname, isIpv4, isIpv6 } from '../registry/fields.js';
import { isTableName } from '../plumbing/nft-rules.js';

export interface EgressSource {
  /**
   * Where the namespace's traffic enters the host; absent when it is not known (not found yet, or
   * none): the source addresses still choose the namespace's chain, and only anti-spoofing, which
   * needs the interface, is missing.
   */
  hostIf?: string;
  ipv4: readonly string[]; ipv6: readonly string[];
  /** The host end is routed (not a bridge port): checked in the inet family too. Only a host end found and seen without a master is. */
  routed?: boolean;
}
export interface EgressCidr { cidr: string; port?: number; protocol?: 'tcp' | 'udp' }
export interface EgressRules {
  /** The namespace's endpoints: the host end of each veth and the addresses it may send from. */
  sources: readonly EgressSource[];
  /** Destinations opened by the policy itself (besides the learned addresses). */
  cidrs: readonly EgressCidr[];
  /** The endpoint's own networks: always reachable. */
  ownSubnets: readonly string[];
  /** Its networks' gateways (host addresses): reachable except for DNS. */
  gateways: readonly string[];
}

/** The nft object names of one governed namespace. */
export interface KeyNames { id: string; chain: string; learned4: string; learned6: string; dropped: string; spoof: string }

/** Names from a hash of the key: any key is safe, and the same key finds its objects after a restart. */
export function keyNames(key: string): KeyNames {
  const known = namesOf.get(key);
  if (known !== undefined) return known;
  // Every learned answer asks: the digest is made once per key (bounded: keys are namespaces).
  if (namesOf.size >= 4096) namesOf.clear();
  const names = keyNamesOf(key);
  namesOf.set(key, names);
  return names;
}

const namesOf = new Map<string, KeyNames>();

function keyNamesOf(key: string): KeyNames {
  const id = createHash('sha256').update(key).digest('hex').slice(0, 16);
  return { id, chain: `eg_${id}`, learned4: `l4_${id}`, learned6: `l6_${id}`, dropped: `drop_${id}`, spoof: `sp_${id}` };
}

/** The id inside an nft object name made by keyNames(), or undefined for a name that is not ours. */
export function idOf(objectName: string): string | undefined {
  return /^(?:eg|l4|l6|drop|sp)_([0-9a-f]{16})$/.exec(objectName)?.[1];
}

const bad = (what: string) => new NsdnsError('ERR_FIREWALL', `egress rules: ${what}`);

/**
 * egress.maxLearned: the most addresses one namespace may hold open per family (the size of each
 * of its learned sets), and its bounds. The kernel refuses an element past it, so one tenant's
 * answers cannot grow the kernel's memory, or the daemon's map of expiries, without end.
 */
export const MAX_LEARNED = { least: 16, most: 1_048_576, byDefault: 32_768 } as const;

function learnedSetSize(value: number | undefined): number {
  const size = value ?? MAX_LEARNED.byDefault;
  if (!Number.isInteger(size) || size < MAX_LEARNED.least || size > MAX_LEARNED.most) throw bad(`the learned set size is not an integer ${MAX_LEARNED.least}-${MAX_LEARNED.most}`);
  return size;
}

export function checkTable(table: string): void {
  if (!isTableName(table)) throw bad('the table name must be letters, digits and "_" (at most 64)');
}

/**
 * Whether `value` is a dotted quad without leading zeros: canonical already (every A record
 * answered is one). A scan, not a regular expression: it runs for every learned address, and a
 * regular expression's test there cost a runtime call each (perf).
 */
export function isCanonicalIpv4(value: string): boolean {
  const n = value.length;
  if (n < 7 || n > 15) return false;
  let dots = 0;
  let octet = 0;
  let digits = 0;
  for (let i = 0; i < n; i++) {
    const c = value.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || ++dots > 3) return false;
      octet = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return false; // a leading zero
      octet = octet * 10 + c - 48;
      if (++digits > 3 || octet > 255) return false;
    } else return false;
  }
  return dots === 3 && digits > 0;
}

/** The canonical text of an address, or undefined when `value` is not a literal IPv4/IPv6 address. */
export function canonicalAddress(value: string): { family: 4 | 6; text: string } | undefined {
  // Runs for every allowed answer: the common case without a parse.
  if (isCanonicalIpv4(value)) return { family: 4, text: value };
  if (isIpv4(value)) return { family: 4, text: ipaddr.IPv4.parse(value).toString() };
  if (isIpv6(value)) return { family: 6, text: ipaddr.IPv6.parse(value).toString() };
  return undefined;
}

function address(value: string): { family: 4 | 6; text: string } {
  const a = canonicalAddress(value);
  if (a === undefined) throw bad('an address is not a literal IPv4 or IPv6 address');
  return a;
}

/** A prefix in canonical form (host bits cleared), or an address as a /32 or /128. */
function prefix(value: string): { family: 4 | 6; text: string } {
  if (typeof value !== 'string' || value.length > 50) throw bad('a CIDR is not a valid prefix');
  const [addr, len, extra] = value.split('/');
  const a = canonicalAddress(addr);
  const bits = a?.family === 4 ? 32 : 128;
  const n = len === undefined ? bits : /^\d{1,3}$/.test(len) ? Number(len) : NaN;
  if (a === undefined || extra !== undefined || !(n >= 0 && n <= bits)) throw bad('a CIDR is not a valid prefix');
  const base = a.family === 4 ? ipaddr.IPv4.networkAddressFromCIDR(`${a.text}/${n}`) : ipaddr.IPv6.networkAddressFromCIDR(`${a.text}/${n}`);
  return { family: a.family, text: `${base.toString()}/${n}` };
}

const ND_TYPES = '{ nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert, mld-listener-report, mld2-listener-report }';

const set = (items: readonly string[]) => `{ ${items.join(', ')} }`;

/** The rules after they passed validation, in canonical text. */
interface Checked {
  sources: Array<{ hostIf: string | undefined; ipv4: string[]; ipv6: string[]; routed: boolean }>;
  cidrs: Array<{ family: 4 | 6; text: string; port?: number; protocol?: 'tcp' | 'udp' }>;
  own: Array<{ family: 4 | 6; text: string }>;
  gateways: Array<{ family: 4 | 6; text: string }>;
}

export function checkRules(rules: EgressRules): Checked {
  const sources = rules.sources.map((s) => {
    if (s.hostIf !== undefined && !isIfname(s.hostIf)) throw bad('a source interface name is not a valid link name');
    if (s.hostIf === undefined && s.routed === true) throw bad('a routed source needs its interface');
    const ipv4 = s.ipv4.map((a) => address(a)).map((a) => (a.family === 4 ? a.text : undefined));
    const ipv6 = s.ipv6.map((a) => address(a)).map((a) => (a.family === 6 ? a.text : undefined));
    if (ipv4.includes(undefined) || ipv6.includes(undefined)) throw bad('a source address is in the wrong family');
    return { hostIf: s.hostIf, ipv4: ipv4 as string[], ipv6: ipv6 as string[], routed: s.routed === true };
  });
  const cidrs = rules.cidrs.map((c) => {
    if (c.port !== undefined && !(Number.isInteger(c.port) && c.port >= 1 && c.port <= 65535)) throw bad('a CIDR port is not 1-65535');
    if (c.protocol !== undefined && c.protocol !== 'tcp' && c.protocol !== 'udp') throw bad('a CIDR protocol is not tcp or udp');
    return { ...prefix(c.cidr), port: c.port, protocol: c.protocol };
  });
  return { sources, cidrs, own: rules.ownSubnets.map(prefix), gateways: rules.gateways.map(address) };
}

/** The transport part of a listed CIDR: a protocol, a port on TCP and UDP, or both. */
function cidrTransport(x: { port?: number; protocol?: 'tcp' | 'udp' }): string {
  if (x.port === undefined) return x.protocol === undefined ? '' : ` meta l4proto ${x.protocol}`;
  return x.protocol === undefined ? ` meta l4proto { tcp, udp } th dport ${x.port}` : ` ${x.protocol} dport ${x.port}`;
}

/** Creates both tables with their base chains (idempotent: base chains are flushed and rewritten). */
export function baseCommands(table: string): string[] {
  checkTable(table);
  const inet = `inet ${table}`;
  const hooks = ['forward', 'input'].flatMap((hook) => [
    `add chain ${inet} ${hook} { type filter hook ${hook} priority filter - 5; policy accept; }`,
    `flush chain ${inet} ${hook}`,
    `add rule ${inet} ${hook} iifname vmap @ifs`,
    `add rule ${inet} ${hook} ct state established,related accept`,
    `add rule ${inet} ${hook} ip saddr vmap @src4`,
    `add rule ${inet} ${hook} ip6 saddr vmap @src6`,
  ]);
  return [
    `add table ${inet}`,
    `add map ${inet} src4 { type ipv4_addr : verdict; }`,
    `add map ${inet} src6 { type ipv6_addr : verdict; }`,
    `add map ${inet} ifs { type ifname : verdict; }`,
    ...hooks,
    `add table bridge ${table}`,
    `add map bridge ${table} ports { type ifname : verdict; }`,
    `add chain bridge ${table} prerouting { type filter hook prerouting priority filter - 5; policy accept; }`,
    `flush chain bridge ${table} prerouting`,
    `add rule bridge ${table} prerouting iifname vmap @ports`,
  ];
}

/**
 * Creates or replaces one namespace's chains; its learned sets and counter are kept when they
 * exist. The sets' size is written every time: `add set` on an existing set sets its size, so a
 * new maxLearned applies at the next start (lowered below what a set holds, it keeps what is open
 * and refuses new addresses until enough expire).
 */
export function keyCommands(table: string, key: string, rules: EgressRules, options: { logDrops?: boolean; maxLearned?: number } = {}): string[] {
  checkTable(table);
  const c = checkRules(rules);
  const size = learnedSetSize(options.maxLearned);
  const n = keyNames(key);
  const inet = `inet ${table}`;
  const rule = (text: string) => `add rule ${inet} ${n.chain} ${text}`;
  const of = (list: Checked['own'], family: 4 | 6) => list.filter((a) => a.family === family).map((a) => a.text);
  const daddr = (family: 4 | 6) => (family === 4 ? 'ip daddr' : 'ip6 daddr');
  // Neighbour discovery: without it no IPv6 address is reachable at all, not even the own subnet's.
  // Open to link-scope multicast and link-local addresses only: the kernel does not track these
  // messages, so to any address they would carry data out unanswered (a covert channel). Discovery
  // of a gateway's or a neighbour's global address is open by the gateway and own-subnet rules.
  // Two prefix rules, not a set of prefixes (see the own subnets below).
  const policy: string[] = ['ff02::/16', 'fe80::/10'].map((to) => rule(`ip6 daddr ${to} icmpv6 type ${ND_TYPES} accept`));
  // The gateways lie inside the own subnets: their DNS ports are closed before the subnets open.
  const dns = `meta l4proto { tcp, udp } th dport { 53, 853 } counter name ${n.dropped} drop`;
  for (const f of [4, 6] as const) {
    const gateways = of(c.gateways, f);
    if (gateways.length > 0) policy.push(rule(`${daddr(f)} ${set(gateways)} ${dns}`), rule(`${daddr(f)} ${set(gateways)} accept`));
  }
  // One rule per subnet, not a set of prefixes: nft refreshes every interval set on the host before
  // each learned address is added, so each such set would cost every learn a kernel dump.
  for (const f of [4, 6] as const) for (const own of of(c.own, f)) policy.push(rule(`${daddr(f)} ${own} accept`));
  policy.push(rule(dns));
  policy.push(rule(`ip daddr @${n.learned4} accept`), rule(`ip6 daddr @${n.learned6} accept`));
  for (const x of c.cidrs) policy.push(rule(`${daddr(x.family)} ${x.text}${cidrTransport(x)} accept`));
  if (options.logDrops) policy.push(rule(`limit rate 5/second burst 10 packets log prefix "nsdns-egress-drop: " level info`));
  policy.push(rule(`counter name ${n.dropped} drop`));

  const bridge = `bridge ${table}`;
  const spoof = (text: string) => `add rule ${bridge} ${n.spoof} ${text}`;
  const antiSpoof = c.sources.flatMap((s) => {
    if (s.hostIf === undefined) return [];
    const port = `iifname "${s.hostIf}"`;
    return [
      spoof(s.ipv4.length > 0 ? `${port} arp saddr ip != ${set(['0.0.0.0', ...s.ipv4])} drop` : `${port} ether type arp drop`),
      spoof(s.ipv4.length > 0 ? `${port} ip saddr != ${set(s.ipv4)} drop` : `${port} ether type ip drop`),
      // Two rules, not an interval set (see the own subnets above).
      spoof(`${port} ip6 saddr :: icmpv6 type ${ND_TYPES} accept`),
      spoof(`${port} ip6 saddr fe80::/10 icmpv6 type ${ND_TYPES} accept`),
      spoof(s.ipv6.length > 0 ? `${port} ip6 saddr != ${set(s.ipv6)} drop` : `${port} ether type ip6 drop`),
      spoof(`${port} ether type != { ip, ip6, arp } drop`),
    ];
  });
  // The routed host ends' twin of the above, in the inet family (it sees IP only).
  const routedSpoof = (text: string) => `add rule ${inet} ${n.spoof} ${text}`;
  const routedAntiSpoof = c.sources.filter((s) => s.routed).flatMap((s) => {
    const end = `iifname "${s.hostIf}"`;
    return [
      routedSpoof(s.ipv4.length > 0 ? `${end} ip saddr != ${set(s.ipv4)} drop` : `${end} meta nfproto ipv4 drop`),
      routedSpoof(`${end} ip6 saddr :: icmpv6 type ${ND_TYPES} accept`),
      routedSpoof(`${end} ip6 saddr fe80::/10 icmpv6 type ${ND_TYPES} accept`),
      routedSpoof(s.ipv6.length > 0 ? `${end} ip6 saddr != ${set(s.ipv6)} drop` : `${end} meta nfproto ipv6 drop`),
    ];
  });
  return [
    `add set ${inet} ${n.learned4} { type ipv4_addr; flags timeout; size ${size}; }`,
    `add set ${inet} ${n.learned6} { type ipv6_addr; flags timeout; size ${size}; }`,
    `add counter ${inet} ${n.dropped}`,
    `add chain ${inet} ${n.chain}`,
    `flush chain ${inet} ${n.chain}`,
    ...policy,
    `add chain ${inet} ${n.spoof}`,
    `flush chain ${inet} ${n.spoof}`,
    ...routedAntiSpoof,
    `add chain ${bridge} ${n.spoof}`,
    `flush chain ${bridge} ${n.spoof}`,
    ...antiSpoof,
  ];
}

/** Forgets every address learned for `key` (its policy lost names): they are learned again from new answers only. */
export function forgetLearnedCommands(table: string, key: string): string[] {
  const n = keyNames(key);
  return [`flush set inet ${table} ${n.learned4}`, `flush set inet ${table} ${n.learned6}`];
}

/** Deletes one namespace's objects (after the maps stopped pointing at its chains). */
export function deleteKeyCommands(table: string, id: string): string[] {
  checkTable(table);
  if (!/^[0-9a-f]{16}$/.test(id)) throw bad('not an egress key id');
  return [
    `delete chain inet ${table} eg_${id}`,
    `delete set inet ${table} l4_${id}`,
    `delete set inet ${table} l6_${id}`,
    `delete counter inet ${table} drop_${id}`,
    // Made first: a table an earlier nsdns wrote may not have it, and a failed delete fails all.
    `add chain inet ${table} sp_${id}`,
    `delete chain inet ${table} sp_${id}`,
    `delete chain bridge ${table} sp_${id}`,
  ];
}

/** Removes both tables, whether they exist or not. */
export function deleteTablesCommands(table: string): string[] {
  checkTable(table);
  return ['inet', 'bridge'].flatMap((family) => [`add table ${family} ${table}`, `delete table ${family} ${table}`]);
}

/**
 * Rewrites the maps that send governed traffic to its chains, for all governed namespaces at once:
 * a source address or bridge port maps to the chain of the namespace it belongs to.
 */
export function mapCommands(table: string, governed: ReadonlyMap<string, EgressRules>): string[] {
  checkTable(table);
  const src4: string[] = [];
  const src6: string[] = [];
  const ports: string[] = [];
  const ifs: string[] = [];
  // Interfaces and addresses apart: a link may be named like an address. Each maps to its
  // namespace once; an address in two sources of one namespace (a veth guarding it, see
  // enforcement.ts) is the same entry.
  const linkOwner = new Map<string, string>();
  const addressOwner = new Map<string, string>();
  const first = (owner: Map<string, string>, what: string, id: string): boolean => {
    const had = owner.get(what);
    if (had !== undefined && had !== id) throw bad('an address or interface belongs to two governed namespaces');
    owner.set(what, id);
    return had === undefined;
  };
  for (const [key, rules] of governed) {
    const n = keyNames(key);
    for (const s of checkRules(rules).sources) {
      if (s.hostIf !== undefined && first(linkOwner, s.hostIf, n.id)) {
        ports.push(`"${s.hostIf}" : jump ${n.spoof}`);
        // Routed host ends only: in the inet hooks a bridged packet's input interface is the bridge, so
        // a name given here that is a bridge (or the uplink) would catch every tenant's packets.
        if (s.routed) ifs.push(`"${s.hostIf}" : jump ${n.spoof}`);
      }
      for (const a of s.ipv4) if (first(addressOwner, a, n.id)) src4.push(`${a} : jump ${n.chain}`);
      for (const a of s.ipv6) if (first(addressOwner, a, n.id)) src6.push(`${a} : jump ${n.chain}`);
    }
  }
  const fill = (family: string, map: string, items: string[]) => (items.length > 0 ? [`add element ${family} ${table} ${map} ${set(items)}`] : []);
  return [
    `flush map inet ${table} src4`, `flush map inet ${table} src6`, `flush map inet ${table} ifs`, `flush map bridge ${table} ports`,
    ...fill('inet', 'src4', src4), ...fill('inet', 'src6', src6), ...fill('inet', 'ifs', ifs), ...fill('bridge', 'ports', ports),
  ];
}

/**
 * A learned address (canonical text) and its timeout in whole seconds. `replace`: the address may
 * be in the set already, on a kernel that does not refresh an element in place (before Linux
 * 6.10): it is deleted and added again in the same transaction, so it is never absent in between.
 */
export interface LearnedElement { address: string; ttl: number; replace?: boolean }

/**
 * Adds learned addresses with their timeouts, each expiring that long from now: an address already
 * in the set is refreshed (Linux 6.10 and later update what an add gives; a timeout alone, equal
 * to the element's own, would leave its expiration as it was; before 6.10, an element marked
 * `replace` is deleted first in the same transaction). The addresses must be canonical already.
 */
export function learnCommands(table: string, key: string, v4: readonly LearnedElement[], v6: readonly LearnedElement[]): string[] {
  const n = keyNames(key);
  const el = (e: LearnedElement) => `${e.address} timeout ${e.ttl}s expires ${e.ttl}s`;
  const commands = (set: string, elements: readonly LearnedElement[]) => {
    if (elements.length === 0) return [];
    const replaced = elements.filter((e) => e.replace === true).map((e) => e.address);
    return [
      ...(replaced.length > 0 ? [`delete element inet ${table} ${set} { ${replaced.join(', ')} }`] : []),
      `add element inet ${table} ${set} { ${elements.map(el).join(', ')} }`,
    ];
  };
  return [...commands(n.learned4, v4), ...commands(n.learned6, v6)];
}
