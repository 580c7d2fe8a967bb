// Links and addresses in the kernel. The host side is read and changed over rtnetlink from the
// daemon's own process (netlink-links.ts). Inside a namespace (lo up, addresses, link up, default
// routes) a netlink socket must be opened there, which Node cannot do: the native nsdns-links
// helper enters the namespace and does it (one small process), and without it (no compiler at
// install, or NSDNS_NATIVE=0) `nsenter --net=NS ip -batch` does (two program starts).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { NsdnsError } from '../errors.js';
import { nativeHelperPath } from '../native/helpers.js';
import { isIfname, isIp, isMacAddress, isNetnsPath } from '../registry/fields.js';
import { netlinkAttachLink, netlinkCreateBridge, netlinkCreateVeth, netlinkCode, netlinkDeleteLink, netlinkReason, openRtNetlink, type VethSpec } from './netlink-links.js';

/** Built by src/native/build.mjs when a C compiler was there at install time. */
const NATIVE_LINKS = nativeHelperPath('nsdns-links');
let nativeBuilt: boolean | undefined;

/** Which path does the link work inside namespaces: the native helper, or nsenter + ip. */
export function namespaceLinksKind(): 'native' | 'ip' {
  nativeBuilt ??= existsSync(NATIVE_LINKS);
  return process.env.NSDNS_NATIVE !== '0' && nativeBuilt ? 'native' : 'ip';
}

/** A helper that hangs (a wedged namespace, a stuck kernel lock) fails instead of holding the connect. */
const HELPER_TIMEOUT_MS = 10_000;

export interface BridgeSpec {
  name: string;
  /** Gateway addresses in CIDR form (10.0.0.1/24). */
  addresses: string[];
  mtu?: number;
  /** Set when every host's bridge of the network must answer as one gateway (overlay networks). */
  mac?: string;
}

/** A host link as the link check reads it. */
export interface LinkState {
  up: boolean;
  /** The bridge it is attached to, if any. */
  master?: string;
}

/** The veth pair, and what goes inside the namespace. */
export interface EndpointLinkSpec extends VethSpec {
  /** CIDR form. */
  addresses: string[];
  gateway4?: string;
  gateway6?: string;
}

/**
 * The last check before a name, address or path reaches netlink, a helper's argv or `ip -batch`
 * (where a newline would start another command): every one was validated at its boundary, and is
 * checked again here.
 */
export function checkLinkArgs(what: { names?: string[]; cidrs?: string[]; ips?: string[]; mac?: string; netns?: string; mtu?: number }): void {
  const ok = (what.names ?? []).every(isIfname)
    && (what.cidrs ?? []).every((c) => {
      const [ip, len, extra] = c.split('/');
      return extra === undefined && isIp(ip) && /^\d{1,3}$/.test(len ?? '') && Number(len) <= (ip.includes(':') ? 128 : 32);
    })
    && (what.ips ?? []).every(isIp)
    && (what.mac === undefined || isMacAddress(what.mac))
    && (what.netns === undefined || isNetnsPath(what.netns))
    && (what.mtu === undefined || (Number.isInteger(what.mtu) && what.mtu >= 68 && what.mtu <= 65535));
  if (!ok) throw new NsdnsError('ERR_LINK', 'refusing to run ip or a netlink request with an invalid interface name, address, MAC, MTU or namespace path');
}

/** Runs a program with a time limit; resolves with its status and the start of its output. */
export function run(command: string, args: readonly string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string; error?: Error }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], timeout: HELPER_TIMEOUT_MS });
    let stdout = '';
    let stderr = '';
    let error: Error | undefined;
    // Bounded: only the first lines are ever shown.
    child.stdout!.on('data', (d: Buffer) => { if (stdout.length < 4096) stdout += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { if (stderr.length < 4096) stderr += d.toString(); });
    child.on('error', (err) => { error = err; });
    child.on('close', (code, signal) => resolve({ code: signal ? null : code, stdout, stderr, error }));
    if (input !== undefined) child.stdin!.end(input);
  });
}

export const firstLines = (text: string) => text.trim().split('\n').slice(0, 3).join('; ');

/** Runs `ip -batch -` (inside `netns` when given) and explains a failure with the command that failed. */
async function ipBatch(lines: string[], netns?: string): Promise<void> {
  const args = netns ? ['--net=' + netns, '--', 'ip', '-batch', '-'] : ['-batch', '-'];
  const result = await run(netns ? 'nsenter' : 'ip', args, lines.join('\n') + '\n');
  if (result.code !== 0) {
    const detail = result.error?.message ?? (firstLines(result.stderr || result.stdout) || 'no answer in time');
    throw new NsdnsError('ERR_LINK', `${netns ? 'inside the namespace, ' : ''}ip failed: ${detail}`);
  }
}

