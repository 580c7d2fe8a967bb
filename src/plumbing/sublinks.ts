// Networks whose endpoints sit on a host interface (the "parent") instead of a bridge: macvlan and
// ipvlan, as docker has them. The network keeps docker's options (`parent`, `macvlan_mode` or
// `ipvlan_mode`, always written with the mode in force), so its driver is read from which mode key
// it holds; it has no bridge, no NAT and no published ports. This module decides; the kernel work
// is in sublink-kernel.ts.
import { NsdnsError } from '../errors.js';
import { isIfname, printable } from '../registry/fields.js';
import type { Network } from '../registry/types.js';
import type { LinkState } from './links.js';

export type NetworkDriver = 'bridge' | 'macvlan' | 'ipvlan';
export type SubLinkDriver = 'macvlan' | 'ipvlan';

const MODES: Record<SubLinkDriver, readonly string[]> = {
  macvlan: ['bridge', 'private', 'vepa', 'passthru'],
  ipvlan: ['l2', 'l3'],
};
const MODE_KEY: Record<SubLinkDriver, string> = { macvlan: 'macvlan_mode', ipvlan: 'ipvlan_mode' };

/** A macvlan or ipvlan network's parent interface and mode. */
export interface SubLinkNetwork {
  driver: SubLinkDriver;
  parent: string;
  mode: string;
}

/** The sub-link side of a network nsdns provisioned, or undefined for a bridge (or a file's) network. */
export function subLinkOf(network: Network): SubLinkNetwork | undefined {
  if (network.bridge !== undefined) return undefined;
  const options = network.options ?? {};
  const parent = options.parent;
  if (parent === undefined) return undefined;
  for (const driver of ['macvlan', 'ipvlan'] as const) {
    const mode = options[MODE_KEY[driver]];
    if (mode !== undefined) return { driver, parent, mode };
  }
  return undefined;
}

/**
 * Why an egress policy cannot be enforced on a `driver` network, or undefined when it can: a
 * macvlan or ipvlan link sends through its parent without passing the host's netfilter, so a
 * policy there would filter names only, and a namespace under one would be open through it.
 */
export function egressBypass(name: string, driver: string | undefined): string | undefined {
  if (driver !== 'macvlan' && driver !== 'ipvlan') return undefined;
  return `network "${name}" is a ${driver} network: its endpoints' traffic leaves through the parent interface without passing the host's firewall, so an egress policy cannot be enforced there (use a bridge network)`;
}

export function driverOf(network: Network): NetworkDriver | 'overlay' | 'static' {
  if (network.overlay !== undefined) return 'overlay';
  return network.bridge !== undefined ? 'bridge' : subLinkOf(network)?.driver ?? 'static';
}

/**
 * The options a new macvlan/ipvlan network keeps: `parent` required and a valid interface name,
 * the mode one the driver knows (default: bridge, l2), no option of the other driver.
 */
export function subLinkOptions(driver: SubLinkDriver, options: Readonly<Record<string, string>>): Record<string, string> {
  const parent = options.parent;
  if (parent === undefined) throw new NsdnsError('ERR_BAD_REQUEST', `a ${driver} network needs its parent interface: -o parent=IFACE`);
  if (!isIfname(parent)) throw new NsdnsError('ERR_BAD_REQUEST', `-o parent="${printable(parent, 40)}" is not an interface name`);
  const other: SubLinkDriver = driver === 'macvlan' ? 'ipvlan' : 'macvlan';
  if (options[MODE_KEY[other]] !== undefined) throw new NsdnsError('ERR_BAD_REQUEST', `-o ${MODE_KEY[other]} is an option of the ${other} driver, not of ${driver}`);
  const mode = options[MODE_KEY[driver]] ?? MODES[driver][0];
  if (!MODES[driver].includes(mode)) {
    throw new NsdnsError('ERR_BAD_REQUEST', `-o ${MODE_KEY[driver]}="${printable(mode, 20)}" is not ${driver === 'ipvlan' ? 'an' : 'a'} ${driver} mode (${MODES[driver].join(', ')})`);
  }
  return { ...options, parent, [MODE_KEY[driver]]: mode };
}

/**
 * Why `parent` cannot carry a new network, or undefined when it can: it must exist, be up, be no
 * bridge's port (the kernel gives one device one receive handler), and be shared with other
 * networks only in the same mode and never in passthru, which takes the whole device.
 */
export function parentProblem(wanted: SubLinkNetwork, states: ReadonlyMap<string, LinkState>, networks: readonly Network[]): string | undefined {
  const { parent } = wanted;
  const state = states.get(parent);
  if (!state) return `parent interface ${parent} does not exist on the host`;
  if (!state.up) return `parent interface ${parent} is down; set it up first (ip link set ${parent} up)`;
  if (state.master !== undefined) return `parent interface ${parent} is a port of ${state.master}; a ${wanted.driver} network needs an interface of its own`;
  for (const network of networks) {
    const other = subLinkOf(network);
    if (other?.parent !== parent) continue;
    if (other.driver !== wanted.driver || other.mode !== wanted.mode || wanted.mode === 'passthru') {
      return `parent interface ${parent} already carries ${other.driver} network "${network.name}" in mode ${other.mode}; a ${wanted.driver} network in mode ${wanted.mode} cannot share it`;
    }
  }
  return undefined;
}
