// The per-query pipeline, in order: read the query (fast path) → refuse what is malformed →
// answer from the registry → decide whether we may forward → cache / forward. One pipeline serves
// both `handle` (the listeners) and `explain` (`nsdns debug`): a QueryContext carries the query
// through it and collects where the answer came from. The listener writes whatever handle returns;
// a synchronous Buffer for everything answered locally, so the common query costs no promise.
import dnsPacket from 'dns-packet';
import { QTYPE, RCODE, TCP_MAX_MESSAGE } from '../wire/constants.js';
import { parseQuery, type Query } from '../wire/query.js';
import { queryMessage } from '../wire/records-write.js';
import { encodeRecords, errorReply, headerOnlyReply, recordsReply, truncatedCopy, udpLimit } from '../wire/reply.js';
import type { Endpoint } from '../registry/types.js';
import type { View } from '../registry/view.js';
import type { Logger } from '../log.js';
import { isChase, localAnswer, type Chase, type LocalOptions } from './local.js';
import { CACHE, ERROR, LOCAL, QueryStats, sourceIndex } from './query-stats.js';
import { Forwarder, type Forwarded, type InflightCounter, type Origin } from './forwarder.js';
import { parseUpstream, type UpstreamServer } from './upstream-address.js';
import type { Transport } from './upstream.js';
import { DEFAULT_EGRESS_SETTINGS, EgressGate, type EgressSettings, type NamespaceEgress } from '../egress/egress-dns.js';

/** The default name namespaces reach the host by (config dns.hostName). */
export const DEFAULT_HOST_NAME = 'host.nsdns.internal';

export interface ResolverSettings {
  /** TTL of local answers, seconds. */
  ttl: number;
  maxUdpSize: number;
  /** The daemon's own upstreams, used when neither endpoint nor network names any. */
  upstreams: readonly string[];
  /** Last resort: the host's resolvers (from /etc/resolv.conf), read lazily. */
  hostUpstreams: () => readonly string[];
  /** Addresses we listen on ("host:port"): never used as upstreams, so we cannot ask ourselves. */
  ownAddresses: ReadonlySet<string>;
  /** The name that answers a namespace's gateway (default DEFAULT_HOST_NAME); '' turns it off. */
  hostName?: string;
  /** PTR gives every name and alias of an endpoint (local.ts). */
  ptrEveryName?: boolean;
  /**
   * What a query that is not forwarded gets: `internal` when the client's networks are all
   * internal, `noUpstream` when nobody is known to ask (default: REFUSED for both).
   */
  notForwarded?: { internal: NotForwarded; noUpstream: NotForwarded };
  /** RA in every reply, as aardvark-dns sets it, not only where a query could be forwarded. */
  recursionAlwaysAvailable?: boolean;
  /** Egress by name: the grace added to learned addresses' TTL, and the decision log lines. */
  egress?: EgressSettings;
}

/** The reply to a query that is not forwarded: an error rcode, or none at all. */
export type NotForwarded = 'refused' | 'nxdomain' | 'drop';

/** One place queries come in: a host listener, or the 127.0.0.11 sockets inside a namespace. */
export interface ListenerContext extends InflightCounter {
  readonly name: string;
  view(): View;
  /**
   * A host listener: the view of the client at `address` (a tenant sees only its own networks,
   * registry/tenants.ts); null: the client is refused. Absent: every client sees view().
   */
  clientView?(address: string): View | null;
  /**
   * A host listener: the endpoints the client at `address` is, in `view` (none for the host itself,
   * whatever address a registry file gives an endpoint). Absent: the endpoints at that address.
   */
  clientEndpoints?(address: string, view: View): readonly Endpoint[];
  /** The endpoints this listener serves (a namespace's); undefined: identify the client by address. */
  endpoints(): readonly Endpoint[] | undefined;
  /**
   * A namespace's listener: the namespace's egress policy, undefined when it has none (then the
   * query path is as if there were no such feature). Absent on host listeners.
   */
  egress?(): NamespaceEgress | undefined;
}

