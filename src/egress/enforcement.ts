// Keeps the kernel's egress rules in step with the registry: every namespace under a policy is
// governed with its endpoints' veths and addresses, its networks' subnets and gateways, and the
// address ranges of its policy; a namespace that loses its policy (or its last endpoint) is let
// go. Answers' addresses reach the same firewall through the resolver's gate (the learner).
//
// Enforced where nsdns made the link: a veth whose host end it knows. A namespace a registry file
// names, or one on macvlan only, has its names filtered but nothing enforced (said once in the log).
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { Registry } from '../registry/registry.js';
import type { Snapshot } from '../registry/snapshot.js';
import type { Endpoint } from '../registry/types.js';
import { EgressFirewall, type EgressRules } from './egress-firewall.js';
import { namespacePolicy } from './policy.js';

export class EgressEnforcement {
  /** What the kernel has, per namespace: the rules as JSON, to send only what changed. */
  private readonly applied = new Map<string, string>();
  /** The names each governed namespace may resolve, as last applied. */
  private readonly names = new Map<string, Set<string>>();
  /** Namespaces under a policy that cannot be enforced (no veth of nsdns's), said once each. */
  private readonly unenforced = new Set<string>();
  private pass: Promise<void> = Promise.resolve();
  private queued: Promise<void> | undefined;
  private closed = false;

  private constructor(private readonly registry: Registry, readonly firewall: EgressFirewall, private readonly log: Logger) {}

  /**
   * Governs what the registry holds now, taking over what an earlier daemon left in the kernel
   * (its learned addresses kept; namespaces no longer known let go), then follows changes.
   */
  static async open(registry: Registry, table: string, log: Logger, options: { logDrops?: boolean } = {}): Promise<EgressEnforcement> {
    const unenforced = new Set<string>();
    const wanted = governed(registry.current(), unenforced, log);
    const { firewall, kept, removed } = await EgressFirewall.open(table, wanted, { log, logDrops: options.logDrops });
    const enforcement = new EgressEnforcement(registry, firewall, log);
    for (const key of unenforced) enforcement.unenforced.add(key);
    for (const [key, rules] of wanted) {
      enforcement.applied.set(key, JSON.stringify(rules));
      enforcement.names.set(key, policyNames(registry.current(), key));
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
    // its answers skipped until this pass reaches it.
    for (const key of governed(this.registry.current(), this.unenforced, this.log).keys()) {
      if (!this.applied.has(key)) this.firewall.expect(key, pass);
    }
  };

  private async sync(): Promise<void> {
    if (this.closed) return;
    const snapshot = this.registry.current();
    const wanted = governed(snapshot, this.unenforced, this.log);
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
    for (const key of [...this.applied.keys()]) {
      if (wanted.has(key)) continue;
      await this.firewall.remove(key);
      this.applied.delete(key);
      this.names.delete(key);
    }
  }

  /** Stops following the registry. The rules stay in the kernel: a stopped daemon opens nothing. */
  async close(): Promise<void> {
    this.closed = true;
    this.registry.off('change', this.onChange);
    await this.pass.catch(() => undefined);
    await this.firewall.close();
  }
}

/**
 * The rules of every namespace under a policy whose endpoints nsdns linked. One it did not link is
 * added to `unenforced` and said once.
 */
function governed(snapshot: Snapshot, unenforced: Set<string>, log: Logger): Map<string, EgressRules> {
  const wanted = new Map<string, EgressRules>();
  const networkOf = (name: string) => snapshot.networks.get(name)?.network;
  for (const [key, endpoints] of snapshot.namespaces()) {
    const policy = namespacePolicy(endpoints, networkOf);
    if (policy === undefined) continue;
    const linked = endpoints.filter((e): e is Endpoint & { hostIf: string } => e.hostIf !== undefined);
    if (linked.length === 0) {
      if (!unenforced.has(key)) {
        unenforced.add(key);
        log.warn({ netns: key }, 'egress policy of a namespace nsdns did not link (registry file or macvlan): its names are filtered, its traffic is not');
      }
      continue;
    }
    const networks = [...new Set(endpoints.map((e) => e.network))].map(networkOf).filter((n) => n !== undefined);
    wanted.set(key, {
      sources: linked.map((e) => ({ hostIf: e.hostIf, ipv4: e.ipv4, ipv6: e.ipv6 })),
      cidrs: policy.rules.flatMap((r) => ('cidr' in r ? [{ cidr: r.cidr, ...(r.port !== undefined && { port: r.port }), ...(r.protocol !== undefined && { protocol: r.protocol }) }] : [])),
      ownSubnets: networks.flatMap((n) => n.subnets.map((s) => s.subnet)),
      gateways: networks.flatMap((n) => n.subnets.flatMap((s) => (s.gateway !== undefined ? [s.gateway] : []))),
    });
  }
  return wanted;
}

/** The name entries (`pypi.org`, `*.zone`) of the policy `key`'s namespace is under. */
function policyNames(snapshot: Snapshot, key: string): Set<string> {
  const networkOf = (name: string) => snapshot.networks.get(name)?.network;
  const policy = namespacePolicy(snapshot.namespaces().get(key) ?? [], networkOf);
  return new Set((policy?.rules ?? []).flatMap((r) => ('name' in r ? [r.name] : [])));
}
