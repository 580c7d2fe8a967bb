// An overlay network's local presence: what a host has of a cluster's overlay network while it
// has endpoints on it. The network stays in etcd (etcd/cluster-networks.ts); a host that connects
// the first endpoint gets a record in its state directory with etcd's definition (so the
// announcer and the reader agree it is the same network) plus the plumbing: a bridge for the local
// endpoints and a VXLAN device on it. The last endpoint's disconnect takes the presence away again.
//
// Its bridge is the distributed gateway (overlay-gateway.ts); masquerade out of the host is the
// bridge networks' (the firewall reads the presence as a bridge network). Internal overlays get
// no default route, as internal bridges.
import { NsdnsError, errorMessage } from '../errors.js';
import type { Network, NetworkRecord } from '../registry/types.js';
import type { HostInspector, LinkDriver } from './drivers.js';
import { firstHost, parseCidr } from './ipam.js';
import { bridgeSpec, type LinkReport } from './link-check.js';
import { createVxlan, type VxlanSpec } from './overlay-kernel.js';
import type { Step, TeardownStep } from './steps.js';

/** 1500 less VXLAN's 50 bytes of outer headers (RFC 7348: IPv4 + UDP + VXLAN + inner Ethernet). */
export const OVERLAY_MTU = 1450;

/** What creating a VXLAN device takes; the kernel's by default, a test's fake otherwise. */
export interface VxlanMaker {
  create(spec: VxlanSpec): Promise<void>;
}
export const kernelVxlans: VxlanMaker = { create: createVxlan };

/** Whether `network` is an overlay network's local presence (provisioned here, with its VXLAN device). */
export function isPresence(network: Network): network is Network & { bridge: string; overlay: { vni: number; vxlan: string } } {
  return network.overlay?.vxlan !== undefined && network.bridge !== undefined;
}

/** The local record of the cluster's overlay network `cluster`: its definition, with this host's bridge and VXLAN device. */
export function presenceOf(cluster: Network, linkPrefix: string): Network {
  if (!cluster.overlay) throw new NsdnsError('ERR_INTERNAL', `network "${cluster.name}" is not an overlay network`);
  const short = cluster.id.replace(/[^0-9a-z]/gi, '').slice(0, 8).toLowerCase();
  return {
    name: cluster.name, id: cluster.id, internal: cluster.internal, upstreams: [],
    subnets: cluster.subnets.map((s) => ({ subnet: s.subnet, gateway: s.gateway ?? firstHost(parseCidr(s.subnet)) })),
    created: new Date().toISOString(),
    bridge: `${linkPrefix}br-${short}`,
    mtu: cluster.overlay.mtu ?? OVERLAY_MTU,
    options: {},
    overlay: { vni: cluster.overlay.vni, vxlan: `${linkPrefix}vx-${short}` },
    ...(cluster.domain !== undefined && { domain: cluster.domain }),
    ...(cluster.labels !== undefined && { labels: cluster.labels }),
    ...(cluster.records !== undefined && { records: cluster.records }),
  };
}

export class OverlayPresences {
  constructor(
    private readonly links: LinkDriver,
    /** This host's underlay address (`--advertise-address`); undefined: no overlay endpoints here. */
    private readonly advertiseAddress: string | undefined,
    private readonly vxlans: VxlanMaker = kernelVxlans,
  ) {}

  private vxlanSpec(network: Network & { bridge: string; overlay: { vni: number; vxlan: string } }): VxlanSpec {
    if (this.advertiseAddress === undefined) {
      throw new NsdnsError('ERR_BAD_REQUEST', `network "${network.name}" is an overlay network: its endpoints need a daemon started with --advertise-address (this host's underlay address)`);
    }
    return { name: network.overlay.vxlan, vni: network.overlay.vni, local: this.advertiseAddress, bridge: network.bridge, mtu: network.mtu ?? OVERLAY_MTU };
  }

  /** The steps that make the presence's links (before its record is saved): the bridge with the gateway's MAC, then the VXLAN device on it. */
  createSteps(network: Network): Step[] {
    if (!isPresence(network)) throw new NsdnsError('ERR_INTERNAL', `network "${network.name}" is no overlay presence`);
    const vxlan = this.vxlanSpec(network);
    return [
      { name: `create bridge ${network.bridge}`, apply: () => this.links.createBridge(bridgeSpec(network)), undo: () => this.links.deleteLink(network.bridge) },
      { name: `create VXLAN device ${vxlan.name} (id ${vxlan.vni})`, apply: () => this.vxlans.create(vxlan), undo: () => this.links.deleteLink(vxlan.name) },
    ];
  }

  /** Deleting the VXLAN device (its forwarding entries go with it); the bridge is the manager's, as for every bridge network. */
  removeSteps(network: Network): TeardownStep[] {
    if (!isPresence(network)) return [];
    return [{ name: `delete VXLAN device ${network.overlay.vxlan}`, run: () => this.links.deleteLink(network.overlay.vxlan) }];
  }

  /**
   * The self-heal pass for presences, after the bridges' (link-check.ts): a VXLAN device that is
   * gone is made again, one that is down or off its bridge is put back. Its forwarding entries
   * are overlay-peers.ts's to restore.
   */
  async reconcile(records: readonly NetworkRecord[], host: HostInspector): Promise<LinkReport> {
    const report: LinkReport = { repaired: [], problems: [] };
    const presences = records.map((r) => r.network).filter(isPresence);
    if (presences.length === 0) return report;
    const states = await host.linkStates();
    for (const network of presences) {
      const name = network.overlay.vxlan;
      const state = states.get(name);
      if (state?.up && state.master === network.bridge) continue;
      try {
        if (!state) await this.vxlans.create(this.vxlanSpec(network));
        else await this.links.attachLink(name, network.bridge);
        report.repaired.push(`${state ? 'put back' : 'recreated'} VXLAN device ${name} of overlay network "${network.name}"`);
      } catch (err) {
        report.problems.push(`VXLAN device ${name} of overlay network "${network.name}" is ${state ? 'down or off its bridge' : 'gone'} and could not be repaired: ${errorMessage(err)}`);
      }
    }
    return report;
  }
}
