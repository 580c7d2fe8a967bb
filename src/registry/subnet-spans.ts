// Whether two networks' subnets overlap, cheaply enough to check every network against every
// other at each registry install (1 000 files at start): each subnet becomes the first and last
// address of its range as fixed-width hex, so an overlap is two string compares.
import ipaddr from 'ipaddr.js';
import type { Network } from './types.js';

/** A subnet as the first and last address of its range, fixed-width hex: overlap is two string compares. */
export interface Span { subnet: string; first: string; last: string }

function spanOf(cidr: string): Span | undefined {
  try {
    const [addr, bits] = ipaddr.parseCIDR(cidr);
    const bytes = addr.toByteArray();
    // A family prefix: an IPv4 span never overlaps an IPv6 one.
    let first = addr.kind() === 'ipv4' ? '4' : '6';
    let last = first;
    bytes.forEach((b, i) => {
      const keep = Math.max(0, Math.min(8, bits - i * 8));
      const mask = (0xff << (8 - keep)) & 0xff;
      first += (b & mask).toString(16).padStart(2, '0');
      last += ((b & mask) | (~mask & 0xff)).toString(16).padStart(2, '0');
    });
    return { subnet: cidr, first, last };
  } catch {
    return undefined;
  }
}

/** Each network's subnets as spans, computed once (a check runs against every network at every install). */
const spans = new WeakMap<Network, Span[]>();
export function spansOf(network: Network): Span[] {
  let list = spans.get(network);
  if (!list) {
    list = network.subnets.map((s) => spanOf(s.subnet)).filter((x): x is Span => x !== undefined);
    spans.set(network, list);
  }
  return list;
}

export function overlaps(a: Span, b: Span): boolean {
  return a.first[0] === b.first[0] && a.first <= b.last && b.first <= a.last;
}
