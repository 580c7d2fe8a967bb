// The command line: `nsdns serve` runs the daemon; the other commands are its clients.
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { EXIT, UsageError, collect, wholeNumber as int } from './options.js';
import { recordTypeName } from '../wire/names.js';
import { NsdnsError } from '../errors.js';
import type { ConfigFlags } from '../daemon/config.js';
import type { QueryRequest } from './query-client.js';
import { networkCommands } from './network-commands.js';
import { opsCommands } from './ops-commands.js';
import { hostDnsCommand } from './host-dns-command.js';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../main.js', import.meta.url));

/** The version in package.json (dist/src/cli/cli.js → the package root). */
function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** The full command line of `command` (nsdns network ls), for the hint after a usage error. */
function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/**
 * Commander's own output, the docker way: help once on stdout (also for `nsdns network` with no
 * subcommand) with status 0; a usage error once, with a one-line hint and not the whole help,
 * status 2. Applied to every command, since each handles its own errors.
 */
function conventions(command: Command): void {
  command.configureOutput({ writeErr: (text) => process.stdout.write(text), outputError: () => {} });
  command.exitOverride((err: CommanderError) => {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help' || err.code === 'commander.version') {
      throw Object.assign(new Error(''), { exitCode: EXIT.ok, silent: true });
    }
    throw new UsageError(`${err.message.replace(/^error: /, '').trimEnd()}\nSee '${commandPath(command)} --help'.`);
  });
  for (const sub of command.commands) conventions(sub);
}


export async function run(argv: string[]): Promise<void> {
  const program = new Command('nsdns')
    .description('DNS and service discovery for Linux network namespaces')
    .version(version(), '-v, --version', 'print the version')
    .addHelpText('after', '\nExit status: 0 done, 1 failed, 2 the command line was wrong.'
      + "\n\nPodman: bin/aardvark-dns (nsdns-aardvark-dns) is a drop-in for Podman's DNS server; see docs/podman.md.");

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
    .option('--host-dns', 'also answer each network\'s names at its gateway address (port 53), for the host and the network\'s own clients; registers the bridges with systemd-resolved when it runs')
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
        // One failure, one line: a failure nsdns knows (NsdnsError) has a message made for people,
        // printed once by main.ts; anything else is a bug, logged once here with its stack.
        if (err instanceof NsdnsError) throw err;
        log.fatal({ err }, 'cannot start');
        log.flush?.();
        throw Object.assign(new Error('cannot start'), { reported: true });
      }
    });

  program.command('query')
    .description('ask a DNS server one question (a small dig)')
    .argument('<name>', 'name to look up')
    .argument('[type]', 'record type (A, AAAA, MX, TXT, ... or TYPEnn)', 'A')
    .option('--server <addr[:port]>', 'server to ask', '127.0.0.1:53')
    .option('--tcp', 'use TCP instead of UDP', false)
    .option('--timeout <ms>', 'how long to wait', int, 3000)
    .option('--json', 'print the reply as JSON', false)
    .option('--netns <target>', 'ask from inside this namespace (name, path or PID), at 127.0.0.11:53 unless --server is given')
    // Accepted and ignored: one alias (nsdns --socket X) then serves every command.
    .addOption(new Option('--socket <path>', 'control socket (not used by query)').hideHelp())
    .action(async (name: string, typeText: string, opts, command: Command) => {
      const type = recordTypeName(typeText);
      if (type === undefined) throw new UsageError(`unknown record type '${typeText.slice(0, 20)}' (A, AAAA, CNAME, MX, NS, PTR, SOA, SRV, TXT, ANY, ... or TYPEnn)\nSee 'nsdns query --help'.`);
      if (opts.netns !== undefined) {
        // Loaded here only: the namespace checks pull in the field schemas (zod), which no other command needs.
        const { resolveTarget } = await import('../plumbing/target.js');
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
  hostDnsCommand(program);
  conventions(program);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    // Help and version were printed: nothing more to say (main.js prints every other error once).
    if ((err as { silent?: boolean }).silent === true && (err as { exitCode?: number }).exitCode === EXIT.ok) {
      process.exitCode = EXIT.ok;
      return;
    }
    throw err;
  }
}
