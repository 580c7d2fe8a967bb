// Keeps the kernel's egress rules in step with the registry: every namespace under a policy is
// governed with its endpoints' veths and addresses, its networks' subnets and gateways, and the
// address ranges of its policy; a namespace that loses its policy (or its last endpoint) is let
// go. Answers' addresses reach the same firewall through the resolver's gate (the learner).
//
// Enforced where the namespace's traffic passes the host on a veth whose host end is known: the
// one nsdns made, one a registry file gives (`hostIf`), or one found (host-end.ts) for a registry
// file's endpoint. An endpoint without one (macvlan, a peer in another namespace, a lookup that
// failed) has its names filtered and its traffic governed by its addresses: said once per
// namespace in the log, and by `network inspect`. Every host veth into a governed namespace guards
// it with anti-spoofing all the same, found or not (governed()).
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { Registry } from '../registry/registry.js';
import type { Snapshot } from '../registry/snapshot.js';
import { EgressFirewall, type EgressRules, type EgressSource } from './egress-firewall.js';
import { canonicalAddress } from './egress-rules.js';
import { HostEnds, type EndpointAddresses } from './host-end.js';
import { namespacePolicy } from './policy.js';
import { hostLinks } from '../plumbing/links.js';

export class EgressEnforcement {
  /** What the kernel has, per namespace: the rules as JSON, to send only what changed. */
  private readonly applied = new Map<string, string>();
  /** The names each governed namespace may resolve, as last applied. */
  private readonly names = new Map<string, Set<string>>();
  /** Endpoints under a policy that are not enforced, by id: why not. */
  private unenforced: ReadonlyMap<string, string> = new Map();
  /** Namespaces with such an endpoint, said once each (again after they were enforced meanwhile). */
  private readonly warned = new Set<string>();
  private pass: Promise<void> = Promise.resolve();
  private queued: Promise<void> | undefined;
  private closed = false;

  private constructor(private readonly registry: Registry, readonly firewall: EgressFirewall, private readonly hostEnds: HostEnds, private readonly log: Logger) {}

  /**
   * Governs what the registry holds now, taking over what an earlier daemon left in the kernel
   * (its learned addresses kept; namespaces no longer known let go), then follows changes.
   */
  static async open(registry: Registry, table: string, log: Logger, options: { logDrops?: boolean; maxLearned?: number; hostEnds?: HostEnds } = {}): Promise<EgressEnforcement> {
    const hostEnds = options.hostEnds ?? new HostEnds();
    const snapshot = registry.current();
    await hostEnds.refresh(lookups(snapshot));
    const { wanted, unenforced } = governed(snapshot, hostEnds);
    const { firewall, kept, removed } = await EgressFirewall.open(table, wanted, { log, logDrops: options.logDrops, maxLearned: options.maxLearned });
    const enforcement = new EgressEnforcement(registry, firewall, hostEnds, log);
    enforcement.noteUnenforced(snapshot, unenforced);
    for (const [key, rules] of wanted) {
      enforcement.applied.set(key, JSON.stringify(rules));
      enforcement.names.set(key, policyNames(snapshot, key));
    }
    if (wanted.size > 0 || removed > 0) log.info({ governed: wanted.size, kept, removed }, 'egress enforcement taken over');
    registry.on('change', enforcement.onChange);
    return enforcement;
  }

  /**
   * Resolves once the rules of the registry as it is now are in the kernel (a connect returns only
   * then: a namespace under a policy is never handed back open); rejects when they could not be set.
   */
  settled(): Promise<void> {
    this.queued ??= this.pass.catch(() => undefined).then(() => {
      this.queued = undefined;
      return this.sync();
    });
    this.pass = this.queued;
    return this.queued;
  }

  private readonly onChange = (): void => {
    if (this.closed) return;
    const pass = this.settled();
    pass.catch((err) => this.log.error({ err: errorMessage(err) }, 'egress rules could not be set; the namespaces stay as they were'));
    // The resolver follows the new policy at once; a namespace it makes governed must not have
    // its answers skipped until this pass reaches it (one that turns out unenforced waits for
    // nothing longer than the pass).
    for (const key of underPolicy(this.registry.current())) {
      if (!this.applied.has(key)) this.firewall.expect(key, pass);
    }
  };

  /**
   * Looks again when a namespace whose host ends were looked up is another one now (made,
   * deleted, or deleted and made again under its path), or a host end found is gone from the host
   * (its veth made again): the reaper calls this. The host's links are read in process (netlink).
   */
  async recheck(): Promise<void> {
    if (this.closed) return;
    const links = this.hostEnds.watching() ? await hostLinks() : undefined;
    const gone = links !== undefined && this.hostEnds.anyFound() && this.hostEnds.forgetGone(links);
    const changed = links !== undefined && this.hostEnds.noteLinks(links);
    if (!this.closed && (gone || changed || this.hostEnds.replaced() || this.hostEnds.due())) this.onChange();
  }

