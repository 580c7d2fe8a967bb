// Links and addresses in the kernel. The host side is read over netlink (links, addresses, routes);
// changes are made with iproute2 in one `ip -batch` per namespace, so a connect costs two spawns.
import { writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { NsdnsError } from '../errors.js';
import { isIfname, isIp, isMacAddress, isNetnsPath } from '../registry/fields.js';

// Loaded on first use: a resolver-only daemon never touches links, and saves their memory.
const loadExeca = () => import('execa').then((m) => m.execa);
const createRtNetlink = (): import('netlink').RtNetlinkSocket =>
  (createRequire(import.meta.url)('netlink') as typeof import('netlink')).createRtNetlink();

export interface BridgeSpec {
  name: string;
  /** Gateway addresses in CIDR form (10.0.0.1/24). */
  addresses: string[];
  mtu?: number;
}

export interface EndpointLinkSpec {
  hostIf: string;
  bridge: string;
  netns: string;
  ifname: string;
  mac: string;
  mtu?: number;
  /** CIDR form. */
  addresses: string[];
  gateway4?: string;
  gateway6?: string;
}

/**
 * The last check before `ip -batch`, where a newline would start another command: every name,
 * address and path was validated at its boundary, and is checked again here.
 */
function checkLinkArgs(what: { names?: string[]; cidrs?: string[]; ips?: string[]; mac?: string; netns?: string }): void {
  const ok = (what.names ?? []).every(isIfname)
    && (what.cidrs ?? []).every((c) => { const [ip, len, extra] = c.split('/'); return extra === undefined && isIp(ip) && /^\d{1,3}$/.test(len ?? ''); })
    && (what.ips ?? []).every(isIp)
    && (what.mac === undefined || isMacAddress(what.mac))
    && (what.netns === undefined || isNetnsPath(what.netns));
  if (!ok) throw new NsdnsError('ERR_LINK', 'refusing to run ip with an invalid interface name, address, MAC or namespace path');
}

/** Runs `ip -batch -` (inside `netns` when given) and explains a failure with the command that failed. */
async function ipBatch(lines: string[], netns?: string): Promise<void> {
  const args = netns ? ['--net=' + netns, '--', 'ip', '-batch', '-'] : ['-batch', '-'];
  const execa = await loadExeca();
  const result = await execa(netns ? 'nsenter' : 'ip', args, { input: lines.join('\n') + '\n', reject: false });
  if (result.exitCode !== 0) {
    const detail = (result.stderr || result.stdout).trim().split('\n').slice(0, 3).join('; ');
    throw new NsdnsError('ERR_LINK', `${netns ? 'inside the namespace, ' : ''}ip failed: ${detail}`);
  }
}

/** Host-side links by name, read over netlink. */
export async function hostLinks(): Promise<Map<string, { index: number; up: boolean; master?: number }>> {
  const socket = createRtNetlink();
  try {
    const links = await socket.getLinks();
    return new Map(links.map((l) => [l.attrs.ifname ?? '', { index: l.data.index ?? 0, up: Boolean(l.data.flags?.up), master: l.attrs.master }]));
  } finally {
    socket.socket.close();
  }
}

/** Every IPv4/IPv6 prefix the host already uses (addresses and routes), for overlap checks. */
export async function hostPrefixes(): Promise<string[]> {
  const socket = createRtNetlink();
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
  checkLinkArgs({ names: [spec.name], cidrs: spec.addresses });
  const mtu = spec.mtu ? ` mtu ${spec.mtu}` : '';
  await ipBatch([
    `link add ${spec.name}${mtu} type bridge`,
    ...spec.addresses.map((a) => `addr add ${a} dev ${spec.name}${a.includes(':') ? ' nodad' : ''}`),
    `link set ${spec.name} up`,
  ]);
  // Published ports are DNATed from 127.0.0.1 too; the kernel routes 127/8 out of a link only with this.
  await writeFile(`/proc/sys/net/ipv4/conf/${spec.name}/route_localnet`, '1');
}

/** Removes a link; a link that is already gone is not an error. */
export async function deleteLink(name: string): Promise<void> {
  checkLinkArgs({ names: [name] });
  if (!(await hostLinks()).has(name)) return;
  await ipBatch([`link del ${name}`]);
}

/**
 * A veth pair: the host end on the bridge, the other end created directly inside the namespace
 * with its final name, MAC, addresses and routes, and `lo` up (127.0.0.11 lives on lo).
 */
export async function createEndpointLink(spec: EndpointLinkSpec): Promise<void> {
  checkLinkArgs({
    names: [spec.hostIf, spec.bridge, spec.ifname], cidrs: spec.addresses, mac: spec.mac, netns: spec.netns,
    ips: [spec.gateway4, spec.gateway6].filter((g): g is string => g !== undefined),
  });
  const mtu = spec.mtu ? ` mtu ${spec.mtu}` : '';
  await ipBatch([
    `link add ${spec.hostIf}${mtu} type veth peer name ${spec.ifname}${mtu} address ${spec.mac} netns ${spec.netns}`,
    `link set ${spec.hostIf} master ${spec.bridge} up`,
  ]);
  try {
    await ipBatch([
      'link set lo up',
      ...spec.addresses.map((a) => `addr add ${a} dev ${spec.ifname}${a.includes(':') ? ' nodad' : ''}`),
      `link set ${spec.ifname} up`,
      ...(spec.gateway4 ? [`route add default via ${spec.gateway4} dev ${spec.ifname}`] : []),
      ...(spec.gateway6 ? [`route add default via ${spec.gateway6} dev ${spec.ifname}`] : []),
    ], spec.netns);
  } catch (err) {
    await deleteLink(spec.hostIf).catch(() => {});
    throw err;
  }
}

export async function setSysctl(key: string, value: string): Promise<void> {
  await writeFile(`/proc/sys/${key.replaceAll('.', '/')}`, value);
}

/** Which families have a default route inside the namespace, read back from the kernel. */
export async function defaultRoutes(netns: string): Promise<{ ipv4: boolean; ipv6: boolean }> {
  checkLinkArgs({ netns });
  const execa = await loadExeca();
  const read = async (family: '-4' | '-6') => {
    const r = await execa('nsenter', [`--net=${netns}`, '--', 'ip', family, '-j', 'route', 'show', 'default'], { reject: false });
    if (r.exitCode !== 0) throw new NsdnsError('ERR_LINK', `inside the namespace, ip route failed: ${r.stderr.trim().split('\n')[0]}`);
    return (JSON.parse(r.stdout || '[]') as unknown[]).length > 0;
  };
  return { ipv4: await read('-4'), ipv6: await read('-6') };
}

/** Adds default routes inside the namespace (each via a gateway on one of its interfaces). */
export async function addDefaultRoutes(netns: string, routes: ReadonlyArray<{ gateway: string; ifname: string }>): Promise<void> {
  if (routes.length === 0) return;
  checkLinkArgs({ netns, names: routes.map((r) => r.ifname), ips: routes.map((r) => r.gateway) });
  await ipBatch(routes.map((r) => `route add default via ${r.gateway} dev ${r.ifname}`), netns);
}
