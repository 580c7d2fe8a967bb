// The command line: `nsdns serve` runs the daemon; the other commands are its clients.
import { Command, Option } from 'commander';
import { collect, wholeNumber as int } from './options.js';
import type { ConfigFlags } from '../daemon/config.js';
import type { QueryRequest } from './query-client.js';
import { networkCommands } from './network-commands.js';
import { opsCommands } from './ops-commands.js';
import { resolveTarget } from '../plumbing/target.js';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../main.js', import.meta.url));


export async function run(argv: string[]): Promise<void> {
  const program = new Command('nsdns')
    .description('DNS and service discovery for Linux network namespaces')
    .showHelpAfterError()
    .exitOverride((err) => { throw Object.assign(new Error(err.message.replace(/^error: /, '')), { exitCode: err.exitCode === 0 ? 0 : 2, silent: true }); });

  program.command('serve')
    .description('run the daemon: registry, resolver and listeners')
    .option('--config <file>', 'config file (YAML or JSON)')
    .option('--state-dir <dir>', 'where the daemon keeps its state (default /var/lib/nsdns)')
    .option('--socket <path>', 'control socket (default /run/nsdns/nsdns.sock)')
    .option('--socket-group <group>', 'a group that may use the control socket too (default: root only)')
    .option('--registry <dir>', 'registry directory of network files (repeatable)', collect)
    .option('--allow <cidr>', 'clients a host listener answers (repeatable; default loopback and the host\'s own subnets)', collect)
    .option('--listen <addr:port[=networks]>', 'standalone listener on the host, optionally limited to networks (repeatable)', collect)
    .option('--upstream <addr[:port]>', 'upstream DNS server (repeatable)', collect)
    .option('--resolv-conf <file>', 'read host resolvers from this file (default /etc/resolv.conf)')
    .option('--no-resolv-conf', 'never fall back to the host resolvers')
    .option('--ttl <seconds>', 'TTL of local answers (default 5)', int)
    .option('--cache-size <entries>', 'upstream answers kept in the cache (default 10000; 0 disables)', int)
    .option('--max-ttl <seconds>', 'cap on cached TTLs (default 3600)', int)
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
    .option('--link-prefix <prefix>', 'prefix of the links nsdns names (default ns)')
    .option('--nft-table <name>', 'nftables table (family inet) nsdns owns (default nsdns)')
    .addOption(new Option('--firewall <driver>', 'firewall driver').choices(['nftables', 'none']))
    .option('--resolv-conf-dir <dir>', 'per-namespace files for ip netns exec (default /etc/netns)')
    .option('--metrics <addr:port>', 'serve Prometheus /metrics, /healthz and /readyz over HTTP here (default: off)')
    .action(async (opts) => {
      const flags: ConfigFlags = { ...opts };
      if (opts.resolvConf === true) delete flags.resolvConf;
      // Loaded here only: client commands start faster without the daemon's modules.
      const [{ Daemon }, { createLogger }, { loadConfig }] = await Promise.all([import('../daemon/daemon.js'), import('../log.js'), import('../daemon/config.js')]);
      const config = loadConfig(flags);
      const log = createLogger(config.logLevel);
      try {
        await Daemon.start(flags, log, config);
      } catch (err) {
        log.fatal({ err }, 'cannot start');
        log.flush?.();
        throw err;
      }
    });

  program.command('query')
    .description('ask a DNS server one question (a small dig)')
    .argument('<name>', 'name to look up')
    .argument('[type]', 'record type', 'A')
    .option('--server <addr[:port]>', 'server to ask', '127.0.0.1:53')
    .option('--tcp', 'use TCP instead of UDP', false)
    .option('--timeout <ms>', 'how long to wait', int, 3000)
    .option('--json', 'print the reply as JSON', false)
    .option('--netns <target>', 'ask from inside this namespace (name, path or PID), at 127.0.0.11:53 unless --server is given')
    .action(async (name: string, type: string, opts, command: Command) => {
      if (opts.netns !== undefined) {
        const { path: netns } = resolveTarget(opts.netns);
        const server = command.getOptionValueSource('server') === 'default' ? '127.0.0.11:53' : opts.server;
        const args = [MAIN, 'query', name, type, '--server', server, '--timeout', String(opts.timeout), ...(opts.tcp ? ['--tcp'] : []), ...(opts.json ? ['--json'] : [])];
        const { execa } = await import('execa');
        const r = await execa('nsenter', [`--net=${netns}`, '--', process.execPath, ...args], { stdio: 'inherit', reject: false });
        process.exitCode = r.exitCode ?? 1;
        return;
      }
      // Loaded here only, like the daemon: every other command starts faster without them.
      const [{ parseUpstream }, { formatResult, resultJson, sendQuery }] = await Promise.all([import('../resolver/upstream-address.js'), import('./query-client.js')]);
      const server = parseUpstream(opts.server);
      const req: QueryRequest = { name, type, host: server.host, port: server.port, tcp: opts.tcp, timeoutMs: opts.timeout };
      const result = await sendQuery(req);
      process.stdout.write(`${opts.json ? JSON.stringify(resultJson(result, req), null, 2) : formatResult(result, req)}\n`);
    });

  networkCommands(program);
  opsCommands(program);
  await program.parseAsync(argv);
}
