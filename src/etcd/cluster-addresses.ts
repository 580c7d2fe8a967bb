// Addresses of overlay networks, allocated cluster-wide (`serve --cluster`): every address an
// endpoint of this node uses is a key in etcd, created only if absent, so two hosts connecting at
// once never get the same address.
//
//   PREFIX/addresses/<network>/<address>   the holding node's name, on this allocator's lease
//
// Any value that is not this node's name is someone else's: a hostile or garbled value is a taken
// address, never a crash, and is never echoed. The lease is kept alive while the daemon runs; when
// it is lost (etcd away longer than its TTL), every address this node holds is claimed again under
// a new one, and an address another node took meanwhile is reported in conflicts(). A clean close
// does not revoke the lease: the endpoints keep their addresses while the daemon is down, and a
// restart within the TTL claims them again (a key holding this node's name is put again under the
// new lease). Nothing here is on the query path.
import type { ComparatorBuilder, Etcd3, IRangeRequest, IRangeResponse, ITxnResponse, Lease } from 'etcd3';
import { NsdnsError, errorMessage } from '../errors.js';
import { rateLimited, type Logger } from '../log.js';
import { isServiceLabel } from '../wire/names.js';
import { addressSpace, canonicalIpv4, firstFree, hostAddress, type AddressSpace } from './address-space.js';
import { connectEtcd, type EtcdAccess } from './etcd-client.js';
import { etcdKeys, type EtcdLocation } from './etcd-url.js';
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

/** An address this node held whose key another node (or garbage) holds now: its endpoint has it, the cluster gives it to someone else. */
export interface AddressConflict {
  network: string;
  address: string;
  /** The node named in the key, or null when the value there is no node name. */
  holder: string | null;
  since: string;
}

/**
 * Transactions one claim without `ip` tries before it gives up. Every lost race brings a fresh
 * list of the taken addresses, so each retry only meets claims made since: a claim loses this
 * often only when as many other claims on the network keep winning.
 */
const MAX_TRIES = 32;
/** Re-claims sent at once after a lost lease: a node with thousands of endpoints is not thousands of calls in one go. */
const CALLS_AT_ONCE = 64;
/** A key whose lease is being moved and changes under us each time is retried this often, then reported. */
const HOLD_TRIES = 3;

type Held = { kind: 'ours' } | { kind: 'taken'; holder: string | undefined };

/** A lease of this allocator with its id (what a put names). */
interface Granted {
  lease: Lease;
  id: string;
}

/** etcd no longer knows the lease a put named: it expired before the client noticed. */
class LeaseGone extends NsdnsError {
  constructor(cause: unknown) {
    super('ERR_UPSTREAM_UNREACHABLE', 'the etcd lease of this node\'s addresses has expired; they are being claimed again', { cause });
  }
}

export class ClusterAddresses {
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
  private readonly nodeValue: Buffer;
  private needsReclaim = false;
  private repairTimer: NodeJS.Timeout | undefined;
  private repairing: Promise<void> | undefined;
  private retryMs: number;
  private stopped = false;
  private transactions = 0;
  private lastError: { message: string; at: Date } | undefined;
  private readonly warnRateLimited = rateLimited(30_000);

