// The etcd transactions on overlay address keys, one key per address:
//
//   PREFIX/addresses/<network>/<address>   the holding node's name, on that node's lease
//
// Each call is one transaction or one range read, decided by etcd at once: created only if
// absent, moved to a new lease only if unchanged, deleted only if this node's. Any value that is
// not exactly this node's name belongs to someone else; it is named only when it is a node name, so
// a hostile or garbled value is a taken address, never echoed. The allocator above
// (cluster-addresses.ts) decides which address to try and keeps what this node holds.
import type { ComparatorBuilder, Etcd3, IRangeRequest, IRangeResponse, ITxnResponse } from 'etcd3';
import { NsdnsError, errorMessage } from '../errors.js';
import { etcdKeys } from './etcd-url.js';
import { isNodeName } from './node-name.js';

/** Whose the key is after a claim: this node's, or another's (named when the value is a node name). */
export type Holding = { kind: 'ours' } | { kind: 'taken'; holder: string | undefined };

/** etcd no longer knows the lease a put named: it expired before the client noticed. */
export class LeaseGone extends NsdnsError {
  constructor(cause: unknown) {
    super('ERR_UPSTREAM_UNREACHABLE', 'the etcd lease of this node\'s addresses has expired; they are being claimed again', { cause });
  }
}

/** A key whose lease is being moved and that changes under us each time is tried this often, then refused. */
const HOLD_TRIES = 3;
const LEASE_NOT_FOUND = /requested lease not found|is expired or revoked/;

export class AddressKeys {
  /** Transactions sent so far (what a burst of claims cost, for status and measurement). */
  transactions = 0;
  private readonly nodeValue: Buffer;

  constructor(private readonly client: Etcd3, private readonly prefix: string, node: string) {
    this.nodeValue = Buffer.from(node);
  }

  /** The addresses with a key on `network` (keys only, one range read). */
  async taken(network: string): Promise<ReadonlySet<string>> {
    const prefix = etcdKeys.networkAddresses(this.prefix, network);
    try {
      return new Set((await this.client.getAll().prefix(prefix).keys('latin1')).map((key) => key.slice(prefix.length)));
    } catch (err) {
      throw unreachable(err);
    }
  }

  /** Creates the key of `address` under `leaseId` if absent; else says which addresses are taken now (the same transaction). */
  async create(network: string, address: string, leaseId: string): Promise<{ created: true } | { created: false; taken: ReadonlySet<string> }> {
    const key = etcdKeys.address(this.prefix, network, address);
    const prefix = etcdKeys.networkAddresses(this.prefix, network);
    const result = await this.commit(this.client.if(key, 'Create', '==', 0)
      .then(this.client.put(key).value(this.nodeValue).lease(leaseId))
      .else({ request_range: keysUnder(prefix) }));
    return result.succeeded ? { created: true } : { created: false, taken: addressesIn(result.responses[0]?.response_range, prefix) };
  }

  /**
   * Makes the key of `address` this node's under `leaseId`: created if absent; holding this node's
   * name under another lease (a restart, a lost lease), moved to this one unless it changed meanwhile.
   */
  async hold(network: string, address: string, leaseId: string): Promise<Holding> {
    const key = etcdKeys.address(this.prefix, network, address);
    for (let i = 0; i < HOLD_TRIES; i++) {
      const created = await this.commit(this.client.if(key, 'Create', '==', 0)
        .then(this.client.put(key).value(this.nodeValue).lease(leaseId))
        .else(this.client.get(key)));
      if (created.succeeded) return { kind: 'ours' };
      const kv = created.responses[0]?.response_range?.kvs[0];
      if (kv === undefined) continue;
      if (!Buffer.from(kv.value).equals(this.nodeValue)) return { kind: 'taken', holder: nodeNameIn(kv.value) };
      if (String(kv.lease) === leaseId) return { kind: 'ours' };
      const moved = await this.commit(this.client.if(key, 'Mod', '==', String(kv.mod_revision))
        .then(this.client.put(key).value(this.nodeValue).lease(leaseId)));
      if (moved.succeeded) return { kind: 'ours' };
    }
    throw new NsdnsError('ERR_CONFLICT', `address ${address} on network "${network}" kept changing in etcd while it was claimed; try again`);
  }

  /** Deletes the key of `address` if it holds this node's name; anyone else's stays. */
  async deleteIfOurs(network: string, address: string): Promise<void> {
    const key = etcdKeys.address(this.prefix, network, address);
    await this.commit(this.client.if(key, 'Value', '==', this.nodeValue).then(this.client.delete().key(key)));
  }

  private async commit(txn: ComparatorBuilder): Promise<ITxnResponse> {
    this.transactions++;
    try {
      return await txn.commit();
    } catch (err) {
      throw LEASE_NOT_FOUND.test(errorMessage(err)) ? new LeaseGone(err) : unreachable(err);
    }
  }
}

function unreachable(err: unknown): NsdnsError {
  if (err instanceof NsdnsError) return err;
  return new NsdnsError('ERR_UPSTREAM_UNREACHABLE', `cannot reach etcd for the cluster's addresses: ${errorMessage(err)}`, { cause: err });
}

/** The node a key's value names, or undefined when it is not a node name. */
function nodeNameIn(value: Uint8Array): string | undefined {
  if (value.length > 128) return undefined;
  const text = Buffer.from(value).toString('latin1');
  return isNodeName(text) ? text : undefined;
}

/** Keys only, of everything under `prefix` (which ends in '/': its range ends where '/' + 1 starts). */
function keysUnder(prefix: string): IRangeRequest {
  const key = Buffer.from(prefix);
  const end = Buffer.from(key);
  end[end.length - 1] += 1;
  return { key, range_end: end, keys_only: true };
}

function addressesIn(range: IRangeResponse | null | undefined, prefix: string): ReadonlySet<string> {
  return new Set((range?.kvs ?? []).map((kv) => Buffer.from(kv.key).toString('latin1').slice(prefix.length)));
}
