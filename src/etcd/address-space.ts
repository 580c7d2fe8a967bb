// The host addresses of an overlay network's IPv4 subnet, for the cluster-wide allocator: which
// addresses may be claimed, and the first free one. Pure: the caller says what is taken.
// (plumbing/ipam.ts does the same arithmetic for bridges; etcd/ sits below plumbing and cannot
// import it, and an overlay subnet is one IPv4 CIDR, so 32-bit numbers are enough here.)
import ipaddr from 'ipaddr.js';
import { NsdnsError } from '../errors.js';

export interface AddressSpace {
  /** The subnet as `A.B.C.D/N`, host bits cleared. */
  readonly subnet: string;
  /** The first and last host address as numbers: the network and broadcast addresses are outside. */
  readonly first: number;
  readonly last: number;
}

/** Below /30 there is no host address besides the network and broadcast addresses (an overlay subnet is /30 or larger). */
const MAX_PREFIX = 30;

const toNumber = (addr: ipaddr.IPv4): number => addr.octets.reduce((n, octet) => n * 256 + octet, 0);
const toText = (n: number): string => `${Math.floor(n / 2 ** 24) % 256}.${Math.floor(n / 2 ** 16) % 256}.${Math.floor(n / 2 ** 8) % 256}.${n % 256}`;

/** The host addresses of `subnet`, or ERR_BAD_REQUEST when it is not an IPv4 CIDR of /30 or larger. */
export function addressSpace(subnet: string): AddressSpace {
  let parsed: [ipaddr.IPv4, number];
  try {
    parsed = ipaddr.IPv4.parseCIDR(subnet);
  } catch {
    throw new NsdnsError('ERR_BAD_REQUEST', `subnet ${quote(subnet)} is not an IPv4 CIDR`);
  }
  const [addr, bits] = parsed;
  if (bits > MAX_PREFIX) throw new NsdnsError('ERR_BAD_REQUEST', `subnet ${quote(subnet)} has no room for endpoints (a /${MAX_PREFIX} or larger is needed)`);
  const size = 2 ** (32 - bits);
  const network = toNumber(addr) - (toNumber(addr) % size);
  return { subnet: `${toText(network)}/${bits}`, first: network + 1, last: network + size - 2 };
}

/**
 * `text` as a host address of `space` in its canonical form, or ERR_BAD_REQUEST saying why not:
 * not dotted IPv4, outside the subnet, its network or broadcast address, or one of `reserved`.
 */
export function hostAddress(space: AddressSpace, text: string, reserved: ReadonlySet<string> = new Set()): string {
  const address = canonicalIpv4(text);
  if (address === undefined) throw new NsdnsError('ERR_BAD_REQUEST', `${quote(text)} is not an IPv4 address (four decimal parts)`);
  const n = toNumber(ipaddr.IPv4.parse(address));
  if (n < space.first - 1 || n > space.last + 1) throw new NsdnsError('ERR_BAD_REQUEST', `address ${address} is not in subnet ${space.subnet}`);
  if (n === space.first - 1) throw new NsdnsError('ERR_BAD_REQUEST', `address ${address} is the network address of ${space.subnet}`);
  if (n === space.last + 1) throw new NsdnsError('ERR_BAD_REQUEST', `address ${address} is the broadcast address of ${space.subnet}`);
  if (reserved.has(address)) throw new NsdnsError('ERR_BAD_REQUEST', `address ${address} is reserved on this network (a gateway or auxiliary address)`);
  return address;
}

/** The lowest host address of `space` for which `taken` is false, or undefined when there is none. */
export function firstFree(space: AddressSpace, taken: (address: string) => boolean): string | undefined {
  for (let n = space.first; n <= space.last; n++) {
    const candidate = toText(n);
    if (!taken(candidate)) return candidate;
  }
  return undefined;
}

/** The canonical dotted form of an IPv4 address written exactly that way, else undefined (no octal, no short forms). */
export function canonicalIpv4(text: string): string | undefined {
  if (typeof text !== 'string' || text.length > 15 || !ipaddr.IPv4.isValidFourPartDecimal(text)) return undefined;
  const address = ipaddr.IPv4.parse(text).toString();
  return address === text ? address : undefined;
}

/** A person's input in a message: quoted, cut short, never raw. */
function quote(text: unknown): string {
  return JSON.stringify(String(text).slice(0, 64));
}
