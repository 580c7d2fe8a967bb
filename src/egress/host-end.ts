// Where a namespace's traffic enters the host, for endpoints whose link nsdns did not make (a
// registry file's): the host end of the veth that holds the endpoint's address. Enforcement needs
// that interface to tell the namespace's packets from others' (egress-rules.ts). Found by reading
// the namespace's links (`nsenter ip -j -d addr`), the host's veths, and the host's id for the
// namespace: the host veth whose peer is, by that id, in the namespace at the right index. The
// ifindex pair alone is not enough: indexes are per namespace, and small ones repeat.
//
// Lookups cost processes, so they run when a namespace's endpoints change or the path names
// another namespace (deleted and made again), never per query; one not found is tried again from
// the reaper, at a growing interval (not at every registry change: other tenants' changes wait).
import path from 'node:path';
import { execa } from 'execa';
import { namespaceIdentity } from '../namespace-identity.js';
import { isIfname } from '../registry/fields.js';
import { canonicalAddress } from './egress-rules.js';

/** An endpoint's host end (routed: not a bridge port), or why it has none nsdns can enforce on. */
export type HostEnd = { hostIf: string; routed: boolean } | { reason: string };

export interface EndpointAddresses { ipv4: readonly string[]; ipv6: readonly string[] }

/** The fields of `ip -j -d link|addr` read here; anything else is ignored. */
interface IpLink {
  ifindex?: unknown; ifname?: unknown; link_index?: unknown; link_netnsid?: unknown; master?: unknown;
  linkinfo?: { info_kind?: unknown; info_slave_kind?: unknown }; addr_info?: Array<{ local?: unknown }>;
}

const NETNS_DIR = '/run/netns';

/**
 * Pure: each endpoint's host end, from the links inside the namespace (`ip -j -d addr`), the
 * host's veths (`ip -j -d link show type veth`) and the host's id for the namespace (undefined when
 * it has none: no link of the host has its peer there).
 */
export function hostEndsOf(inside: unknown, hostVeths: unknown, nsid: number | undefined, endpoints: readonly EndpointAddresses[]): HostEnd[] {
  const links = Array.isArray(inside) ? (inside as IpLink[]) : [];
  const veths = Array.isArray(hostVeths) ? (hostVeths as IpLink[]) : [];
  return endpoints.map((e) => {
    const wanted = new Set([...e.ipv4, ...e.ipv6].flatMap((a) => canonicalAddress(a)?.text ?? []));
    if (wanted.size === 0) return { reason: 'the endpoint has no address to find its link by' };
    const holding = links.filter((l) => Array.isArray(l?.addr_info) && l.addr_info.some((a) => typeof a?.local === 'string' && wanted.has(canonicalAddress(a.local)?.text ?? '')));
    if (holding.length === 0) return { reason: 'no interface in the namespace holds its address' };
    // Every link that holds the address, the first that is a veth to the host taken: the namespace
    // can put its own address on other links too (lo, a dummy, a veth pair of its own).
    let first: HostEnd | undefined;
    for (const link of holding) {
      const end = hostEndOf(link, veths, nsid);
      if ('hostIf' in end) return end;
      first ??= end;
    }
    return first!;
  });
}

/**
 * Pure: the host's veths whose peer is in the namespace the host knows by `nsid`, that nsdns can
 * enforce on. Read from the host's side alone: what the namespace does to its own links and
 * addresses (root in it can take its address off its veth, or put it on a link of its own that
 * seems to lead elsewhere) does not change them, and every packet it sends to the host passes one.
 */
export function hostVethsInto(hostVeths: unknown, nsid: number | undefined): Array<{ hostIf: string; routed: boolean }> {
  if (nsid === undefined || !Array.isArray(hostVeths)) return [];
  return (hostVeths as IpLink[]).flatMap((h) => {
    if (h?.link_netnsid !== nsid || kindOf(h) !== 'veth') return [];
    const end = asHostEnd(h);
    return 'hostIf' in end ? [end] : [];
  });
}

/** The host end of `link` (a link inside the namespace), or why it has none. */
function hostEndOf(link: IpLink, veths: readonly IpLink[], nsid: number | undefined): HostEnd {
  const kind = kindOf(link);
  if (kind !== 'veth') return { reason: `its address is on a ${kind} link, not a veth: its traffic need not pass the host's firewall` };
  if (typeof link.link_netnsid !== 'number') return { reason: "its veth's peer is in the namespace itself" };
  const peer = nsid === undefined ? undefined : veths.find((h) => h?.link_netnsid === nsid && h.link_index === link.ifindex && h.ifindex === link.link_index && kindOf(h) === 'veth');
  if (peer === undefined) return { reason: "its veth's peer is not in the host's namespace" };
  return asHostEnd(peer);
}

