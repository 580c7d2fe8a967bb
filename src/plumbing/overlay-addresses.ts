// An overlay endpoint's IPv4 address when the daemon has the cluster's allocator
// (address-claims.ts): claimed before the endpoint's link is made, given back when the endpoint
// goes or the connect fails. Without the allocator these are no steps, and the planner's local
// choice stands.
import type { Endpoint, Network } from '../registry/types.js';
import type { AddressClaims } from './address-claims.js';
import { macFor, parseCidr } from './ipam.js';
import type { EndpointPlan } from './planner.js';
import type { ConnectRequest } from './request-schemas.js';
import type { Step, TeardownStep } from './steps.js';

/** The claim, as a connect step: the planned address (and the MAC derived from it) is replaced by the claimed one; undone, it is given back. */
export function claimSteps(claims: AddressClaims | undefined, plan: EndpointPlan, req: ConnectRequest): Step[] {
  const { endpoint, network } = plan;
  const subnet = network.subnets.find((s) => parseCidr(s.subnet).kind === 'ipv4');
  if (claims === undefined || network.overlay === undefined || subnet === undefined) return [];
  let claimed: string | undefined;
  return [{
    name: `claim an address of ${subnet.subnet} in the cluster`, stage: 'address claim',
    apply: async () => {
      claimed = await claims.claim(network.name, subnet.subnet, { ...(req.ip !== undefined && { ip: endpoint.ipv4[0] }), reserved: subnet.gateway !== undefined ? [subnet.gateway] : [] });
      if (claimed === endpoint.ipv4[0]) return;
      endpoint.ipv4 = [claimed];
      if (req.mac === undefined) endpoint.mac = macFor(claimed);
    },
    undo: () => (claimed === undefined ? Promise.resolve() : claims.release(network.name, claimed)),
  }];
}

/** Giving gone endpoints' addresses back to the cluster, as teardown steps. */
export function releaseSteps(claims: AddressClaims | undefined, network: Network, gone: readonly Endpoint[]): TeardownStep[] {
  if (claims === undefined || network.overlay === undefined) return [];
  return gone.flatMap((e) => e.ipv4.map((ip) => ({ name: `release ${ip} in the cluster`, stage: 'address claim', run: () => claims.release(network.name, ip) })));
}
