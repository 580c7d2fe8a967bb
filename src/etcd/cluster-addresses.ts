// Addresses of overlay networks, allocated cluster-wide (`serve --cluster`): every address an
// endpoint of this node uses is a key in etcd (address-keys.ts), created only if absent, so two
// hosts connecting at once never get the same address. This allocator picks the address to try,
// keeps what this node holds, and owns the lease the keys live on.
//
// The lease is kept alive while the daemon runs. When it is lost (etcd away longer than its TTL),
// every address this node holds is claimed again under a new one, and an address another node
// took meanwhile is reported in conflicts(). A clean close does not revoke the lease: the
// endpoints keep their addresses while the daemon is down, and a restart within the TTL claims
// them again (a key holding this node's name is put under the new lease). Nothing here is on the
// query path.
import type { Etcd3, Lease } from 'etcd3';
import { NsdnsError, errorMessage } from '../errors.js';
import { rateLimited, type Logger } from '../log.js';
import { isServiceLabel } from '../wire/names.js';
import { AddressKeys, LeaseGone } from './address-keys.js';
import { addressSpace, canonicalIpv4, firstFree, hostAddress, type AddressSpace } from './address-space.js';
import { connectEtcd, type EtcdAccess } from './etcd-client.js';
import type { EtcdLocation } from './etcd-url.js';
import { isNodeName } from './node-name.js';

export interface ClusterAddressesOptions {
  location: EtcdLocation;
  /** TLS and auth (`--etcd-*`), as for the shared registries. */
  access?: EtcdAccess;
  /** This daemon's node name (node-name.ts): the value of every key it holds. */
  node: string;
  ttlSeconds: number;
  log: Logger;
  /** First wait before a failed re-claim or release is tried again, ms; it doubles up to maxRetryMs. */
  retryMs?: number;
  /** Default: a quarter of the TTL, at most 2 s (as the announcer's). */
  maxRetryMs?: number;
}

/** An address this node held whose key another node (or garbage) holds now: its endpoint still uses it. */
export interface AddressConflict {
  network: string;
  address: string;
  /** The node named in the key, or null when the value there is no node name. */
  holder: string | null;
  since: string;
}

/**
 * Transactions one claim without `ip` tries before it gives up. Every lost race brings a fresh
 * list of the taken addresses, so a retry meets only the claims made since: a claim loses this
 * often only when as many claims of other nodes keep winning.
 */
const MAX_TRIES = 32;
/** Re-claims sent at once after a lost lease: a node with thousands of endpoints is not thousands of calls in one go. */
const CALLS_AT_ONCE = 64;

/** A lease of this allocator with its id (what a put names). */
interface Granted {
  lease: Lease;
  id: string;
}

export class ClusterAddresses {
  private readonly keys: AddressKeys;
  private granted: Granted | undefined;
  private granting: Promise<Granted> | undefined;
  private leaseSince: Date | undefined;
  /** Per network, the addresses this node holds (claimed and not released). */
  private readonly held = new Map<string, Set<string>>();
  /** Per network, the addresses claims of this process are trying right now: never picked twice. */
  private readonly claiming = new Map<string, Set<string>>();
  /** Releases etcd did not take (it was away): retried in the background. */
  private readonly releasing = new Map<string, Set<string>>();
  /** One list of the taken addresses per network at a time, shared by the claims that wait for it. */
  private readonly reads = new Map<string, Promise<ReadonlySet<string>>>();
  private readonly lostTo = new Map<string, AddressConflict>();
  private needsReclaim = false;
  private repairTimer: NodeJS.Timeout | undefined;
  private repairing: Promise<void> | undefined;
  private retryMs: number;
  private stopped = false;
  private lastError: { message: string; at: Date } | undefined;
  private readonly warnRateLimited = rateLimited(30_000);

