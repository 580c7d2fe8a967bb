// Prometheus metrics (prom-client's registry and text format) and the health endpoints, served
// over plain HTTP on `metrics.listen`. Nothing here runs per query: the query path bumps plain
// counters (QueryStats, ForwardStats, the cache's), and every metric is computed from them when it
// is scraped. Labels come from bounded sets only (listener kind, source, qtype, rcode, limit, and
// the upstream servers the operator configured); never a name or address a client sent.
import http from 'node:http';
import type net from 'node:net';
import { Histogram, Registry, type Metric } from 'prom-client';
import { ANSWER_SOURCES, LISTENER_KINDS, QTYPE_LABELS, QueryStats, type Resolver } from '../resolver/resolver.js';
import type { ListenerStats } from '../server/listener-stats.js';
import { LATENCY_BOUNDS, type LatencyBuckets } from '../resolver/forwarder.js';
import { NsdnsError } from '../errors.js';
import { formatHostPort } from '../host-port.js';
import type { Logger } from '../log.js';
import type { HealthReport } from './health-report.js';

const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED', 'YXDOMAIN', 'YXRRSET', 'NXRRSET', 'NOTAUTH', 'NOTZONE', 'RCODE11', 'RCODE12', 'RCODE13', 'RCODE14', 'RCODE15'];

/** What the metrics are computed from, read at scrape time. */
export interface MetricsSources {
  resolver: Resolver;
  /** What the DNS servers count: clients dropped, flood pauses, TCP connections refused. */
  listeners: ListenerStats;
  /** TCP connections open over all listeners. */
  tcpConnections(): number;
  registryChanges(): number;
  registryErrors(): number;
  /** Networks, endpoints, namespaces with endpoints, and how many of those are served. */
  inventory(): { networks: number; endpoints: number; namespaces: number; served: number };
  health(): HealthReport;
  /** Health probe results so far, and endpoints with a check by state. */
  probes(): { results: { ok: number; failed: number }; states: Record<string, number> };
}

type Labels = Record<string, string>;
type Sample = { labels: Labels; value: number; metricName?: string };
type MetricType = 'counter' | 'gauge' | 'histogram';

/** A metric whose samples are computed when scraped (prom-client calls get()). */
class Computed {
  readonly aggregator = 'sum';

  constructor(readonly name: string, readonly help: string, readonly type: MetricType, private readonly samples: () => Sample[]) {}

  get() {
    return { name: this.name, help: this.help, type: this.type, values: this.samples(), aggregator: this.aggregator };
  }

  reset(): void {}
}

/** Prometheus histogram samples (cumulative buckets, sum, count) from plain bucket counts. */
function histogramSamples(name: string, buckets: LatencyBuckets, labels: Labels = {}): Sample[] {
  const out: Sample[] = [];
  let cumulative = 0;
  LATENCY_BOUNDS.forEach((le, i) => {
    cumulative += buckets.counts[i];
    out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: String(le) }, value: cumulative });
  });
  cumulative += buckets.counts[LATENCY_BOUNDS.length];
  out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: cumulative });
  out.push({ metricName: `${name}_sum`, labels, value: buckets.sum });
  out.push({ metricName: `${name}_count`, labels, value: cumulative });
  return out;
}

export class Metrics {
  readonly registry = new Registry();
  /** network.connect / network.disconnect as the control socket saw them. */
  private readonly controlDuration: Histogram<'operation' | 'result'>;