  /** Why the endpoint `id`, under a policy, is not enforced; undefined when it is (or has no policy). */
  unenforcedReason(id: string): string | undefined {
    return this.unenforced.get(id);
  }

  private async sync(): Promise<void> {
    if (this.closed) return;
    const snapshot = this.registry.current();
    for (const { netns, reason } of await this.hostEnds.refresh(lookups(snapshot))) {
      this.log.warn({ netns, reason }, 'egress: the host end of a governed namespace was not found again; it stays governed, and is looked up again');
    }
    const { wanted, unenforced } = governed(snapshot, this.hostEnds);
    this.noteUnenforced(snapshot, unenforced);
    // Namespaces let go first: an address (or link) that moved from one of them to another
    // namespace must be out of the maps before the other claims it, or that transaction fails.
    for (const key of [...this.applied.keys()]) {
      if (wanted.has(key)) continue;
      await this.firewall.remove(key);
      this.applied.delete(key);
      this.names.delete(key);
    }
    for (const [key, rules] of wanted) {
      const text = JSON.stringify(rules);
      if (this.applied.get(key) !== text) {
        await this.firewall.setPolicy(key, rules);
        this.applied.set(key, text);
      }
      // A policy that lost names closes what they answered at once, not when it expires.
      const names = policyNames(snapshot, key);
      const before = this.names.get(key);
      if (before !== undefined && [...before].some((n) => !names.has(n))) await this.firewall.forgetLearned(key);
      this.names.set(key, names);
    }
  }

  /** Keeps why endpoints are not enforced, and says it once per namespace in the log. */
  private noteUnenforced(snapshot: Snapshot, unenforced: ReadonlyMap<string, string>): void {
    this.unenforced = unenforced;
    const now = new Set<string>();
    for (const [netns, endpoints] of snapshot.namespaces()) {
      const reason = endpoints.map((e) => unenforced.get(e.id)).find((r) => r !== undefined);
      if (reason === undefined) continue;
      now.add(netns);
      if (this.warned.has(netns)) continue;
      this.warned.add(netns);
      this.log.warn({ netns, reason }, 'egress policy not enforced for an endpoint of this namespace: its names are filtered, its traffic by its addresses (anti-spoofed only where it passes a host veth into the namespace)');
    }
    for (const netns of this.warned) if (!now.has(netns)) this.warned.delete(netns);
  }

  /** Stops following the registry. The rules stay in the kernel: a stopped daemon opens nothing. */
  async close(): Promise<void> {
    this.closed = true;
    this.registry.off('change', this.onChange);
    await this.pass.catch(() => undefined);
    await this.firewall.close();
  }
}

/** The namespaces under a policy. */
function* underPolicy(snapshot: Snapshot): Iterable<string> {
  const networkOf = (name: string) => snapshot.networks.get(name)?.network;
  for (const [key, endpoints] of snapshot.namespaces()) if (namespacePolicy(endpoints, networkOf) !== undefined) yield key;
}

/** Per namespace under a policy, its endpoints whose host end must be looked up (no `hostIf`). */
function lookups(snapshot: Snapshot): Map<string, EndpointAddresses[]> {
  const wanted = new Map<string, EndpointAddresses[]>();
  for (const key of underPolicy(snapshot)) {
    const unknown = snapshot.namespaces().get(key)!.filter((e) => e.hostIf === undefined).map((e) => ({ ipv4: e.ipv4, ipv6: e.ipv6 }));
    if (unknown.length > 0) wanted.set(key, unknown);
  }
  return wanted;
}

/**
 * The rules of every namespace under a policy. An endpoint whose host end is known (its own
 * `hostIf`, or found) is a source with it; one without is in `unenforced` with why, and is still a
 * source by its addresses alone: where its traffic passes the host, those choose its chain, so a
 * namespace is never left open because its link could not be found (at a start, a lookup that
 * failed or was made to fail). An address another namespace claims as well is left out of these
 * bare sources: one address maps to one chain, and a clash must not fail every tenant's rules.
 * Anti-spoofing needs an interface: every host veth into the namespace that is no endpoint's host
 * end yet is a source too, allowing the addresses that choose the namespace's chain.
 */
