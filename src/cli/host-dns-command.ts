// `nsdns host-dns`: what to add to the host's resolver so the host finds the networks' names at
// their gateways (`nsdns serve --host-dns`) when systemd-resolved does not run (when it does, the
// daemon registers each bridge itself). Read from the daemon (network.ls and network.inspect over
// the control socket); the answer crosses a boundary, so it is checked by hand here (the CLI starts
// without zod): only DNS-safe zone names and literal addresses reach the printed lines.
import net from 'node:net';
import { Command, Option } from 'commander';
import { NsdnsError } from '../errors.js';
import { call } from './control-client.js';
import { socketOption } from './options.js';

/** The daemon's cap on names in one network.inspect request. */
const INSPECT_BATCH = 64;
/** More networks than anyone runs on one host: the rest are left out, and the output says so. */
const MAX_NETWORKS = 4096;

export interface HostDnsNetwork {
  name: string;
  /** Lower-case zones answered at the gateways: the network name, and its domain if it has one. */
  zones: string[];
  gateways: string[];
  internal: boolean;
  bridge: string;
  /** Reverse zones of the IPv4 subnets cut at an octet boundary (10.77.0.0/24 → 0.77.10.in-addr.arpa). */
  reverse: string[];
}

export interface HostDnsPlan {
  networks: HostDnsNetwork[];
  /** Networks left out, with why (already made printable). */
  skipped: string[];
}

const ZONE = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*$/;
const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;
type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
/** Control characters and length kept out of anything printed. */
const safe = (v: unknown): string => String(v).replace(/[^\x20-\x7e]/g, '?').slice(0, 80);

/** The plan from network.inspect answers: nsdns's own networks with a bridge and a gateway. */
export function hostDnsPlan(inspect: readonly unknown[]): HostDnsPlan {
  const plan: HostDnsPlan = { networks: [], skipped: [] };
  for (const item of inspect.slice(0, MAX_NETWORKS)) {
    if (!isObject(item) || typeof item.Name !== 'string') continue;
    const name = item.Name;
    const options = isObject(item.Options) ? item.Options : {};
    const bridge = options['com.docker.network.bridge.name'];
    // A registry file's network has no listener at its "gateway": nothing to point the host at.
    if (item.Source !== 'nsdns' || typeof bridge !== 'string') continue;
    const config = isObject(item.IPAM) && Array.isArray(item.IPAM.Config) ? item.IPAM.Config.slice(0, 64).filter(isObject) : [];
    const gateways = config.map((c) => c.Gateway).filter((g): g is string => typeof g === 'string' && net.isIP(g) !== 0);
    const domain = isObject(item.DNS) && typeof item.DNS.Domain === 'string' ? item.DNS.Domain.toLowerCase() : undefined;
    const zones = [...new Set([name.toLowerCase(), ...(domain === undefined ? [] : [domain])])];
    const bad = zones.find((z) => !ZONE.test(z));
    if (bad !== undefined) {
      plan.skipped.push(`network "${safe(name)}": "${safe(bad)}" is not a DNS zone name`);
      continue;
    }
    if (!IFNAME.test(bridge)) {
      plan.skipped.push(`network "${safe(name)}": its bridge name is not an interface name`);
      continue;
    }
    if (gateways.length === 0) {
      plan.skipped.push(`network "${safe(name)}": no gateway address`);
      continue;
    }
    const subnets = config.map((c) => c.Subnet).filter((s): s is string => typeof s === 'string');
    plan.networks.push({ name, zones, gateways, internal: item.Internal === true, bridge, reverse: subnets.map(reverseZone).filter((z): z is string => z !== undefined) });
  }
  if (inspect.length > MAX_NETWORKS) plan.skipped.push(`${inspect.length - MAX_NETWORKS} more networks (over ${MAX_NETWORKS})`);
  plan.networks.sort((a, b) => a.name.localeCompare(b.name));
  return plan;
}

/** in-addr.arpa zone of an IPv4 subnet whose prefix is 8, 16 or 24; undefined otherwise. */
function reverseZone(subnet: string): string | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(8|16|24)$/.exec(subnet);
  if (!m || m.slice(1, 5).some((o) => Number(o) > 255)) return undefined;
  const octets = m.slice(1, 1 + Number(m[5]) / 8).map(Number);
  return `${octets.reverse().join('.')}.in-addr.arpa`;
}