  constructor(private readonly sources: MetricsSources) {
    // Not prom-client's default metrics: their GC observer runs a callback per collection and
    // their event-loop monitor a timer: work on the thread that answers DNS, paid whether or not
    // anyone scrapes. The
    // process figures an operator needs are read at scrape time instead (computed() below).
    this.controlDuration = new Histogram({
      name: 'nsdns_network_operation_duration_seconds',
      help: 'Time taken by network connect and disconnect requests, from the request to the answer (connect waits until 127.0.0.11 answers in the namespace)',
      labelNames: ['operation', 'result'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [this.registry],
    });
    for (const metric of this.computed()) this.registry.registerMetric(metric as unknown as Metric);
  }

  observeOperation(operation: 'connect' | 'disconnect', seconds: number, ok: boolean): void {
    this.controlDuration.observe({ operation, result: ok ? 'ok' : 'error' }, seconds);
  }

  private computed(): Computed[] {
    const { resolver } = this.sources;
    const q = () => resolver.stats;
    const l = () => this.sources.listeners;
    const shared = () => this.sources.health().sharedRegistries;
    const f = () => resolver.forwarder.stats;
    const cache = () => resolver.forwarder.cache;
    const one = (value: number, labels: Labels = {}): Sample[] => [{ labels, value }];
    return [
      new Computed('nsdns_queries_total', 'DNS answers sent, by listener kind (host, namespace), answering source (local: the registry; cache; upstream; error: refused, failed or malformed), query type and rcode', 'counter', () => answerSamples(q())),
      new Computed('nsdns_process_resident_memory_bytes', 'Resident memory of the daemon', 'gauge', () => one(process.memoryUsage.rss())),
      new Computed('nsdns_process_heap_used_bytes', 'V8 heap in use', 'gauge', () => one(process.memoryUsage().heapUsed)),
      new Computed('nsdns_process_cpu_seconds_total', 'CPU time of the daemon, user and system', 'counter', () => {
        const { user, system } = process.cpuUsage();
        return one((user + system) / 1e6);
      }),
      new Computed('nsdns_process_start_time_seconds', 'When the daemon started, seconds since the epoch', 'gauge', () => one(Math.round(Date.now() / 1000 - process.uptime()))),
      new Computed('nsdns_health_probes_total', 'Health probes run, by result', 'counter', () => {
        const { ok, failed } = this.sources.probes().results;
        return [{ labels: { result: 'ok' }, value: ok }, { labels: { result: 'failed' }, value: failed }];
      }),
      new Computed('nsdns_health_checked_endpoints', 'Endpoints with a health check, by their state', 'gauge',
        () => Object.entries(this.sources.probes().states).map(([state, value]) => ({ labels: { state }, value }))),
      new Computed('nsdns_local_answers_total', 'Answers from the registry, by the network that answered ("reverse" for PTR answers, "other" for host.nsdns.internal and the like)', 'counter',
        () => [...q().localByNetwork].map(([network, value]) => ({ labels: { network }, value }))),
      new Computed('nsdns_answer_duration_seconds', `Time from reading a query to having its answer, for one answer in ${QueryStats.SAMPLE_EVERY} (sampled)`, 'histogram', () => histogramSamples('nsdns_answer_duration_seconds', q().latency)),
      new Computed('nsdns_dropped_messages_total', 'Messages not answered: not-a-query (shorter than a header, or a response), not-allowed (a host listener\'s client filter)', 'counter', () => [
        { labels: { reason: 'not-a-query' }, value: q().dropped }, { labels: { reason: 'not-allowed' }, value: l().notAllowed },
      ]),
      new Computed('nsdns_flood_pauses_total', 'Times a namespace\'s UDP socket was not read for a while because most of what it sent went unanswered (over its upstream share, malformed)', 'counter', () => one(l().floodPauses)),
      new Computed('nsdns_malformed_queries_total', 'Queries answered with a header-only FORMERR, NOTIMP or BADVERS', 'counter', () => one(q().malformed)),
      new Computed('nsdns_cache_hits_total', 'Upstream answers served from the cache', 'counter', () => one(cache().hits)),
      new Computed('nsdns_cache_misses_total', 'Cache lookups that found nothing', 'counter', () => one(cache().misses)),
      new Computed('nsdns_cache_evictions_total', 'Cache entries pushed out to make room', 'counter', () => one(cache().evictions)),
      new Computed('nsdns_cache_entries', 'Entries in the cache', 'gauge', () => one(cache().size)),
      new Computed('nsdns_cache_bytes', 'Bytes the cache holds (answers, keys and a per-entry estimate), bounded by cache.maxBytes', 'gauge', () => one(cache().bytes)),
      new Computed('nsdns_upstream_queries_total', 'Queries sent to each upstream server', 'counter', () => perServer(f().servers, (s) => s.queries)),
      new Computed('nsdns_upstream_timeouts_total', 'Upstream queries that got no answer in time', 'counter', () => perServer(f().servers, (s) => s.timeouts)),
      new Computed('nsdns_upstream_failures_total', 'Upstream queries that failed otherwise (SERVFAIL, REFUSED, unusable answer, network error)', 'counter', () => perServer(f().servers, (s) => s.failures)),
      new Computed('nsdns_upstream_duration_seconds', 'Time each upstream server took to answer', 'histogram', () => [...f().servers].flatMap(([server, s]) => histogramSamples('nsdns_upstream_duration_seconds', s.latency, { server }))),
      new Computed('nsdns_upstream_failing', '1 while a server is known dead: its last 3 exchanges failed (timeout or unreachable), or one timed out after another server answered, and it is asked by one query per 5 s', 'gauge', () => this.sources.health().upstreams.map((u) => ({ labels: { server: u.server }, value: u.failing ? 1 : 0 }))),
      new Computed('nsdns_forward_inflight', 'Distinct upstream exchanges in flight', 'gauge', () => one(resolver.forwarder.inflightCount)),
      new Computed('nsdns_forward_joined_total', 'Queries that joined an identical one already in flight', 'counter', () => one(f().joined)),
      new Computed('nsdns_refused_for_load_total', 'Queries turned away for load: client (over its share: REFUSED), listener and global (too many in flight: SERVFAIL)', 'counter', () => [
        { labels: { limit: 'client' }, value: f().refusedClient }, { labels: { limit: 'listener' }, value: f().overloadListener }, { labels: { limit: 'global' }, value: f().overloadGlobal },
      ]),
      new Computed('nsdns_tcp_connections', 'DNS-over-TCP connections open, over all listeners', 'gauge', () => one(this.sources.tcpConnections())),
      new Computed('nsdns_tcp_connections_refused_total', 'DNS-over-TCP connections refused, by the limit that refused them', 'counter', () => Object.entries(l().tcpRefused).map(([limit, value]) => ({ labels: { limit }, value }))),
      new Computed('nsdns_egress_decisions_total', 'Names asked by namespaces under an egress policy, by network and decision (allowed: answered; denied: NXDOMAIN, Blocked)', 'counter',
        () => [...resolver.egress.counts].flatMap(([network, c]) => [{ labels: { network, decision: 'allowed' }, value: c.allowed }, { labels: { network, decision: 'denied' }, value: c.denied }])),
      new Computed('nsdns_egress_learn_failures_total', 'Allowed answers whose addresses could not be opened (answered SERVFAIL)', 'counter', () => one(resolver.egress.learnFailures)),
      new Computed('nsdns_egress_learn_full_total', 'Of those, the answers refused because their namespace held egress.maxLearned open addresses of the family (SERVFAIL with an Extended DNS Error)', 'counter', () => one(resolver.egress.learnFull)),
      new Computed('nsdns_registry_changes_total', 'Registry changes applied (a network added, replaced or removed)', 'counter', () => one(this.sources.registryChanges())),
      new Computed('nsdns_registry_errors_total', 'Registry files refused (unreadable, invalid, too large) and watcher errors', 'counter', () => one(this.sources.registryErrors())),
      new Computed('nsdns_networks', 'Networks in the registry', 'gauge', () => one(this.sources.inventory().networks)),
      new Computed('nsdns_endpoints', 'Endpoints in the registry', 'gauge', () => one(this.sources.inventory().endpoints)),
      new Computed('nsdns_namespaces', 'Namespaces with endpoints (attached), and those whose 127.0.0.11 is served', 'gauge', () => {
        const inv = this.sources.inventory();
        return [{ labels: { state: 'attached' }, value: inv.namespaces }, { labels: { state: 'served' }, value: inv.served }];
      }),
      new Computed('nsdns_ready', '1 when /readyz says ready', 'gauge', () => one(this.sources.health().ready ? 1 : 0)),
      new Computed('nsdns_shared_registry_stale', '1 while a shared registry (etcd) cannot be reached and its last snapshot answers', 'gauge', () => shared().map((r) => ({ labels: { registry: r.registry }, value: r.stale ? 1 : 0 }))),
      new Computed('nsdns_shared_registry_stale_since_seconds', 'When a stale shared registry lost etcd, seconds since the epoch (0 when it is not stale)', 'gauge', () => shared().map((r) => ({ labels: { registry: r.registry }, value: r.staleSince === null ? 0 : Math.round(Date.parse(r.staleSince) / 1000) }))),
      new Computed('nsdns_shared_registry_shared_names', 'Names held as their own by endpoints of several nodes on one network (each answers all their addresses)', 'gauge', () => shared().map((r) => ({ labels: { registry: r.registry }, value: r.sharedNames }))),
      new Computed('nsdns_shared_registry_refused_total', 'Values of a shared registry refused (too large, not JSON, plumbing fields, invalid)', 'counter', () => shared().map((r) => ({ labels: { registry: r.registry }, value: r.refused }))),
    ];
  }
}

function answerSamples(stats: QueryStats): Sample[] {
  const out: Sample[] = [];
  for (let kind = 0; kind < LISTENER_KINDS.length; kind++) {
    for (let source = 0; source < ANSWER_SOURCES.length; source++) {
      for (let qtype = 0; qtype < QTYPE_LABELS.length; qtype++) {
        for (let rcode = 0; rcode < 16; rcode++) {
          const value = stats.answers[QueryStats.answerIndex(kind, source, qtype, rcode)];
          // Only combinations seen: a scrape stays small.
          if (value > 0) out.push({ labels: { listener: LISTENER_KINDS[kind], source: ANSWER_SOURCES[source], qtype: QTYPE_LABELS[qtype], rcode: RCODES[rcode] }, value });
        }
      }
    }
  }
  return out;
}

function perServer<T>(servers: ReadonlyMap<string, T>, value: (s: T) => number): Sample[] {
  return [...servers].map(([server, s]) => ({ labels: { server }, value: value(s) }));
}

/** Most connections at once: a scraper and a few probes, not a crowd. */
const MAX_CONNECTIONS = 32;

/** The HTTP side: GET /metrics, /healthz, /readyz; anything else 404 (405 for other methods). */
export class MetricsServer {
  private readonly server: http.Server;

