// `nsdns serve`: runs the daemon (registry, resolver, listeners, control socket) in this process.
import { Option, type Command } from 'commander';
import { NsdnsError } from '../errors.js';
import type { ConfigFlags } from '../daemon/config.js';
import { collect, wholeNumber as int } from './options.js';

export function serveCommand(program: Command): void {
  program.command('serve')
    .description('run the daemon: registry, resolver and listeners')
    .option('--config <file>', 'config file (YAML or JSON)')
    .option('--state-dir <dir>', 'where the daemon keeps its state (default /var/lib/nsdns)')
    .option('--socket <path>', 'control socket (default /run/nsdns/nsdns.sock)')
    .option('--socket-group <group>', 'a group that may use the control socket too (default: root only)')
    .option('--registry <dir|etcd-url>', 'registry directory of network files, or a shared registry etcd://HOST:PORT[,HOST:PORT...]/PREFIX (repeatable)', collect)
    .option('--etcd-cacert <file>', 'CA certificate (PEM) of the etcd servers: etcd is reached over TLS')
    .option('--etcd-cert <file>', 'client certificate (PEM) for etcd, with --etcd-key')
    .option('--etcd-key <file>', 'client key (PEM) for etcd')
    .option('--etcd-user <name>', 'etcd user, with --etcd-password-file')
    .option('--etcd-password-file <file>', 'file whose first line is the etcd user\'s password')
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
    .option('--announce <etcd-url>', 'publish the networks nsdns provisions and their endpoints to etcd (etcd://HOST:PORT[,HOST:PORT…]/PREFIX)')
    .option('--announce-ttl <seconds>', 'lease of announced endpoints: how long a dead host\'s names outlive it (default 10)', int)
    .option('--node-name <name>', 'the node announced endpoints are kept under (default: host name and an id kept in the state directory)')
    .option('--cluster <etcd-url>', 'be a member of the cluster at etcd://HOST:PORT[,…]/PREFIX: --registry and --announce on that prefix, and overlay networks kept there')
    .option('--advertise-address <addr>', 'this host\'s underlay address, where other cluster members send its overlay traffic (with --cluster)')
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
}
