// `--announce etcd://…/PREFIX`: publishes the networks this daemon provisions itself, and their
// endpoints' DNS fields, to a shared registry in etcd under this daemon's node name.
//
//   PREFIX/networks/<network>                   created if absent, no lease: a zone outlives a host
//   PREFIX/endpoints/<network>/<node>/<id>      on this daemon's lease, kept alive while it runs
//   PREFIX/nodes/<node>                         on the lease too: one daemon per node name (node-claim.ts)
//
// A network whose key holds a different definition (subnets, internal) is not announced: one
// name must mean one network on every host. Registry changes are put and deleted as differences,
// coalesced per event-loop turn. When the lease is lost (etcd away for longer than its TTL, and
// every lease expires at once when it returns), a new one is granted and everything published
// again at once. A clean stop revokes the lease, so the endpoints vanish everywhere at once; a
// host that dies takes them along within the TTL. Nothing here is on the query path.
import type { Etcd3, Lease } from 'etcd3';
import { errorMessage, NsdnsError } from '../errors.js';
import { rateLimited, type Logger } from '../log.js';
import { remoteEndpointValue, remoteNetwork, remoteNetworkValue } from '../registry/document.js';
import type { Registry } from '../registry/registry.js';
import type { Network } from '../registry/types.js';
import { connectEtcd, type EtcdAccess } from './etcd-client.js';
import { definitionDifference } from './network-definition.js';
import { claimNode, type NodeOwner } from './node-claim.js';
import { etcdKeys, type EtcdLocation } from './etcd-url.js';

export interface AnnouncerOptions {
  location: EtcdLocation;
  /** TLS and auth (`--etcd-*`), as for the shared registries. */
  access?: EtcdAccess;
  node: string;
  /** Who claims the node name (node-claim.ts); another daemon holding it keeps this one from announcing. */
  owner: NodeOwner;
  /** This host's underlay address (`--advertise-address`): published with each overlay endpoint, where other hosts send its frames. */
  advertiseAddress?: string;
  ttlSeconds: number;
  log: Logger;
  /** First wait before etcd is tried again after a failure, ms; it doubles up to maxRetryMs. */
  retryMs?: number;
  /** Default: a quarter of the TTL, at most 2 s: etcd back from an outage gets a new lease well before the old one expires. */
  maxRetryMs?: number;
}

/** What a clean stop waits for etcd at most: a daemon that cannot reach it still stops. */
const STOP_TIMEOUT_MS = 2000;
/** Puts and deletes sent at once: a large network republished after a lost lease is not thousands of calls in one go. */
const CALLS_AT_ONCE = 256;
/**
 * How often the endpoints' health states are compared with what was published. A probe's verdict
 * changes no snapshot (registry/health-state.ts), so it is looked for: one number compared a second.
 */
const HEALTH_POLL_MS = 1000;

export class Announcer {
  private lease: Lease | undefined;
  /** Per network, the keys (and values) this daemon has put under the current lease. */
  private readonly published = new Map<string, Map<string, string>>();
  /** Networks whose key in etcd holds this daemon's definition, as checked (value put or found). */
  private readonly agreed = new Map<string, string>();
  /** Networks refused (their key holds another definition): said once, until it changes. */
  private readonly refused = new Set<string>();
  private readonly dirty = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private retryMs: number;
  private readonly warnRateLimited = rateLimited(30_000);
  /** When the current lease was granted, and the last failure to reach etcd (for `status`). */
  private leaseSince: Date | undefined;
  private lastError: { message: string; at: Date } | undefined;
  /** Why the node name could not be claimed (another daemon holds it), said once until it changes. */
  private nodeTaken: string | undefined;

  private constructor(private readonly registry: Registry, private readonly client: Etcd3, private readonly options: AnnouncerOptions) {
    this.retryMs = options.retryMs ?? 250;
  }

  /** Starts announcing (in the background: etcd may be away, the daemon starts all the same). */
  static async start(registry: Registry, options: AnnouncerOptions): Promise<Announcer> {
    const announcer = new Announcer(registry, await connectEtcd(options.location, options.access), options);
    registry.on('change', announcer.onChange);
    announcer.healthTimer = setInterval(announcer.onHealthPoll, HEALTH_POLL_MS).unref();
    announcer.markAll();
    options.log.info({ node: options.node, url: options.location.url, ttl: options.ttlSeconds }, 'announcing provisioned networks');
    return announcer;
  }

  private healthTimer: NodeJS.Timeout | undefined;
  private healthVersion = -1;

