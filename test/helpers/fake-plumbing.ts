// Fakes for the network manager's decisions and failure paths (test/unit/plumbing-decisions):
// link work and host inspection that only record what they were asked and keep just enough
// state to answer back (which links exist, which default routes a namespace has). They can be
// told to fail a given call. What the kernel does with real requests is tested in
// test/privileged against the kernel, never here.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NsdnsError } from '../../src/errors.js';
import { silentLogger, type Logger } from '../../src/log.js';
import type { HostInspector, LinkDriver } from '../../src/plumbing/drivers.js';
import type { Firewall } from '../../src/plumbing/firewall.js';
import type { Pool } from '../../src/plumbing/ipam.js';
import type { BridgeSpec, EndpointLinkSpec, LinkState } from '../../src/plumbing/links.js';
import { NoPortHolder } from '../../src/plumbing/host-ports.js';
import { NetworkManager } from '../../src/plumbing/network-manager.js';
import { IntentStore, StateStore } from '../../src/plumbing/state.js';
import { Registry } from '../../src/registry/registry.js';
import type { NetworkRecord } from '../../src/registry/types.js';

/** One ordered record of everything the fakes were asked, shared by all of them. */
export type Journal = string[];

type Route = { netns: string; hostIf: string; ifname: string; gateway: string; family: 'ipv4' | 'ipv6' };

/** Failure injection: the Nth call from now (1-based), or every call whose journal line matches. */
class Failures {
  private countdown = 0;
  private readonly patterns: RegExp[] = [];

  failAt(n: number): void {
    this.countdown = n;
  }

  failOn(pattern: RegExp): void {
    this.patterns.push(pattern);
  }

  /** Records `line`; throws (and records that it did) when this call is to fail. */
  check(journal: Journal, line: string): void {
    const byCount = this.countdown > 0 && --this.countdown === 0;
    if (byCount || this.patterns.some((p) => p.test(line))) {
      journal.push(`${line} FAILED`);
      throw new NsdnsError('ERR_LINK', `injected failure: ${line}`);
    }
    journal.push(line);
  }
}

export class FakeLinks extends Failures implements LinkDriver {
  /** Host links that exist now (bridges and host ends of veths). */
  readonly links = new Set<string>();
  /** Every veth made, by host end: what was asked for inside the namespace. */
  readonly endpoints = new Map<string, EndpointLinkSpec>();
  readonly routes: Route[] = [];
  readonly sysctls = new Map<string, string>();

  constructor(readonly journal: Journal) {
    super();
  }

  async createBridge(spec: BridgeSpec): Promise<void> {
    this.check(this.journal, `createBridge ${spec.name} ${spec.addresses.join(',')}`);
    if (this.links.has(spec.name)) throw new NsdnsError('ERR_LINK', `creating bridge ${spec.name}: File exists (EEXIST)`);
    this.links.add(spec.name);
  }

  async createEndpointLink(spec: EndpointLinkSpec, lap?: (stage: string) => void): Promise<void> {
    const gws = [spec.gateway4 && `via ${spec.gateway4}`, spec.gateway6 && `via ${spec.gateway6}`].filter(Boolean).join(' ');
    this.check(this.journal, `createEndpointLink ${spec.hostIf} ${spec.ifname}@${spec.netns} ${spec.addresses.join(',')}${gws ? ` ${gws}` : ''}`);
    if (!this.links.has(spec.bridge)) throw new NsdnsError('ERR_LINK', `finding bridge ${spec.bridge}: no such bridge`);
    this.links.add(spec.hostIf);
    this.endpoints.set(spec.hostIf, spec);
    lap?.('veth pair');
    if (spec.gateway4) this.routes.push({ netns: spec.netns, hostIf: spec.hostIf, ifname: spec.ifname, gateway: spec.gateway4, family: 'ipv4' });
    if (spec.gateway6) this.routes.push({ netns: spec.netns, hostIf: spec.hostIf, ifname: spec.ifname, gateway: spec.gateway6, family: 'ipv6' });
    lap?.('addresses+routes in namespace');
  }

  async deleteLink(name: string): Promise<void> {
    this.check(this.journal, `deleteLink ${name}`);
    this.links.delete(name);
    // As the kernel does: a link's routes go with it.
    for (let i = this.routes.length - 1; i >= 0; i--) if (this.routes[i].hostIf === name) this.routes.splice(i, 1);
  }

  async attachLink(name: string, bridge?: string): Promise<void> {
    this.check(this.journal, `attachLink ${name}${bridge ? ` to ${bridge}` : ''}`);
  }

  async defaultRoutes(netns: string): Promise<{ ipv4: boolean; ipv6: boolean }> {
    this.check(this.journal, `defaultRoutes ${netns}`);
    const mine = this.routes.filter((r) => r.netns === netns);
    return { ipv4: mine.some((r) => r.family === 'ipv4'), ipv6: mine.some((r) => r.family === 'ipv6') };
  }

