// Entry of the aardvark-dns drop-in (bin/aardvark-dns starts it): parses netavark's command line,
// then serves, telling the starter once how the start went (start.ts). Until the command is known,
// only argv and start are loaded: netavark waits for this process to be bound.
import { openSync, statSync } from 'node:fs';
import type { Logger } from '../log.js';
import { parseArgv, USAGE, USAGE_EXIT, type RunArgs } from './argv.js';
import { closeInherited, report, type Readiness } from './start.js';
import type { PodmanServer } from './serve.js';

/** Where the server logs (JSON lines, appended); unset: nowhere, since its stdout and stderr are /dev/null. */
const LOG_ENV = 'NSDNS_AARDVARK_LOG';
/** The host resolvers' file (default /etc/resolv.conf, as the server's mount namespace sees it); '' for none. */
const RESOLV_CONF_ENV = 'NSDNS_AARDVARK_RESOLV_CONF';
/** `ADDR:PORT` to serve /metrics, /healthz and /readyz on; unset: no metrics (and prom-client never loaded). */
const METRICS_ENV = 'NSDNS_METRICS';
/** How long a start may take before the server gives up (netavark waits for us in turn). */
const START_TIMEOUT_MS = 30_000;

async function main(argv: readonly string[]): Promise<number> {
  closeInherited();
  const command = parseArgv(argv);
  switch (command.kind) {
    case 'usage': return report(USAGE_EXIT, command.message);
    case 'help': return report(0, USAGE);
    case 'version': return report(0, 'aardvark-dns (nsdns drop-in)');
  }
  if (!isDirectory(command.args.config)) return report(1, `config directory ${command.args.config} must exist and be a directory`);
  return serve(command.args);
}

function isDirectory(file: string): boolean {
  try {
    return statSync(file).isDirectory();
  } catch {
    return false;
  }
}

async function serverLogger(): Promise<Logger> {
  const { createLogger, silentLogger } = await import('../log.js');
  const file = process.env[LOG_ENV];
  if (!file) return silentLogger;
  const { destination } = await import('pino');
  // Synchronous: a line said just before exit is in the file.
  return createLogger('info', destination({ dest: openSync(file, 'a'), sync: true }) as unknown as NodeJS.WritableStream);
}

async function serve(args: RunArgs): Promise<number> {
  const timer = setTimeout(() => process.exit(report(1, `the server was not ready within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS);
  const log = await serverLogger();
  const { PodmanServer } = await import('./serve.js');
  const resolvConf = process.env[RESOLV_CONF_ENV] ?? '/etc/resolv.conf';
  const server = new PodmanServer(args, log, resolvConf === '' ? false : resolvConf);
  const ready: Readiness = await server.start();
  clearTimeout(timer);
  if (ready.kind === 'failed') {
    report(1, ready.message);
    log.error({ reason: ready.message }, 'not started');
    await server.stop();
    return 1;
  }
  let metrics: { close(): Promise<void> } | undefined;
  const exit = async () => {
    await Promise.all([server.stop(), metrics?.close()]);
    process.exit(0);
  };
  // Before the report: netavark may signal as soon as it has returned.
  process.on('SIGHUP', () => void server.reload().then((left) => {
    if (left) return;
    log.info('no network left; exiting');
    return exit();
  }));
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void exit());
  report(0, '');
  metrics = await startMetrics(server, log);
  // Served until a signal ends it: the sockets keep the process alive.
  return new Promise<number>(() => undefined);
}

/**
 * Metrics when NSDNS_METRICS asks, after readiness is reported (netavark does not wait for them).
 * A metrics address that cannot be served is logged; DNS serves on regardless.
 */
async function startMetrics(server: PodmanServer, log: Logger): Promise<{ close(): Promise<void> } | undefined> {
  const listen = process.env[METRICS_ENV];
  if (!listen) return undefined;
  try {
    const { serveMetrics } = await import('./podman-metrics.js');
    return await serveMetrics(server, listen, log);
  } catch (err) {
    log.error({ err: { message: err instanceof Error ? err.message : String(err) } }, 'metrics not served');
    return undefined;
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
}, (err: unknown) => {
  process.exitCode = report(1, `aardvark-dns: ${err instanceof Error ? err.message : String(err)}`);
});