/** One change inside a namespace, in the order given. */
export type NamespaceOp =
  | { op: 'up'; ifname: string }
  | { op: 'addr'; ifname: string; cidr: string }
  | { op: 'route'; ifname: string; gateway: string };

/** Applies `ops` inside the namespace: over netlink from the native helper, or with nsenter + ip. */
export async function inNamespace(netns: string, ops: readonly NamespaceOp[]): Promise<void> {
  if (namespaceLinksKind() === 'native') {
    const args = [netns, ...ops.flatMap((o) => (o.op === 'up' ? ['up', o.ifname] : o.op === 'addr' ? ['addr', o.ifname, o.cidr] : ['route', o.ifname, o.gateway]))];
    const result = await run(NATIVE_LINKS, args);
    if (result.code !== 0) {
      const detail = result.error?.message ?? (firstLines(result.stderr) || 'no answer in time');
      throw new NsdnsError('ERR_LINK', `inside the namespace, ${detail}`);
    }
    return;
  }
  await ipBatch(ops.map((o) => (o.op === 'up' ? `link set ${o.ifname} up`
    // The same addresses as over netlink: IPv4 with its broadcast address (as docker and netavark), IPv6 without DAD.
    : o.op === 'addr' ? `addr add ${o.cidr} dev ${o.ifname}${o.cidr.includes(':') ? ' nodad' : ' brd +'}`
      : `route add default via ${o.gateway} dev ${o.ifname}`)), netns);
}

/** Host-side links by name, read over netlink. */
export async function hostLinks(): Promise<Map<string, { index: number; up: boolean; master?: number; netnsid?: number }>> {
  const socket = openRtNetlink();
  try {
    const links = await socket.getLinks();
    // netnsid: the host's id of the namespace a veth's peer is in (egress guards follow it).
    return new Map(links.map((l) => [l.attrs.ifname ?? '', { index: l.data.index ?? 0, up: Boolean(l.data.flags?.up), master: l.attrs.master, netnsid: l.attrs.linkNetnsid }]));
  } finally {
    socket.socket.close();
  }
}

/** Host-side links by name: up or not, and the name of the bridge each is attached to. */
export async function hostLinkStates(): Promise<Map<string, LinkState>> {
  const links = await hostLinks();
  const names = new Map([...links].map(([name, l]) => [l.index, name]));
  return new Map([...links].map(([name, l]) => [name, { up: l.up, ...(l.master !== undefined && names.has(l.master) && { master: names.get(l.master) }) }]));
}

/** Puts a host link on `bridge` (when given) and sets it up. */
export async function attachLink(name: string, bridge?: string): Promise<void> {
  checkLinkArgs({ names: bridge === undefined ? [name] : [name, bridge] });
  try {
    await netlinkAttachLink(name, bridge);
  } catch (err) {
    throw new NsdnsError('ERR_LINK', `setting ${name} up${bridge === undefined ? '' : ` on ${bridge}`}: ${netlinkReason(err)}`, { cause: err });
  }
}

/** Every IPv4/IPv6 prefix the host already uses (addresses and routes), for overlap checks. */
export async function hostPrefixes(): Promise<string[]> {
  const socket = openRtNetlink();
  try {
    // One request at a time: the netlink package cannot interleave two dumps on one socket.
    const addresses = await socket.getAddresses();
    const routes = await socket.getRoutes();
    const text = (b: Buffer | undefined) => (b && (b.length === 4 || b.length === 16) ? bufferToAddress(b) : undefined);
    const out: string[] = [];
    for (const a of addresses) {
      const addr = text(a.attrs.address ?? a.attrs.local);
      if (addr && !addr.startsWith('127.') && addr !== '::1' && !addr.startsWith('fe80')) out.push(`${addr}/${a.data.prefixlen}`);
    }
    for (const r of routes) {
      const dst = text(r.attrs.dst);
      if (dst && (r.data.dstLen ?? 0) > 0 && !dst.startsWith('127.') && !dst.startsWith('fe80') && !dst.startsWith('ff')) out.push(`${dst}/${r.data.dstLen}`);
    }
    return out;
  } finally {
    socket.socket.close();
  }
}

function bufferToAddress(b: Buffer): string {
  if (b.length === 4) return [...b].join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  return groups.join(':');
}

export async function createBridge(spec: BridgeSpec): Promise<void> {
  checkLinkArgs({ names: [spec.name], cidrs: spec.addresses, mtu: spec.mtu, mac: spec.mac });
  try {
    await netlinkCreateBridge(spec.name, spec.addresses, spec.mtu, spec.mac);
  } catch (err) {
    throw new NsdnsError('ERR_LINK', `creating bridge ${spec.name}: ${netlinkReason(err)}`, { cause: err });
  }
  // Published ports are DNATed from 127.0.0.1 too; the kernel routes 127/8 out of a link only with this.
  await writeFile(`/proc/sys/net/ipv4/conf/${spec.name}/route_localnet`, '1');
}