export interface Client {
  address: string;
  transport: Transport;
}

export type Resolution = { reply: Buffer; origin: Origin | { source: 'registry' } };

/** One query on its way through the pipeline. */
interface QueryContext {
  readonly raw: Buffer;
  readonly client: Client;
  readonly listener: ListenerContext;
  /** Set while metrics are on (never for explain). */
  readonly stats: QueryStats | undefined;
  readonly started: number;
  /** `nsdns debug`: no size limit of the transport, no fair-share admission. */
  readonly explain: boolean;
  /** Where the answer came from, once known. */
  origin: Resolution['origin'] | undefined;
}

const REGISTRY_ORIGIN = { source: 'registry' } as const;
const EGRESS_DENIED = { source: 'error', reason: 'egress policy: name not allowed' } as const;

export { ANSWER_SOURCES, LISTENER_KINDS, QTYPE_LABELS, QueryStats } from './query-stats.js';

/** Who gets a fair share of the upstreams: a namespace as a whole, or one source address. */
function clientKey(client: Client, listener: ListenerContext): string {
  return listener.endpoints() === undefined ? client.address : listener.name;
}

interface Upstreams {
  servers: UpstreamServer[];
  /** Identifies the server list: part of cache keys, so clients with other upstreams never share answers. */
  key: string;
  /** The host resolver list it was computed with (replaced when resolv.conf changes). */
  host: readonly string[];
}

export class Resolver {
  private upstreamMemo = new WeakMap<View, Map<string, Upstreams>>();
  private raView: View | undefined;
  private raValue = false;
  readonly stats = new QueryStats();
  private local: LocalOptions;
  /** Egress by name: decisions, the learner (set by whoever enforces), counters. */
  readonly egress: EgressGate;

  constructor(
    private settings: ResolverSettings,
    readonly forwarder: Forwarder,
    private readonly log: Logger,
  ) {
    this.local = localOptions(settings);
    this.egress = new EgressGate(settings.egress ?? DEFAULT_EGRESS_SETTINGS, log.child({ module: 'egress' }));
  }

  configure(settings: ResolverSettings): void {
    this.settings = settings;
    this.egress.configure(settings.egress ?? DEFAULT_EGRESS_SETTINGS);
    this.local = localOptions(settings);
    this.raView = undefined;
    this.upstreamMemo = new WeakMap();
  }

  /** The reply to send, or null when the message must be dropped. */
  handle(raw: Buffer, client: Client, listener: ListenerContext): Buffer | null | Promise<Buffer | null> {
    // Metrics off: one test of a boolean per query, and no clock read.
    const stats = this.stats.enabled ? this.stats : undefined;
    return this.run({ raw, client, listener, stats, started: stats ? stats.startTimer() : 0, explain: false, origin: undefined });
  }

  /** Like handle(), and says where the answer came from (for `nsdns debug`). */
  async explain(raw: Buffer, client: Client, listener: ListenerContext): Promise<Resolution | null> {
    const ctx: QueryContext = { raw, client, listener, stats: undefined, started: 0, explain: true, origin: undefined };
    const reply = await this.run(ctx);
    return reply === null ? null : { reply, origin: ctx.origin ?? REGISTRY_ORIGIN };
  }