/** dnsmasq lines: each zone (and reverse zone) to its network's first gateway. */
export function dnsmasqLines(plan: HostDnsPlan): string[] {
  const lines: string[] = [];
  for (const n of plan.networks) {
    const gateway = n.gateways[0];
    for (const zone of [...n.zones, ...n.reverse]) lines.push(`server=/${zone}/${gateway}`);
    // The answers are private addresses: dnsmasq's stop-dns-rebind would drop them.
    lines.push(`rebind-domain-ok=/${n.zones.join('/')}/`);
  }
  return lines;
}

export function hostDnsText(plan: HostDnsPlan): string {
  const out = [
    '# The names of nsdns networks, answered at their gateways by `nsdns serve --host-dns`.',
    '# With systemd-resolved running there is nothing to add: nsdns registers each bridge with it.',
  ];
  if (plan.networks.length === 0) out.push('# No network created by nsdns has a gateway: nothing to add.');
  else {
    out.push(
      '#',
      '# dnsmasq (e.g. /etc/dnsmasq.d/nsdns.conf, then restart dnsmasq):',
      ...dnsmasqLines(plan),
      '#',
      '# /etc/resolv.conf cannot send one domain to one server. Either run a local forwarder such as',
      '# dnsmasq with the lines above, or serve every network on loopback (`nsdns serve --listen',
      '# 127.0.0.1:53`) and put `nameserver 127.0.0.1` first: names nsdns does not know are then',
      '# forwarded to its upstreams (give them with --upstream, not from this same resolv.conf).',
    );
    const internal = plan.networks.filter((n) => n.internal).map((n) => n.name);
    if (internal.length > 0) out.push(`# Internal networks (${internal.map(safe).join(', ')}) answer only their own names at their gateways; nothing is forwarded there.`);
  }
  for (const s of plan.skipped) out.push(`# left out: ${s}`);
  return `${out.join('\n')}\n`;
}

export function hostDnsCommand(program: Command): void {
  program.command('host-dns')
    .description('print what to add to the host\'s resolver (dnsmasq, resolv.conf) so the host resolves the networks\' names at their gateways (serve --host-dns), when systemd-resolved does not run')
    .addOption(new Option('--format <format>', 'text: commented guide; dnsmasq: only the dnsmasq lines; json').choices(['text', 'dnsmasq', 'json']).default('text'))
    .addOption(socketOption())
    .action(async (o: { format: 'text' | 'dnsmasq' | 'json'; socket: string }) => {
      const plan = hostDnsPlan(await inspectOwnNetworks(o.socket));
      if (o.format === 'json') process.stdout.write(`${JSON.stringify(plan, null, 2)}\n`);
      else if (o.format === 'dnsmasq') process.stdout.write(dnsmasqLines(plan).map((l) => `${l}\n`).join(''));
      else process.stdout.write(hostDnsText(plan));
    });
}

/** network.inspect of every network nsdns created itself (network.ls says which). */
async function inspectOwnNetworks(socket: string): Promise<unknown[]> {
  const rows = await call<unknown>(socket, 'network.ls');
  if (!Array.isArray(rows)) throw new NsdnsError('ERR_INTERNAL', 'the daemon\'s answer to network.ls is not a list');
  const ids = rows.slice(0, MAX_NETWORKS).filter(isObject).filter((r) => r.source === 'nsdns' && typeof r.bridge === 'string')
    .map((r) => (typeof r.fullId === 'string' ? r.fullId : r.name)).filter((id): id is string => typeof id === 'string');
  const out: unknown[] = [];
  for (let i = 0; i < ids.length; i += INSPECT_BATCH) {
    const batch = ids.slice(i, i + INSPECT_BATCH);
    try {
      out.push(...asList(await call<unknown>(socket, 'network.inspect', { names: batch })));
    } catch (err) {
      // A network removed since ls: the others still count.
      if (!(err instanceof NsdnsError) || err.code !== 'ERR_NOT_FOUND') throw err;
      for (const id of batch) out.push(...asList(await call<unknown>(socket, 'network.inspect', { names: [id] }).catch(() => [])));
    }
  }
  return out;
}

const asList = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
