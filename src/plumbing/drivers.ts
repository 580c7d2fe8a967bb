// What the network manager and the planner do to and read from the host, behind two small
// interfaces (as Firewall is): the kernel implementations delegate to links.ts; tests give fakes
// to check decisions (conflicts, pools, names, routes) and to make a step fail on purpose. What
// the kernel does with a request is tested against the kernel (test/privileged), never a fake.
import { existsSync } from 'node:fs';
import { namespaceIdentity } from '../namespace-identity.js';
import {
  addDefaultRoutes, attachLink, createBridge, createEndpointLink, defaultRoutes, deleteLink, hostLinkStates, hostPrefixes, namespaceLinksKind, setSysctl,
  type BridgeSpec, type EndpointLinkSpec, type LinkState,
} from './links.js';

/** Link work: what the manager changes on the host and inside namespaces. */
export interface LinkDriver {
  createBridge(spec: BridgeSpec): Promise<void>;
  /** `lap` is told when each part is done ('veth pair', 'addresses+routes in namespace'). */
  createEndpointLink(spec: EndpointLinkSpec, lap?: (stage: string) => void): Promise<void>;
  /** A link that is already gone is not an error. */
  deleteLink(name: string): Promise<void>;
  /** Puts a host link on `bridge` (when given) and sets it up: the link check's repair. */
  attachLink(name: string, bridge?: string): Promise<void>;
  /** Which families have a default route inside the namespace. */
  defaultRoutes(netns: string): Promise<{ ipv4: boolean; ipv6: boolean }>;
  addDefaultRoutes(netns: string, routes: ReadonlyArray<{ gateway: string; ifname: string }>): Promise<void>;
  setSysctl(key: string, value: string): Promise<void>;
  /** Which path does the work inside namespaces ('native', 'ip'; a fake says 'fake'). */
  namespacePath(): string;
}

/** What the planner and the manager read from the host. */
export interface HostInspector {
  /** Names of the host's links. */
  linkNames(): Promise<ReadonlySet<string>>;
  /** The host's links by name: up or not, and the bridge each is on. */
  linkStates(): Promise<ReadonlyMap<string, LinkState>>;
  /** Every prefix the host uses (addresses and routes), CIDR form: a new subnet must not overlap one. */
  prefixes(): Promise<string[]>;
  /** Whether a namespace file (/run/netns/NAME, /proc/PID/ns/net) exists now. */
  namespaceExists(path: string): boolean;
  /** Which namespace a path names now (namespace-identity.ts); unset: not looked at (fakes). */
  namespaceIdentity?(path: string): string | undefined;
}

export const kernelLinks: LinkDriver = {
  createBridge, createEndpointLink, deleteLink, attachLink, defaultRoutes, addDefaultRoutes, setSysctl,
  namespacePath: namespaceLinksKind,
};

export const kernelHost: HostInspector = {
  linkNames: async () => new Set((await hostLinkStates()).keys()),
  linkStates: hostLinkStates,
  prefixes: hostPrefixes,
  namespaceExists: existsSync,
  namespaceIdentity,
};
