// Forwarding to upstream servers: cache first, then identical in-flight queries share one upstream
// exchange, then the servers in order (healthy first, the next one asked early when one is slow:
// upstream-race.ts) until one gives a usable answer within the time budget. Each client (a namespace, or a source address) gets a fair share of the upstreams,
// counted in queries and in the bytes of the answers it is served.
// The query sent upstream is our own, built from the question; replies are scrubbed before they
// are cached or served. The forwarder never throws: whatever happens, the client gets a reply
// (unless `silentWhenUnanswered` asks for none when every upstream failed).
import { RCODE } from '../wire/constants.js';
import type { Query } from '../wire/query.js';
import { errorReply } from '../wire/reply.js';
import { readdressScrubbed, scrubReply } from '../wire/scrub.js';
import { buildUpstreamQuery, withRandomCase } from '../wire/upstream-query.js';
import { rateLimited, type Logger } from '../log.js';
import { AnswerCache, cacheKey } from './cache.js';
import { BYTES_PER_QUERY, ClientShares, SLIP, extraQueries, type Share } from './client-shares.js';
import { UpstreamHealth } from './health.js';
import type { UpstreamServer } from './upstream-address.js';
import { CaseMismatch, type Exchange, type SlowWatch, type Transport } from './upstream.js';
import { UpstreamRace, type RaceRules, type Verdict } from './upstream-race.js';

/** Upper bounds of the latency buckets, seconds (Prometheus `le`); one more bucket holds the rest. */
export const LATENCY_BOUNDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] as const;

/** A latency histogram as plain numbers: one comparison chain per observation, read at scrape time. */
export class LatencyBuckets {
  readonly counts = new Float64Array(LATENCY_BOUNDS.length + 1);
  sum = 0;

  observe(seconds: number): void {
    let i = 0;
    while (i < LATENCY_BOUNDS.length && seconds > LATENCY_BOUNDS[i]) i++;
    this.counts[i]++;
    this.sum += seconds;
  }
}

/** What one upstream server did, counted while metrics are on. */
export interface ServerStats {
  queries: number;
  timeouts: number;
  /** Errors, SERVFAIL/REFUSED and unusable answers (timeouts not included). */
  failures: number;
  readonly latency: LatencyBuckets;
}

/** Servers come from config and registry files: a bound in case a file names very many. */
const MAX_SERVER_STATS = 1024;

/**
 * The forwarder's counters. Refusals are counted always (they are the rare path); per-server
 * numbers only while `enabled`, so a daemon without metrics does no map lookup per exchange.
 */
export class ForwardStats {
  enabled = false;
  /** Over a client's share (in flight or rate): REFUSED. */
  refusedClient = 0;
  /** Over the daemon's or a listener's limit of exchanges in flight: SERVFAIL. */
  overloadGlobal = 0;
  overloadListener = 0;
  /** Queries that joined an identical one already in flight (not sent again). */
  joined = 0;
  readonly servers = new Map<string, ServerStats>();

  server(key: string): ServerStats {
    let s = this.servers.get(key);
    if (!s) {
      if (this.servers.size >= MAX_SERVER_STATS) this.servers.clear();
      s = { queries: 0, timeouts: 0, failures: 0, latency: new LatencyBuckets() };
      this.servers.set(key, s);
    }
    return s;
  }
}

export interface ForwardOptions {
  /** How long one server gets to answer, ms. */
  timeoutMs: number;
  /** How long all servers together get, ms (well under glibc's 5 s so the client gets our answer). */
  budgetMs: number;
  /** Most distinct upstream exchanges at once, over all listeners. */
  maxInflight: number;
  /** Most distinct upstream exchanges at once for one listener. */
  maxInflightPerListener: number;
  /** Most upstream exchanges one client (a namespace, or a source address) has started and not finished. */
  maxInflightPerClient: number;
  /**
   * Upstream exchanges one client may start per second, with a burst as large; 0: no limit. An
   * answer larger than `BYTES_PER_QUERY` counts as one query per `BYTES_PER_QUERY` bytes.
   */
  clientQueriesPerSecond: number;
  /** 0x20: random letter case in upstream questions, checked case-exactly in replies. */
  randomizeCase: boolean;
  maxUdpSize: number;
  /**
   * When every upstream failed (no answer at all, not even REFUSED): no reply instead of SERVFAIL.
   * aardvark-dns stays silent there, and its clients retry on silence but give up on SERVFAIL.
   */
  silentWhenUnanswered?: boolean;
  /**
   * An upstream's answer is the client's whatever its rcode, REFUSED and SERVFAIL included: the
   * next server is asked only when one gives no answer at all. aardvark-dns relays the first
   * reply it gets; without this, REFUSED and SERVFAIL send the question on to the next server.
   */
  firstAnswerWins?: boolean;
}