  constructor(private readonly metrics: Metrics, private readonly health: () => HealthReport, private readonly log: Logger) {
    this.server = http.createServer((req, res) => void this.serve(req, res));
    this.server.maxConnections = MAX_CONNECTIONS;
    this.server.headersTimeout = 5_000;
    this.server.requestTimeout = 10_000;
    this.server.keepAliveTimeout = 5_000;
    this.server.maxHeadersCount = 50;
  }

  async listen(host: string, port: number): Promise<{ address: string; port: number }> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host, port }, () => { this.server.off('error', reject); resolve(); });
    }).catch((err: NodeJS.ErrnoException) => {
      throw new NsdnsError('ERR_LISTEN', `cannot serve metrics on ${formatHostPort(host, port)}: ${err.code ?? err.message}`, { cause: err });
    });
    this.server.on('error', (err) => this.log.error({ err }, 'metrics server error'));
    const bound = this.server.address() as { address: string; port: number };
    return { address: bound.address, port: bound.port };
  }

  /**
   * Serves on a listening socket handed over by the daemon before this one: the scraper's address
   * never stops answering. `received` is the net.Server the IPC message carried; the HTTP server
   * takes its handle over.
   */
  async adopt(received: net.Server): Promise<{ address: string; port: number }> {
    const handle = (received as unknown as { _handle?: unknown })._handle;
    if (handle === undefined || handle === null) throw new NsdnsError('ERR_LISTEN', 'the metrics socket handed over is closed');
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(handle, () => { this.server.off('error', reject); resolve(); });
    });
    this.server.on('error', (err) => this.log.error({ err }, 'metrics server error'));
    const bound = this.server.address() as { address: string; port: number };
    return { address: bound.address, port: bound.port };
  }

  /** The listening socket, for a successor to take over. */
  get listening(): net.Server {
    return this.server;
  }

  private async serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '').split('?')[0];
    const send = (status: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'only GET\n');
    try {
      switch (path) {
        case '/metrics':
          return send(200, await this.metrics.registry.metrics(), this.metrics.registry.contentType);
        case '/healthz':
          return send(200, 'ok\n');
        case '/readyz': {
          const report = this.health();
          // A stale shared registry does not make the daemon unready (its snapshot answers), but is said.
          const stale = report.sharedRegistries.filter((r) => r.stale).map((r) => `- stale since ${r.staleSince}: ${r.registry}\n`).join('');
          return send(report.ready ? 200 : 503, report.ready ? `ready\n${stale}` : `not ready:\n${report.problems.map((p) => `- ${p}\n`).join('')}${stale}`);
        }
        default:
          return send(404, 'not found: try /metrics, /healthz or /readyz\n');
      }
    } catch (err) {
      this.log.error({ err }, 'metrics request failed');
      if (!res.headersSent) send(500, 'internal error\n');
    }
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    setTimeout(() => this.server.closeAllConnections(), 1000).unref();
    await closed;
  }
}
