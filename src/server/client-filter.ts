// Which clients a host listener answers. A resolver reachable from anywhere is an open resolver,
// a tool for amplification attacks; by default nsdns answers only loopback and the subnets the
// host itself is connected to, as dnsmasq's local-service does. Decisions are remembered per
// address, so the check costs a map lookup per datagram.
import os from 'node:os';
import ipaddr from 'ipaddr.js';

export type ClientFilter = (address: string) => boolean;

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** Loopback and every subnet of the host's own interfaces, as CIDRs. */
export function localSubnets(): string[] {
  const out = ['127.0.0.0/8', '::1/128'];
  for (const addresses of Object.values(os.networkInterfaces())) {
    for (const a of addresses ?? []) {
      if (a.internal || a.family === 'IPv6' && a.address.startsWith('fe80')) continue;
      out.push(a.cidr ?? `${a.address}/${a.family === 'IPv4' ? 32 : 128}`);
    }
  }
  return out;
}

/** Every address of the host's own interfaces, loopback included. */
export function hostAddresses(): string[] {
  return Object.values(os.networkInterfaces()).flatMap((list) => (list ?? []).map((a) => a.address));
}

export function clientFilter(cidrs: readonly string[]): ClientFilter {
  const ranges: Range[] = cidrs.map((c) => ipaddr.parseCIDR(c));
  const memo = new Map<string, boolean>();
  return (address) => {
    let allowed = memo.get(address);
    if (allowed === undefined) {
      allowed = matches(ranges, address);
      // Spoofed sources must not grow the memo without bound.
      if (memo.size >= 4096) memo.clear();
      memo.set(address, allowed);
    }
    return allowed;
  };
}

/**
 * A filter over `cidrs()`, read again at its first use after stale(): the host's subnets change
 * whenever a bridge comes or goes, and who may ask must not depend on when the daemon started.
 * Reading them at the next query instead of at every registry change keeps a burst of changes cheap.
 */
export function refreshingFilter(cidrs: () => readonly string[]): { filter: ClientFilter; stale(): void } {
  let current: ClientFilter | undefined;
  return {
    filter: (address) => (current ??= clientFilter(cidrs()))(address),
    stale: () => { current = undefined; },
  };
}

function matches(ranges: readonly Range[], address: string): boolean {
  if (!ipaddr.isValid(address)) return false;
  let addr = ipaddr.parse(address);
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) addr = (addr as ipaddr.IPv6).toIPv4Address();
  return ranges.some(([net, bits]) => net.kind() === addr.kind() && addr.match(net, bits));
}
