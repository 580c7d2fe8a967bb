// Address arithmetic for networks: subnets, overlaps, the default pools, and picking the next free
// address. Pure: callers say what is taken.
import ipaddr from 'ipaddr.js';

type Addr = ipaddr.IPv4 | ipaddr.IPv6;

export interface Cidr {
  readonly kind: 'ipv4' | 'ipv6';
  readonly first: bigint;
  readonly last: bigint;
  readonly prefix: number;
  readonly text: string;
}

const bits = (kind: Cidr['kind']) => (kind === 'ipv4' ? 32 : 128);

export function toBigInt(addr: Addr): bigint {
  return addr.toByteArray().reduce((n, b) => (n << 8n) | BigInt(b), 0n);
}

export function fromBigInt(n: bigint, kind: Cidr['kind']): string {
  const bytes: number[] = [];
  for (let i = 0; i < bits(kind) / 8; i++) {
    bytes.unshift(Number(n & 0xffn));
    n >>= 8n;
  }
  return ipaddr.fromByteArray(bytes).toString();
}

/** Parses a CIDR; the host bits are cleared (10.1.2.3/16 → 10.1.0.0/16). */
export function parseCidr(text: string): Cidr {
  const [addr, prefix] = ipaddr.parseCIDR(text);
  const kind = addr.kind();
  const size = bits(kind);
  const hostBits = BigInt(size - prefix);
  const first = (toBigInt(addr) >> hostBits) << hostBits;
  const last = first + (1n << hostBits) - 1n;
  return { kind, first, last, prefix, text: `${fromBigInt(first, kind)}/${prefix}` };
}

/** True when `text` has bits set after its prefix (10.1.2.3/16): docker refuses such a subnet. */
export function hasHostBits(text: string): boolean {
  const [addr] = ipaddr.parseCIDR(text);
  return toBigInt(addr) !== parseCidr(text).first;
}

export function isCidr(text: string): boolean {
  try {
    ipaddr.parseCIDR(text);
    return true;
  } catch {
    return false;
  }
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return a.kind === b.kind && a.first <= b.last && b.first <= a.last;
}

export function contains(net: Cidr, address: string): boolean {
  const addr = ipaddr.parse(address);
  if (addr.kind() !== net.kind) return false;
  const n = toBigInt(addr);
  return n >= net.first && n <= net.last;
}

export function canonical(address: string): string {
  return ipaddr.parse(address).toString();
}

/** The first usable host address: the default gateway. */
export function firstHost(net: Cidr): string {
  return fromBigInt(net.first + 1n, net.kind);
}

/**
 * The lowest free address of `range` (default: the whole subnet), skipping the network and (IPv4)
 * broadcast addresses and everything in `taken`.
 */
export function allocate(subnet: Cidr, taken: ReadonlySet<string>, range: Cidr = subnet): string | undefined {
  const lowest = range.first > subnet.first ? range.first : subnet.first + 1n;
  const highest = subnet.kind === 'ipv4' ? (range.last < subnet.last ? range.last : subnet.last - 1n) : range.last;
  // Bounded scan: a /16 has 65k addresses; bigger IPv6 ranges stop long before exhaustion matters.
  const limit = lowest + 1_000_000n;
  for (let n = lowest; n <= highest && n < limit; n++) {
    const candidate = fromBigInt(n, subnet.kind);
    if (!taken.has(candidate)) return candidate;
  }
  return undefined;
}

export interface Pool {
  base: string;
  size: number;
}

/**
 * Docker's default address pools for user networks: 172.18-31.0.0/16, then 192.168.0.0/16 in /20
 * blocks. 172.17.0.0/16 is left out, as docker leaves it to docker0: a host that runs docker
 * later (or has it stopped, its bridge down) would otherwise get two networks on one subnet.
 */
export const DEFAULT_POOLS: Pool[] = [
  { base: '172.18.0.0/15', size: 16 }, { base: '172.20.0.0/14', size: 16 },
  { base: '172.24.0.0/13', size: 16 }, { base: '192.168.0.0/16', size: 20 },
];

/** The first block of the pools that overlaps nothing in `taken`. */
export function pickSubnet(pools: readonly Pool[], taken: readonly Cidr[]): string | undefined {
  for (const pool of pools) {
    const base = parseCidr(pool.base);
    const step = 1n << BigInt(bits(base.kind) - pool.size);
    for (let first = base.first; first + step - 1n <= base.last; first += step) {
      const candidate = parseCidr(`${fromBigInt(first, base.kind)}/${pool.size}`);
      if (!taken.some((t) => overlaps(t, candidate))) return candidate.text;
    }
  }
  return undefined;
}

/** A locally administered MAC derived from an IPv4 address, as Docker does (02:42:a:b:c:d). */
export function macFor(ipv4: string | undefined, random: () => number = Math.random): string {
  const tail = ipv4 ? ipaddr.parse(ipv4).toByteArray() : Array.from({ length: 4 }, () => Math.floor(random() * 256));
  return ['02', '42', ...tail.map((b) => b.toString(16).padStart(2, '0'))].join(':');
}