  constructor(private readonly client: Etcd3, private readonly options: ClusterAddressesOptions) {
    if (!isNodeName(options.node)) throw new NsdnsError('ERR_CONFIG', 'the node name of the address allocator is not a key part');
    this.keys = new AddressKeys(client, options.location.prefix, options.node);
    this.retryMs = options.retryMs ?? 250;
  }

  /** An allocator for `options.node`; it reaches etcd on its first claim (etcd may be away at start). */
  static async start(options: ClusterAddressesOptions): Promise<ClusterAddresses> {
    return new ClusterAddresses(await connectEtcd(options.location, options.access), options);
  }

  /**
   * Claims an address of `subnet` on `network` for this node: `ip` given → that one (or
   * ERR_CONFLICT naming its holder); else the first free one, skipping `reserved`.
   */
  async claim(network: string, subnet: string, options: { ip?: string; reserved?: readonly string[] }): Promise<string> {
    checkNetwork(network);
    const space = addressSpace(subnet);
    const reserved = new Set((options.reserved ?? []).map((text) => {
      const address = canonicalIpv4(text);
      if (address === undefined) throw new NsdnsError('ERR_BAD_REQUEST', `reserved address ${JSON.stringify(String(text).slice(0, 64))} is not an IPv4 address`);
      return address;
    }));
    const given = options.ip !== undefined ? hostAddress(space, options.ip, reserved) : undefined;
    this.assertOpen();
    return given !== undefined ? this.claimGiven(network, given) : this.claimFree(network, space, reserved);
  }

  /**
   * Gives the address back (disconnect, failed connect): its key is deleted if this node holds it.
   * Idempotent. With etcd away it does not fail: the delete is retried in the background.
   */
  async release(network: string, ip: string): Promise<void> {
    checkNetwork(network);
    const address = canonicalIpv4(ip);
    if (address === undefined) throw new NsdnsError('ERR_BAD_REQUEST', `${JSON.stringify(String(ip).slice(0, 64))} is not an IPv4 address`);
    this.assertOpen();
    this.held.get(network)?.delete(address);
    this.lostTo.delete(conflictKey(network, address));
    try {
      await this.keys.deleteIfOurs(network, address);
    } catch (err) {
      setOf(this.releasing, network).add(address);
      this.failed(err, 'cannot release an address in etcd; trying again');
      this.scheduleRepair(this.retryMs);
    }
  }

  /** Addresses this node held that another node took while its lease was lost. */
  conflicts(): AddressConflict[] {
    return [...this.lostTo.values()].sort((a, b) => a.network.localeCompare(b.network) || a.address.localeCompare(b.address, undefined, { numeric: true }));
  }

  /** What `nsdns status` can show: the lease, how many addresses are held, the conflicts, the transactions sent. */
  status(): object {
    return {
      node: this.options.node, ttlSeconds: this.options.ttlSeconds,
      leaseSince: this.granted ? this.leaseSince?.toISOString() ?? null : null,
      held: this.heldCount(), transactions: this.keys.transactions, conflicts: this.conflicts(),
      lastError: this.lastError ? { message: this.lastError.message, at: this.lastError.at.toISOString() } : null,
    };
  }

