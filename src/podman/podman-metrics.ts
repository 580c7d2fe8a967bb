// /metrics, /healthz and /readyz for the drop-in, when NSDNS_METRICS=ADDR:PORT asks for them
// (netavark passes no options, so the environment of Podman's service or a wrapper does). The
// daemon's Metrics and MetricsServer, fed from the drop-in's parts; loaded only when asked, since
// netavark waits for the server's start.
import { healthReport, type HealthReport } from '../daemon/health-report.js';
import { Metrics, MetricsServer } from '../daemon/metrics.js';
import { NsdnsError } from '../errors.js';
import { formatHostPort, parseHostPort } from '../host-port.js';
import type { Logger } from '../log.js';
import type { PodmanServer } from './serve.js';

/** Serves the metrics of `server` on `listen` (`ADDR:PORT`); throws when it cannot. */
export async function serveMetrics(server: PodmanServer, listen: string, log: Logger): Promise<MetricsServer> {
  const at = parseHostPort(listen);
  if (at === undefined) throw new NsdnsError('ERR_CONFIG', 'NSDNS_METRICS must be ADDR:PORT (an IP address and a port, [IPv6]:PORT)');
  const { resolver } = server.resolver;
  const health = (): HealthReport => healthReport({
    registryLoaded: true,
    snapshot: server.registry.current(),
    // The drop-in serves gateways, not namespaces: nothing of these applies.
    isServed: () => true,
    isProvisioned: () => false,
    daemonUpstreams: server.resolver.hostResolvers.current,
    isFailing: (key) => resolver.forwarder.health.isDead(key),
  });
  const metrics = new Metrics({
    resolver,
    listeners: server.resolver.shared.stats,
    tcpConnections: () => server.resolver.shared.budget.connections,
    registryChanges: () => server.source.loaded,
    registryErrors: () => server.source.refused,
    inventory: () => {
      const networks = server.registry.current().networks;
      let endpoints = 0;
      for (const net of networks.values()) endpoints += net.endpointCount;
      return { networks: networks.size, endpoints, namespaces: 0, served: 0 };
    },
    health,
    probes: () => ({ results: { ok: 0, failed: 0 }, states: {} }),
  });
  const http = new MetricsServer(metrics, health, log.child({ module: 'metrics' }));
  const bound = await http.listen(at.host, at.port);
  resolver.stats.enabled = true;
  resolver.forwarder.stats.enabled = true;
  log.info({ metrics: formatHostPort(bound.address, bound.port) }, 'metrics served at /metrics, /healthz and /readyz');
  return http;
}