export function governed(snapshot: Snapshot, hostEnds: HostEnds): { wanted: Map<string, EgressRules>; unenforced: Map<string, string> } {
  const wanted = new Map<string, EgressRules>();
  const unenforced = new Map<string, string>();
  const networkOf = (name: string) => snapshot.networks.get(name)?.network;
  /** Per namespace, the addresses of its endpoints without a host end. */
  const bare = new Map<string, { ipv4: string[]; ipv6: string[] }>();
  for (const [key, endpoints] of snapshot.namespaces()) {
    const policy = namespacePolicy(endpoints, networkOf);
    if (policy === undefined) continue;
    const sources: EgressSource[] = [];
    for (const e of endpoints) {
      // A `hostIf` the file gives is taken as a bridge port (as nsdns's own veths are); a routed one is found.
      const end = e.hostIf !== undefined ? { hostIf: e.hostIf, routed: false } : hostEnds.of(key, e) ?? { reason: 'its link was not looked up yet' };
      if (!('hostIf' in end)) {
        unenforced.set(e.id, end.reason);
        let b = bare.get(key);
        if (b === undefined) bare.set(key, (b = { ipv4: [], ipv6: [] }));
        b.ipv4.push(...e.ipv4);
        b.ipv6.push(...e.ipv6);
        continue;
      }
      // Two endpoints on one link (two networks' addresses on one veth): one source, both addresses.
      const same = sources.findIndex((s) => s.hostIf === end.hostIf);
      if (same < 0) sources.push({ hostIf: end.hostIf, ipv4: e.ipv4, ipv6: e.ipv6, ...(end.routed && { routed: true }) });
      else sources[same] = { ...sources[same], ipv4: [...sources[same].ipv4, ...e.ipv4], ipv6: [...sources[same].ipv6, ...e.ipv6] };
    }
    const networks = [...new Set(endpoints.map((e) => e.network))].map(networkOf).filter((n) => n !== undefined);
    wanted.set(key, {
      sources,
      cidrs: policy.rules.flatMap((r) => ('cidr' in r ? [{ cidr: r.cidr, ...(r.port !== undefined && { port: r.port }), ...(r.protocol !== undefined && { protocol: r.protocol }) }] : [])),
      ownSubnets: networks.flatMap((n) => n.subnets.map((s) => s.subnet)),
      gateways: networks.flatMap((n) => n.subnets.flatMap((s) => (s.gateway !== undefined ? [s.gateway] : []))),
    });
  }
  // How many namespaces claim each address, with a host end or bare (each namespace once).
  const canonical = (a: string) => canonicalAddress(a)?.text ?? a;
  const withEnd = new Map<string, Set<string>>();
  const claims = new Map<string, number>();
  for (const [key, rules] of wanted) {
    const found = new Set(rules.sources.flatMap((s) => [...s.ipv4, ...s.ipv6]).map(canonical));
    withEnd.set(key, found);
    const b = bare.get(key);
    for (const a of new Set([...found, ...(b === undefined ? [] : [...b.ipv4, ...b.ipv6].map(canonical))])) claims.set(a, (claims.get(a) ?? 0) + 1);
  }
  for (const [key, b] of bare) {
    // Its own alone, and not a source with a host end already (an address maps to one chain once).
    const keep = (list: string[]) => [...new Set(list.map(canonical))].filter((a) => claims.get(a) === 1 && !withEnd.get(key)!.has(a));
    const [ipv4, ipv6] = [keep(b.ipv4), keep(b.ipv6)];
    const rules = wanted.get(key)!;
    if (ipv4.length + ipv6.length > 0) wanted.set(key, { ...rules, sources: [...rules.sources, { ipv4, ipv6 }] });
  }
  // A veth that is some namespace's source already, or into two of them (one namespace under two
  // paths), guards none: one interface maps to one chain, and a clash must not fail every tenant's rules.
  const links = new Map<string, number>();
  for (const rules of wanted.values()) for (const s of rules.sources) if (s.hostIf !== undefined) links.set(s.hostIf, 2);
  for (const key of wanted.keys()) for (const v of hostEnds.into(key)) links.set(v.hostIf, (links.get(v.hostIf) ?? 0) + 1);
  for (const [key, rules] of wanted) {
    // A namespace with no source at all (no address to tell its traffic by) has nothing to govern.
    if (rules.sources.length === 0) {
      wanted.delete(key);
      continue;
    }
    // Every other host veth into it guards it: only its addresses that choose its chain get out
    // there, wherever the namespace put them (its root can move its address off its veth, or onto
    // a link of its own that seems to lead elsewhere, and its endpoint is then not found by it).
    const guards = hostEnds.into(key).filter((v) => links.get(v.hostIf) === 1);
    if (guards.length === 0) continue;
    const own = (family: 'ipv4' | 'ipv6') => [...new Set(rules.sources.flatMap((s) => s[family]).map(canonical))];
    const [ipv4, ipv6] = [own('ipv4'), own('ipv6')];
    wanted.set(key, { ...rules, sources: [...rules.sources, ...guards.map((v) => ({ hostIf: v.hostIf, ipv4, ipv6, ...(v.routed && { routed: true }) }))] });
  }
  return { wanted, unenforced };
}

/** The name entries (`pypi.org`, `*.zone`) of the policy `key`'s namespace is under. */
function policyNames(snapshot: Snapshot, key: string): Set<string> {
  const networkOf = (name: string) => snapshot.networks.get(name)?.network;
  const policy = namespacePolicy(snapshot.namespaces().get(key) ?? [], networkOf);
  return new Set((policy?.rules ?? []).flatMap((r) => ('name' in r ? [r.name] : [])));
}
