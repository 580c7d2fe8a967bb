// Forwarding to upstream servers: cache first, then identical in-flight queries share one upstream
// exchange, then the servers in order (healthy first) until one gives a usable answer within the
// time budget. The forwarder never throws: whatever happens, the client gets a reply.
import { RCODE } from '../wire/constants.js';
import type { Query } from '../wire/query.js';
import { inspectReply } from '../wire/records.js';
import { errorReply, readdressReply } from '../wire/reply.js';
import { rateLimited, type Logger } from '../log.js';
import { errorMessage } from '../errors.js';
import { AnswerCache, cacheKey } from './cache.js';
import { UpstreamHealth } from './health.js';
import type { UpstreamServer } from './upstream-address.js';
import type { Exchange, Transport } from './upstream.js';

export interface ForwardOptions {
  /** How long one server gets to answer, ms. */
  timeoutMs: number;
  /** How long all servers together get, ms (well under glibc's 5 s so the client gets our answer). */
  budgetMs: number;
  /** Most distinct upstream exchanges at once, over all listeners. */
  maxInflight: number;
  /** Most distinct upstream exchanges at once for one listener. */
  maxInflightPerListener: number;
  maxUdpSize: number;
}

/** Per-listener bookkeeping the forwarder needs. */
export interface InflightCounter {
  inflight: number;
}

/** Where an answer came from: for `nsdns debug` and the debug log. */
export type Origin = { source: 'cache' } | { source: 'upstream'; server: string } | { source: 'error'; reason: string };

export interface Forwarded {
  reply: Buffer;
  origin: Origin;
}

export class Forwarder {
  readonly health = new UpstreamHealth();
  private readonly pending = new Map<string, Promise<Forwarded>>();
  private inflight = 0;
  private readonly warnOverload = rateLimited(10_000);

  constructor(
    private options: ForwardOptions,
    public cache: AnswerCache,
    private readonly exchange: Exchange,
    private readonly log: Logger,
  ) {}

  configure(options: ForwardOptions): void {
    this.options = options;
  }

  get inflightCount(): number {
    return this.inflight;
  }

  /** A cached answer for this query from these servers (`serversKey`), ready to send. */
  /** The cache key of this query asked of these servers (`serversKey`). */
  key(query: Query, serversKey: string): string {
    return `${cacheKey(query)}|${serversKey}`;
  }

  /** A cached answer, ready to send. */
  cachedReply(key: string, query: Query): Buffer | undefined {
    return this.cache.get(key, query);
  }

  /** The cache, else the upstreams. */
  forward(query: Query, servers: readonly UpstreamServer[], serversKey: string, transport: Transport, listener: InflightCounter): Promise<Forwarded> {
    const key = this.key(query, serversKey);
    const cached = this.cachedReply(key, query);
    if (cached) return Promise.resolve({ reply: cached, origin: { source: 'cache' } });
    return this.fetch(query, key, servers, transport, listener);
  }

  /** The upstreams, for a query the cache (under `key`) did not have. */
  async fetch(query: Query, key: string, servers: readonly UpstreamServer[], transport: Transport, listener: InflightCounter): Promise<Forwarded> {
    const flightKey = `${key}|${transport}`;
    const shared = this.pending.get(flightKey);
    if (shared) {
      const result = await shared;
      return { reply: readdressReply(result.reply, query), origin: result.origin };
    }

    if (this.inflight >= this.options.maxInflight || listener.inflight >= this.options.maxInflightPerListener) {
      this.warnOverload((suppressed) => this.log.warn({ inflight: this.inflight, listenerInflight: listener.inflight, suppressed }, 'forwarding limit reached; answering SERVFAIL'));
      return { reply: errorReply(query, RCODE.SERVFAIL, true, this.options.maxUdpSize), origin: { source: 'error', reason: 'overload' } };
    }

    this.inflight++;
    listener.inflight++;
    const flight = this.tryServers(query, key, servers, transport);
    this.pending.set(flightKey, flight);
    try {
      return await flight;
    } finally {
      this.pending.delete(flightKey);
      this.inflight--;
      listener.inflight--;
    }
  }

  private async tryServers(query: Query, key: string, servers: readonly UpstreamServer[], transport: Transport): Promise<Forwarded> {
    const deadline = Date.now() + this.options.budgetMs;
    const failures: string[] = [];
    for (const server of this.health.order(servers)) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      try {
        const reply = await this.exchange(query.raw, query.questionEnd, server, transport, Math.min(this.options.timeoutMs, remaining));
        const info = inspectReply(reply, query.questionEnd);
        if (!info) throw new Error('sent a malformed reply');
        if (info.rcode === RCODE.SERVFAIL || info.rcode === RCODE.REFUSED) throw new Error(`answered ${info.rcode === RCODE.SERVFAIL ? 'SERVFAIL' : 'REFUSED'}`);
        this.health.succeeded(server.key);
        this.cache.put(key, reply, info);
        return { reply: readdressReply(reply, query), origin: { source: 'upstream', server: server.key } };
      } catch (err) {
        this.health.failed(server.key);
        failures.push(`${server.key}: ${errorMessage(err)}`);
      }
    }
    const reason = failures.length > 0 ? failures.join('; ') : 'no time left';
    this.log.debug({ qname: query.name, qtype: query.qtype, reason }, 'no upstream answered');
    return { reply: errorReply(query, RCODE.SERVFAIL, true, this.options.maxUdpSize), origin: { source: 'error', reason } };
  }
}
