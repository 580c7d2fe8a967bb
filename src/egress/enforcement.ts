// Keeps the kernel's egress rules in step with the registry: every namespace under a policy is
// governed with its endpoints' veths and addresses, its networks' subnets and gateways, and the
// address ranges of its policy; a namespace that loses its policy (or its last endpoint) is let
// go. Answers' addresses reach the same firewall through the resolver's gate (the learner).
//
// Enforced where nsdns made the link: a veth whose host end it knows. A namespace a registry file
// names, or one on macvlan only, has its names filtered but nothing enforced (said once in the log).
import { execa } from 'execa';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { Registry } from '../registry/registry.js';
import type { Snapshot } from '../registry/snapshot.js';
import type { Endpoint } from '../registry/types.js';
import type { EgressFirewall, EgressRules } from './egress-firewall.js';
import { namespacePolicy } from './policy.js';

export class EgressEnforcement {
  /** What the kernel has, per namespace: the rules as JSON, to send only what changed. */
  private readonly applied = new Map<string, string>();
  /** Namespaces under a policy that cannot be enforced (no veth of nsdns's), said once each. */
  private readonly unenforced = new Set<string>();
  private pass: Promise<void> = Promise.resolve();
  private queued: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly registry: Registry, readonly firewall: EgressFirewall, private readonly log: Logger) {}

  /** Governs what the registry holds now, taking over what an earlier daemon left in the kernel; then follows changes. */
  async start(): Promise<void> {
    const wanted = this.wanted(this.registry.current());
    // No policy, and no table an earlier daemon left (whose rules could match a new endpoint's
    // reused address): nothing to write until a policy comes.
    if (wanted.size > 0 || await tablePresent(this.firewall.table)) {
      const { kept, removed } = await this.firewall.adopt(wanted);
      for (const [key, rules] of wanted) this.applied.set(key, JSON.stringify(rules));
      this.log.info({ governed: wanted.size, kept, removed }, 'egress enforcement taken over');
    }
    this.registry.on('change', this.onChange);
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
    this.settled().catch((err) => this.log.error({ err: errorMessage(err) }, 'egress rules could not be set; the namespaces stay as they were'));
  };

  private async sync(): Promise<void> {
    if (this.closed) return;
    const wanted = this.wanted(this.registry.current());
    for (const [key, rules] of wanted) {
      const text = JSON.stringify(rules);
      if (this.applied.get(key) === text) continue;
      await this.firewall.setPolicy(key, rules);
      this.applied.set(key, text);
    }
    for (const key of [...this.applied.keys()]) {
      if (wanted.has(key)) continue;
      await this.firewall.remove(key);
      this.applied.delete(key);
    }
  }

  /** The rules of every namespace under a policy whose endpoints nsdns linked. */
  private wanted(snapshot: Snapshot): Map<string, EgressRules> {
    const wanted = new Map<string, EgressRules>();
    const networkOf = (name: string) => snapshot.networks.get(name)?.network;
    for (const [key, endpoints] of snapshot.namespaces()) {
      const policy = namespacePolicy(endpoints, networkOf);
      if (policy === undefined) continue;
      const linked = endpoints.filter((e): e is Endpoint & { hostIf: string } => e.hostIf !== undefined);
      if (linked.length === 0) {
        if (!this.unenforced.has(key)) {
          this.unenforced.add(key);
          this.log.warn({ netns: key }, 'egress policy of a namespace nsdns did not link (registry file or macvlan): its names are filtered, its traffic is not');
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

  /** Stops following the registry. The rules stay in the kernel: a stopped daemon opens nothing. */
  async close(): Promise<void> {
    this.closed = true;
    this.registry.off('change', this.onChange);
    await this.pass.catch(() => undefined);
    await this.firewall.close();
  }
}

async function tablePresent(table: string): Promise<boolean> {
  return (await execa('nft', ['list', 'table', 'inet', table], { reject: false, timeout: 10_000 })).exitCode === 0;
}
