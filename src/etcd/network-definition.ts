// When two definitions of one network are the same network: the same subnets and the same
// `internal`. The announcer asks it before joining a network another node put in etcd, the
// reader before letting etcd's endpoints join a network defined here.
import type { Network } from '../registry/types.js';

/** What differs between etcd's definition and this daemon's, in words, or undefined when they agree. */
export function definitionDifference(shared: Network, local: Network): string | undefined {
  const subnets = (n: Network) => n.subnets.map((s) => s.subnet).sort().join(', ') || 'none';
  if (subnets(shared) !== subnets(local)) return `subnets ${subnets(shared)} in etcd, ${subnets(local)} here`;
  const vni = (n: Network) => (n.overlay ? `overlay (VXLAN id ${n.overlay.vni})` : 'not overlay');
  if (vni(shared) !== vni(local)) return `${vni(shared)} in etcd, ${vni(local)} here`;
  if (shared.internal !== local.internal) return `internal ${shared.internal} in etcd, ${local.internal} here`;
  return undefined;
}
