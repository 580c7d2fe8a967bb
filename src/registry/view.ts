// What one listener may see: the networks it is attached to, within one registry snapshot. A view
// is immutable apart from health, so it memoizes lookups; the next registry change brings a new
// view, and a health change (HealthStates.version) empties the memo at the next lookup.
import ipaddr from 'ipaddr.js';
import { isInZone } from '../wire/names.js';
import type { SrvData } from '../wire/records-write.js';
import { canonicalName, type CompiledNetwork, type NameEntry } from './compiled.js';
import { HealthStates } from './health-state.js';
import type { Endpoint, StaticRecord } from './types.js';

/** One SRV target: the target's name and, when it is ours, its addresses for the additional section. */
export type SrvTarget = SrvData;

/** Encoded records of a found name, filled in by the resolver (wire/) at the first answer of each kind. */
export interface EncodedMemo {
  ttl: number;
  srv?: { answers: Buffer[]; additional: Buffer[] };
  txt?: Buffer[];
  any?: Buffer[];
}

export interface Found {
  readonly kind: 'found';
  /** Owner of the SOA in a NODATA answer. */
  readonly zone: string;
  /** The network that answered (its name, the only name that may become a metrics label). */
  readonly network: string;
  readonly a: readonly Buffer[];
  readonly aaaa: readonly Buffer[];
  /** TXT strings: `key=value` per label of the endpoints, and static TXT records. */
  readonly txt: readonly string[];
  /** SRV records: a service name (`_http._tcp.web`) or static SRV records. */
  readonly srv: readonly SrvTarget[];
  /** A static CNAME at this name: its absolute target, and the target's own result when it is ours. */
  readonly cname: { readonly target: string; readonly local: Found | undefined } | undefined;
  /** Every holder of a shared name was unhealthy or starting, so all were answered (fail open). */
  readonly failOpen: boolean;
  /** Per-view memo of encoded records (see EncodedMemo); dropped with the view's memo. */
  encoded: EncodedMemo | undefined;
}

export type NameResult =
  /** The name is ours: its records (possibly none of the asked type → NODATA). */
  | Found
  /** The name is a zone apex of ours: it exists, with no addresses. */
  | { readonly kind: 'apex'; readonly zone: string; readonly network: string }
  /** The name lies in one of our zones and does not exist: NXDOMAIN, never forwarded. */
  | { readonly kind: 'nxdomain'; readonly zone: string; readonly network: string }
  /** Not ours: the forwarder's business. */
  | { readonly kind: 'unknown' };

const UNKNOWN: NameResult = { kind: 'unknown' };
const MEMO_LIMIT = 10_000;
const UNKNOWN_MEMO_LIMIT = 1024;
/** CNAME chains between static records are followed this far. */
const CNAME_DEPTH = 8;
const SERVICE = /^_([a-z0-9-]{1,63})\._(tcp|udp)\.(.+)$/;

/** What a name matches on one network: endpoint names or aliases, and static records. */
interface Match {
  readonly net: CompiledNetwork;
  readonly entry: NameEntry | undefined;
  readonly records: readonly StaticRecord[] | undefined;
}

export type FailOpenListener = (name: string, endpoints: number) => void;

export class View {
  private readonly memo = new Map<string, NameResult>();
  private readonly unknownMemo = new Map<string, NameResult>();
  private healthVersion: number;
  private hostMemo: Found | null | undefined;
  /** Bumped per answer, to rotate the order of several addresses between replies. */
  rotation = 0;

  constructor(
    readonly networks: readonly CompiledNetwork[],
    readonly health: HealthStates = new HealthStates(),
    private readonly onFailOpen?: FailOpenListener,
  ) {
    this.healthVersion = health.version;
  }

  get networkNames(): string[] {
    return this.networks.map((n) => n.network.name);
  }

  /** False when every network in the view is internal: nothing may be forwarded to the outside. */
  get canForward(): boolean {
    return this.networks.length === 0 || this.networks.some((n) => !n.network.internal);
  }