/** A host veth (its peer in the namespace) as a host end, or why nsdns cannot enforce on it. */
function asHostEnd(peer: IpLink): HostEnd {
  if (typeof peer.ifname !== 'string' || !isIfname(peer.ifname)) return { reason: "its veth's host end has a name nsdns does not accept" };
  // A port of anything but a Linux bridge (Open vSwitch, a bond) may be switched past netfilter.
  if (peer.master !== undefined && peer.linkinfo?.info_slave_kind !== 'bridge') return { reason: "its veth's host end is a port of a device other than a Linux bridge: its traffic need not pass the host's firewall" };
  return { hostIf: peer.ifname, routed: peer.master === undefined };
}

/** The link's kind as the kernel says it, or a word for an unusual one (it ends up in messages). */
function kindOf(link: IpLink): string {
  const kind = link.linkinfo?.info_kind;
  if (kind === undefined) return 'plain';
  return typeof kind === 'string' && /^[a-z0-9_-]{1,16}$/.test(kind) ? kind : 'unknown';
}

/** The host's id for the namespace named `name` in `ip -j netns list`. */
export function nsidOf(list: unknown, name: string): number | undefined {
  if (!Array.isArray(list)) return undefined;
  const id = (list as Array<{ name?: unknown; id?: unknown }>).find((n) => n?.name === name)?.id;
  return typeof id === 'number' && Number.isInteger(id) && id >= 0 ? id : undefined;
}

export type Run = (file: string, args: readonly string[]) => Promise<string>;

const run: Run = async (file, args) => (await execa(file, args, { timeout: 5_000, maxBuffer: 64 * 1024 * 1024 })).stdout;

/** The host's side, the same for every namespace looked up at one time: its veths, and its ids for namespaces. */
export interface HostView { veths: unknown; ids: unknown }

export async function readHostView(exec: Run = run): Promise<HostView> {
  // Listed before the ids: listing a veth whose peer is elsewhere gives the peer's namespace an id.
  const veths = JSON.parse(await exec('ip', ['-j', '-d', 'link', 'show', 'type', 'veth']) || '[]');
  const ids = JSON.parse(await exec('ip', ['-j', 'netns', 'list']) || '[]');
  return { veths, ids };
}

export type FindHostEnds = (netns: string, endpoints: readonly EndpointAddresses[], host: () => Promise<HostView>) => Promise<HostEnd[]>;

/** Each endpoint's host end in the namespace at `netns` (a path the registry schema accepted). */
export async function findHostEnds(netns: string, endpoints: readonly EndpointAddresses[], host: () => Promise<HostView> = () => readHostView(), exec: Run = run): Promise<HostEnd[]> {
  const all = (reason: string) => endpoints.map(() => ({ reason }));
  // The host's id for a namespace is asked by name: only /run/netns/NAME has one here.
  if (path.dirname(netns) !== NETNS_DIR) return all(`only namespaces under ${NETNS_DIR} are looked up`);
  try {
    const inside = JSON.parse(await exec('nsenter', [`--net=${netns}`, 'ip', '-j', '-d', 'addr', 'show']));
    const { veths, ids } = await host();
    return hostEndsOf(inside, veths, nsidOf(ids, path.basename(netns)), endpoints);
  } catch {
    // The reason is ours: the command's output may carry anything.
    return all('its links could not be read');
  }
}

/** The first wait before a namespace with an endpoint not found is looked up again; it doubles up to RETRY_MAX_MS. */
const RETRY_FIRST_MS = 5_000;
const RETRY_MAX_MS = 60_000;

interface Looked {
  /** Which namespace the path named at the lookup. */
  identity: string | undefined;
  /** Each endpoint's host end by its addresses. */
  ends: Map<string, HostEnd>;
  /** An endpoint was not found at the last lookup: looked up again from retryAt. */
  unresolved: boolean;
  retryAt: number;
  backoffMs: number;
  /** A host end found is gone from the host: looked up again at the next refresh. */
  stale: boolean;
  /** The host's veths into the namespace (hostVethsInto), as of the last host view read. */
  into: Array<{ hostIf: string; routed: boolean }>;
}

/**
 * The host ends of governed namespaces, looked up once per namespace and its endpoints. A host end
 * once found is kept while a later lookup finds none (the namespace made again and its veth not
 * yet, a read that failed, the path deleted while the namespace lives on): a governed namespace
 * is never let go because a lookup came too early or failed. Its source addresses keep it
 * governed meanwhile, and it is looked up again, with a growing wait, until it is found.
 */
export class HostEnds {
  private readonly known = new Map<string, Looked>();
  /** The host's links (names, indexes, peers' namespace ids) when last noted; a change means its veths are read again. */
  private links: string | undefined;
  private linksChanged = false;

  constructor(private readonly find: FindHostEnds = findHostEnds, private readonly readHost: () => Promise<HostView> = () => readHostView()) {}

