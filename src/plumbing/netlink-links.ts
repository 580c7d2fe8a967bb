// Host-side link changes over rtnetlink, in the daemon's own process: a bridge, a veth pair whose
// peer is created straight inside a namespace, deletion. Each is one or two netlink round trips
// where `ip` costs a process start. Callers validate names and addresses first.
import { open } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import { getSystemErrorMap } from 'node:util';
import ipaddr from 'ipaddr.js';

type Netlink = typeof import('netlink');
type RtSocket = import('netlink').RtNetlinkSocket;

let netlink: Netlink | undefined;
/** Loaded on first use: a resolver-only daemon never touches links. */
export function openRtNetlink(): RtSocket {
  netlink ??= createRequire(import.meta.url)('netlink') as Netlink;
  return netlink.createRtNetlink();
}

const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
export const CREATE = { flags: NLM_F_CREATE | NLM_F_EXCL };

// Attribute numbers from linux/if_link.h and linux/veth.h (stable kernel ABI).
const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
export const IFLA_INFO_KIND = 1;
export const IFLA_INFO_DATA = 2;
const IFLA_NET_NS_FD = 28;
const VETH_INFO_PEER = 1;
const IFINFOMSG_LENGTH = 16;

/** One netlink attribute: u16 length, u16 type, the payload padded to 4 bytes. */
export function attr(type: number, payload: Buffer): Buffer {
  const out = Buffer.alloc(4 + ((payload.length + 3) & ~3));
  out.writeUInt16LE(4 + payload.length, 0);
  out.writeUInt16LE(type, 2);
  payload.copy(out, 4);
  return out;
}
export const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
export const cstring = (s: string) => Buffer.from(s + '\0', 'latin1');

/** A MAC in aa:bb:cc:dd:ee:ff form as its 6 bytes. */
export function macBytes(mac: string): Buffer {
  return Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));
}

/** An IP address (validated before) as its 4 or 16 bytes. */
export function ipBytes(ip: string): Buffer {
  return Buffer.from(ipaddr.parse(ip).toByteArray());
}

/** "Request rejected: EEXIST" from the netlink package as "file already exists (EEXIST)". */
export function netlinkReason(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  // A system error (opening the namespace) by its code too: its message would repeat the path.
  const system = (err as { code?: unknown } | undefined)?.code;
  const code = /Request rejected: (E[A-Z0-9]+)/.exec(text)?.[1] ?? (typeof system === 'string' && /^E[A-Z0-9]+$/.test(system) ? system : undefined);
  if (!code) return text;
  const errno = (osConstants.errno as Record<string, number>)[code];
  const description = errno === undefined ? undefined : getSystemErrorMap().get(-errno)?.[1];
  return description ? `${description} (${code})` : code;
}

export function netlinkCode(err: unknown): string | undefined {
  return /Request rejected: (E[A-Z0-9]+)/.exec(err instanceof Error ? err.message : String(err))?.[1];
}

/** The index of a host link by name, or undefined when there is none. */
export async function linkIndex(socket: RtSocket, name: string): Promise<number | undefined> {
  try {
    const [link] = await socket.getLink({}, { ifname: name });
    return link?.data.index;
  } catch (err) {
    if (netlinkCode(err) === 'ENODEV') return undefined;
    throw err;
  }
}

/** Adds addresses to a link (IPv6 without duplicate address detection, as `ip ... nodad`). */
export async function addAddresses(socket: RtSocket, index: number, cidrs: readonly string[]): Promise<void> {
  for (const cidr of cidrs) {
    const [ip, len] = cidr.split('/');
    const bytes = ipBytes(ip);
    const v6 = bytes.length === 16;
    const prefix = Number(len);
    const attrs: import('netlink').rt.AddressAttrs = { local: bytes, address: bytes };
    if (!v6 && prefix < 31) { // the broadcast address, as `ip addr add` gives one
      const host = 32 - prefix;
      const value = (bytes.readUInt32BE(0) | (host === 32 ? 0xffffffff : (2 ** host - 1))) >>> 0;
      attrs.broadcast = Buffer.alloc(4);
      attrs.broadcast.writeUInt32BE(value);
    }
    await socket.newAddress({ family: v6 ? 10 : 2, prefixlen: prefix, index, flags: v6 ? { nodad: true } : {} }, attrs, CREATE);
  }
}