  private run(ctx: QueryContext): Buffer | null | Promise<Buffer | null> {
    const { stats, listener, client } = ctx;
    const parsed = parseQuery(ctx.raw);
    if (parsed.kind === 'drop') {
      if (stats) stats.dropped++;
      return null;
    }
    if (parsed.kind === 'reject') {
      const reply = headerOnlyReply(ctx.raw, parsed.rcode, parsed.edns, this.settings.maxUdpSize);
      ctx.origin = { source: 'error', reason: parsed.reason };
      if (stats) {
        stats.malformed++;
        stats.count(listener, ERROR, -1, reply, ctx.started);
      }
      return reply;
    }
    const view = listener.clientView ? listener.clientView(client.address) : listener.view();
    if (view === null) {
      const reply = errorReply(parsed, RCODE.REFUSED, false, this.settings.maxUdpSize);
      ctx.origin = { source: 'error', reason: 'a tenant of no network this listener serves' };
      stats?.count(listener, ERROR, parsed.qtype, reply, ctx.started);
      return reply;
    }
    const limit = ctx.explain || client.transport !== 'udp' ? TCP_MAX_MESSAGE : udpLimit(parsed, this.settings.maxUdpSize);
    const local = localAnswer(parsed, view, this.local, limit, this.canForward(view), listener.endpoints() !== undefined);
    if (local !== undefined) {
      if (isChase(local)) {
        // The network's own CNAME: answered as today; under a policy its target's addresses are opened too.
        const chased = this.chase(ctx, parsed, view, local);
        const ns = listener.egress?.();
        return ns === undefined ? chased : chased.then((reply) => this.egress.release(ns, parsed, reply, this.settings.maxUdpSize));
      }
      ctx.origin = REGISTRY_ORIGIN;
      if (stats) {
        stats.count(listener, LOCAL, parsed.qtype, local, ctx.started);
        const found = view.lookup(parsed.name); // memoized: a map lookup, and only while metrics are on
        stats.countLocal(found.kind !== 'unknown' ? found.network : parsed.qtype === QTYPE.PTR ? 'reverse' : 'other');
      }
      return local;
    }
    // Egress by name: a namespace without a policy pays this one test. The network's own names
    // were answered above; any other name must be allowed, or is NXDOMAIN without asking upstream.
    const ns = listener.egress?.();
    if (ns !== undefined && !this.egress.allows(ns, parsed)) return this.egressDenied(ctx, parsed, view);
    const upstreams = this.upstreams(view, client, listener);
    if (upstreams.servers.length === 0) {
      const unforwarded = this.notForwarded(parsed, view);
      ctx.origin = unforwarded.origin;
      if (unforwarded.reply !== null) stats?.count(listener, ERROR, parsed.qtype, unforwarded.reply, ctx.started);
      return unforwarded.reply;
    }
    // A cache hit is answered synchronously too: no promise, no upstream bookkeeping.
    const key = this.forwarder.key(parsed, upstreams.key);
    const hit = this.forwarder.cachedReply(key, parsed);
    if (hit) {
      const reply = hit.length > limit ? truncatedCopy(hit, parsed) : hit;
      // A large answer costs its client a part of its share even from the cache (chargeCached).
      if (!ctx.explain && !this.forwarder.chargeCached(clientKey(client, listener), reply.length)) {
        const refused = this.forwarder.turnAway(parsed, client.transport, clientKey(client, listener));
        if (refused) stats?.count(listener, ERROR, parsed.qtype, refused, ctx.started);
        return refused;
      }
      ctx.origin = { source: 'cache' };
      stats?.count(listener, CACHE, parsed.qtype, reply, ctx.started);
      return ns === undefined ? reply : this.egress.release(ns, parsed, reply, this.settings.maxUdpSize);
    }
    if (!ctx.explain && !this.forwarder.admits(key, client.transport, clientKey(client, listener))) {
      const refused = this.forwarder.turnAway(parsed, client.transport, clientKey(client, listener));
      if (refused) stats?.count(listener, ERROR, parsed.qtype, refused, ctx.started);
      return refused;
    }
    const forwarded = this.forwardTo(parsed, upstreams, client, listener, limit, key);
    return forwarded.then((r) => {
      ctx.origin = r.origin;
      // Under the policy as it is now, not as it was when the name was asked: a change meanwhile
      // that took the name out has flushed what it opened, and this answer must not open it again.
      const now = ns === undefined || r.reply === null ? undefined : listener.egress?.();
      if (now !== undefined && !this.egress.stillAllows(now, parsed)) return this.egressDenied(ctx, parsed, view);
      if (r.reply !== null) stats?.count(listener, sourceIndex(r.origin), parsed.qtype, r.reply, ctx.started);
      return now === undefined ? r.reply : this.egress.release(now, parsed, r.reply, this.settings.maxUdpSize);
    });
  }

