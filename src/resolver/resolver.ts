// The per-query pipeline, in order: read the query (fast path) → refuse what is malformed →
// answer from the registry → decide whether we may forward → cache / forward. The listener writes
// whatever this returns; a synchronous Buffer for everything answered locally, so the common
// query costs no promise.
import { RCODE } from '../wire/constants.js';
import { parseQuery, type Query } from '../wire/query.js';
import { errorReply, headerOnlyReply, truncatedCopy, udpLimit } from '../wire/reply.js';
import { TCP_MAX_MESSAGE } from '../wire/constants.js';
import type { Endpoint } from '../registry/types.js';
import type { View } from '../registry/view.js';
import type { Logger } from '../log.js';
import { answerLocally } from './local.js';
import { Forwarder, LatencyBuckets, type Forwarded, type InflightCounter, type Origin } from './forwarder.js';
import { parseUpstream, type UpstreamServer } from './upstream-address.js';
import type { Transport } from './upstream.js';

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
}

/** One place queries come in: a host listener, or the 127.0.0.11 sockets inside a namespace. */
export interface ListenerContext extends InflightCounter {
  readonly name: string;
  view(): View;
  /** The endpoints this listener serves (a namespace's); undefined: identify the client by address. */
  endpoints(): readonly Endpoint[] | undefined;
}

export interface Client {
  address: string;
  transport: Transport;
}

export type Resolution = { reply: Buffer; origin: Origin | { source: 'registry' } };

/** Label values of QueryStats.answers, in index order. */
export const LISTENER_KINDS = ['host', 'namespace'] as const;
export const ANSWER_SOURCES = ['local', 'cache', 'upstream', 'error'] as const;
export const QTYPE_LABELS = ['A', 'AAAA', 'PTR', 'SRV', 'TXT', 'ANY', 'other'] as const;
const LOCAL = 0;
const CACHE = 1;
const UPSTREAM = 2;
const ERROR = 3;

/** Index into QTYPE_LABELS: a bounded label set, whatever type a client asks for. */
function qtypeIndex(qtype: number): number {
  switch (qtype) {
    case 1: return 0;
    case 28: return 1;
    case 12: return 2;
    case 33: return 3;
    case 16: return 4;
    case 255: return 5;
    default: return 6;
  }
}

/**
 * The per-query counters: plain numbers in typed arrays, bumped on the hot path only while
 * `enabled`, and turned into Prometheus metrics at scrape time (daemon/metrics.ts). Nothing from
 * the network (names, client addresses) is ever kept here: every index is from a bounded set.
 */
export class QueryStats {
  enabled = false;
  /** Answers by [kind][source][qtype][rcode], flattened: see answerIndex(). */
  readonly answers = new Float64Array(LISTENER_KINDS.length * ANSWER_SOURCES.length * QTYPE_LABELS.length * 16);
  /** Messages not answered at all: shorter than a header, or a response. */
  dropped = 0;
  /** Messages answered with a header-only FORMERR/NOTIMP/BADVERS. */
  malformed = 0;
  /** Datagrams from clients a host listener does not answer. */
  notAllowed = 0;
  /** TCP connections refused, by the limit that refused them (or not-allowed). */
  readonly tcpRefused = { 'per-client': 0, 'per-listener': 0, 'daemon-wide': 0, 'not-allowed': 0 };
  /** Answer latency of one answer in SAMPLE_EVERY (a clock read per query would cost more than it tells). */
  readonly latency = new LatencyBuckets();
  private tick = 0;

  static readonly SAMPLE_EVERY = 8;

  static answerIndex(kind: number, source: number, qtype: number, rcode: number): number {
    return ((kind * ANSWER_SOURCES.length + source) * QTYPE_LABELS.length + qtype) * 16 + rcode;
  }

  /** A start time for one answer in SAMPLE_EVERY, else 0. */
  startTimer(): number {
    return (++this.tick & (QueryStats.SAMPLE_EVERY - 1)) === 0 ? performance.now() : 0;
  }

  count(listener: ListenerContext, source: number, qtype: number, reply: Buffer, started: number): void {
    const kind = listener.endpoints() === undefined ? 0 : 1;
    this.answers[QueryStats.answerIndex(kind, source, qtypeIndex(qtype), reply[3] & 0x0f)]++;
    if (started !== 0) this.latency.observe((performance.now() - started) / 1000);
  }
}

