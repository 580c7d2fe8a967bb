// Overlay networks of a cluster (`serve --cluster etcd://…/PREFIX`): `network create --driver
// overlay` keeps the network in etcd, where every member's shared registry reads it.
//
//   PREFIX/networks/<network>   the definition with its VXLAN id, created if absent (no lease)
//   PREFIX/vnis/<vni>           the network holding that VXLAN id, created if absent
//
// `network rm` deletes both in one transaction, refused while any host has endpoints on the
// network (an endpoint key under PREFIX/endpoints/<network>/, or one on this host not yet announced).
//
// Both are created in one transaction only if both are absent: two members creating one network
// (or two networks with one id) at once agree on the first. The network reaches this daemon's
// registry the way it reaches every other member's: through the shared registry's watch.
import ipaddr from 'ipaddr.js';
import type { Etcd3 } from 'etcd3';
import { NsdnsError } from '../errors.js';
import { remoteNetwork, remoteNetworkValue, derivedId } from '../registry/document.js';
import type { Registry } from '../registry/registry.js';
import type { Network } from '../registry/types.js';
import { connectEtcd, type EtcdAccess } from './etcd-client.js';
import { etcdKeys, type EtcdLocation } from './etcd-url.js';

/** VXLAN ids are 24 bits; ids below 4096 are left to whoever numbers VLAN-like by hand (docker's overlay starts at 4096 too). */
const FIRST_AUTO_VNI = 4096;
const MAX_VNI = 0xffffff;
/** Ids tried one after another when the first is taken: enough for many networks, bounded so a full space is an error, not a loop. */
const AUTO_VNI_TRIES = 64;
/** How long create waits for the network to come back through the watch before it answers. */
const SEEN_TIMEOUT_MS = 5000;

/** What `network create` asks for, as far as an overlay network reads it (the control schema's shape; etcd/ sits below plumbing/). */
export interface OverlayRequest {
  name: string;
  subnets?: string[];
  internal?: boolean;
  domain?: string;
  labels?: Record<string, string>;
  options?: Record<string, string>;
  /** The MTU of every host's bridge, VXLAN device and veths (default: overlay-presence.ts's 1450). */
  mtu?: number;
  /** Bridge plumbing an overlay network does not take (yet): given, the request is refused. */
  gateway?: unknown; ipRange?: unknown; auxAddresses?: unknown; bridge?: unknown; dnsUpstreams?: unknown; records?: unknown;
}

const vniKey = (prefix: string, vni: number) => `${prefix}/vnis/${vni}`;

/** The overlay network a create request describes, checked: one IPv4 subnet, nothing of a bridge's plumbing. */
export function overlayDefinition(req: OverlayRequest, vni: number): Network {
  const unsupported = (['gateway', 'ipRange', 'auxAddresses', 'bridge', 'dnsUpstreams', 'records'] as const).filter((k) => req[k] !== undefined);
  if (unsupported.length > 0) throw new NsdnsError('ERR_BAD_REQUEST', `overlay networks do not take ${unsupported.map(flagOf).join(', ')} yet`);
  const subnets = req.subnets ?? [];
  if (subnets.length !== 1) throw new NsdnsError('ERR_BAD_REQUEST', 'an overlay network needs one --subnet (IPv4 CIDR)');
  let subnet: string;
  try {
    const [addr, bits] = ipaddr.IPv4.parseCIDR(subnets[0]);
    if (bits > 30) throw new Error('too small');
    subnet = `${ipaddr.IPv4.networkAddressFromCIDR(`${addr.toString()}/${bits}`).toString()}/${bits}`;
  } catch {
    throw new NsdnsError('ERR_BAD_REQUEST', `--subnet ${JSON.stringify(subnets[0].slice(0, 64))}: not an IPv4 CIDR of /30 or larger`);
  }
  return remoteNetwork({
    name: req.name, id: derivedId('network', req.name), subnets: [{ subnet }], internal: req.internal ?? false,
    ...(req.domain !== undefined && { domain: req.domain }), ...(req.labels !== undefined && { labels: req.labels }),
    overlay: { vni, ...(req.mtu !== undefined && { mtu: req.mtu }) },
  }, `network ${req.name}`);
}

function flagOf(key: string): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** `-o vni=N`, or undefined when not given. */
export function requestedVni(options: Readonly<Record<string, string>> | undefined): number | undefined {
  const text = options?.vni;
  if (text === undefined) return undefined;
  const vni = /^[0-9]{1,8}$/.test(text) ? Number(text) : NaN;
  if (!(vni >= 1 && vni <= MAX_VNI)) throw new NsdnsError('ERR_BAD_REQUEST', `-o vni=${JSON.stringify(text.slice(0, 16))}: a VXLAN id is 1-${MAX_VNI}`);
  const others = Object.keys(options!).filter((k) => k !== 'vni');
  if (others.length > 0) throw new NsdnsError('ERR_BAD_REQUEST', `overlay networks take -o vni=N only (not ${others.map((k) => JSON.stringify(k.slice(0, 32))).join(', ')})`);
  return vni;
}