/** Per-listener bookkeeping the forwarder needs. */
export interface InflightCounter {
  inflight: number;
}

/** Where an answer came from: for `nsdns debug` and the debug log. */
export type Origin = { source: 'cache' } | { source: 'upstream'; server: string } | { source: 'error'; reason: string };

export interface Forwarded {
  /** null: send nothing (every upstream failed, with `silentWhenUnanswered`). */
  reply: Buffer | null;
  origin: Origin;
}

/** What one upstream exchange gave, for every client sharing it: a scrubbed reply, or none (SERVFAIL). */
export interface Outcome {
  reply: Buffer | undefined;
  origin: Origin;
}

export class Forwarder {
  readonly health = new UpstreamHealth();
  readonly stats = new ForwardStats();
  private readonly pending = new Map<string, Promise<Outcome>>();
  private readonly shares = new ClientShares();
  private inflight = 0;
  private readonly warnOverload = rateLimited(10_000);
  private readonly warnClient = rateLimited(10_000);
  /** What a race over the upstreams asks of this forwarder. */
  private readonly rules: RaceRules = {
    health: this.health,
    hedgeDelay: (server) => this.health.hedgeDelay(server.key, this.options.timeoutMs),
    counted: (server) => (this.stats.enabled ? this.stats.server(server.key) : undefined),
    ask: (race, server, watch) => this.ask(race, server, watch),
    judge: (race, reply, server) => this.judge(race, reply, server),
    // Still an exchange in flight (a socket), though no client waits for it any more.
    lingering: (delta) => { this.inflight += delta; },
  };

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

  /** The cache key of this query asked of these servers (`serversKey`). */
  key(query: Query, serversKey: string): string {
    return `${cacheKey(query)}|${serversKey}`;
  }

  /** A cached answer, ready to send. */
  cachedReply(key: string, query: Query): Buffer | undefined {
    return this.cache.get(key, query);
  }

  /** The cache, else the upstreams. `client` names who asks, for its fair share of the upstreams. */
  forward(query: Query, servers: readonly UpstreamServer[], serversKey: string, transport: Transport, listener: InflightCounter, client: string): Promise<Forwarded> {
    const key = this.key(query, serversKey);
    const cached = this.cachedReply(key, query);
    if (cached) {
      if (!this.chargeCached(client, cached.length)) return Promise.resolve(this.refused(query, client));
      return Promise.resolve({ reply: cached, origin: { source: 'cache' } });
    }
    return this.fetch(query, key, servers, transport, listener, client);
  }

  /**
   * Charges `client` for a cached answer of `bytes` it is about to be sent: a large one costs it
   * as many queries as it has `BYTES_PER_QUERY`s (one length test for the others). False, and
   * nothing charged, when the client is over its share: then it gets REFUSED instead.
   */
  chargeCached(client: string, bytes: number): boolean {
    if (bytes <= BYTES_PER_QUERY || this.options.clientQueriesPerSecond === 0) return true;
    if (!this.shares.hasRoom(client, this.options)) return false;
    this.shares.charge(client, extraQueries(bytes), this.options.clientQueriesPerSecond);
    return true;
  }

  /**
   * Whether `client` may have this cache miss answered from upstream: a query joining one in
   * flight always may; otherwise its share must have room. Asked before any promise is made, so
   * a flooding client is turned away at the cost of two map lookups.
   */
  admits(key: string, transport: Transport, client: string): boolean {
    return this.pending.has(`${key}|${transport}`) || this.shares.hasRoom(client, this.options);
  }

