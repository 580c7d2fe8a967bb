// The kernel side of an overlay network's local presence, over rtnetlink: the VXLAN device on the
// network's bridge, and the forwarding entries for other hosts' endpoints (a MAC to the host's
// underlay address in the VXLAN device's own forwarding database, and a permanent neighbour entry
// so the device answers ARP for that endpoint itself: `proxy`). Learning is off: every entry is
// programmed from etcd, never learnt from traffic, so a host that is gone leaves nothing behind
// once its endpoints leave etcd. Callers validate names and addresses first (checkLinkArgs).
import { NsdnsError } from '../errors.js';
import { checkLinkArgs } from './links.js';
import { attr, CREATE, cstring, IFLA_INFO_DATA, IFLA_INFO_KIND, ipBytes, linkIndex, macBytes, netlinkCode, netlinkReason, openRtNetlink, u32 } from './netlink-links.js';

/** VXLAN's IANA port (RFC 7348 section 5). */
export const VXLAN_PORT = 4789;

// From linux/if_link.h (stable kernel ABI).
const IFLA_VXLAN_ID = 1;
const IFLA_VXLAN_LOCAL = 4;
const IFLA_VXLAN_LEARNING = 7;
const IFLA_VXLAN_PROXY = 11;
const IFLA_VXLAN_PORT = 15;
const IFLA_VXLAN_LOCAL6 = 17;
const AF_INET = 2;
const AF_BRIDGE = 7;
const NLM_F_REPLACE = 0x100;
const REPLACE = { flags: 0x400 | NLM_F_REPLACE };

export interface VxlanSpec {
  name: string;
  vni: number;
  /** This host's underlay address: the source of its VXLAN packets. */
  local: string;
  bridge: string;
  mtu: number;
}

/** One other host's endpoint, as this host's VXLAN device must know it. */
export interface PeerEntry {
  mac: string;
  /** The underlay address of the endpoint's host. */
  host: string;
  /** The endpoint's IPv4 addresses (neighbour entries). */
  ips: readonly string[];
}

const u8 = (n: number) => Buffer.from([n]);
const be16 = (n: number) => { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b; };

/** The VXLAN device, up, on `bridge`: id, UDP 4789, `local`, no learning, ARP answered from its neighbour table. */
export async function createVxlan(spec: VxlanSpec): Promise<void> {
  checkLinkArgs({ names: [spec.name, spec.bridge], ips: [spec.local], mtu: spec.mtu });
  const socket = openRtNetlink();
  try {
    const master = await linkIndex(socket, spec.bridge);
    if (master === undefined) throw new Error(`no bridge ${spec.bridge}`);
    const local = ipBytes(spec.local);
    const data = Buffer.concat([
      attr(IFLA_VXLAN_ID, u32(spec.vni)),
      attr(local.length === 4 ? IFLA_VXLAN_LOCAL : IFLA_VXLAN_LOCAL6, local),
      attr(IFLA_VXLAN_LEARNING, u8(0)),
      attr(IFLA_VXLAN_PROXY, u8(1)),
      attr(IFLA_VXLAN_PORT, be16(VXLAN_PORT)),
    ]);
    await socket.newLink({ flags: { up: true }, change: { up: true } }, {
      ifname: spec.name, master, mtu: spec.mtu,
      linkinfo: Buffer.concat([attr(IFLA_INFO_KIND, cstring('vxlan')), attr(IFLA_INFO_DATA, data)]),
    }, CREATE);
  } catch (err) {
    throw new NsdnsError('ERR_LINK', `creating VXLAN device ${spec.name} (id ${spec.vni}): ${netlinkReason(err)}`, { cause: err });
  } finally {
    socket.socket.close();
  }
}

/** Key of one entry as applyPeers compares them. */
const fdbKey = (mac: string, host: string) => `${mac.toLowerCase()} ${host}`;
const neighKey = (ip: string, mac: string) => `${ip} ${mac.toLowerCase()}`;

