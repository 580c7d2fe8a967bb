// `nsdns network connect NETWORK TARGET` and `nsdns network disconnect`: the flags become one
// network.connect request (the daemon judges every value), the answer one line, or JSON.
import type { Command } from 'commander';
import { NsdnsError } from '../errors.js';
import { call, lostMidRequest } from './control-client.js';
import { collect, duration, keyValues, socketOption, wholeNumber } from './options.js';
import { print } from './print.js';
import { checkResolvConfPath, writeResolvConf } from './resolv-conf-file.js';

/** The daemon's network.connect answer, as far as the CLI prints it. */
interface Connected {
  name: string;
  shortId: string;
  network: string;
  ipv4: string[];
  ipv6: string[];
  ifname: string;
  domain?: string | null;
  /** null: nsdns wrote no resolv.conf for the namespace (a PID or path target). */
  resolvConf?: string | null;
  [key: string]: unknown;
}

export function connectCommands(network: Command): void {
  network.command('connect')
    .description('attach a namespace (name, path or PID) to a network; returns once its name resolves')
    .argument('<network>')
    .argument('<target>', 'named namespace, namespace file, or PID')
    .option('--name <name>', 'endpoint name (default: the namespace name)')
    .option('--alias <alias>', 'extra name (repeatable)', collect)
    .option('--ip <ip>', 'IPv4 address (default: allocated)')
    .option('--ip6 <ip>', 'IPv6 address (default: allocated when the network has an IPv6 subnet)')
    .option('--mac <mac>', 'MAC address of the interface')
    .option('--ifname <name>', 'interface name in the namespace (default eth0, eth1, ...)')
    .option('--dns <ip>', 'upstream DNS server for this endpoint (repeatable)', collect)
    .option('--publish <[hostip:]hostport:port[/proto]>', 'publish a port on the host (repeatable)', collect)
    .option('--service <name:port[/proto]>', 'a service answered as SRV _name._proto under every name of the endpoint and its aliases (protocol tcp by default; repeatable)', collect)
    .option('--label <key=value>', 'endpoint label, answered as TXT "key=value" at its names (repeatable)', collect)
    .option('--health <tcp:PORT|http:PORT/PATH>', 'probe the endpoint from the host: a TCP connect, or an HTTP GET answered 2xx-3xx; shared names leave it out while it is not healthy')
    .option('--health-interval <duration>', 'time between probes (default 5s)', duration('--health-interval'))
    .option('--health-timeout <duration>', 'how long one probe may take (default 2s)', duration('--health-timeout'))
    .option('--health-retries <n>', 'failures in a row that make it unhealthy (default 3)', wholeNumber)
    .option('--health-start-period <duration>', 'failures in this time after the start do not count; it is "starting" until the first success (default 0s)', duration('--health-start-period'))
    .option('--health-hide-own', 'also leave its own name out of answers while it is not healthy', false)
    .option('--egress-allow <entry>', 'egress by name: the endpoint\'s namespace resolves only these names (NAME, *.ZONE) besides its networks\' own, and reaches these ranges (CIDR[:PORT[/tcp|udp]], [IPv6-CIDR]:PORT); repeatable; see docs/egress.md', collect)
    .option('--resolv-conf <file>', 'also write a resolv.conf pointing at nsdns here (such as a container\'s root/etc/resolv.conf); for PID and path targets, which get no /etc/netns file')
    .option('--json', 'print JSON', false)
    .addOption(socketOption())
    .action(async (networkName: string, target: string, o) => {
      const resolvFile = o.resolvConf !== undefined ? checkResolvConfPath(o.resolvConf) : undefined;
      const result = await call<Connected>(o.socket, 'network.connect', connectRequest(networkName, target, o)).catch((err: unknown) => {
        throw lostMidRequest(err) ? lostMidConnect(target, networkName) : err;
      });
      if (resolvFile !== undefined) await writeResolvConf(resolvFile, String(result.name), typeof result.domain === 'string' ? result.domain : undefined);
      if (o.json) return print({ ...result, ...(resolvFile !== undefined && { resolvConfWritten: resolvFile }) });
      print(`${result.name} (${result.shortId}) on ${result.network}: ${[...result.ipv4, ...result.ipv6].join(' ')} via ${result.ifname}`);
      if (resolvFile !== undefined) print(`resolv.conf written to ${resolvFile} (nameserver 127.0.0.11)`);
      else if (result.resolvConf === null) {
        print('note: a namespace given by PID or path gets no resolv.conf: its programs still ask the resolver of their own /etc/resolv.conf. Point it at nameserver 127.0.0.11, or connect with --resolv-conf FILE.');
      }
    });

  network.command('disconnect')
    .description('detach a namespace or endpoint from a network')
    .argument('<network>')
    .argument('<target>', 'namespace (name, path, PID), endpoint name or id')
    .option('--json', 'print JSON', false)
    .addOption(socketOption())
    .action(async (networkName: string, target: string, o) => {
      const result = await call<Record<string, unknown>>(o.socket, 'network.disconnect', { network: networkName, target });
      print(o.json ? result : `${result.name} disconnected from ${result.network}`);
    });
}

/** The flags of `network connect`, as commander parsed them. */
interface ConnectFlags {
  name?: string;
  alias?: string[];
  ip?: string;
  ip6?: string;
  mac?: string;
  ifname?: string;
  dns?: string[];
  publish?: string[];
  service?: string[];
  label?: string[];
  health?: string;
  healthInterval?: number;
  healthTimeout?: number;
  healthRetries?: number;
  healthStartPeriod?: number;
  healthHideOwn: boolean;
  egressAllow?: string[];
}

/** The network.connect parameters from the flags, as typed: the daemon's schema and planner judge them. */
function connectRequest(network: string, target: string, o: ConnectFlags): Record<string, unknown> {
  return {
    network, target, name: o.name, aliases: o.alias, ip: o.ip, ip6: o.ip6, mac: o.mac, ifname: o.ifname, dns: o.dns, publish: o.publish,
    ...(o.service !== undefined && { services: o.service }), ...(o.label !== undefined && { labels: keyValues('--label', o.label, 'network connect') }),
    health: o.health, healthIntervalMs: o.healthInterval, healthTimeoutMs: o.healthTimeout, healthRetries: o.healthRetries,
    healthStartPeriodMs: o.healthStartPeriod, ...(o.healthHideOwn && { healthHideOwn: true }),
    ...(o.egressAllow !== undefined && { egress: o.egressAllow }),
  };
}

/** What the daemon does with a connect it died in, at its next start (NetworkManager.recover): said, so a retry is not a guess. */
function lostMidConnect(target: string, network: string): NsdnsError {
  const quoted = (text: string) => JSON.stringify(text.slice(0, 200));
  return new NsdnsError('ERR_DAEMON_UNREACHABLE', `the daemon stopped before it finished connecting ${quoted(target)} to ${quoted(network)}; when it starts again it rolls that connect back, so run the same connect again then`);
}