function sourceIndex(origin: Forwarded['origin']): number {
  return origin.source === 'upstream' ? UPSTREAM : origin.source === 'cache' ? CACHE : ERROR;
}

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

  constructor(
    private settings: ResolverSettings,
    readonly forwarder: Forwarder,
    private readonly log: Logger,
  ) {}

  configure(settings: ResolverSettings): void {
    this.settings = settings;
    this.raView = undefined;
    this.upstreamMemo = new WeakMap();
  }

  /** The reply to send, or null when the message must be dropped. */
  handle(raw: Buffer, client: Client, listener: ListenerContext): Buffer | null | Promise<Buffer> {
    // Metrics off: one test of a boolean per query, and no clock read.
    const stats = this.stats.enabled ? this.stats : undefined;
    const started = stats ? stats.startTimer() : 0;
    const parsed = parseQuery(raw);
    if (parsed.kind === 'drop') {
      if (stats) stats.dropped++;
      return null;
    }
    if (parsed.kind === 'reject') {
      const reply = headerOnlyReply(raw, parsed.rcode, parsed.edns, this.settings.maxUdpSize);
      if (stats) {
        stats.malformed++;
        stats.count(listener, ERROR, -1, reply, started);
      }
      return reply;
    }
    const view = listener.view();
    const limit = client.transport === 'udp' ? udpLimit(parsed, this.settings.maxUdpSize) : TCP_MAX_MESSAGE;
    const local = answerLocally(parsed, view, this.settings, limit, this.canForward(view));
    if (local) {
      stats?.count(listener, LOCAL, parsed.qtype, local, started);
      return local;
    }
    const upstreams = this.upstreams(view, client, listener);
    if (upstreams.servers.length === 0) {
      const refused = this.refuse(parsed, view).reply;
      stats?.count(listener, ERROR, parsed.qtype, refused, started);
      return refused;
    }
    // A cache hit is answered synchronously too: no promise, no upstream bookkeeping.
    const key = this.forwarder.key(parsed, upstreams.key);
    const hit = this.forwarder.cachedReply(key, parsed);
    if (hit) {
      const reply = hit.length > limit ? truncatedCopy(hit, parsed) : hit;
      stats?.count(listener, CACHE, parsed.qtype, reply, started);
      return reply;
    }
    if (!this.forwarder.admits(key, client.transport, clientKey(client, listener))) {
      const refused = this.forwarder.turnAway(parsed, client.transport, clientKey(client, listener));
      if (refused) stats?.count(listener, ERROR, parsed.qtype, refused, started);
      return refused;
    }
    const forwarded = this.forwardTo(parsed, upstreams, client, listener, limit, key);
    if (!stats) return forwarded.then((r) => r.reply);
    return forwarded.then((r) => {
      stats.count(listener, sourceIndex(r.origin), parsed.qtype, r.reply, started);
      return r.reply;
    });
  }

  /** Like handle(), and says where the answer came from (for `nsdns debug`). */
  async explain(raw: Buffer, client: Client, listener: ListenerContext): Promise<Resolution | null> {
    const parsed = parseQuery(raw);
    if (parsed.kind === 'drop') return null;
    if (parsed.kind === 'reject') return { reply: headerOnlyReply(raw, parsed.rcode, parsed.edns, this.settings.maxUdpSize), origin: { source: 'error', reason: parsed.reason } };
    const view = listener.view();
    const local = answerLocally(parsed, view, this.settings, TCP_MAX_MESSAGE, this.canForward(view));
    if (local) return { reply: local, origin: { source: 'registry' } };
    const upstreams = this.upstreams(view, client, listener);
    if (upstreams.servers.length === 0) return this.refuse(parsed, view);
    return this.forwardTo(parsed, upstreams, client, listener, TCP_MAX_MESSAGE);
  }

  private refuse(query: Query, view: View): Forwarded {
    // Internal networks never reach out, and with no upstream there is nobody to ask.
    const reason = view.canForward ? 'no upstream servers' : 'internal network';
    return { reply: errorReply(query, RCODE.REFUSED, false, this.settings.maxUdpSize), origin: { source: 'error', reason } };
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
      const servers = view.canForward ? this.upstreamsFor(view, client, listener) : [];
      entry = { servers, key: servers.map((s) => s.key).join(','), host };
      if (perView.size >= 4096) perView.clear();
      perView.set(key, entry);
    }
    return entry;
  }

  /** RA: whether a query from this view could be forwarded at all. */
  private canForward(view: View): boolean {
    if (!view.canForward) return false;
    if (view !== this.raView) {
      this.raView = view;
      this.raValue = this.settings.upstreams.length > 0 || this.settings.hostUpstreams().length > 0 || view.hasOwnUpstreams;
    }
    return this.raValue;
  }

  /** Upstreams for a client, first level that names any: endpoint's, network's, daemon's, host's. */
  upstreamsFor(view: View, client: Client, listener: ListenerContext): UpstreamServer[] {
    const endpoints = listener.endpoints() ?? view.endpointsAt(client.address);
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
      return result.reply.length > limit ? { ...result, reply: truncatedCopy(result.reply, query) } : result;
    } catch (err) {
      this.log.error({ err, qname: query.name }, 'forwarding failed unexpectedly');
      return { reply: errorReply(query, RCODE.SERVFAIL, true, this.settings.maxUdpSize), origin: { source: 'error', reason: String(err) } };
    }
  }
}
