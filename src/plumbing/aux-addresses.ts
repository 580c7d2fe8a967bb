// `network create --aux-address NAME=IP` (docker's): addresses of the network's subnets that are
// never given to an endpoint (a router, a printer already on the LAN). They are kept among the
// network's options as `aux-address.NAME`, which state files already hold and inspect shows.
import { NsdnsError } from '../errors.js';
import { isIp, printable } from '../registry/fields.js';
import type { Network, Subnet } from '../registry/types.js';
import { canonical, contains, parseCidr } from './ipam.js';

const PREFIX = 'aux-address.';
const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;

/** The options entries for `aux` (NAME → IP), each inside one of `subnets` and none twice. */
export function auxOptions(aux: Readonly<Record<string, string>>, subnets: readonly Subnet[]): Record<string, string> {
  const out: Record<string, string> = {};
  const seen = new Set<string>();
  for (const [name, ip] of Object.entries(aux)) {
    if (!NAME.test(name)) throw new NsdnsError('ERR_BAD_REQUEST', `--aux-address "${printable(name)}": the name must be letters, digits, "_" or "-" (at most 63)`);
    if (!isIp(ip)) throw new NsdnsError('ERR_BAD_REQUEST', `--aux-address ${name}="${printable(ip)}" is not an IP address`);
    const address = canonical(ip);
    if (!subnets.some((s) => contains(parseCidr(s.subnet), address))) throw new NsdnsError('ERR_BAD_REQUEST', `--aux-address ${name}=${address} is outside the subnets ${subnets.map((s) => s.subnet).join(', ')}`);
    if (seen.has(address)) throw new NsdnsError('ERR_BAD_REQUEST', `--aux-address ${address} is given twice`);
    seen.add(address);
    out[PREFIX + name] = address;
  }
  return out;
}

/** The network's auxiliary addresses by name. */
export function auxAddresses(network: Network): Record<string, string> {
  return Object.fromEntries(Object.entries(network.options ?? {}).filter(([k]) => k.startsWith(PREFIX)).map(([k, v]) => [k.slice(PREFIX.length), v]));
}