  /** True when some endpoint or network in the view names its own upstreams. */
  get hasOwnUpstreams(): boolean {
    return this.networks.some((n) => n.ownUpstreams);
  }

  lookup(name: string): NameResult {
    // One integer compare per query: a health change is seen by the next lookup.
    if (this.health.version !== this.healthVersion) {
      this.healthVersion = this.health.version;
      this.memo.clear();
      this.unknownMemo.clear();
    }
    let result = this.memo.get(name) ?? this.unknownMemo.get(name);
    if (result === undefined) {
      result = this.resolve(name, 0);
      // Names that are not ours go to a small memo of their own: a flood of distinct names must
      // neither push our own names out nor keep thousands of entries alive long enough to reach
      // the old generation (major GC pauses for every namespace).
      const memo = result === UNKNOWN ? this.unknownMemo : this.memo;
      if (memo.size >= (result === UNKNOWN ? UNKNOWN_MEMO_LIMIT : MEMO_LIMIT)) memo.clear();
      memo.set(name, result);
    }
    return result;
  }

  /**
   * PTR targets for an address held by an endpoint or a static A/AAAA record in the view: an
   * endpoint's canonical name, or with `everyName` its name and every alias as they are (aardvark).
   */
  reverse(address: string, everyName = false): string[] {
    const targets = new Set<string>();
    for (const net of this.networks) {
      for (const e of net.byAddress.get(address) ?? []) {
        if (!everyName) targets.add(canonicalName(e, net.network));
        else for (const name of [e.name, ...e.aliases]) targets.add(name);
      }
      for (const name of net.recordAddresses.get(address) ?? []) targets.add(name);
    }
    return [...targets];
  }

  /** The endpoints in this view that own `address` (the client asking, on a host listener). */
  endpointsAt(address: string): Endpoint[] {
    const canonical = canonical4or6(address);
    if (canonical === undefined) return [];
    return this.networks.flatMap((n) => n.byAddress.get(canonical) ?? []);
  }

  /**
   * Upstreams for queries from these endpoints, by precedence: the endpoints' own servers, else
   * their networks' servers; an empty list means "use the daemon's".
   */
  upstreamsFor(endpoints: readonly Endpoint[]): string[] {
    const own = unique(endpoints.flatMap((e) => e.upstreams));
    if (own.length > 0) return own;
    const nets = new Set(endpoints.map((e) => e.network));
    return unique(this.networks.filter((n) => nets.has(n.network.name)).flatMap((n) => n.network.upstreams));
  }

  /** True when `address` (an upstream's host part) lies inside a subnet of an internal network of the view. */
  insideInternalSubnet(address: string): boolean {
    let addr: ipaddr.IPv4 | ipaddr.IPv6;
    try {
      addr = ipaddr.process(address);
    } catch {
      return false;
    }
    return this.networks.some((n) => n.network.internal && n.network.subnets.some((s) => {
      const range = ipaddr.parseCIDR(s.subnet);
      return range[0].kind() === addr.kind() && addr.match(range);
    }));
  }

  /**
   * The host's name (`host.nsdns.internal`) as a namespace sees it: the gateways of its first
   * non-internal network, the one that carries its default route; null when it has none.
   */
  hostGateway(zone: string): Found | null {
    if (this.hostMemo === undefined) {
      const net = this.networks.find((n) => !n.network.internal);
      const gateways = net ? net.network.subnets.map((s) => s.gateway).filter((g): g is string => g !== undefined) : [];
      this.hostMemo = gateways.length === 0 ? null : found(zone, net!.network.name, toWire(gateways.filter((g) => !g.includes(':'))), toWire(gateways.filter((g) => g.includes(':'))), [], [], undefined, false);
    }
    return this.hostMemo;
  }