  /**
   * Stops keeping the lease alive, without revoking it: the addresses stay taken for the TTL, so a
   * restart within it finds them held by this node's name and claims them again.
   */
  async close(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.repairTimer);
    await this.repairing?.catch(() => undefined);
    this.granted?.lease.release();
    this.granted = undefined;
    this.client.close();
  }

  private async claimGiven(network: string, address: string): Promise<string> {
    const claiming = setOf(this.claiming, network);
    if (claiming.has(address)) throw new NsdnsError('ERR_CONFLICT', `address ${address} is being claimed on this node right now`);
    claiming.add(address);
    this.releasing.get(network)?.delete(address);
    try {
      const [holding, granted] = await this.underLease((id) => this.keys.hold(network, address, id));
      if (holding.kind === 'taken') {
        const by = holding.holder !== undefined ? `by node "${holding.holder}"` : '(its key in etcd holds no node name)';
        throw new NsdnsError('ERR_CONFLICT', `address ${address} is taken in the cluster ${by} on network "${network}"`);
      }
      this.recordHeld(network, address, granted);
      return address;
    } finally {
      claiming.delete(address);
    }
  }

  private async claimFree(network: string, space: AddressSpace, reserved: ReadonlySet<string>): Promise<string> {
    const claiming = setOf(this.claiming, network);
    const held = setOf(this.held, network);
    let taken = await this.takenAddresses(network);
    for (let tries = 0; tries < MAX_TRIES; tries++) {
      const address = firstFree(space, (a) => taken.has(a) || reserved.has(a) || claiming.has(a) || held.has(a));
      if (address === undefined) throw new NsdnsError('ERR_IPAM_EXHAUSTED', `no free address left in ${space.subnet} on network "${network}" in the cluster`);
      claiming.add(address);
      try {
        const [result, granted] = await this.underLease((id) => this.keys.create(network, address, id));
        if (result.created) {
          this.recordHeld(network, address, granted);
          return address;
        }
        taken = result.taken;
      } finally {
        claiming.delete(address);
      }
    }
    throw new NsdnsError('ERR_CONFLICT', `no address of ${space.subnet} on network "${network}" could be claimed: other nodes took each of ${MAX_TRIES} first; try again`);
  }

  /** Records `address` as held; claimed under a lease lost meanwhile, it is claimed again with the others. */
  private recordHeld(network: string, address: string, granted: Granted): void {
    setOf(this.held, network).add(address);
    this.lostTo.delete(conflictKey(network, address));
    if (granted !== this.granted) {
      this.needsReclaim = true;
      this.scheduleRepair(0);
    }
  }

  /** The addresses taken on `network` (one range read), shared by the claims that ask meanwhile. */
  private takenAddresses(network: string): Promise<ReadonlySet<string>> {
    let read = this.reads.get(network);
    if (read === undefined) {
      read = this.keys.taken(network).finally(() => this.reads.delete(network));
      this.reads.set(network, read);
    }
    return read;
  }

  /**
   * Runs `work` with the current lease's id. etcd saying the lease is gone (it expired before the
   * client noticed) makes it lost, and `work` runs once more under a new one.
   */
  private async underLease<T>(work: (leaseId: string) => Promise<T>): Promise<[T, Granted]> {
    for (let attempt = 0; ; attempt++) {
      const granted = await this.currentLease();
      try {
        return [await work(granted.id), granted];
      } catch (err) {
        if (!(err instanceof LeaseGone)) throw err;
        this.onLost(granted.lease, err);
        if (attempt > 0) throw err;
      }
    }
  }

  private currentLease(): Promise<Granted> {
    if (this.granted) return Promise.resolve(this.granted);
    this.granting ??= this.grant().finally(() => { this.granting = undefined; });
    return this.granting;
  }

  private async grant(): Promise<Granted> {
    const lease = this.client.lease(this.options.ttlSeconds);
    lease.on('lost', (err) => this.onLost(lease, err));
    let id: string;
    try {
      id = await lease.grant();
    } catch (err) {
      lease.release();
      throw new NsdnsError('ERR_UPSTREAM_UNREACHABLE', `cannot reach etcd for the cluster's addresses: ${errorMessage(err)}`, { cause: err });
    }
    if (this.stopped) {
      lease.release();
      throw new NsdnsError('ERR_INTERNAL', 'the address allocator is closed');
    }
    this.granted = { lease, id };
    this.leaseSince = new Date();
    return this.granted;
  }

  /** Every address held is claimed again under a new lease: what the old one held is gone, or going. */
  private onLost(lease: Lease, err: unknown): void {
    if (this.stopped || this.granted?.lease !== lease) return;
    this.granted = undefined;
    lease.release();
    this.needsReclaim = true;
    this.options.log.warn({ err: errorMessage(err), held: this.heldCount() }, 'etcd lease of the claimed addresses lost; claiming them again under a new one');
    this.scheduleRepair(0);
  }

  private scheduleRepair(delayMs: number): void {
    if (this.stopped || this.repairTimer !== undefined) return;
    this.repairTimer = setTimeout(() => {
      this.repairTimer = undefined;
      this.repairing ??= this.repair().finally(() => { this.repairing = undefined; });
    }, delayMs);
  }

  /** Re-claims after a lost lease and releases etcd did not take, until both are done; on failure, again after a backoff. */
  private async repair(): Promise<void> {
    try {
      while (!this.stopped && (this.needsReclaim || [...this.releasing.values()].some((s) => s.size > 0))) {
        if (this.needsReclaim) {
          this.needsReclaim = false;
          try {
            await this.underLease((id) => this.reclaimAll(id));
          } catch (err) {
            this.needsReclaim = true;
            throw err;
          }
        }
        await this.retryReleases();
      }
      this.retryMs = this.options.retryMs ?? 250;
    } catch (err) {
      if (this.stopped) return;
      this.failed(err, 'cannot claim this node\'s addresses in etcd again; trying again');
      const wait = this.retryMs;
      this.retryMs = Math.min(this.retryMs * 2, this.options.maxRetryMs ?? Math.min(2000, this.options.ttlSeconds * 250));
      this.scheduleRepair(wait);
    }
  }

  private async reclaimAll(leaseId: string): Promise<void> {
    const all = [...this.held].flatMap(([network, addresses]) => [...addresses].map((address) => ({ network, address })));
    let conflicts = 0;
    for (let i = 0; i < all.length; i += CALLS_AT_ONCE) {
      await Promise.all(all.slice(i, i + CALLS_AT_ONCE).map(async ({ network, address }) => {
        const holding = await this.keys.hold(network, address, leaseId);
        const stillHeld = this.held.get(network)?.has(address) ?? false;
        if (holding.kind === 'ours') {
          // Released while it was claimed again: the key just put goes too.
          if (!stillHeld) await this.keys.deleteIfOurs(network, address);
          return;
        }
        if (!stillHeld) return;
        this.held.get(network)!.delete(address);
        conflicts++;
        const holder = holding.holder ?? null;
        this.lostTo.set(conflictKey(network, address), { network, address, holder, since: new Date().toISOString() });
        this.options.log.warn({ network, address, holder }, 'an address this node held was taken by another node while its etcd lease was lost');
      }));
    }
    this.options.log.info({ addresses: all.length - conflicts, conflicts }, 'addresses claimed again under a new etcd lease');
  }

  private async retryReleases(): Promise<void> {
    for (const [network, addresses] of this.releasing) {
      for (const address of [...addresses]) {
        if (!this.held.get(network)?.has(address)) await this.keys.deleteIfOurs(network, address);
        addresses.delete(address);
      }
    }
  }

  private heldCount(): number {
    let count = 0;
    for (const addresses of this.held.values()) count += addresses.size;
    return count;
  }

  private failed(err: unknown, message: string): void {
    this.lastError = { message: errorMessage(err), at: new Date() };
    this.warnRateLimited((suppressed) => this.options.log.warn({ err: errorMessage(err), suppressed, retryMs: this.retryMs }, message));
  }

  private assertOpen(): void {
    if (this.stopped) throw new NsdnsError('ERR_INTERNAL', 'the address allocator is closed');
  }
}

function checkNetwork(network: string): void {
  if (!isServiceLabel(network)) throw new NsdnsError('ERR_BAD_REQUEST', `network name ${JSON.stringify(String(network).slice(0, 64))} is not a valid name`);
}

function conflictKey(network: string, address: string): string {
  return `${network}/${address}`;
}

function setOf(map: Map<string, Set<string>>, key: string): Set<string> {
  let set = map.get(key);
  if (set === undefined) map.set(key, (set = new Set()));
  return set;
}