  /**
   * The answer for a client over its share. Over UDP the first query turned away and then one in
   * SLIP get REFUSED, the others nothing (as response rate limiting does): a well-behaved client
   * learns at once that it is refused, and a flooding one costs neither a send per query nor
   * answers to feed its loop. Over TCP every one is answered (no reflection there).
   */
  turnAway(query: Query, transport: Transport, client: string): Buffer | null {
    this.stats.refusedClient++;
    this.warnClient((suppressed) => this.log.warn({ client, suppressed }, 'client over its share of the upstreams; answering REFUSED (over UDP to one query in 4)'));
    if (transport === 'udp' && this.shares.turnedAway(client) % SLIP !== 1) return null;
    return errorReply(query, RCODE.REFUSED, true, this.options.maxUdpSize);
  }

  /** The upstreams, for a query the cache (under `key`) did not have. */
  async fetch(query: Query, key: string, servers: readonly UpstreamServer[], transport: Transport, listener: InflightCounter, client: string): Promise<Forwarded> {
    // The key is one-to-one and the upstream query is built from it alone, so joining is safe.
    const flightKey = `${key}|${transport}`;
    const shared = this.pending.get(flightKey);
    if (shared) {
      this.stats.joined++;
      return this.charged(client, this.replyFor(await shared, query));
    }

    const share = this.shares.take(client, this.options);
    if (!share) return this.refused(query, client);
    if (this.overCap(listener, share)) {
      share.tokens++; // nothing was sent: the client keeps its token
      if (this.inflight >= this.options.maxInflight) this.stats.overloadGlobal++;
      else this.stats.overloadListener++;
      this.warnOverload((suppressed) => this.log.warn({ inflight: this.inflight, listenerInflight: listener.inflight, suppressed }, 'forwarding limit reached; answering SERVFAIL'));
      return { reply: errorReply(query, RCODE.SERVFAIL, true, this.options.maxUdpSize), origin: { source: 'error', reason: 'overload' } };
    }

    this.inflight++;
    listener.inflight++;
    if (share.inflight++ === 0) this.shares.active++;
    const flight = this.tryServers(query, key, servers, transport, client);
    this.pending.set(flightKey, flight);
    try {
      return this.charged(client, this.replyFor(await flight, query));
    } finally {
      this.pending.delete(flightKey);
      this.inflight--;
      listener.inflight--;
      if (--share.inflight === 0) this.shares.active--;
    }
  }

  /**
   * Whether the daemon-wide or the listener's cap turns this exchange away. At a cap, a client
   * still below its fair part of it (the cap over the clients with exchanges in flight) gets in,
   * up to twice the cap: many clients (spoofed sources, say) filling the cap must not cost a
   * light client its answers.
   */
  private overCap(listener: InflightCounter, share: Share): boolean {
    const { maxInflight, maxInflightPerListener } = this.options;
    const atGlobal = this.inflight >= maxInflight;
    const atListener = listener.inflight >= maxInflightPerListener;
    if (!atGlobal && !atListener) return false;
    if (this.inflight >= 2 * maxInflight || listener.inflight >= 2 * maxInflightPerListener) return true;
    const cap = atGlobal ? maxInflight : maxInflightPerListener;
    return share.inflight >= Math.max(1, Math.floor(cap / Math.max(1, this.shares.active)));
  }

  private refused(query: Query, client: string): Forwarded {
    this.stats.refusedClient++;
    // Cheap and quiet: a flooding client must not cost the others log volume either.
    this.warnClient((suppressed) => this.log.warn({ client, suppressed }, 'client over its share of the upstreams; answering REFUSED'));
    return { reply: errorReply(query, RCODE.REFUSED, true, this.options.maxUdpSize), origin: { source: 'error', reason: 'client limit' } };
  }