  private resolve(name: string, depth: number): NameResult {
    const matches = this.matches(name);
    if (matches !== undefined) return this.found(name, matches.zone, matches.list, depth);
    const service = SERVICE.exec(name);
    if (service) {
      const base = this.matches(service[3]);
      if (base !== undefined) return this.service(name, service[1], service[2] as 'tcp' | 'udp', base.zone, base.list);
    }
    for (const net of this.networks) {
      for (const zone of net.zones) {
        if (name === zone) return { kind: 'apex', zone, network: net.network.name };
        if (isInZone(name, zone)) return { kind: 'nxdomain', zone, network: net.network.name };
      }
    }
    return UNKNOWN;
  }

  /**
   * What `name` names: first as a short name on any network of the view (`web`), then as
   * `<name>.<zone>` on the network that zone belongs to (`web.lab`, `web.example.org`). The zone
   * of a short name is its (first) network's: the SOA of a NODATA answer is the zone's, never the name's.
   */
  private matches(name: string): { zone: string; list: Match[] } | undefined {
    const short = this.matchOn(name, this.networks);
    if (short.length > 0) return { zone: short[0].net.canonicalZone, list: short };
    for (const net of this.networks) {
      for (const zone of net.zones) {
        if (name.length > zone.length + 1 && isInZone(name, zone)) {
          const scoped = this.matchOn(name.slice(0, name.length - zone.length - 1), this.networks.filter((n) => n.zones.includes(zone)));
          if (scoped.length > 0) return { zone, list: scoped };
        }
      }
    }
    return undefined;
  }

  private matchOn(relative: string, networks: readonly CompiledNetwork[]): Match[] {
    const out: Match[] = [];
    for (const net of networks) {
      const entry = net.names.get(relative);
      const records = net.records.get(relative);
      if (entry !== undefined || records !== undefined) out.push({ net, entry, records });
    }
    return out;
  }

  /**
   * The endpoints that answer for these matches: an endpoint's own name answers whatever its
   * health (unless it asked to be hidden), a shared name only its healthy holders, or all of them
   * when none is healthy (fail open).
   */
  private holders(name: string, list: readonly Match[], keep: (e: Endpoint) => boolean = () => true): { endpoints: Array<{ e: Endpoint; net: CompiledNetwork }>; failOpen: boolean; shared: number } {
    const own: Array<{ e: Endpoint; net: CompiledNetwork }> = [];
    const shared: Array<{ e: Endpoint; net: CompiledNetwork }> = [];
    for (const { net, entry } of list) {
      if (!entry) continue;
      for (const e of entry.endpoints) {
        if (!keep(e)) continue;
        if (entry.own === e) {
          if (!e.healthHideOwn || this.health.get(net.network.name, e.id) === 'healthy') own.push({ e, net });
        } else shared.push({ e, net });
      }
    }
    if (shared.length === 0) return { endpoints: own, failOpen: false, shared: 0 };
    const healthy = shared.filter(({ e, net }) => this.health.get(net.network.name, e.id) === 'healthy');
    if (healthy.length > 0) return { endpoints: [...own, ...healthy], failOpen: false, shared: healthy.length };
    this.onFailOpen?.(name, shared.length);
    return { endpoints: [...own, ...shared], failOpen: true, shared: shared.length };
  }

  private found(name: string, zone: string, list: readonly Match[], depth: number): NameResult {
    const { endpoints, failOpen, shared } = this.holders(name, list);
    const v4: string[] = [];
    const v6: string[] = [];
    const txt: string[] = [];
    const srv: SrvTarget[] = [];
    for (const { e } of endpoints) {
      v4.push(...e.ipv4);
      v6.push(...e.ipv6);
      for (const [k, v] of Object.entries(e.labels ?? {})) txt.push(`${k}=${v}`);
    }
    let cname: Found['cname'];
    for (const { net, records } of list) {
      for (const r of records ?? []) {
        if (r.type === 'A') v4.push(r.value);
        else if (r.type === 'AAAA') v6.push(r.value);
        else if (r.type === 'TXT') txt.push(r.value);
        else if (r.type === 'SRV') srv.push(this.srvTarget(r.priority, r.weight, r.port, r.target, net, depth));
        else if (cname === undefined) cname = this.cname(r.value, net, depth);
      }
    }
    // Several holders of an alias (a scaled service): all their addresses, in a shuffled order
    // (then rotated per answer).
    const order = shared > 1 ? shuffle : (x: Buffer[]) => x;
    return found(zone, list[0].net.network.name, order(toWire(v4)), order(toWire(v6)), unique(txt), srv, cname, failOpen);
  }

