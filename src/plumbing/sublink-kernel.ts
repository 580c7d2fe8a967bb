// The kernel side of macvlan and ipvlan endpoints (sublinks.ts decides). The link is created over
// rtnetlink from the daemon's process straight inside the endpoint's namespace (IFLA_LINK names the
// parent on the host, IFLA_NET_NS_FD the namespace), as the veth peers are; addresses, up and the
// default route follow inside the namespace as for veths. Nothing of it stays on the host, so
// reading it back and deleting it happen inside the namespace (nsenter + ip: not on the query path).
import { open } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { NsdnsError } from '../errors.js';
import { checkLinkArgs, configureInNamespace, firstLines, inNamespace, run } from './links.js';
import { CREATE, IFLA_INFO_DATA, IFLA_INFO_KIND, attr, cstring, linkIndex, macBytes, netlinkCode, netlinkReason, openRtNetlink, u32 } from './netlink-links.js';
import type { SubLinkDriver } from './sublinks.js';

// linux/if_link.h: IFLA_MACVLAN_MODE (u32 flags) and IFLA_IPVLAN_MODE (u16), each attribute 1.
const MACVLAN_MODE: Record<string, number> = { private: 1, vepa: 2, bridge: 4, passthru: 8 };
const IPVLAN_MODE: Record<string, number> = { l2: 0, l3: 1 };

export interface SubLinkSpec {
  driver: SubLinkDriver;
  parent: string;
  mode: string;
  netns: string;
  ifname: string;
  /** macvlan only: an ipvlan link has its parent's MAC. */
  mac?: string;
  mtu?: number;
  /** CIDR form. */
  addresses: string[];
  gateway4?: string;
  gateway6?: string;
}

/** An endpoint's link as read back inside its namespace. */
export interface SubLinkState {
  kind: string;
  up: boolean;
  mode?: string;
}

export interface SubLinkKernel {
  create(spec: SubLinkSpec, lap?: (stage: string) => void): Promise<void>;
  /** A link (or namespace) that is already gone is not an error. */
  remove(netns: string, ifname: string): Promise<void>;
  setUp(netns: string, ifname: string): Promise<void>;
  /** Undefined: no such link in the namespace. */
  read(netns: string, ifname: string): Promise<SubLinkState | undefined>;
  /** Why `driver` cannot be used on `parent` here (a kernel without it), or undefined. */
  unavailable(driver: SubLinkDriver, parent: string): Promise<string | undefined>;
}

function linkInfo(driver: SubLinkDriver, mode: string): Buffer {
  const data = driver === 'macvlan' ? attr(1, u32(MACVLAN_MODE[mode]!)) : attr(1, Buffer.from([IPVLAN_MODE[mode]!, 0]));
  return Buffer.concat([attr(IFLA_INFO_KIND, cstring(driver)), attr(IFLA_INFO_DATA, data)]);
}

/** One netlink request: a link of `parent` named `ifname`, inside the namespace open as `nsFd` (or on the host). */
async function newSubLink(spec: Pick<SubLinkSpec, 'driver' | 'parent' | 'mode' | 'ifname' | 'mac' | 'mtu'>, nsFd?: number): Promise<void> {
  const socket = openRtNetlink();
  try {
    const parent = await linkIndex(socket, spec.parent);
    if (parent === undefined) throw new NsdnsError('ERR_LINK', `parent interface ${spec.parent} does not exist on the host`);
    await socket.newLink({}, {
      ifname: spec.ifname, link: u32(parent),
      ...(spec.mac !== undefined && { address: macBytes(spec.mac) }),
      ...(spec.mtu !== undefined && { mtu: spec.mtu }),
      ...(nsFd !== undefined && { netNsFd: nsFd }),
      linkinfo: linkInfo(spec.driver, spec.mode),
    }, CREATE);
  } finally {
    socket.socket.close();
  }
}