  /** NXDOMAIN with EDE 15 for a name the namespace's policy does not allow, counted as such. */
  private egressDenied(ctx: QueryContext, parsed: Query, view: View): Buffer {
    const reply = this.egress.deniedReply(parsed, this.canForward(view), this.settings.maxUdpSize);
    ctx.origin = EGRESS_DENIED;
    ctx.stats?.count(ctx.listener, ERROR, parsed.qtype, reply, ctx.started);
    return reply;
  }

  /**
   * A static CNAME to an outside name: glibc does not follow it, so the target is asked upstream
   * (same type, through the cache) and its answers follow the CNAME. With nobody to ask (an
   * internal network), the CNAME alone.
   */
  private async chase(ctx: QueryContext, query: Query, view: View, chase: Chase): Promise<Buffer> {
    const upstreams = this.upstreams(view, ctx.client, ctx.listener);
    let answers: Buffer[] = [];
    let rcode: number = RCODE.NOERROR;
    ctx.origin = REGISTRY_ORIGIN;
    if (upstreams.servers.length > 0) {
      const target = parseQuery(queryMessage(query.id, chase.target, query.qtype));
      if (target.kind === 'query') {
        const result = await this.forwardTo(target, upstreams, ctx.client, ctx.listener, TCP_MAX_MESSAGE);
        ctx.origin = result.origin;
        try {
          if (result.reply === null) throw new Error('no upstream answered');
          const decoded = dnsPacket.decode(result.reply) as dnsPacket.Packet & { rcode?: string };
          rcode = decoded.rcode === 'NXDOMAIN' ? RCODE.NXDOMAIN : decoded.rcode === 'NOERROR' ? RCODE.NOERROR : RCODE.SERVFAIL;
          answers = encodeRecords((decoded.answers ?? []).filter((a) => (a as { class?: string }).class === undefined || (a as { class?: string }).class === 'IN'));
        } catch {
          rcode = RCODE.SERVFAIL;
        }
      }
    }
    const reply = recordsReply(query, [...chase.records, ...answers], [], { ...chase.reply, rcode });
    ctx.stats?.count(ctx.listener, sourceIndex(ctx.origin), query.qtype, reply, ctx.started);
    return reply;
  }

  private notForwarded(query: Query, view: View): Forwarded {
    // Internal networks never reach out, and with no upstream there is nobody to ask.
    const internal = !view.canForward;
    const reason = internal ? 'internal network' : 'no upstream servers';
    const answer = (internal ? this.settings.notForwarded?.internal : this.settings.notForwarded?.noUpstream) ?? 'refused';
    const origin: Origin = { source: 'error', reason };
    if (answer === 'drop') return { reply: null, origin };
    const rcode = answer === 'nxdomain' ? RCODE.NXDOMAIN : RCODE.REFUSED;
    return { reply: errorReply(query, rcode, this.settings.recursionAlwaysAvailable === true, this.settings.maxUdpSize), origin };
  }

  /**
   * The upstreams of this client, memoized per view (a registry change brings a new view) and per
   * client: a namespace listener's endpoints, or a host listener's client address.
   */
  private upstreams(view: View, client: Client, listener: ListenerContext): Upstreams {
    let perView = this.upstreamMemo.get(view);
    if (!perView) {
      perView = new Map();
      this.upstreamMemo.set(view, perView);
    }
    const key = listener.endpoints() === undefined ? client.address : listener.name;
    const host = this.settings.hostUpstreams();
    let entry = perView.get(key);
    if (!entry || entry.host !== host) {
      const servers = view.canForward ? this.upstreamsFor(view, client, listener) : this.internalUpstreams(view, client, listener);
      entry = { servers, key: this.scoped(servers.map((s) => s.key).join(','), view), host };
      if (perView.size >= 4096) perView.clear();
      perView.set(key, entry);
    }
    return entry;
  }