  /** `_<service>._<protocol>.<name>`: every holder of `name` that declares the service. */
  private service(name: string, service: string, protocol: 'tcp' | 'udp', zone: string, list: readonly Match[]): NameResult {
    const declares = (e: Endpoint) => (e.services ?? []).some((s) => s.name === service && s.protocol === protocol);
    const { endpoints, failOpen } = this.holders(name, list, declares);
    if (endpoints.length === 0) return { kind: 'nxdomain', zone, network: list[0].net.network.name };
    const srv: SrvTarget[] = [];
    const seen = new Set<Endpoint>();
    for (const { e, net } of endpoints) {
      if (seen.has(e)) continue;
      seen.add(e);
      for (const s of e.services!) {
        if (s.name !== service || s.protocol !== protocol) continue;
        srv.push({ priority: s.priority, weight: s.weight, port: s.port, target: canonicalName(e, net.network), a: toWire(e.ipv4), aaaa: toWire(e.ipv6) });
      }
    }
    return found(zone, list[0].net.network.name, [], [], [], srv, undefined, failOpen);
  }

  /** A static SRV record's target: `<target>.<zone>` with its addresses when it names something here, else as given. */
  private srvTarget(priority: number, weight: number, port: number, target: string, net: CompiledNetwork, depth: number): SrvTarget {
    const local = this.localTarget(target, net, depth);
    if (!local) return { priority, weight, port, target, a: [], aaaa: [] };
    return { priority, weight, port, target: local.name, a: local.result?.a ?? [], aaaa: local.result?.aaaa ?? [] };
  }

  private cname(target: string, net: CompiledNetwork, depth: number): Found['cname'] {
    const local = this.localTarget(target, net, depth);
    return local ? { target: local.name, local: local.result } : { target, local: undefined };
  }

  /** A relative target that names an endpoint, alias or record of `net`: its absolute name and result. */
  private localTarget(target: string, net: CompiledNetwork, depth: number): { name: string; result: Found | undefined } | undefined {
    let relative: string | undefined;
    if (net.names.has(target) || net.records.has(target)) relative = target;
    else {
      const zone = net.zones.find((z) => target.length > z.length + 1 && isInZone(target, z));
      if (zone !== undefined) relative = target.slice(0, target.length - zone.length - 1);
    }
    if (relative === undefined) return undefined;
    const name = `${relative}.${net.canonicalZone}`;
    if (depth >= CNAME_DEPTH) return { name, result: undefined };
    const list = this.matchOn(relative, [net]);
    const result = list.length > 0 ? this.found(name, net.canonicalZone, list, depth + 1) : undefined;
    return { name, result: result?.kind === 'found' ? result : undefined };
  }
}

function found(zone: string, network: string, a: Buffer[], aaaa: Buffer[], txt: string[], srv: SrvTarget[], cname: Found['cname'], failOpen: boolean): Found {
  return { kind: 'found', zone, network, a, aaaa, txt, srv, cname, failOpen, encoded: undefined };
}

function toWire(addresses: readonly string[]): Buffer[] {
  return unique(addresses.map((a) => ipaddr.parse(a).toString())).map((a) => Buffer.from(ipaddr.parse(a).toByteArray()));
}

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

function unique<T>(items: T[]): T[] {
  return [...new Set(items)];
}

function canonical4or6(address: string): string | undefined {
  try {
    return ipaddr.process(address).toString();
  } catch {
    return undefined;
  }
}