  /**
   * Charges the client for the rest of a large answer (the exchange took one query already). The
   * work of an answer (scrubbing, inspecting, caching, sending) grows with its bytes, so a client
   * asking for large answers uses up its share sooner, and its next misses are refused until the
   * share refills: a few large answers a second must not cost a neighbour its answers.
   */
  private charged(client: string, forwarded: Forwarded): Forwarded {
    if (forwarded.reply !== null && forwarded.reply.length > BYTES_PER_QUERY) this.shares.charge(client, extraQueries(forwarded.reply.length), this.options.clientQueriesPerSecond);
    return forwarded;
  }

  /** The shared outcome made this client's: its id, question case and EDNS; or its own SERVFAIL (or nothing). */
  private replyFor(outcome: Outcome, query: Query): Forwarded {
    if (outcome.reply) return { reply: readdressScrubbed(outcome.reply, query), origin: outcome.origin };
    return { reply: this.options.silentWhenUnanswered ? null : errorReply(query, RCODE.SERVFAIL, true, this.options.maxUdpSize), origin: outcome.origin };
  }

  /**
   * The servers race for the answer (UpstreamRace). REFUSED and SERVFAIL are answers, not
   * failures: unless `firstAnswerWins`, the next server is asked, and when none answers better the
   * client gets the first such reply. Only an exchange that fails (a timeout, an unreachable
   * server) counts against a server's health.
   */
  private async tryServers(query: Query, key: string, servers: readonly UpstreamServer[], transport: Transport, client: string): Promise<Outcome> {
    const sent = buildUpstreamQuery(query, this.options.maxUdpSize);
    const race = new UpstreamRace(this.rules, this.health.order(servers), sent, query.questionEnd, transport, Date.now() + this.options.budgetMs, key, client);
    const outcome = await race.outcome;
    if (outcome.reply === undefined) this.log.debug({ qname: query.name, qtype: query.qtype, reason: (outcome.origin as { reason: string }).reason }, 'no upstream answered');
    return outcome;
  }

  /** A reply to `race`'s question: the answer (cached), or why not, with a reply to give if none is better. */
  private   judge(race: UpstreamRace, reply: Buffer, server: UpstreamServer): Verdict {
    const scrubbed = scrubReply(reply, race.sent, race.questionEnd, this.options.maxUdpSize);
    if (typeof scrubbed === 'string') return { final: false, fallback: undefined, problem: `${server.key}: sent an unusable answer: ${scrubbed}` };
    const origin: Origin = { source: 'upstream', server: server.key };
    const rcode = reply.readUInt16BE(2) & 0x0f;
    if ((rcode === RCODE.SERVFAIL || rcode === RCODE.REFUSED) && !this.options.firstAnswerWins) {
      return { final: false, fallback: { reply: scrubbed.reply, origin }, problem: `${server.key}: answered ${rcode === RCODE.SERVFAIL ? 'SERVFAIL' : 'REFUSED'}` };
    }
    this.cache.put(race.cacheKey, scrubbed.reply, scrubbed.info, race.client);
    return { final: true, outcome: { reply: scrubbed.reply, origin } };
  }

  /**
   * One server: with 0x20 when it is on and the server keeps case. A server that answers in
   * another case is asked again at once without it, and is remembered as not keeping case.
   */
  private async ask(race: UpstreamRace, server: UpstreamServer, watch: SlowWatch | undefined): Promise<Buffer> {
    const { sent, questionEnd, transport, deadline } = race;
    const timeout = () => Math.max(1, Math.min(this.options.timeoutMs, deadline - Date.now()));
    if (!this.options.randomizeCase || !this.health.keepsCase(server.key)) return this.exchange(sent, questionEnd, server, transport, timeout(), false, watch);
    try {
      return await this.exchange(withRandomCase(sent, questionEnd), questionEnd, server, transport, timeout(), true, watch);
    } catch (err) {
      if (!(err instanceof CaseMismatch)) throw err;
      this.health.changesCase(server.key);
      this.log.info({ upstream: server.key }, 'upstream does not keep the case of questions; asking it without 0x20 for a while');
      return this.exchange(sent, questionEnd, server, transport, timeout(), false, watch);
    }
  }
}