async function create(spec: SubLinkSpec, lap?: (stage: string) => void): Promise<void> {
  checkLinkArgs({
    names: [spec.parent, spec.ifname], cidrs: spec.addresses, mac: spec.mac, netns: spec.netns, mtu: spec.mtu,
    ips: [spec.gateway4, spec.gateway6].filter((g): g is string => g !== undefined),
  });
  const ns = await open(spec.netns, 'r');
  try {
    await newSubLink(spec, ns.fd);
  } catch (err) {
    if (err instanceof NsdnsError) throw err;
    const why = netlinkCode(err) === 'EEXIST' ? `${spec.ifname} exists already inside the namespace (EEXIST)` : netlinkReason(err);
    throw new NsdnsError('ERR_LINK', `creating the ${spec.driver} link ${spec.ifname} of ${spec.parent}: ${why}`, { cause: err });
  } finally {
    await ns.close();
  }
  lap?.(`${spec.driver} link`);
  try {
    await configureInNamespace(spec);
  } catch (err) {
    await remove(spec.netns, spec.ifname).catch(() => {});
    throw err;
  }
  lap?.('addresses+routes in namespace');
}

async function remove(netns: string, ifname: string): Promise<void> {
  checkLinkArgs({ netns, names: [ifname] });
  const r = await run('nsenter', [`--net=${netns}`, '--', 'ip', 'link', 'del', ifname]);
  if (r.code === 0 || /Cannot find device|No such file|does not exist/.test(r.stderr)) return;
  throw new NsdnsError('ERR_LINK', `deleting ${ifname} inside ${netns}: ${r.error?.message ?? (firstLines(r.stderr) || 'no answer in time')}`);
}

async function read(netns: string, ifname: string): Promise<SubLinkState | undefined> {
  checkLinkArgs({ netns, names: [ifname] });
  const r = await run('nsenter', [`--net=${netns}`, '--', 'ip', '-j', '-d', 'link', 'show', 'dev', ifname]);
  if (r.code !== 0) {
    if (/does not exist|Cannot find device/.test(r.stderr)) return undefined;
    throw new NsdnsError('ERR_LINK', `reading ${ifname} inside ${netns}: ${r.error?.message ?? (firstLines(r.stderr) || 'no answer in time')}`);
  }
  const [link] = JSON.parse(r.stdout || '[]') as Array<{ flags?: string[]; linkinfo?: { info_kind?: string; info_data?: { mode?: string } } }>;
  if (!link) return undefined;
  return { kind: link.linkinfo?.info_kind ?? 'unknown', up: (link.flags ?? []).includes('UP'), ...(link.linkinfo?.info_data?.mode !== undefined && { mode: link.linkinfo.info_data.mode }) };
}

/** Tries the driver on the host with a throwaway link: the kernel loads its module on demand, or says it has none. */
async function unavailable(driver: SubLinkDriver, parent: string): Promise<string | undefined> {
  checkLinkArgs({ names: [parent] });
  const name = `nsprobe${randomBytes(3).toString('hex')}`;
  try {
    await newSubLink({ driver, parent, mode: driver === 'macvlan' ? 'bridge' : 'l2', ifname: name });
  } catch (err) {
    if (err instanceof NsdnsError) return undefined; // the parent's problem, told by the caller
    const code = netlinkCode(err);
    if (code === 'EOPNOTSUPP' || code === 'ENOTSUP' || code === 'ENOENT') return `${driver} is not available in this kernel (creating ${driver === 'ipvlan' ? 'an' : 'a'} ${driver} link failed: ${netlinkReason(err)}; modprobe ${driver} failed or the module is missing)`;
    return undefined;
  }
  const socket = openRtNetlink();
  try {
    await socket.delLink({}, { ifname: name }).catch(() => {});
  } finally {
    socket.socket.close();
  }
  return undefined;
}

async function setUp(netns: string, ifname: string): Promise<void> {
  checkLinkArgs({ netns, names: [ifname] });
  await inNamespace(netns, [{ op: 'up', ifname }]);
}

export const kernelSubLinks: SubLinkKernel = { create, remove, setUp, read, unavailable };