  /**
   * Looks up the namespaces of `wanted` (path → its endpoints without a known host end) that are
   * new, whose endpoints changed, whose path names another namespace now, whose host end is gone,
   * or whose last look missed one and whose wait is over; forgets the others. Says which
   * namespaces keep a host end found before because this lookup found none.
   */
  async refresh(wanted: ReadonlyMap<string, readonly EndpointAddresses[]>, now = Date.now()): Promise<Array<{ netns: string; reason: string }>> {
    const kept: Array<{ netns: string; reason: string }> = [];
    for (const netns of [...this.known.keys()]) if (!wanted.has(netns)) this.known.delete(netns);
    // Read once for all the namespaces looked up now, and only if one is (or the host's links changed).
    let view: Promise<HostView> | undefined;
    const host = () => (view ??= this.readHost());
    let lookedUp = false;
    for (const [netns, endpoints] of wanted) {
      const identity = namespaceIdentity(netns);
      const had = this.known.get(netns);
      const same = had !== undefined && had.identity === identity && !had.stale && endpoints.every((e) => had.ends.has(keyOf(e)));
      if (same && (!had.unresolved || now < had.retryAt)) continue;
      lookedUp = true;
      const found = identity === undefined ? endpoints.map(() => ({ reason: 'the namespace does not exist' })) : await this.find(netns, endpoints, host);
      const ends = new Map<string, HostEnd>();
      let unresolved = false;
      endpoints.forEach((e, i) => {
        const end = found[i] ?? { reason: 'not looked up' };
        const before = had?.ends.get(keyOf(e));
        if (!('hostIf' in end)) unresolved = true;
        const keep = !('hostIf' in end) && before !== undefined && 'hostIf' in before;
        if (keep) kept.push({ netns, reason: end.reason });
        ends.set(keyOf(e), keep ? before : end);
      });
      const backoffMs = unresolved && had?.unresolved ? Math.min(had.backoffMs * 2, RETRY_MAX_MS) : RETRY_FIRST_MS;
      this.known.set(netns, { identity, ends, unresolved, retryAt: now + backoffMs, backoffMs, stale: false, into: had?.into ?? [] });
    }
    // Also when the lookups failed before they asked for it (the namespace's links could not be
    // read): the host's veths into a namespace guard it whatever happens inside.
    if (lookedUp || this.linksChanged) {
      this.linksChanged = false;
      try {
        const { veths, ids } = await host();
        for (const [netns, looked] of this.known) {
          looked.into = path.dirname(netns) === NETNS_DIR ? hostVethsInto(veths, nsidOf(ids, path.basename(netns))) : [];
        }
      } catch {
        // Kept as they were, and read again at the reaper's next round (due()).
        this.linksChanged = true;
      }
    }
    return kept;
  }

  /** The host's veths into `netns` as last read: each guards the namespace's traffic (enforcement.ts). */
  into(netns: string): ReadonlyArray<{ hostIf: string; routed: boolean }> {
    return this.known.get(netns)?.into ?? [];
  }

  /** Whether a namespace is looked up at all (only then are the host's links worth watching). */
  watching(): boolean {
    return this.known.size > 0;
  }

  /**
   * Notes the host's links now; whether they changed since the last note (the first one counts as
   * a change). A veth made into a governed namespace, one whose peer was moved into it, or one
   * gone, shows here first: the host's veths are then read again at the next refresh.
   */
  noteLinks(links: ReadonlyMap<string, { index: number; netnsid?: number }>): boolean {
    const now = [...links].map(([name, l]) => `${l.index}:${name}:${l.netnsid ?? ''}`).sort().join(' ');
    if (now === this.links) return false;
    this.links = now;
    this.linksChanged = true;
    return true;
  }

  /** The host end of an endpoint of `netns` as last looked up; undefined when it was not. */
  of(netns: string, endpoint: EndpointAddresses): HostEnd | undefined {
    return this.known.get(netns)?.ends.get(keyOf(endpoint));
  }

  /** Whether any host end was found (only then is there one that can vanish). */
  anyFound(): boolean {
    return [...this.known.values()].some(({ ends }) => [...ends.values()].some((e) => 'hostIf' in e));
  }

  /**
   * Marks each namespace with a host end found that is not among the host's `links` now (its veth
   * was made again): it is looked up at the next refresh, its host end kept until then. Whether
   * there was one.
   */
  forgetGone(links: { has(name: string): boolean }): boolean {
    let gone = false;
    for (const looked of this.known.values()) {
      if (looked.stale || ![...looked.ends.values()].some((e) => 'hostIf' in e && !links.has(e.hostIf))) continue;
      looked.stale = true;
      gone = true;
    }
    return gone;
  }

  /** Whether a namespace looked up is another one now (made, deleted, or deleted and made again). */
  replaced(): boolean {
    for (const [netns, { identity }] of this.known) if (namespaceIdentity(netns) !== identity) return true;
    return false;
  }

  /** Whether a namespace with an endpoint not found is due to be looked up again, or the host's veths to be read. */
  due(now = Date.now()): boolean {
    if (this.linksChanged && this.known.size > 0) return true;
    for (const looked of this.known.values()) if (looked.unresolved && looked.retryAt <= now) return true;
    return false;
  }
}

const keyOf = (e: EndpointAddresses) => JSON.stringify([e.ipv4, e.ipv6]);