/** A bridge, up, with its MTU, addresses and (given) MAC; removed again when a later part fails. */
export async function netlinkCreateBridge(name: string, addresses: readonly string[], mtu?: number, mac?: string): Promise<void> {
  const socket = openRtNetlink();
  try {
    await socket.newLink({ flags: { up: true }, change: { up: true } },
      { ifname: name, ...(mtu ? { mtu } : {}), ...(mac ? { address: macBytes(mac) } : {}), linkinfo: attr(IFLA_INFO_KIND, cstring('bridge')) }, CREATE);
    try {
      const index = await linkIndex(socket, name);
      if (index === undefined) throw new Error(`bridge ${name} vanished right after it was created`);
      await addAddresses(socket, index, addresses);
    } catch (err) {
      // Only a bridge made here is removed: EEXIST above means someone else's, left alone.
      await socket.delLink({}, { ifname: name }).catch(() => {});
      throw err;
    }
  } finally {
    socket.socket.close();
  }
}

export interface VethSpec {
  hostIf: string;
  bridge: string;
  netns: string;
  ifname: string;
  mac: string;
  mtu?: number;
}

/**
 * A veth pair in one request: the host end enslaved to the bridge and up, the peer created
 * directly inside the namespace (IFLA_NET_NS_FD) with its final name, MAC and MTU.
 * `step` is told which part is being done, for the caller's error message.
 */
export async function netlinkCreateVeth(spec: VethSpec, step: (what: string) => void): Promise<void> {
  const socket = openRtNetlink();
  step('opening the namespace');
  const ns = await open(spec.netns, 'r');
  try {
    step(`finding bridge ${spec.bridge}`);
    const master = await linkIndex(socket, spec.bridge);
    if (master === undefined) throw new Error('no such bridge');
    const peer = Buffer.concat([
      Buffer.alloc(IFINFOMSG_LENGTH), // struct ifinfomsg of the peer, all zero
      attr(IFLA_IFNAME, cstring(spec.ifname)),
      attr(IFLA_ADDRESS, macBytes(spec.mac)),
      ...(spec.mtu ? [attr(IFLA_MTU, u32(spec.mtu))] : []),
      attr(IFLA_NET_NS_FD, u32(ns.fd)),
    ]);
    step(`creating the veth pair ${spec.hostIf} / ${spec.ifname}`);
    await socket.newLink({ flags: { up: true }, change: { up: true } }, {
      ifname: spec.hostIf, master, ...(spec.mtu ? { mtu: spec.mtu } : {}),
      linkinfo: Buffer.concat([attr(IFLA_INFO_KIND, cstring('veth')), attr(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer))]),
    }, CREATE);
  } finally {
    socket.socket.close();
    await ns.close();
  }
}

/** Deletes a host link by name; returns false when there was none. */
export async function netlinkDeleteLink(name: string): Promise<boolean> {
  const socket = openRtNetlink();
  try {
    await socket.delLink({}, { ifname: name });
    return true;
  } catch (err) {
    if (netlinkCode(err) === 'ENODEV') return false;
    throw err;
  } finally {
    socket.socket.close();
  }
}

/** Puts a host link on `bridge` (when given) and sets it up, in one RTM_SETLINK. */
export async function netlinkAttachLink(name: string, bridge?: string): Promise<void> {
  const socket = openRtNetlink();
  try {
    const index = await linkIndex(socket, name);
    if (index === undefined) throw new Error(`no link ${name}`);
    const master = bridge === undefined ? undefined : await linkIndex(socket, bridge);
    if (bridge !== undefined && master === undefined) throw new Error(`no bridge ${bridge}`);
    await socket.setLink({ index, flags: { up: true }, change: { up: true } }, master === undefined ? {} : { master });
  } finally {
    socket.socket.close();
  }
}