  async addDefaultRoutes(netns: string, routes: ReadonlyArray<{ gateway: string; ifname: string }>): Promise<void> {
    if (routes.length === 0) return;
    this.check(this.journal, `addDefaultRoutes ${netns} ${routes.map((r) => `via ${r.gateway} dev ${r.ifname}`).join(', ')}`);
    for (const r of routes) {
      const hostIf = [...this.endpoints.values()].find((e) => e.netns === netns && e.ifname === r.ifname && this.links.has(e.hostIf))?.hostIf ?? '';
      this.routes.push({ netns, hostIf, ifname: r.ifname, gateway: r.gateway, family: r.gateway.includes(':') ? 'ipv6' : 'ipv4' });
    }
  }

  async setSysctl(key: string, value: string): Promise<void> {
    this.check(this.journal, `setSysctl ${key}=${value}`);
    this.sysctls.set(key, value);
  }

  namespacePath(): string {
    return 'fake';
  }

  /** The default routes a namespace has now, as `ipv4 via GW dev IF`. */
  routesIn(netns: string): string[] {
    return this.routes.filter((r) => r.netns === netns).map((r) => `${r.family} via ${r.gateway} dev ${r.ifname}`);
  }
}

/** The host as the planner sees it: links (the fake's, plus others'), prefixes in use, namespaces. */
export class FakeHost implements HostInspector {
  /** Links someone else made on the host. */
  readonly otherLinks = new Set<string>();
  readonly hostPrefixes: string[] = [];
  readonly namespaces = new Set<string>();

  constructor(private readonly links: FakeLinks) {}

  async linkNames(): Promise<ReadonlySet<string>> {
    return new Set([...this.links.links, ...this.otherLinks]);
  }

  /** Every link up, each veth on the bridge it was created on. */
  async linkStates(): Promise<ReadonlyMap<string, LinkState>> {
    const names = await this.linkNames();
    return new Map([...names].map((n) => [n, { up: true, ...(this.links.endpoints.has(n) && { master: this.links.endpoints.get(n)!.bridge }) }]));
  }

  async prefixes(): Promise<string[]> {
    return [...this.hostPrefixes];
  }

  namespaceExists(p: string): boolean {
    return this.namespaces.has(p);
  }

  /** Namespaces made by addNamespace have an identity; those added to `namespaces` directly none. */
  private readonly identities = new Map<string, string>();
  private made = 0;

  namespaceIdentity(p: string): string | undefined {
    return this.namespaces.has(p) ? this.identities.get(p) : undefined;
  }

  /** A namespace as `ip netns add NAME` makes one (again: a new one at the same path); returns its path. */
  addNamespace(name: string): string {
    const p = `/run/netns/${name}`;
    this.namespaces.add(p);
    this.identities.set(p, `4:${4026531840 + ++this.made}`);
    return p;
  }
}

export class FakeFirewall extends Failures implements Firewall {
  /** The published ports of each apply, as `hostPort->endpoint`. */
  readonly applied: string[][] = [];

  constructor(readonly journal: Journal) {
    super();
  }

  async apply(records: readonly NetworkRecord[]): Promise<void> {
    const ports = records.flatMap((r) => r.endpoints.flatMap((e) => (e.ports ?? []).map((p) => `${p.hostPort}->${e.name}`)));
    this.check(this.journal, `firewall ${ports.join(',') || '(no ports)'}`);
    this.applied.push(ports);
  }
}

export interface FakePlumbing {
  manager: NetworkManager;
  registry: Registry;
  links: FakeLinks;
  host: FakeHost;
  firewall: FakeFirewall;
  state: StateStore;
  journal: Journal;
  /** Namespaces whose DNS "fails to start" (namespaceReady rejects). */
  unservable: Set<string>;
  /** Removes the temporary state and resolv.conf directories. */
  cleanup(): void;
}

/** A NetworkManager on fakes, with real state files in a temporary directory. */
export function fakePlumbing(options: { pools?: Pool[]; linkPrefix?: string; log?: Logger; intents?: (stateDir: string) => IntentStore } = {}): FakePlumbing {
  const dir = mkdtempSync(path.join(tmpdir(), 'nsdns-fake-'));
  const journal: Journal = [];
  const links = new FakeLinks(journal);
  const host = new FakeHost(links);
  const firewall = new FakeFirewall(journal);
  const registry = new Registry();
  const state = new StateStore(path.join(dir, 'state'));
  const unservable = new Set<string>();
  const manager = new NetworkManager({
    registry, state, intents: options.intents?.(path.join(dir, 'state')) ?? new IntentStore(path.join(dir, 'state')), firewall, links, host, ports: new NoPortHolder(),
    namespaceReady: async (netns) => {
      journal.push(`namespaceReady ${netns}`);
      if (unservable.has(netns)) throw new NsdnsError('ERR_NETNS_BIND', `injected: cannot bind 127.0.0.11 in ${netns}`);
    },
    bindPath: () => 'fake',
    log: options.log ?? silentLogger,
  }, {
    linkPrefix: options.linkPrefix ?? 'tf', pools: options.pools ?? [{ base: '10.200.0.0/16', size: 24 }],
    resolvConfDir: path.join(dir, 'netns'), hostResolvConf: false,
  });
  return { manager, registry, links, host, firewall, state, journal, unservable, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