/** Removes a host link; a link that is already gone is not an error. */
export async function deleteLink(name: string): Promise<void> {
  checkLinkArgs({ names: [name] });
  try {
    await netlinkDeleteLink(name);
  } catch (err) {
    throw new NsdnsError('ERR_LINK', `deleting link ${name}: ${netlinkReason(err)}`, { cause: err });
  }
}

/**
 * An endpoint's interface inside its namespace, once the link is there (a veth's end, a macvlan):
 * loopback and the link up, its addresses, and default routes via the network's gateways.
 */
export async function configureInNamespace(spec: { netns: string; ifname: string; addresses: readonly string[]; gateway4?: string; gateway6?: string }): Promise<void> {
  await inNamespace(spec.netns, [
    { op: 'up', ifname: 'lo' },
    ...spec.addresses.map((cidr) => ({ op: 'addr' as const, ifname: spec.ifname, cidr })),
    { op: 'up', ifname: spec.ifname },
    ...(spec.gateway4 ? [{ op: 'route' as const, ifname: spec.ifname, gateway: spec.gateway4 }] : []),
    ...(spec.gateway6 ? [{ op: 'route' as const, ifname: spec.ifname, gateway: spec.gateway6 }] : []),
  ]);
}

/**
 * A veth pair: the host end on the bridge, the other end created directly inside the namespace
 * with its final name, MAC, addresses and routes, and `lo` up (127.0.0.11 lives on lo).
 * `lap` is told when each part is done (the connect's per-stage timing).
 */
export async function createEndpointLink(spec: EndpointLinkSpec, lap?: (stage: string) => void): Promise<void> {
  checkLinkArgs({
    names: [spec.hostIf, spec.bridge, spec.ifname], cidrs: spec.addresses, mac: spec.mac, netns: spec.netns, mtu: spec.mtu,
    ips: [spec.gateway4, spec.gateway6].filter((g): g is string => g !== undefined),
  });
  let step = '';
  try {
    await netlinkCreateVeth(spec, (what) => { step = what; });
  } catch (err) {
    throw new NsdnsError('ERR_LINK', `${step}: ${await explainVethError(err, spec)}`, { cause: err });
  }
  lap?.('veth pair');
  try {
    await configureInNamespace(spec);
  } catch (err) {
    await netlinkDeleteLink(spec.hostIf).catch(() => {});
    throw err;
  }
  lap?.('addresses+routes in namespace');
}

/** EEXIST on a veth pair is either end's name taken: the host's, or the peer's inside the namespace. */
async function explainVethError(err: unknown, spec: EndpointLinkSpec): Promise<string> {
  if (netlinkCode(err) !== 'EEXIST') return netlinkReason(err);
  const onHost = await hostLinks().then((l) => l.has(spec.hostIf), () => false);
  return onHost ? `a link named ${spec.hostIf} exists already on the host (EEXIST)` : `${spec.ifname} exists already inside the namespace (EEXIST)`;
}

export async function setSysctl(key: string, value: string): Promise<void> {
  await writeFile(`/proc/sys/${key.replaceAll('.', '/')}`, value);
}

/** Which families have a default route inside the namespace, read back from the kernel. */
export async function defaultRoutes(netns: string): Promise<{ ipv4: boolean; ipv6: boolean }> {
  checkLinkArgs({ netns });
  if (namespaceLinksKind() === 'native') {
    const r = await run(NATIVE_LINKS, [netns, 'defaults']);
    const m = /^ipv4 ([01]) ipv6 ([01])$/m.exec(r.stdout);
    if (r.code !== 0 || !m) throw new NsdnsError('ERR_LINK', `inside the namespace, ${r.error?.message ?? (firstLines(r.stderr) || 'reading the default routes failed')}`);
    return { ipv4: m[1] === '1', ipv6: m[2] === '1' };
  }
  const read = async (family: '-4' | '-6') => {
    const r = await run('nsenter', [`--net=${netns}`, '--', 'ip', family, '-j', 'route', 'show', 'default']);
    if (r.code !== 0) throw new NsdnsError('ERR_LINK', `inside the namespace, ip route failed: ${r.error?.message ?? r.stderr.trim().split('\n')[0]}`);
    return (JSON.parse(r.stdout || '[]') as unknown[]).length > 0;
  };
  return { ipv4: await read('-4'), ipv6: await read('-6') };
}

/** Adds default routes inside the namespace (each via a gateway on one of its interfaces). */
export async function addDefaultRoutes(netns: string, routes: ReadonlyArray<{ gateway: string; ifname: string }>): Promise<void> {
  if (routes.length === 0) return;
  checkLinkArgs({ netns, names: routes.map((r) => r.ifname), ips: routes.map((r) => r.gateway) });
  await inNamespace(netns, routes.map((r) => ({ op: 'route' as const, ifname: r.ifname, gateway: r.gateway })));
}
