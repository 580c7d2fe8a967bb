// `nsdns network ...` and `nsdns debug`: clients of the daemon's control socket, with the
// conventions of `docker network` (create prints the id, ls a table, inspect JSON).
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_SOCKET } from '../daemon/control-protocol.js';
import { call, lostMidRequest } from './control-client.js';
import { NsdnsError } from '../errors.js';
import { UsageError, collect, wholeNumber } from './options.js';
import { recordTypeName } from '../wire/names.js';
import { compileFilters, compileTemplate, type FilterableNetwork } from './format.js';
import { graphCommand } from './graph.js';
import { formatTimings } from './timing-format.js';
import { endpointCommands } from './endpoint-commands.js';
import { parseDuration, parseHealthSpec } from '../health/spec.js';

const print = (value: unknown): void => void process.stdout.write(typeof value === 'string' ? `${value}\n` : `${JSON.stringify(value, null, 2)}\n`);

function table(rows: Array<Record<string, unknown>>, columns: Array<[string, string]>): string {
  const cells = [columns.map(([, title]) => title), ...rows.map((r) => columns.map(([key]) => formatCell(r[key])))];
  const widths = columns.map((_, i) => Math.max(...cells.map((c) => c[i].length)));
  return cells.map((c) => c.map((v, i) => v.padEnd(widths[i])).join('   ').trimEnd()).join('\n');
}

function formatCell(v: unknown): string {
  if (Array.isArray(v)) return v.join(',');
  if (v === null || v === undefined) return '-';
  return String(v);
}

/** A row of the daemon's network.ls answer. */
interface LsRow {
  name: string;
  id: string;
  driver: string;
  internal: boolean;
  source?: string;
  fullId?: string;
  created?: string | null;
  scope?: string;
  ipv6?: boolean;
  labels?: Record<string, string>;
}

function filterable(r: LsRow): FilterableNetwork {
  return { Name: r.name, ID: r.fullId ?? r.id, Driver: r.driver, Scope: r.scope ?? 'local', Labels: r.labels ?? {}, Type: r.source === 'nsdns' ? 'custom' : 'builtin' };
}

/** `docker network ls --format json`: its keys, and its values as strings, as docker prints them. */
function dockerLsJson(r: LsRow, trunc: boolean): Record<string, string> {
  const created = r.created ? new Date(r.created) : undefined;
  return {
    CreatedAt: created && !Number.isNaN(created.getTime()) ? `${created.toISOString().replace('T', ' ').replace('Z', '')} +0000 UTC` : '',
    Driver: r.driver,
    ID: trunc ? r.id : r.fullId ?? r.id,
    IPv6: String(r.ipv6 ?? false),
    Internal: String(r.internal),
    Labels: Object.entries(r.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(','),
    Name: r.name,
    Scope: r.scope ?? 'local',
  };
}

/**
 * A --resolv-conf path: absolute, no NUL, not inside /proc or /sys (kernel files, where a write
 * would change the system), not a directory; its directory must exist.
 */
function checkResolvConfPath(file: string): string {
  const refuse = (why: string) => new UsageError(`--resolv-conf ${JSON.stringify(file.slice(0, 80))}: ${why}\nSee 'nsdns network connect --help'.`);
  if (file.includes('\0') || file.length > 4096) throw refuse('not a usable path');
  if (!path.isAbsolute(file)) throw refuse('give an absolute path');
  const resolved = path.resolve(file);
  if (/^\/(proc|sys)(\/|$)/.test(resolved) || resolved === '/') throw refuse('not inside /proc or /sys');
  if (existsSync(resolved) && statSync(resolved).isDirectory()) throw refuse('is a directory; give the file, such as ROOTFS/etc/resolv.conf');
  if (!existsSync(path.dirname(resolved))) throw refuse(`its directory ${path.dirname(resolved).slice(0, 80)} does not exist`);
  return resolved;
}

interface RemoveResult {
  removed: string[];
  failed: Array<{ name: string; code: string; message: string }>;
}

/** A yes/no question on the terminal; anything but y or yes is no. */
async function confirm(question: string): Promise<boolean> {
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^\s*y(es)?\s*$/i.test(await rl.question(question));
  } finally {
    rl.close();
  }
}