  /** A health state changed: the provisioned networks are compared again (only changed values are put). */
  private readonly onHealthPoll = (): void => {
    const version = this.registry.health.version;
    if (version === this.healthVersion) return;
    this.healthVersion = version;
    for (const name of this.published.keys()) this.dirty.add(name);
    this.schedule(0);
  };

  private readonly onChange = (_snapshot: unknown, network: string): void => {
    this.dirty.add(network);
    this.schedule(0);
  };

  private markAll(): void {
    for (const name of this.registry.current().networks.keys()) this.dirty.add(name);
    for (const name of this.published.keys()) this.dirty.add(name);
    this.schedule(0);
  }

  private schedule(delayMs: number): void {
    if (this.stopped || this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running ??= this.flush().finally(() => {
        this.running = undefined;
        if (this.dirty.size > 0) this.schedule(0);
      });
    }, delayMs);
  }

  private async flush(): Promise<void> {
    // The first pass claims the node name even when nothing is provisioned yet.
    while ((this.dirty.size > 0 || this.lease === undefined) && !this.stopped) {
      const networks = [...this.dirty];
      this.dirty.clear();
      try {
        const lease = await this.currentLease();
        for (const network of networks) await this.sync(network, lease);
        this.retryMs = this.options.retryMs ?? 250;
      } catch (err) {
        this.lastError = { message: errorMessage(err), at: new Date() };
        for (const network of networks) this.dirty.add(network);
        this.warnRateLimited((suppressed) => this.options.log.warn({ err: errorMessage(err), suppressed, retryMs: this.retryMs }, 'cannot announce to etcd; trying again'));
        const wait = this.retryMs;
        this.retryMs = Math.min(this.retryMs * 2, this.options.maxRetryMs ?? Math.min(2000, this.options.ttlSeconds * 250));
        this.scheduleRetry(wait);
        return;
      }
    }
  }

  /** After a failure: the next try waits, even if changes arrive meanwhile. */
  private scheduleRetry(delayMs: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.schedule(delayMs);
  }

  private async currentLease(): Promise<Lease> {
    if (this.lease) return this.lease;
    const lease = this.client.lease(this.options.ttlSeconds);
    lease.on('lost', (err) => this.onLost(lease, err));
    await lease.grant();
    try {
      await claimNode(this.client, this.options.location.prefix, this.options.node, lease, this.options.owner);
      if (this.stopped) throw new Error('stopped');
    } catch (err) {
      await lease.revoke().catch(() => undefined);
      lease.release();
      if (err instanceof NsdnsError && err.code === 'ERR_CONFLICT' && this.nodeTaken !== err.message) {
        this.nodeTaken = err.message;
        this.options.log.error({ node: this.options.node }, err.message);
      }
      throw err;
    }
    if (this.nodeTaken !== undefined) {
      this.nodeTaken = undefined;
      this.options.log.info({ node: this.options.node }, 'node name free again; announcing');
    }
    this.lease = lease;
    this.leaseSince = new Date();
    return lease;
  }

  /** Everything is put again under a new lease: what the old one held is gone, or going. */
  private onLost(lease: Lease, err: Error): void {
    if (this.stopped || lease !== this.lease) return;
    this.lease = undefined;
    this.published.clear();
    this.agreed.clear();
    this.options.log.warn({ err: errorMessage(err) }, 'etcd lease lost; announcing again under a new one');
    this.markAll();
  }

  /** Puts and deletes what differs between what `network` should have in etcd and what it has. */
  private async sync(network: string, lease: Lease): Promise<void> {
    const wanted = await this.wanted(network);
    const before = this.published.get(network) ?? new Map<string, string>();
    const puts = [...wanted].filter(([key, value]) => before.get(key) !== value);
    const deletes = [...before.keys()].filter((key) => !wanted.has(key));
    // A slice at a time: a large network republished after a lost lease is not 10 000 calls at once.
    for (let i = 0; i < puts.length; i += CALLS_AT_ONCE) {
      await Promise.all(puts.slice(i, i + CALLS_AT_ONCE).map(([key, value]) => lease.put(key).value(value).exec()));
    }
    for (let i = 0; i < deletes.length; i += CALLS_AT_ONCE) {
      await Promise.all(deletes.slice(i, i + CALLS_AT_ONCE).map((key) => this.client.delete().key(key).exec()));
    }
    // The lease was lost while these calls were in flight: onLost() cleared what is published, and
    // everything is put again under the next lease (recording these would skip that).
    if (lease !== this.lease) return;
    if (wanted.size > 0) this.published.set(network, wanted);
    else this.published.delete(network);
  }

  /** The endpoint keys `network` should have under this node: none unless provisioned here and agreed. */
  private async wanted(name: string): Promise<Map<string, string>> {
    const wanted = new Map<string, string>();
    const compiled = this.registry.current().networks.get(name);
    if (!compiled || !this.registry.isProvisioned(name)) {
      this.agreed.delete(name);
      this.refused.delete(name);
      return wanted;
    }
    if (!(await this.agree(compiled.network))) return wanted;
    const { prefix } = this.options.location;
    const host = compiled.network.overlay !== undefined ? this.options.advertiseAddress : undefined;
    for (const e of (compiled.primary ?? compiled).endpoints) {
      // The state answers go by here (a probe's, `endpoint health`'s), not the one a file gave.
      const health = this.registry.health.get(name, e.id);
      // An overlay endpoint says where its frames go: other hosts program it into their VXLAN device (overlay-peers.ts).
      const overlay = host !== undefined && e.mac !== undefined ? { mac: e.mac, host } : undefined;
      wanted.set(etcdKeys.endpoint(prefix, name, this.options.node, e.id), JSON.stringify(remoteEndpointValue({ ...e, health, overlay })));
    }
    return wanted;
  }

  /**
   * Whether the network's key holds this daemon's definition: created here when absent (one
   * transaction: two hosts creating one network at once agree on the first), else compared.
   */
  private async agree(network: Network): Promise<boolean> {
    const value = JSON.stringify(remoteNetworkValue(network));
    if (this.agreed.get(network.name) === value) return true;
    const key = etcdKeys.network(this.options.location.prefix, network.name);
    const result = await this.client.if(key, 'Create', '==', 0).then(this.client.put(key).value(value)).else(this.client.get(key)).commit();
    const existing = result.succeeded ? undefined : result.responses[0]?.response_range?.kvs[0]?.value.toString();
    const problem = existing === undefined ? undefined : differs(network, existing, key);
    if (problem === undefined) {
      this.agreed.set(network.name, value);
      if (this.refused.delete(network.name)) this.options.log.info({ network: network.name }, 'network definition in etcd agrees now; announcing it');
      return true;
    }
    this.agreed.delete(network.name);
    if (!this.refused.has(network.name)) {
      this.refused.add(network.name);
      this.options.log.warn({ network: network.name, key, problem }, 'not announcing network: etcd holds another definition of it');
    }
    return false;
  }

  /** Why the node name cannot be claimed: another daemon holds it (undefined once it is this daemon's). */
  nodeConflict(): string | undefined {
    return this.nodeTaken;
  }

  /** What `nsdns status` shows: the node, whether a lease is held and since when, what is refused. */
  status(): object {
    let endpoints = 0;
    for (const keys of this.published.values()) endpoints += keys.size;
    return {
      url: this.options.location.url, node: this.options.node, ttlSeconds: this.options.ttlSeconds,
      leaseSince: this.lease ? this.leaseSince?.toISOString() ?? null : null,
      endpoints, pending: this.dirty.size, refused: [...this.refused].sort(), nodeTaken: this.nodeTaken ?? null,
      lastError: this.lastError ? { message: this.lastError.message, at: this.lastError.at.toISOString() } : null,
    };
  }

  /**
   * Stops announcing. `revoke`: the endpoints vanish from etcd at once (a clean stop); without, they
   * stay until the lease expires (a handover: the successor announces them again under its own).
   */
  async stop(revoke = true): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.healthTimer);
    this.registry.off('change', this.onChange);
    const lease = this.lease;
    this.lease = undefined;
    await withTimeout((async () => {
      await this.running?.catch(() => undefined);
      if (revoke) await lease?.revoke();
    })()).catch((err) => this.options.log.warn({ err: errorMessage(err) }, 'etcd lease not revoked; its keys go when it expires'));
    lease?.release();
    this.client.close();
  }
}

/** Why the definition in etcd (`text`, at `key`) is not `network`'s, or undefined when it agrees. */
function differs(network: Network, text: string, key: string): string | undefined {
  let theirs: Network;
  try {
    theirs = remoteNetwork(JSON.parse(text), key);
  } catch (err) {
    return `the value there is not a network (${err instanceof SyntaxError ? 'not JSON' : errorMessage(err)})`;
  }
  return definitionDifference(theirs, network);
}

function withTimeout(work: Promise<void>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`no answer from etcd in ${STOP_TIMEOUT_MS} ms`)), STOP_TIMEOUT_MS); });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
