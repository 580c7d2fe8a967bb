// Entry of the aardvark-dns drop-in (bin/aardvark-dns): the starter netavark runs and waits for,
// or, in the detached child it starts (SERVE_ENV set), the server itself.
// The starter loads only what it needs (argv, start): netavark waits for it.
import { openSync } from 'node:fs';
import type { Logger } from '../log.js';
import { parseArgv, USAGE, USAGE_EXIT, type RunArgs } from './argv.js';
import { SERVE_ENV, startServer, type Readiness } from './start.js';
import type { PodmanServer } from './serve.js';

/** Where the server logs (JSON lines, appended); unset: nowhere, since its stdout and stderr are /dev/null. */
const LOG_ENV = 'NSDNS_AARDVARK_LOG';
/** The host resolvers' file (default /etc/resolv.conf, as the server's mount namespace sees it); '' for none. */
const RESOLV_CONF_ENV = 'NSDNS_AARDVARK_RESOLV_CONF';
/** `ADDR:PORT` to serve /metrics, /healthz and /readyz on; unset: no metrics (and prom-client never loaded). */
const METRICS_ENV = 'NSDNS_METRICS';

async function main(argv: readonly string[]): Promise<number> {
  const command = parseArgv(argv);
  switch (command.kind) {
    case 'usage': process.stderr.write(`${command.message}\n`); return USAGE_EXIT;
    case 'help': process.stdout.write(`${USAGE}\n`); return 0;
    case 'version': process.stdout.write('aardvark-dns (nsdns drop-in)\n'); return 0;
  }
  if (process.env[SERVE_ENV] === '1' && process.send) return serve(command.args);
  return startServer(command.args.config, process.argv[1], argv, (message) => process.stderr.write(`${message}\n`));
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
  const log = await serverLogger();
  const { PodmanServer } = await import('./serve.js');
  const resolvConf = process.env[RESOLV_CONF_ENV] ?? '/etc/resolv.conf';
  const server = new PodmanServer(args, log, resolvConf === '' ? false : resolvConf);
  const ready = await server.start();
  // With a callback, a starter already gone (killed by netavark) is no 'error' event that ends us.
  await new Promise<void>((resolve) => process.send!(ready satisfies Readiness, undefined, {}, () => resolve()));
  if (process.connected) process.disconnect();
  if (ready.kind === 'failed') {
    log.error({ reason: ready.message }, 'not started');
    await server.stop();
    return 1;
  }
  const metrics = await startMetrics(server, log);
  const exit = async () => {
    await Promise.all([server.stop(), metrics?.close()]);
    process.exit(0);
  };
  process.on('SIGHUP', () => void server.reload().then((left) => {
    if (left) return;
    log.info('no network left; exiting');
    return exit();
  }));
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void exit());
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
  process.stderr.write(`aardvark-dns: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