/** Repeated `key=value` options as an object (the daemon checks keys and values). */
function keyValues(flag: string, items: string[] | undefined, command: string): Record<string, string> {
  // fromEntries: a "__proto__" key stays a key, for the daemon to refuse.
  return Object.fromEntries((items ?? []).map((kv) => {
    const i = kv.indexOf('=');
    if (i <= 0) throw new UsageError(`${flag} "${kv.slice(0, 40)}": expected key=value\nSee 'nsdns network ${command} --help'.`);
    return [kv.slice(0, i), kv.slice(i + 1)];
  }));
}

const socketOption = () => new Option('--socket <path>', 'control socket of the daemon').default(DEFAULT_SOCKET);

export function networkCommands(program: Command): void {
  const network = program.command('network').description('manage networks (docker network style); needs a running daemon');

  network.command('create')
    .description('create a bridge network')
    .argument('<name>')
    .option('--subnet <cidr>', 'subnet, IPv4 or IPv6 (repeatable; default: a free one from the pools)', collect)
    .option('--gateway <ip>', 'gateway address (default: the first address of the subnet)')
    .option('--ip-range <cidr>', 'allocate endpoint addresses from this part of the subnet')
    .option('--internal', 'no route out and no upstream DNS', false)
    .option('--bridge <name>', 'bridge interface name (default derived from the network id)')
    .option('--mtu <n>', 'MTU of the bridge and veths', wholeNumber)
    .option('--dns-upstream <ip>', 'upstream DNS server for this network (repeatable)', collect)
    .option('--domain <name>', 'extra DNS zone for names on this network')
    .option('--opt <key=value>', 'driver option, kept as given (repeatable)', collect)
    .option('--label <key=value>', 'network label, shown by inspect and matched by ls --filter label= (repeatable)', collect)
    .option('--record <name=[type:]value>', 'static record for every namespace on the network: printer=10.77.0.200, docs=CNAME:web (A, AAAA, CNAME; repeatable)', collect)
    .option('--json', 'print the network as JSON', false)
    .addOption(socketOption())
    .action(async (name: string, o) => {
      const options = keyValues('--opt', o.opt, 'create');
      const labels = keyValues('--label', o.label, 'create');
      const result = await call<{ Id: string }>(o.socket, 'network.create', {
        name, subnets: o.subnet, gateway: o.gateway, ipRange: o.ipRange, internal: o.internal, bridge: o.bridge,
        mtu: o.mtu, dnsUpstreams: o.dnsUpstream, domain: o.domain, options,
        ...(o.label !== undefined && { labels }), ...(o.record !== undefined && { records: o.record }),
      });
      print(o.json ? result : result.Id);
    });

  network.command('ls')
    .alias('list')
    .description('list networks')
    .option('-f, --filter <key=value>', 'only networks that match: name (part of it), id (prefix), driver, label (KEY or KEY=VALUE), scope, type (custom or builtin); repeatable', collect)
    .option('--format <format>', "json (one object per line, docker's keys) or a template such as '{{.Name}} {{.ID}}'")
    .option('--json', "print one JSON array, with the keys of --format json", false)
    .option('-q, --quiet', 'print names only', false)
    .option('--no-trunc', 'show full ids')
    .addOption(socketOption())
    .action(async (o) => {
      const keep = compileFilters(o.filter ?? []);
      const template = o.format !== undefined && o.format !== 'json' && o.format !== 'table' ? compileTemplate(o.format) : undefined;
      const rows = (await call<LsRow[]>(o.socket, 'network.ls')).filter((r) => keep(filterable(r)));
      if (o.json) print(rows.map((r) => dockerLsJson(r, o.trunc)));
      else if (o.format === 'json') for (const r of rows) process.stdout.write(`${JSON.stringify(dockerLsJson(r, o.trunc))}\n`);
      else if (template) for (const r of rows) print(template(dockerLsJson(r, o.trunc)));
      else if (o.quiet) rows.forEach((r) => print(String(r.name)));
      else print(table(rows.map((r) => ({ ...r, id: o.trunc ? r.id : r.fullId ?? r.id })), [['id', 'NETWORK ID'], ['name', 'NAME'], ['driver', 'DRIVER'], ['subnets', 'SUBNETS'], ['internal', 'INTERNAL'], ['endpoints', 'ENDPOINTS'], ['bridge', 'BRIDGE'], ['source', 'SOURCE']]));
    });

  network.command('inspect')
    .description('show networks as JSON (the shape of docker network inspect)')
    .argument('<networks...>', 'names or ids')
    .option('-f, --format <template>', "print a template per network, such as '{{.Id}}', '{{json .IPAM.Config}}' or '{{range .IPAM.Config}}{{.Subnet}}{{end}}'")
    .addOption(socketOption())
    .action(async (names: string[], o) => {
      const template = o.format !== undefined ? compileTemplate(o.format) : undefined;
      const networks = await call<unknown[]>(o.socket, 'network.inspect', { names });
      if (template) for (const n of networks) print(template(n));
      else print(networks);
    });

  network.command('rm')
    .alias('remove')
    .description('remove networks: each one that can be is removed, each failure reported (exit 1 if any)')
    .argument('<networks...>', 'names or ids')
    .option('-f, --force', 'no error when a network does not exist (as docker)', false)
    .option('--disconnect', 'detach attached endpoints first (otherwise a network with endpoints is refused)', false)
    .option('--json', 'print JSON: { removed, failed }', false)
    .addOption(socketOption())
    .action(async (names: string[], o) => {
      const result = await call<RemoveResult>(o.socket, 'network.rm', { names, disconnect: o.disconnect, ignoreMissing: o.force, report: true });
      if (o.json) print(result);
      else for (const name of result.removed) print(name);
      if (!o.json) for (const f of result.failed) process.stderr.write(`nsdns: ${f.message}\n`);
      if (result.failed.length > 0) process.exitCode = 1;
    });

  network.command('prune')
    .description('remove every nsdns network without endpoints (asks first on a terminal, unless --force)')
    .option('-f, --force', 'do not ask for confirmation', false)
    .option('--json', 'print JSON', false)
    .addOption(socketOption())
    .action(async (o) => {
      if (!o.force && process.stdin.isTTY && process.stderr.isTTY && !(await confirm('WARNING! This will remove all nsdns networks without endpoints.\nAre you sure you want to continue? [y/N] '))) return;
      const removed = await call<string[]>(o.socket, 'network.prune');
      print(o.json ? removed : removed.length > 0 ? `Deleted Networks:\n${removed.join('\n')}` : 'No networks to delete');
    });

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
    .option('--resolv-conf <file>', 'also write a resolv.conf pointing at nsdns here (such as a container\'s root/etc/resolv.conf); for PID and path targets, which get no /etc/netns file')
    .option('--json', 'print JSON', false)
    .addOption(socketOption())
    .action(async (networkName: string, target: string, o) => {
      if (o.health !== undefined && parseHealthSpec(o.health) === undefined) {
        throw new UsageError(`--health ${JSON.stringify(String(o.health).slice(0, 40))}: expected tcp:PORT or http:PORT[/PATH]\nSee 'nsdns network connect --help'.`);
      }
      // Checked before anything is connected; written by this process, with the caller's rights.
      const resolvFile = o.resolvConf !== undefined ? checkResolvConfPath(o.resolvConf) : undefined;
      const result = await call<Record<string, unknown>>(o.socket, 'network.connect', {
        network: networkName, target, name: o.name, aliases: o.alias, ip: o.ip, ip6: o.ip6, mac: o.mac, ifname: o.ifname, dns: o.dns, publish: o.publish,
        ...(o.service !== undefined && { services: o.service }), ...(o.label !== undefined && { labels: keyValues('--label', o.label, 'connect') }),
        health: o.health, healthIntervalMs: o.healthInterval, healthTimeoutMs: o.healthTimeout, healthRetries: o.healthRetries,
        healthStartPeriodMs: o.healthStartPeriod, ...(o.healthHideOwn && { healthHideOwn: true }),
      }).catch((err: unknown) => {
        if (!lostMidRequest(err)) throw err;
        // What the daemon does with it at its next start (NetworkManager.recover): say so, so a retry is not a guess.
        const quoted = (text: string) => JSON.stringify(text.slice(0, 200));
        throw new NsdnsError('ERR_DAEMON_UNREACHABLE', `the daemon stopped before it finished connecting ${quoted(target)} to ${quoted(networkName)}; when it starts again it rolls that connect back, so run the same connect again then`);
      });
      if (resolvFile !== undefined) {
        try {
          // Loaded here only: state.js brings the registry's parsers, which other commands do not need.
          const [{ readHostResolverSettings, resolvConfText }, { writeFileAtomic }] = await Promise.all([import('../plumbing/netns-resolv.js'), import('../plumbing/state.js')]);
          // The host's search domains and options come after the network's domain, as in /etc/netns files.
          await writeFileAtomic(resolvFile, resolvConfText(String(result.name), typeof result.domain === 'string' ? [result.domain] : [], readHostResolverSettings('/etc/resolv.conf')));
        } catch (err) {
          throw new Error(`connected, but writing --resolv-conf ${resolvFile} failed: ${(err as Error).message}`);
        }
      }
      if (o.json) return print({ ...result, ...(resolvFile !== undefined && { resolvConfWritten: resolvFile }) });
      print(`${result.name} (${result.shortId}) on ${result.network}: ${[...(result.ipv4 as string[]), ...(result.ipv6 as string[])].join(' ')} via ${result.ifname}`);
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

  program.command('debug')
    .description('show what a namespace sees: attachments, addresses, routes, resolv.conf, its resolver and view')
    .argument('<target>', 'named namespace, namespace file, or PID')
    .argument('[type]', 'record type for --resolve, as `query` takes it (default A)')
    .option('--resolve <name>', 'resolve a name as the namespace would, and say where the answer came from')
    .option('--type <type>', 'record type for --resolve (same as the positional type)')
    .option('--json', 'print JSON', false)
    .addOption(socketOption())
    .action(async (target: string, positionalType: string | undefined, o) => {
      if (positionalType !== undefined && o.type !== undefined && positionalType.toUpperCase() !== o.type.toUpperCase()) {
        throw new UsageError(`two record types given (${positionalType.slice(0, 12)} and --type ${String(o.type).slice(0, 12)})\nSee 'nsdns debug --help'.`);
      }
      const typeText: string = positionalType ?? o.type ?? 'A';
      if ((positionalType !== undefined || o.type !== undefined) && o.resolve === undefined) throw new UsageError("a record type is for --resolve NAME\nSee 'nsdns debug --help'.");
      const type = recordTypeName(typeText);
      if (type === undefined) throw new UsageError(`unknown record type '${typeText.slice(0, 20)}' (A, AAAA, CNAME, MX, NS, PTR, SOA, SRV, TXT, ANY, ... or TYPEnn)\nSee 'nsdns debug --help'.`);
      const { resolveTarget } = await import('../plumbing/target.js'); // only debug needs it (and zod)
      const ns = resolveTarget(target);
      const kernel = await kernelView(ns.path);
      let daemon: Record<string, unknown>;
      try {
        daemon = await call<Record<string, unknown>>(o.socket, 'debug.namespace', { target, resolve: o.resolve, type: o.resolve === undefined ? undefined : typeText });
      } catch (err) {
        daemon = { error: (err as Error).message };
      }
      const report = { namespace: ns.path, ...kernel, daemon };
      print(o.json ? report : formatDebug(report));
    });
  graphCommand(network);
  endpointCommands(program);
}

/** A commander parser for docker-style durations (5s, 500ms, 1m30s), in milliseconds. */
function duration(flag: string): (value: string) => number {
  return (value) => {
    const ms = parseDuration(value);
    if (ms === undefined) throw new InvalidArgumentError(`${flag}: expected a duration such as 5s, 500ms or 1m30s`);
    return ms;
  };
}

async function kernelView(netns: string): Promise<{ interfaces: unknown; routes: unknown; listening53: boolean }> {
  const { execa } = await import('execa');
  const run = async (...args: string[]) => (await execa('nsenter', [`--net=${netns}`, '--', ...args], { reject: false })).stdout;
  const interfaces = JSON.parse((await run('ip', '-j', 'addr', 'show')) || '[]') as Array<{ ifname: string; operstate: string; address?: string; addr_info?: Array<{ local: string; prefixlen: number }> }>;
  const routes = JSON.parse((await run('ip', '-j', 'route', 'show')) || '[]') as Array<{ dst: string; gateway?: string; dev?: string }>;
  const sockets = await run('ss', '-Hlnu', 'src', '127.0.0.11:53');
  return {
    interfaces: interfaces.map((i) => ({ name: i.ifname, state: i.operstate, mac: i.address, addresses: (i.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`) })),
    routes: routes.map((r) => `${r.dst}${r.gateway ? ` via ${r.gateway}` : ''}${r.dev ? ` dev ${r.dev}` : ''}`),
    listening53: sockets.trim().length > 0,
  };
}

function formatDebug(r: Record<string, unknown>): string {
  const d = r.daemon as Record<string, unknown>;
  const lines = [`namespace ${r.namespace}`];
  lines.push('interfaces:');
  for (const i of r.interfaces as Array<{ name: string; state: string; addresses: string[] }>) lines.push(`  ${i.name.padEnd(10)} ${i.state.padEnd(8)} ${i.addresses.join(' ')}`);
  lines.push('routes:', ...(r.routes as string[]).map((x) => `  ${x}`));
  lines.push(`127.0.0.11:53 (udp) listening: ${r.listening53 ? 'yes' : 'no'}`);
  if (d.error) {
    lines.push(`daemon: ${d.error}`);
    return lines.join('\n');
  }
  lines.push(`served by nsdns: ${d.served ? 'yes' : 'no'}${d.bindError ? ` (${d.bindError})` : ''}`);
  lines.push(`view (networks it resolves): ${(d.view as string[]).join(', ') || '(none)'}`);
  lines.push('endpoints:');
  for (const e of d.endpoints as Array<Record<string, unknown>>) {
    lines.push(`  ${e.name} on ${e.network}: ${[...(e.ipv4 as string[]), ...(e.ipv6 as string[])].join(' ')} (${e.ifname}, aliases ${(e.aliases as string[]).join(',') || '-'})`);
    const h = e.health as { Status: string; FailingStreak: number; Log: Array<{ End: string; ExitCode: number; Output: string }>; Check?: { Test: string; Interval: string } } | undefined;
    if (h) {
      const last = h.Log.at(-1);
      const check = h.Check ? `, check ${h.Check.Test} every ${h.Check.Interval}` : ', no check';
      lines.push(`    health ${h.Status}${h.FailingStreak > 0 ? ` (${h.FailingStreak} failing)` : ''}${check}${last ? `, last probe ${last.End}: ${last.ExitCode === 0 ? 'ok' : 'failed'} (${last.Output})` : ''}`);
    }
  }
  lines.push(`upstreams: ${(d.upstreams as string[]).join(', ') || '(none)'}`);
  lines.push('resolv.conf:', ...(String(d.resolvConf ?? '(not written by nsdns)').trim().split('\n').map((l) => `  ${l}`)));
  // An older daemon sends no timings.
  if (Array.isArray(d.timings)) lines.push(...formatTimings(d.timings));
  const res = d.resolution as Record<string, unknown> | undefined;
  if (res) {
    const origin = res.origin as Record<string, string>;
    const from = origin.source === 'upstream' ? `upstream ${origin.server}` : origin.source === 'error' ? `error: ${origin.reason}` : origin.source;
    lines.push(`resolve ${res.name} ${res.type}: ${res.rcode} from ${from}`);
    for (const a of res.answers as Array<Record<string, unknown>>) lines.push(`  ${a.type} ${a.data} ttl ${a.ttl}`);
  }
  return lines.join('\n');
}