  constructor(private readonly client: Etcd3, private readonly options: ClusterAddressesOptions) {
    if (!isNodeName(options.node)) throw new NsdnsError('ERR_CONFIG', 'the node name of the address allocator is not a key part');
    this.nodeValue = Buffer.from(options.node);
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
      await this.deleteIfOurs(network, address);
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
    let held = 0;
    for (const addresses of this.held.values()) held += addresses.size;
    return {
      node: this.options.node, ttlSeconds: this.options.ttlSeconds,
      leaseSince: this.granted ? this.leaseSince?.toISOString() ?? null : null,
      held, transactions: this.transactions, conflicts: this.conflicts(),
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
      let granted = await this.currentLease();
      let outcome: Held;
      try {
        outcome = await this.hold(network, address, granted);
      } catch (err) {
        if (!(err instanceof LeaseGone)) throw err;
        granted = await this.currentLease();
        outcome = await this.hold(network, address, granted);
      }
      if (outcome.kind === 'taken') {
        const by = outcome.holder !== undefined ? `by node "${outcome.holder}"` : '(its key in etcd holds no node name)';
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
    const prefix = etcdKeys.networkAddresses(this.options.location.prefix, network);
    let taken = await this.takenAddresses(network);
    for (let tries = 0; tries < MAX_TRIES; tries++) {
      const address = firstFree(space, (a) => taken.has(a) || reserved.has(a) || claiming.has(a) || held.has(a));
      if (address === undefined) throw new NsdnsError('ERR_IPAM_EXHAUSTED', `no free address left in ${space.subnet} on network "${network}" in the cluster`);
      claiming.add(address);
      try {
        const granted = await this.currentLease();
        const key = etcdKeys.address(this.options.location.prefix, network, address);
        // Lost, the same transaction brings the keys taken now: the next try needs no other read.
        const result = await this.commit(this.client.if(key, 'Create', '==', 0)
          .then(this.client.put(key).value(this.nodeValue).lease(granted.id))
          .else({ request_range: prefixRange(prefix) }), granted);
        if (result.succeeded) {
          this.recordHeld(network, address, granted);
          return address;
        }
        taken = addressesIn(result.responses[0]?.response_range, prefix);
      } catch (err) {
        if (!(err instanceof LeaseGone)) throw err;
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

  /**
   * Makes the key of `address` this node's under `granted`: created if absent; holding this node's
   * name under another lease (a restart, a lost lease), moved to this one unless it changed meanwhile.
   */
  private async hold(network: string, address: string, granted: Granted): Promise<Held> {
    const key = etcdKeys.address(this.options.location.prefix, network, address);
    for (let i = 0; i < HOLD_TRIES; i++) {
      const created = await this.commit(this.client.if(key, 'Create', '==', 0)
        .then(this.client.put(key).value(this.nodeValue).lease(granted.id))
        .else(this.client.get(key)), granted);
      if (created.succeeded) return { kind: 'ours' };
      const kv = created.responses[0]?.response_range?.kvs[0];
      if (kv === undefined) continue;
      if (!Buffer.from(kv.value).equals(this.nodeValue)) return { kind: 'taken', holder: nodeNameIn(kv.value) };
      if (String(kv.lease) === granted.id) return { kind: 'ours' };
      const moved = await this.commit(this.client.if(key, 'Mod', '==', String(kv.mod_revision))
        .then(this.client.put(key).value(this.nodeValue).lease(granted.id)), granted);
      if (moved.succeeded) return { kind: 'ours' };
    }
    throw new NsdnsError('ERR_CONFLICT', `address ${address} on network "${network}" kept changing in etcd while it was claimed; try again`);
  }

  private async deleteIfOurs(network: string, address: string): Promise<void> {
    const key = etcdKeys.address(this.options.location.prefix, network, address);
    await this.commit(this.client.if(key, 'Value', '==', this.nodeValue).then(this.client.delete().key(key)));
  }

  /** The addresses taken on `network` (keys only, one range read), shared by the claims that ask meanwhile. */
  private takenAddresses(network: string): Promise<ReadonlySet<string>> {
    let read = this.reads.get(network);
    if (read === undefined) {
      const prefix = etcdKeys.networkAddresses(this.options.location.prefix, network);
      read = this.client.getAll().prefix(prefix).keys()
        .then((keys) => new Set(keys.map((key) => key.slice(prefix.length))), (err: unknown) => { throw unreachable(err); })
        .finally(() => this.reads.delete(network));
      this.reads.set(network, read);
    }
    return read;
  }

  private async commit(txn: ComparatorBuilder, granted?: Granted): Promise<ITxnResponse> {
    this.transactions++;
    try {
      return await txn.commit();
    } catch (err) {
      if (granted !== undefined && LEASE_NOT_FOUND.test(errorMessage(err))) {
        this.onLost(granted.lease, err);
        throw new LeaseGone(err);
      }
      throw unreachable(err);
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
      throw unreachable(err);
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
    let held = 0;
    for (const addresses of this.held.values()) held += addresses.size;
    this.options.log.warn({ err: errorMessage(err), held }, 'etcd lease of the claimed addresses lost; claiming them again under a new one');
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
        const granted = await this.currentLease();
        if (this.needsReclaim) {
          this.needsReclaim = false;
          try {
            await this.reclaimAll(granted);
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

  private async reclaimAll(granted: Granted): Promise<void> {
    const all = [...this.held].flatMap(([network, addresses]) => [...addresses].map((address) => ({ network, address })));
    let conflicts = 0;
    for (let i = 0; i < all.length; i += CALLS_AT_ONCE) {
      await Promise.all(all.slice(i, i + CALLS_AT_ONCE).map(async ({ network, address }) => {
        const outcome = await this.hold(network, address, granted);
        const stillHeld = this.held.get(network)?.has(address) ?? false;
        if (outcome.kind === 'ours') {
          // Released while it was claimed again: the key just put must go too.
          if (!stillHeld) await this.deleteIfOurs(network, address);
          return;
        }
        if (!stillHeld) return;
        this.held.get(network)!.delete(address);
        conflicts++;
        const holder = outcome.holder ?? null;
        this.lostTo.set(conflictKey(network, address), { network, address, holder, since: new Date().toISOString() });
        this.options.log.warn({ network, address, holder }, 'an address this node held was taken by another node while its etcd lease was lost');
      }));
    }
    this.options.log.info({ addresses: all.length - conflicts, conflicts }, 'addresses claimed again under a new etcd lease');
  }

  private async retryReleases(): Promise<void> {
    for (const [network, addresses] of this.releasing) {
      for (const address of [...addresses]) {
        if (!this.held.get(network)?.has(address)) await this.deleteIfOurs(network, address);
        addresses.delete(address);
      }
    }
  }

  private failed(err: unknown, message: string): void {
    this.lastError = { message: errorMessage(err), at: new Date() };
    this.warnRateLimited((suppressed) => this.options.log.warn({ err: errorMessage(err), suppressed, retryMs: this.retryMs }, message));
  }

  private assertOpen(): void {
    if (this.stopped) throw new NsdnsError('ERR_INTERNAL', 'the address allocator is closed');
  }
}

const LEASE_NOT_FOUND = /requested lease not found|is expired or revoked/;

function unreachable(err: unknown): NsdnsError {
  if (err instanceof NsdnsError) return err;
  return new NsdnsError('ERR_UPSTREAM_UNREACHABLE', `cannot reach etcd for the cluster's addresses: ${errorMessage(err)}`, { cause: err });
}

function checkNetwork(network: string): void {
  if (!isServiceLabel(network)) throw new NsdnsError('ERR_BAD_REQUEST', `network name ${JSON.stringify(String(network).slice(0, 64))} is not a valid name`);
}

/** The node a key's value names, or undefined when it is not a node name (garbage is never echoed). */
function nodeNameIn(value: Uint8Array): string | undefined {
  if (value.length > 128) return undefined;
  const text = Buffer.from(value).toString('latin1');
  return isNodeName(text) ? text : undefined;
}

/** Keys only of everything under `prefix` (which ends in '/': its range ends where '/' + 1 starts). */
function prefixRange(prefix: string): IRangeRequest {
  const key = Buffer.from(prefix);
  const end = Buffer.from(key);
  end[end.length - 1] += 1;
  return { key, range_end: end, keys_only: true };
}

function addressesIn(range: IRangeResponse | null | undefined, prefix: string): ReadonlySet<string> {
  return new Set((range?.kvs ?? []).map((kv) => Buffer.from(kv.key).toString('latin1').slice(prefix.length)));
}

function conflictKey(network: string, address: string): string {
  return `${network}/${address}`;
}

function setOf(map: Map<string, Set<string>>, key: string): Set<string> {
  let set = map.get(key);
  if (set === undefined) map.set(key, (set = new Set()));
  return set;
}
