// The link check of macvlan/ipvlan networks (link-check.ts does bridges): the parent is the
// user's interface, so it is only read, never changed: gone or down is reported, not repaired, and
// the endpoints' links (which the kernel deletes with their parent) are reported gone, not made
// again in a loop. An endpoint link that is merely down inside its namespace is set up again, and
// the caller puts back the default route the kernel removed with it.
import { errorMessage } from '../errors.js';
import type { NetworkRecord } from '../registry/types.js';
import type { HostInspector } from './drivers.js';
import type { LinkReport } from './link-check.js';
import type { SubLinkKernel } from './sublink-kernel.js';
import { subLinkOf } from './sublinks.js';

export interface SubLinkReport extends LinkReport {
  /** Namespaces whose link was set up again: the kernel dropped their routes through it when it went down. */
  relinked: string[];
}

export async function reconcileSubLinks(records: readonly NetworkRecord[], host: HostInspector, kernel: SubLinkKernel): Promise<SubLinkReport> {
  const report: SubLinkReport = { repaired: [], problems: [], relinked: [] };
  if (records.length === 0) return report;
  const states = await host.linkStates();
  for (const { network, endpoints } of records) {
    const sub = subLinkOf(network)!;
    const state = states.get(sub.parent);
    if (!state || !state.up) {
      const lost = endpoints.length === 0 ? '' : state
        ? `; its ${endpoints.length} endpoint(s) are cut off from the LAN until it is up`
        : `; its ${endpoints.length} endpoint(s) have no ${sub.driver} link (the kernel deleted them with it): disconnect and connect them again once it is back`;
      report.problems.push(`parent interface ${sub.parent} of ${sub.driver} network "${network.name}" is ${state ? 'down' : 'gone'}${lost}`);
      continue;
    }
    for (const e of endpoints) {
      if (e.netns === undefined || e.ifname === undefined || !host.namespaceExists(e.netns)) continue;
      const where = `endpoint "${e.name}" of ${sub.driver} network "${network.name}"`;
      try {
        const link = await kernel.read(e.netns, e.ifname);
        if (!link) report.problems.push(`${where}: its link ${e.ifname} is gone (remove it with \`nsdns network disconnect ${network.name} ${e.name}\` and connect it again)`);
        else if (link.kind !== sub.driver) report.problems.push(`${where}: ${e.ifname} in its namespace is a ${link.kind} link, not ${sub.driver}`);
        else if (!link.up) {
          await kernel.setUp(e.netns, e.ifname);
          report.repaired.push(`${where}: set ${e.ifname} up again`);
          report.relinked.push(e.netns);
        }
      } catch (err) {
        report.problems.push(`${where}: ${e.ifname} could not be checked: ${errorMessage(err)}`);
      }
    }
  }
  return report;
}
