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
import { Forwarder, type Forwarded, type InflightCounter, type Origin } from './forwarder.js';
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
    const parsed = parseQuery(raw);
    if (parsed.kind === 'drop') return null;
    if (parsed.kind === 'reject') return headerOnlyReply(raw, parsed.rcode, parsed.edns, this.settings.maxUdpSize);
    const view = listener.view();
    const limit = client.transport === 'udp' ? udpLimit(parsed, this.settings.maxUdpSize) : TCP_MAX_MESSAGE;
    const local = answerLocally(parsed, view, this.settings, limit, this.canForward(view));
    if (local) return local;
    const upstreams = this.upstreams(view, client, listener);
    if (upstreams.servers.length === 0) return this.refuse(parsed, view).reply;
    // A cache hit is answered synchronously too: no promise, no upstream bookkeeping.
    const key = this.forwarder.key(parsed, upstreams.key);
    const hit = this.forwarder.cachedReply(key, parsed);
    if (hit) return hit.length > limit ? truncatedCopy(hit, parsed) : hit;
    return this.forwardTo(parsed, upstreams, client, listener, limit, key).then((r) => r.reply);
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
    // Who gets a fair share of the upstreams: a namespace as a whole, or one source address.
    const who = listener.endpoints() === undefined ? client.address : listener.name;
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