/** What the device holds now: its permanent forwarding entries with a destination, and its permanent neighbours. */
async function readPeers(socket: import('netlink').RtNetlinkSocket, index: number): Promise<{ fdb: Set<string>; neigh: Set<string> }> {
  const fdb = new Set<string>();
  const neigh = new Set<string>();
  const text = (b: Buffer | undefined) => (b === undefined ? undefined : b.length === 4 ? [...b].join('.') : b.length === 16 ? ipv6Text(b) : undefined);
  const mac = (b: Buffer | undefined) => (b?.length === 6 ? [...b].map((x) => x.toString(16).padStart(2, '0')).join(':') : undefined);
  // One dump at a time: the netlink package cannot interleave two on one socket.
  for (const m of await socket.getNeighbors({ family: AF_BRIDGE })) {
    if (m.data.ifindex !== index || !m.data.state?.permanent) continue;
    const [lladdr, dst] = [mac(m.attrs.lladdr), text(m.attrs.dst)];
    if (lladdr && dst) fdb.add(fdbKey(lladdr, dst));
  }
  for (const m of await socket.getNeighbors({ family: AF_INET })) {
    if (m.data.ifindex !== index || !m.data.state?.permanent) continue;
    const [dst, lladdr] = [text(m.attrs.dst), mac(m.attrs.lladdr)];
    if (dst && lladdr) neigh.add(neighKey(dst, lladdr));
  }
  return { fdb, neigh };
}

function ipv6Text(b: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  return groups.join(':');
}

/**
 * Makes the device's entries exactly `peers`: what is missing is added, what is there and no
 * longer wanted removed (the kernel is read first, so a change by hand is put right too). Returns
 * how many entries were added and removed; a device that is gone is no error (nothing to hold).
 * An entry the kernel refuses does not stop the others: the error, thrown at the end, names how
 * many failed and the first reason.
 */
export async function applyPeers(vxlan: string, peers: readonly PeerEntry[]): Promise<{ added: number; removed: number }> {
  checkLinkArgs({ names: [vxlan], ips: peers.flatMap((p) => [p.host, ...p.ips]) });
  for (const p of peers) checkLinkArgs({ mac: p.mac });
  const socket = openRtNetlink();
  try {
    const index = await linkIndex(socket, vxlan);
    if (index === undefined) return { added: 0, removed: 0 };
    const have = await readPeers(socket, index);
    const wantFdb = new Map(peers.map((p) => [fdbKey(p.mac, p.host), p]));
    const wantNeigh = new Map(peers.flatMap((p) => p.ips.filter((ip) => !ip.includes(':')).map((ip) => [neighKey(ip, p.mac), { ip, mac: p.mac }] as const)));
    let added = 0;
    let removed = 0;
    const refused: unknown[] = [];
    const attempt = async (work: () => Promise<unknown>): Promise<boolean> => {
      try {
        await work();
        return true;
      } catch (err) {
        refused.push(err);
        return false;
      }
    };
    const fdbOf = (mac: string, host: string) => [{ family: AF_BRIDGE, ifindex: index, state: { permanent: true as const }, flags: { self: true as const } }, { lladdr: macBytes(mac), dst: ipBytes(host) }] as const;
    const neighOf = (ip: string, mac: string) => [{ family: AF_INET, ifindex: index, state: { permanent: true as const } }, { dst: ipBytes(ip), lladdr: macBytes(mac) }] as const;
    for (const key of have.fdb) {
      if (wantFdb.has(key)) continue;
      const [mac, host] = key.split(' ');
      if (await attempt(() => ignoreGone(socket.delNeighbor(...fdbOf(mac, host))))) removed++;
    }
    for (const key of have.neigh) {
      if (wantNeigh.has(key)) continue;
      const [ip, mac] = key.split(' ');
      if (await attempt(() => ignoreGone(socket.delNeighbor(...neighOf(ip, mac))))) removed++;
    }
    for (const [key, p] of wantFdb) {
      if (have.fdb.has(key)) continue;
      // Replace: a MAC that moved to another host has one destination, the new one.
      if (await attempt(() => socket.newNeighbor(...fdbOf(p.mac, p.host), REPLACE))) added++;
    }
    for (const [key, n] of wantNeigh) {
      if (have.neigh.has(key)) continue;
      if (await attempt(() => socket.newNeighbor(...neighOf(n.ip, n.mac), REPLACE))) added++;
    }
    if (refused.length > 0) throw new Error(`${refused.length} entr${refused.length === 1 ? 'y' : 'ies'} refused (added ${added}, removed ${removed}); the first: ${netlinkReason(refused[0])}`);
    return { added, removed };
  } catch (err) {
    throw new NsdnsError('ERR_LINK', `forwarding entries of ${vxlan}: ${netlinkReason(err)}`, { cause: err });
  } finally {
    socket.socket.close();
  }
}

/** An entry deleted meanwhile (or with its device) is what was wanted. */
async function ignoreGone(work: Promise<unknown>): Promise<void> {
  try {
    await work;
  } catch (err) {
    const code = netlinkCode(err);
    if (code !== 'ENOENT' && code !== 'ENODEV') throw err;
  }
}