  /**
   * The upstreams' part of the cache key, with the view's networks when the cache is kept apart per
   * network (`cache.scope: network`): then another tenant cannot read from an entry's remaining
   * TTL what this one asked. Names are escaped so the key keeps no '|'.
   */
  private scoped(serversKey: string, view: View): string {
    if (this.forwarder.cache.options.scope !== 'network') return serversKey;
    return `${serversKey};${view.networkNames.map(encodeURIComponent).sort().join(',')}`;
  }

  /** RA: whether a query from this view could be forwarded at all. */
  private canForward(view: View): boolean {
    if (this.settings.recursionAlwaysAvailable) return true;
    if (view !== this.raView) {
      this.raView = view;
      // An internal network forwards only to its own servers inside its subnets.
      this.raValue = view.canForward ? this.settings.upstreams.length > 0 || this.settings.hostUpstreams().length > 0 || view.hasOwnUpstreams : view.hasOwnUpstreams;
    }
    return this.raValue;
  }

  /**
   * Upstreams of a client whose networks are all internal: only the endpoint's or network's own
   * servers that lie inside an internal network's subnets (a DNS server on that network, as
   * moby#47821); an outside server is never asked.
   */
  private internalUpstreams(view: View, client: Client, listener: ListenerContext): UpstreamServer[] {
    const endpoints = listener.endpoints() ?? listener.clientEndpoints?.(client.address, view) ?? view.endpointsAt(client.address);
    if (endpoints.length === 0) return [];
    return this.usable(view.upstreamsFor(endpoints)).filter((s) => view.insideInternalSubnet(s.host));
  }

  /** Upstreams for a client, first level that names any: endpoint's, network's, daemon's, host's. */
  upstreamsFor(view: View, client: Client, listener: ListenerContext): UpstreamServer[] {
    const endpoints = listener.endpoints() ?? listener.clientEndpoints?.(client.address, view) ?? view.endpointsAt(client.address);
    const fromRegistry = endpoints.length > 0 ? view.upstreamsFor(endpoints) : [];
    for (const level of [fromRegistry, this.settings.upstreams, this.settings.hostUpstreams()]) {
      const servers = this.usable(level);
      if (servers.length > 0) return servers;
    }
    return [];
  }

  private usable(addresses: readonly string[]): UpstreamServer[] {
    const servers: UpstreamServer[] = [];
    for (const a of addresses) {
      try {
        const server = parseUpstream(a);
        if (!this.settings.ownAddresses.has(server.key) && !server.key.startsWith('127.0.0.11:')) servers.push(server);
      } catch (err) {
        this.log.warn({ err, upstream: a }, 'ignoring an invalid upstream address');
      }
    }
    return servers;
  }

  /** Through the forwarder; `missedKey` when the cache was already asked (and did not have it). */
  private async forwardTo(query: Query, upstreams: Upstreams, client: Client, listener: ListenerContext, limit: number, missedKey?: string): Promise<Forwarded> {
    const who = clientKey(client, listener);
    try {
      const result = missedKey === undefined
        ? await this.forwarder.forward(query, upstreams.servers, upstreams.key, client.transport, listener, who)
        : await this.forwarder.fetch(query, missedKey, upstreams.servers, client.transport, listener, who);
      return result.reply !== null && result.reply.length > limit ? { ...result, reply: truncatedCopy(result.reply, query) } : result;
    } catch (err) {
      this.log.error({ err, qname: query.name }, 'forwarding failed unexpectedly');
      return { reply: errorReply(query, RCODE.SERVFAIL, true, this.settings.maxUdpSize), origin: { source: 'error', reason: String(err) } };
    }
  }
}

function localOptions(settings: ResolverSettings): LocalOptions {
  return { ttl: settings.ttl, maxUdpSize: settings.maxUdpSize, hostName: (settings.hostName ?? DEFAULT_HOST_NAME).toLowerCase().replace(/\.$/, ''), ptrEveryName: settings.ptrEveryName };
}
