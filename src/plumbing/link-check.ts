// At start and in the self-heal loop: every provisioned network's bridge and every endpoint's host
// link, read back from the kernel and put right where they can be. A bridge someone deleted is
// created again and its veths are attached to it again (the kernel detaches them, it does not
// delete them); a veth that is down or on no bridge is set up on its own. A veth that is gone
// cannot be rebuilt here: it is reported, and the daemon is not ready while it is. The namespace
// end of a veth lives exactly as long as its host end, so reading the host's links is enough.
import { errorMessage } from '../errors.js';
import type { Network, NetworkRecord } from '../registry/types.js';
import type { HostInspector, LinkDriver } from './drivers.js';
import { parseCidr } from './ipam.js';
import type { BridgeSpec, LinkState } from './links.js';
import { gatewayMac } from './overlay-gateway.js';

export interface LinkReport {
  /** What was found broken and put right, one line each (logged as warnings). */
  repaired: string[];
  /** What is broken and stays so: shown in `status`, and the daemon is not ready. */
  problems: string[];
}

/** The bridge of a network as nsdns creates it: its gateways' addresses, its MTU, and an overlay's gateway MAC. */
export function bridgeSpec(network: Network): BridgeSpec {
  const addresses = network.subnets.filter((s) => s.gateway).map((s) => `${s.gateway}/${parseCidr(s.subnet).prefix}`);
  return { name: network.bridge!, addresses, mtu: network.mtu, ...(network.overlay && { mac: gatewayMac(network.overlay.vni) }) };
}

/** Checks and repairs the links of `records` (networks nsdns provisioned, each with a bridge). */
export async function reconcileLinks(records: readonly NetworkRecord[], host: HostInspector, links: LinkDriver): Promise<LinkReport> {
  const report: LinkReport = { repaired: [], problems: [] };
  let states = await host.linkStates();
  for (const { network } of records) {
    const bridge = network.bridge!;
    const state = states.get(bridge);
    try {
      if (!state) {
        await links.createBridge(bridgeSpec(network));
        report.repaired.push(`recreated bridge ${bridge} of network "${network.name}"`);
      } else if (!state.up) {
        await links.attachLink(bridge);
        report.repaired.push(`set bridge ${bridge} of network "${network.name}" up again`);
      }
    } catch (err) {
      report.problems.push(`bridge ${bridge} of network "${network.name}" is ${state ? 'down' : 'gone'} and could not be repaired: ${errorMessage(err)}`);
    }
  }
  if (report.repaired.length > 0) states = await host.linkStates();
  for (const { network, endpoints } of records) {
    for (const e of endpoints) {
      if (!e.hostIf) continue;
      const where = `endpoint "${e.name}" of network "${network.name}"`;
      const state: LinkState | undefined = states.get(e.hostIf);
      if (!state) {
        report.problems.push(`${where}: its link ${e.hostIf} is gone (remove it with \`nsdns network disconnect ${network.name} ${e.name}\` and connect it again)`);
        continue;
      }
      const detached = state.master !== network.bridge;
      if (!detached && state.up) continue;
      try {
        await links.attachLink(e.hostIf, detached ? network.bridge : undefined);
        report.repaired.push(`${where}: ${detached ? `attached ${e.hostIf} to bridge ${network.bridge} again` : `set ${e.hostIf} up again`}`);
      } catch (err) {
        report.problems.push(`${where}: ${e.hostIf} is ${detached ? `not on bridge ${network.bridge}` : 'down'} and could not be repaired: ${errorMessage(err)}`);
      }
    }
  }
  return report;
}
