// What one listener may see: the networks it is attached to, within one registry snapshot. A view
// is immutable, so it memoizes lookups; the next registry change brings a new view.
import ipaddr from 'ipaddr.js';
import { isInZone } from '../wire/names.js';
import { canonicalName, type CompiledNetwork } from './compiled.js';
import type { Endpoint } from './types.js';

export type NameResult =
  /** The name is ours: its addresses (possibly none of one family → NODATA). */
  | { readonly kind: 'found'; readonly zone: string; readonly a: readonly Buffer[]; readonly aaaa: readonly Buffer[] }
  /** The name is a zone apex of ours: it exists, with no addresses. */
  | { readonly kind: 'apex'; readonly zone: string }
  /** The name lies in one of our zones and does not exist: NXDOMAIN, never forwarded. */
  | { readonly kind: 'nxdomain'; readonly zone: string }
  /** Not ours: the forwarder's business. */
  | { readonly kind: 'unknown' };

const UNKNOWN: NameResult = { kind: 'unknown' };
const MEMO_LIMIT = 10_000;

export class View {
  private readonly memo = new Map<string, NameResult>();
  /** Bumped per answer, to rotate the order of several addresses between replies. */
  rotation = 0;

  constructor(readonly networks: readonly CompiledNetwork[]) {}

  get networkNames(): string[] {
    return this.networks.map((n) => n.network.name);
  }

  /** False when every network in the view is internal: nothing may be forwarded. */
  get canForward(): boolean {
    return this.networks.length === 0 || this.networks.some((n) => !n.network.internal);
  }

  /** True when some endpoint or network in the view names its own upstreams. */
  get hasOwnUpstreams(): boolean {
    return this.networks.some((n) => n.ownUpstreams);
  }

  lookup(name: string): NameResult {
    let result = this.memo.get(name);
    if (result === undefined) {
      result = this.resolve(name);
      if (this.memo.size >= MEMO_LIMIT) this.memo.clear();
      this.memo.set(name, result);
    }
    return result;
  }

  /** PTR targets for an address held by an endpoint in the view. */
  reverse(address: string): string[] {
    const targets = new Set<string>();
    for (const net of this.networks) {
      for (const e of net.byAddress.get(address) ?? []) targets.add(canonicalName(e, net.network));
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

  private resolve(name: string): NameResult {
    const found = this.collect(name, this.networks);
    if (found.length > 0) return this.found(name, found);
    const dot = name.indexOf('.');
    if (dot > 0) {
      // `name.network` or `name.domain`: look the first label up in that network only.
      const head = name.slice(0, dot);
      const tail = name.slice(dot + 1);
      const scoped = this.networks.filter((n) => n.zones.includes(tail));
      const inZone = this.collect(head, scoped);
      if (inZone.length > 0) return this.found(tail, inZone);
    }
    for (const net of this.networks) {
      for (const zone of net.zones) {
        if (name === zone) return { kind: 'apex', zone };
        if (isInZone(name, zone)) return { kind: 'nxdomain', zone };
      }
    }
    return UNKNOWN;
  }

  private collect(name: string, networks: readonly CompiledNetwork[]): Endpoint[] {
    const out: Endpoint[] = [];
    for (const net of networks) {
      const entry = net.names.get(name);
      if (entry) out.push(...entry.endpoints);
    }
    return out;
  }

  private found(zone: string, endpoints: Endpoint[]): NameResult {
    return {
      kind: 'found',
      zone,
      a: toWire(endpoints.flatMap((e) => e.ipv4)),
      aaaa: toWire(endpoints.flatMap((e) => e.ipv6)),
    };
  }
}

function toWire(addresses: string[]): Buffer[] {
  return unique(addresses.map((a) => ipaddr.parse(a).toString())).map((a) => Buffer.from(ipaddr.parse(a).toByteArray()));
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