/** The node names in endpoint keys under `under` (PREFIX/endpoints/<network>/<node>/<id>). */
function nodesOf(keys: readonly string[], under: string): string[] {
  return [...new Set(keys.map((k) => k.slice(under.length).split('/')[0]).filter((n) => n !== ''))].sort();
}

export class ClusterNetworks {
  private client: Promise<Etcd3> | undefined;

  constructor(private readonly location: EtcdLocation, private readonly access: EtcdAccess, private readonly registry: Registry) {}

  /** Creates the overlay network in etcd, then waits until this daemon's registry has it. */
  async create(req: OverlayRequest): Promise<Network> {
    const wanted = requestedVni(req.options);
    overlayDefinition(req, wanted ?? FIRST_AUTO_VNI); // every problem of the request before etcd is asked
    const client = await (this.client ??= connectEtcd(this.location, this.access));
    const tries = wanted !== undefined ? [wanted] : Array.from({ length: AUTO_VNI_TRIES }, (_, i) => FIRST_AUTO_VNI + i);
    for (const vni of tries) {
      const network = overlayDefinition(req, vni);
      const key = etcdKeys.network(this.location.prefix, network.name);
      const result = await client.if(key, 'Create', '==', 0).and(vniKey(this.location.prefix, vni), 'Create', '==', 0)
        .then(client.put(key).value(JSON.stringify(remoteNetworkValue(network))), client.put(vniKey(this.location.prefix, vni)).value(network.name))
        .else(client.get(key))
        .commit();
      if (result.succeeded) {
        await this.seen(network.name);
        return network;
      }
      if ((result.responses[0]?.response_range?.kvs.length ?? 0) > 0) throw new NsdnsError('ERR_CONFLICT', `network ${JSON.stringify(req.name)} already exists in the cluster`);
      if (wanted !== undefined) throw new NsdnsError('ERR_CONFLICT', `VXLAN id ${vni} is taken by another network of the cluster`);
    }
    throw new NsdnsError('ERR_CONFLICT', `no free VXLAN id among ${FIRST_AUTO_VNI}-${FIRST_AUTO_VNI + AUTO_VNI_TRIES - 1}; give one with -o vni=N`);
  }

  /**
   * Deletes the overlay network from the cluster: refused while any host has endpoints on it;
   * both keys go in one transaction that succeeds only if the network's key is what was read.
   */
  async remove(name: string): Promise<void> {
    if (this.registry.isProvisioned(name)) throw new NsdnsError('ERR_CONFLICT', `overlay network ${JSON.stringify(name)} has endpoints on this host; disconnect them first`);
    const client = await (this.client ??= connectEtcd(this.location, this.access));
    const { prefix } = this.location;
    const key = etcdKeys.network(prefix, name);
    const current = (await client.get(key).exec()).kvs[0];
    if (current === undefined) throw new NsdnsError('ERR_NOT_FOUND', `network ${JSON.stringify(name)} is not in the cluster`);
    const hosts = nodesOf(await client.getAll().prefix(etcdKeys.networkEndpoints(prefix, name)).limit(1000).keys(), etcdKeys.networkEndpoints(prefix, name));
    if (hosts.length > 0) {
      throw new NsdnsError('ERR_CONFLICT', `overlay network ${JSON.stringify(name)} has endpoints on ${hosts.length} host(s) (${hosts.slice(0, 5).join(', ')}${hosts.length > 5 ? ', ...' : ''}); disconnect them first`);
    }
    let vni: number | undefined;
    try {
      vni = remoteNetwork(JSON.parse(current.value.toString()), key).overlay?.vni;
    } catch { /* not a network value: its key goes alone */ }
    const txn = client.if(key, 'Mod', '==', current.mod_revision);
    const deletes = [client.delete().key(key), ...(vni !== undefined ? [client.delete().key(vniKey(prefix, vni))] : [])];
    const result = vni !== undefined
      ? await txn.and(vniKey(prefix, vni), 'Value', '==', name).then(...deletes).commit()
      : await txn.then(...deletes).commit();
    if (!result.succeeded) throw new NsdnsError('ERR_CONFLICT', `overlay network ${JSON.stringify(name)} changed in etcd meanwhile; try again`);
    await this.seen(name, false);
  }

  /** The network in this daemon's registry, or (`present` false) out of it: changes come back through the shared registry's watch. */
  private seen(name: string, present = true): Promise<void> {
    const done = (): boolean => this.registry.current().networks.has(name) === present;
    if (done()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const stop = (): void => { clearTimeout(timer); this.registry.off('change', onChange); };
      const onChange = (): void => { if (done()) { stop(); resolve(); } };
      const why = present ? 'was stored in etcd but has not reached' : 'was deleted from etcd but has not left';
      const timer = setTimeout(() => { stop(); reject(new NsdnsError('ERR_UPSTREAM_UNREACHABLE', `network ${JSON.stringify(name)} ${why} this daemon's registry yet`)); }, SEEN_TIMEOUT_MS);
      this.registry.on('change', onChange);
    });
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    (await client?.catch(() => undefined))?.close();
  }
}
