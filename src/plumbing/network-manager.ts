// Orchestrates networks and endpoints: validate everything first, then apply named steps that are
// undone in reverse on failure. Allocation and commit run under one lock, so concurrent requests
// never get the same address or name; the slow kernel work of a connect runs outside it.
import { NsdnsError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { printable } from '../registry/fields.js';
import type { Registry } from '../registry/registry.js';
import type { EgressRule, Endpoint, Network, NetworkRecord } from '../registry/types.js';
import type { Firewall } from './firewall.js';
import { contains, parseCidr, type Pool } from './ipam.js';
import type { AddressClaims } from './address-claims.js';
import { claimSteps, releaseSteps } from './overlay-addresses.js';
import { isPresence, OverlayPresences, presenceOf, type VxlanMaker } from './overlay-presence.js';
import { kernelHost, kernelLinks, type HostInspector, type LinkDriver } from './drivers.js';
import { HostPorts, type PortHolder } from './host-ports.js';
import { bridgeSpec, reconcileLinks } from './link-check.js';
import { kernelSubLinks, type SubLinkKernel } from './sublink-kernel.js';
import { reconcileSubLinks } from './sublink-check.js';
import { subLinkOf } from './sublinks.js';
import { Mutex } from './mutex.js';
import { NamespaceResolvConf } from './netns-resolv.js';
import { Planner, type EndpointPlan, type OwnedRecord, type Reservation } from './planner.js';
import type { ConnectRequest, CreateNetworkRequest } from './request-schemas.js';
import { STATE_SOURCE, type ConnectIntent, type IntentStore, type StateStore } from './state.js';
import { failureLines, runAll, runSteps, teardownError, type Step, type StepFailure, type TeardownStep } from './steps.js';
import { namespaceTarget, resolveTarget } from './target.js';
import { StageClock, TimingLog, stagesObject, type OperationTiming } from './timing.js';

export interface PlumbingOptions {
  /** Prefix of every link nsdns names itself (bridges, host ends of veths). */
  linkPrefix: string;
  pools: Pool[];
  resolvConfDir: string;
  /** The host's resolv.conf (config resolvConf): namespaces keep its search domains and options; false: none. */
  hostResolvConf?: string | false;
  /** This host's underlay address (`--advertise-address`): the source of its overlay networks' VXLAN traffic. */
  advertiseAddress?: string;
}

export interface PlumbingDeps {
  registry: Registry;
  state: StateStore;
  intents: IntentStore;
  firewall: Firewall;
  /** Resolves once 127.0.0.11 answers inside the namespace (or rejects with why it cannot). */
  namespaceReady(netns: string): Promise<void>;
  /** A namespace is about to be connected: the DNS side may start getting ready. */
  namespaceComing?(netns: string): void;
  /** ... and it will not be after all. */
  namespaceNotComing?(netns: string): void;
  /** Which path binds 127.0.0.11 in namespaces ('native', 'node'), for the connect timings. */
  bindPath?(): string;
  /** Link work (default: the kernel's, over netlink and the namespace helper). */
  links?: LinkDriver;
  /** macvlan/ipvlan links inside namespaces (default: the kernel's, sublink-kernel.ts). */
  subLinks?: SubLinkKernel;
  /** What is read from the host (default: the kernel's links, prefixes and namespace files). */
  host?: HostInspector;
  /** Sockets that hold published host ports (default: real ones, host-ports.ts). */
  ports?: PortHolder;
  /** The cluster's address allocator for overlay networks' IPv4 addresses; absent: the local allocator. */
  addressClaims?: AddressClaims;
  /** Makes VXLAN devices (default: the kernel's, overlay-kernel.ts). */
  vxlans?: VxlanMaker;
  log: Logger;
}

export interface RemoveOptions {
  /** Detach attached endpoints first (`network rm --disconnect`). */
  disconnect?: boolean;
  /** A name that is not found is no failure (`network rm --force`, as docker's). */
  ignoreMissing?: boolean;
}

export interface RemoveReport {
  /** The names of the networks removed. */
  removed: string[];
  /** Each name as given that could not be removed, with why. */
  failed: Array<{ name: string; error: NsdnsError }>;
}

function asNsdnsError(err: unknown): NsdnsError {
  return err instanceof NsdnsError ? err : new NsdnsError('ERR_INTERNAL', errorMessage(err), { cause: err });
}

export class NetworkManager {
  private readonly lock = new Mutex();
  private readonly reservations = new Map<string, Reservation>();
  private readonly resolvFiles: NamespaceResolvConf;
  private readonly planner: Planner;
  private readonly links: LinkDriver;
  private readonly subLinks: SubLinkKernel;
  private readonly host: HostInspector;
  private readonly overlays: OverlayPresences;
  private readonly linkPrefix: string;
  readonly ports: PortHolder;
  /** Links the last check found broken and could not repair (`status`, readiness). */
  private linkProblems: string[] = [];
  /** The last connects and disconnects, stage by stage (`nsdns debug`). */
  private readonly timings = new TimingLog(16);

  constructor(private readonly deps: PlumbingDeps, options: PlumbingOptions) {
    this.resolvFiles = new NamespaceResolvConf(options.resolvConfDir, options.hostResolvConf ?? '/etc/resolv.conf');
    this.links = deps.links ?? kernelLinks;
    this.subLinks = deps.subLinks ?? kernelSubLinks;
    this.host = deps.host ?? kernelHost;
    this.ports = deps.ports ?? new HostPorts();
    this.overlays = new OverlayPresences(this.links, options.advertiseAddress, deps.vxlans);
    this.linkPrefix = options.linkPrefix;
    this.planner = new Planner(deps.registry, options, this.reservations, this.host);
  }

  /** Where the last connects' and disconnects' milliseconds went, oldest first. */
  recentTimings(): OperationTiming[] {
    return this.timings.recent();
  }

  /** Keeps one operation's timing, and logs it at debug level. */
  private noteTiming(clock: StageClock, entry: Omit<OperationTiming, 'at' | 'totalMs' | 'stages' | 'paths'>): void {
    const timing: OperationTiming = {
      ...entry, at: new Date().toISOString(), totalMs: clock.total(), stages: clock.stages,
      paths: { links: this.links.namespacePath(), ...(entry.operation === 'connect' && this.deps.bindPath && { bind: this.deps.bindPath() }) },
    };
    this.timings.add(timing);
    if (this.deps.log.isLevelEnabled('debug')) {
      this.deps.log.debug({ operation: timing.operation, network: timing.network, endpoint: timing.endpoint, ok: timing.ok, ms: timing.totalMs, stages: stagesObject(timing.stages), paths: timing.paths }, `${timing.operation} timing`);
    }
  }

  private records(): NetworkRecord[] {
    return this.planner.records();
  }

  private record(name: string): NetworkRecord {
    return this.planner.record(name);
  }

  private owned(name: string): OwnedRecord {
    return this.planner.owned(name);
  }

  private async commit(record: NetworkRecord): Promise<void> {
    await this.deps.state.save(record);
    this.deps.registry.setNetwork(record, STATE_SOURCE);
  }

  /** Networks nsdns provisioned (state directory, with a bridge or a parent): never a registry file's. */
  private ownRecords(): NetworkRecord[] {
    return this.records().filter((r) => this.deps.registry.isProvisioned(r.network.name));
  }

  // Only our own networks reach root's firewall: a registry file must not write nft rules.
  private async applyFirewall(): Promise<void> {
    await this.deps.firewall.apply(this.ownRecords());
  }

  // ---- networks ----

  createNetwork(req: CreateNetworkRequest): Promise<Network> {
    return this.lock.run(async () => {
      const network = await this.planner.network(req);
      const record: NetworkRecord = { network, endpoints: [] };
      const sub = subLinkOf(network);
      if (sub) {
        const missing = await this.subLinks.unavailable(sub.driver, sub.parent);
        if (missing) throw new NsdnsError('ERR_LINK', missing);
        // No bridge, rules or forwarding: the endpoints sit on the parent's LAN.
        await this.commit(record);
        this.deps.log.info({ network: network.name, driver: sub.driver, parent: sub.parent, mode: sub.mode, subnets: network.subnets.map((s) => s.subnet) }, 'network created');
        return network;
      }
      const bridge = network.bridge!;
      await runSteps([
        {
          name: `create bridge ${bridge}`,
          apply: () => this.links.createBridge(bridgeSpec(network)),
          undo: () => this.links.deleteLink(bridge),
        },
        ...this.saveSteps(record),
      ]);
      this.deps.log.info({ network: network.name, bridge, subnets: network.subnets.map((s) => s.subnet) }, 'network created');
      return network;
    });
  }

  /** A new bridged network's last steps: its record saved and registered, rules, forwarding. */
  private saveSteps(record: NetworkRecord): Step[] {
    const { name } = record.network;
    return [
      {
        name: 'save the network',
        apply: () => this.commit(record),
        undo: async () => {
          await this.deps.state.remove(name);
          this.deps.registry.removeNetwork(name, STATE_SOURCE);
        },
      },
      { name: 'apply firewall rules', apply: () => this.applyFirewall() },
      { name: 'enable forwarding', apply: () => this.enableForwarding() },
    ];
  }

  /**
   * A connect to a cluster's overlay network that has no endpoint on this host yet: the host's
   * presence of it (bridge, VXLAN device, record) is made first (overlay-presence.ts). Under the lock.
   */
  private async ensurePresence(name: string): Promise<void> {
    const compiled = this.deps.registry.current().find(name);
    if (!compiled?.network.overlay || this.deps.registry.isProvisioned(compiled.network.name)) return;
    const network = presenceOf(compiled.network, this.linkPrefix);
    await runSteps([...this.overlays.createSteps(network), ...this.saveSteps({ network, endpoints: [] })]);
    this.deps.log.info({ network: network.name, bridge: network.bridge, vxlan: network.overlay!.vxlan, vni: network.overlay!.vni }, 'overlay network present on this host');
  }

  /** Presences whose last endpoint went (and to which no connect is on its way): removed; the network stays in the cluster. */
  private async retireEmptyOverlays(): Promise<StepFailure[]> {
    const pending = new Set([...this.reservations.values()].map((r) => r.network));
    const failures: StepFailure[] = [];
    for (const r of this.ownRecords()) {
      if (isPresence(r.network) && r.endpoints.length === 0 && !pending.has(r.network.name)) {
        failures.push(...await this.removeNetworkNow(r as OwnedRecord, 'overlay network left this host'));
      }
    }
    return failures;
  }

  private async enableForwarding(): Promise<void> {
    if (this.ownRecords().some((r) => r.network.bridge !== undefined && !r.network.internal)) await this.links.setSysctl('net.ipv4.ip_forward', '1');
  }

  /**
   * `network rm A B C`, as docker does it: each network that can be removed is, and each one that
   * cannot is reported with why. `disconnect` detaches attached endpoints first; `ignoreMissing`
   * (docker's rm --force) makes an unknown name no failure.
   */
  removeNetworks(names: readonly string[], opts: RemoveOptions = {}): Promise<RemoveReport> {
    return this.lock.run(async () => {
      const report: RemoveReport = { removed: [], failed: [] };
      const done = new Set<string>();
      for (const name of names) {
        let record: OwnedRecord;
        try {
          record = this.owned(name);
        } catch (err) {
          if (!(opts.ignoreMissing && err instanceof NsdnsError && err.code === 'ERR_NOT_FOUND')) report.failed.push({ name, error: asNsdnsError(err) });
          continue;
        }
        if (done.has(record.network.name)) continue;
        done.add(record.network.name);
        const { endpoints } = record;
        if (endpoints.length > 0 && !opts.disconnect) {
          const attached = endpoints.slice(0, 5).map((e) => e.name).join(', ') + (endpoints.length > 5 ? ', ...' : '');
          report.failed.push({ name, error: new NsdnsError('ERR_CONFLICT', `network "${record.network.name}" has ${endpoints.length} endpoint(s) attached (${attached}); disconnect them first, or use --disconnect to detach them`) });
          continue;
        }
        const failures = await this.removeNetworkNow(record);
        if (failures.length > 0) report.failed.push({ name, error: teardownError(`network rm "${record.network.name}"`, failures) });
        else report.removed.push(record.network.name);
      }
      return report;
    });
  }

  /** Removes every network, each to the end; then one error naming every step that failed. */
  private async removeAll(records: readonly OwnedRecord[], what: string): Promise<void> {
    const failures: StepFailure[] = [];
    for (const r of records) failures.push(...(await this.removeNetworkNow(r)));
    if (failures.length > 0) throw teardownError(what, failures);
  }

  private async removeNetworkNow(record: OwnedRecord, done = 'network removed'): Promise<StepFailure[]> {
    const { network, endpoints } = record;
    const failures = await runAll([
      ...this.linkRemovals(network, endpoints),
      ...this.overlays.removeSteps(network),
      ...(network.bridge !== undefined ? [{ name: `delete bridge ${network.bridge}`, run: () => this.links.deleteLink(network.bridge) }] : []),
      { name: `remove the state file of "${network.name}"`, run: () => this.deps.state.remove(network.name) },
      { name: `unregister "${network.name}"`, run: () => { this.deps.registry.removeNetwork(network.name, STATE_SOURCE); this.forgetHealth(endpoints); } },
      { name: 'apply firewall rules', run: () => this.applyFirewall() },
      ...this.releasePorts(endpoints),
      { name: 'update resolv.conf files', run: () => this.refreshResolvFiles(endpoints.map((e) => e.netns).filter((n): n is string => n !== undefined)) },
    ]);
    this.logTeardown({ network: network.name }, done, failures);
    return failures;
  }

  /** The outcome of a teardown in the log: info when clean, one warning per failed step. */
  private logTeardown(context: Record<string, unknown>, done: string, failures: readonly StepFailure[]): void {
    for (const f of failures) this.deps.log.warn({ ...context, step: f.step, err: f.error }, `${done}, but ${f.step} failed: ${errorMessage(f.error)}`);
    if (failures.length === 0) this.deps.log.info(context, done);
  }

  prune(): Promise<string[]> {
    return this.lock.run(async () => {
      const unused = this.ownRecords().filter((r) => r.endpoints.length === 0) as OwnedRecord[];
      await this.removeAll(unused, 'network prune');
      return unused.map((r) => r.network.name);
    });
  }

  // ---- endpoints ----

  async connect(req: ConnectRequest): Promise<Endpoint> {
    const clock = new StageClock();
    const found = resolveTarget(req.target, (p) => this.host.namespaceExists(p));
    const identity = this.host.namespaceIdentity?.(found.path);
    const target = identity === undefined ? found : { ...found, identity };
    const plan = await this.lock.run(async () => {
      // A namespace deleted and added again under this name: the old one's endpoints go first.
      for (const line of await this.reapGone(target.path)) this.deps.log.warn(line);
      await this.ensurePresence(req.network);
      try {
        return this.planner.endpoint(req, target);
      } catch (err) {
        // A refused request leaves no presence behind (made above for it).
        for (const line of failureLines(await this.retireEmptyOverlays())) this.deps.log.warn(`after a refused connect: ${line}`);
        throw err;
      }
    });
    clock.lap('plan');
    const { endpoint, network } = plan;
    let committed = false;
    let failure: unknown;
    this.deps.namespaceComing?.(target.path);
    try {
      await runSteps([
        // First: a port some program uses refuses the connect before anything is changed.
        ...((endpoint.ports ?? []).length > 0 ? [{
          name: 'hold the published host ports', stage: 'host ports',
          apply: () => this.ports.hold(endpoint.id, endpoint.ports!),
          undo: () => this.ports.release(endpoint.id),
        }] : []),
        {
          name: 'note the connect in progress', stage: 'connect note',
          // A veth is named by its host end; a macvlan/ipvlan link has nothing on the host.
          apply: () => this.deps.intents.write(endpoint.hostIf !== undefined
            ? { endpointId: endpoint.id, network: network.name, hostIf: endpoint.hostIf, netns: target.path }
            : { endpointId: endpoint.id, network: network.name, ifname: endpoint.ifname!, netns: target.path }),
        },
        ...claimSteps(this.deps.addressClaims, plan, req),
        this.endpointLinkStep(plan, target.path, target.shown, clock),
        {
          name: 'register the endpoint',
          apply: () => this.lock.run(async () => {
            const current = this.record(network.name);
            await this.commit({ network: current.network, endpoints: [...current.endpoints, endpoint] });
            this.reservations.delete(endpoint.id);
            committed = true;
            clock.lap('state file + registry');
            if ((endpoint.ports ?? []).length > 0) {
              try {
                await this.applyFirewall();
              } catch (err) {
                // This step failed, so runSteps does not undo it: the endpoint leaves DNS and the state here.
                await this.uncommit(network.name, endpoint.id).catch((e) => this.deps.log.warn({ err: e, endpoint: endpoint.id }, 'after the firewall refused a connect, the endpoint could not be unregistered'));
                throw err;
              }
              clock.lap('firewall');
            }
          }),
          undo: () => this.lock.run(() => this.uncommit(network.name, endpoint.id)),
        },
        { name: 'write resolv.conf', stage: 'resolv.conf', apply: () => this.refreshResolvFiles([target.path]) },
        { name: 'serve DNS in the namespace', stage: 'bind 127.0.0.11', apply: () => this.deps.namespaceReady(target.path) },
        // Last, and a step: a note left behind rolls the connect back at the next start, so the
        // client is told success only once it is gone.
        { name: 'remove the connect note', stage: 'connect note removed', apply: () => this.deps.intents.remove(endpoint.id) },
      ], clock);
    } catch (err) {
      failure = err;
      if (!committed) this.reservations.delete(endpoint.id);
      for (const line of failureLines(await this.lock.run(() => this.retireEmptyOverlays()))) this.deps.log.warn({ network: network.name }, `after a failed connect: ${line}`);
      this.deps.namespaceNotComing?.(target.path);
      await this.refreshResolvFiles([target.path]).catch((e) => this.deps.log.warn({ err: e, netns: target.path }, 'after a failed connect, resolv.conf could not be updated'));
      clock.lap('rollback');
      // Undone already: a note left behind only makes the next start delete a link that is gone.
      await this.deps.intents.remove(endpoint.id).catch((e) => this.deps.log.warn({ err: e, endpoint: endpoint.id }, 'could not remove the connect note'));
      clock.lap('connect note removed');
      throw err;
    } finally {
      this.noteTiming(clock, {
        operation: 'connect', network: network.name, endpoint: endpoint.name, netns: target.path, ok: failure === undefined,
        ...(failure !== undefined && { code: asNsdnsError(failure).code }),
      });
    }
    this.deps.log.info({ network: network.name, endpoint: endpoint.name, netns: target.path, ipv4: endpoint.ipv4, ipv6: endpoint.ipv6, ms: clock.total() }, 'endpoint connected');
    return endpoint;
  }

  /** The endpoint's link: a veth on the network's bridge, or a macvlan/ipvlan link of its parent. */
  private endpointLinkStep(plan: EndpointPlan, netns: string, shown: string, clock: StageClock): Step {
    const { endpoint, network } = plan;
    // Read when the step runs: a cluster's claim (claimSteps) may have changed the address.
    const common = () => ({ netns, ifname: endpoint.ifname!, mtu: network.mtu, addresses: endpointAddresses(endpoint, network), gateway4: plan.gateway4, gateway6: plan.gateway6 });
    const lap = (stage: string) => clock.lap(stage);
    const sub = subLinkOf(network);
    if (sub) {
      return {
        name: `create ${sub.driver} link ${endpoint.ifname} of ${sub.parent} in ${shown}`,
        apply: () => this.subLinks.create({ ...common(), ...sub, ...(sub.driver === 'macvlan' && { mac: endpoint.mac! }) }, lap),
        undo: () => this.subLinks.remove(netns, endpoint.ifname!),
      };
    }
    return {
      name: `create ${endpoint.ifname} in ${shown}`,
      apply: () => this.links.createEndpointLink({ ...common(), hostIf: endpoint.hostIf!, bridge: network.bridge!, mac: endpoint.mac! }, lap),
      undo: () => this.links.deleteLink(endpoint.hostIf!),
    };
  }

  /** Deleting the endpoints' links: the host end of a veth, or a macvlan/ipvlan link inside its namespace. */
  private linkRemovals(network: Network, gone: readonly Endpoint[]): TeardownStep[] {
    const sub = subLinkOf(network);
    return gone.flatMap((e) => {
      if (e.hostIf) return [{ name: `delete ${e.hostIf} of endpoint "${e.name}"`, stage: 'delete veth', run: () => this.links.deleteLink(e.hostIf!) }];
      // A namespace that is gone took the link with it.
      if (sub && e.netns !== undefined && e.ifname !== undefined && this.host.namespaceExists(e.netns)) {
        return [{ name: `delete ${sub.driver} link ${e.ifname} of endpoint "${e.name}"`, stage: `delete ${sub.driver}`, run: () => this.subLinks.remove(e.netns!, e.ifname!) }];
      }
      return [];
    });
  }

  private async uncommit(networkName: string, endpointId: string): Promise<void> {
    const current = this.record(networkName);
    const endpoint = current.endpoints.find((e) => e.id === endpointId);
    await this.commit({ network: current.network, endpoints: current.endpoints.filter((e) => e.id !== endpointId) });
    if ((endpoint?.ports ?? []).length > 0) await this.applyFirewall();
  }

  disconnect(networkName: string, which: string): Promise<Endpoint> {
    const clock = new StageClock();
    return this.lock.run(async () => {
      const record = this.owned(networkName);
      const name = record.network.name;
      const endpoint = this.findEndpoint(record, which);
      clock.lap('plan');
      const failures = await runAll([
        ...this.endpointTeardown(record, [endpoint]),
        ...(!record.network.internal && endpoint.netns ? [{ name: 'move the default route', stage: 'default route', run: () => this.moveDefaultRoute(endpoint.netns!) }] : []),
      ], clock);
      failures.push(...await this.retireEmptyOverlays());
      this.noteTiming(clock, {
        operation: 'disconnect', network: name, endpoint: endpoint.name, ...(endpoint.netns !== undefined && { netns: endpoint.netns }), ok: failures.length === 0,
        ...(failures.length > 0 && { code: teardownError('disconnect', failures).code }),
      });
      this.logTeardown({ network: name, endpoint: endpoint.name }, 'endpoint disconnected', failures);
      if (failures.length > 0) throw teardownError(`disconnect of "${endpoint.name}" from "${name}"`, failures);
      return endpoint;
    });
  }

  /**
   * Replaces an endpoint's own egress policy (`rules` undefined: removes it, its network's default
   * applies again). Saved, then registered: the enforcement follows the registry change.
   */
  setEgress(networkName: string, which: string, rules: EgressRule[] | undefined): Promise<Endpoint> {
    return this.lock.run(async () => {
      const record = this.owned(networkName);
      const endpoint = this.findEndpoint(record, which);
      if (rules !== undefined) this.planner.checkEndpointEgress(endpoint, record.network);
      const { egress: _old, ...rest } = endpoint;
      const changed: Endpoint = rules === undefined ? rest : { ...rest, egress: rules };
      await this.commit({ network: record.network, endpoints: record.endpoints.map((e) => (e === endpoint ? changed : e)) });
      return changed;
    });
  }

  /**
   * Removing endpoints: links, then the saved and the live record (separate steps, so a state
   * file that cannot be written still takes the names out of DNS), rules and resolv.conf files.
   */
  private endpointTeardown(record: NetworkRecord, gone: readonly Endpoint[], rulesAndFiles = true): TeardownStep[] {
    const next = { network: record.network, endpoints: record.endpoints.filter((e) => !gone.includes(e)) };
    const netns = gone.map((e) => e.netns).filter((n): n is string => n !== undefined);
    return [
      ...this.linkRemovals(record.network, gone),
      { name: `save network "${record.network.name}"`, stage: 'state file', run: () => this.deps.state.save(next) },
      { name: `unregister ${gone.map((e) => `"${e.name}"`).join(', ')}`, stage: 'registry', run: () => { this.deps.registry.setNetwork(next, STATE_SOURCE); this.forgetHealth(gone); } },
      ...(rulesAndFiles && gone.some((e) => (e.ports ?? []).length > 0) ? [{ name: 'apply firewall rules', stage: 'firewall', run: () => this.applyFirewall() }] : []),
      ...this.releasePorts(gone),
      ...releaseSteps(this.deps.addressClaims, record.network, gone),
      ...(rulesAndFiles && netns.length > 0 ? [{ name: 'update resolv.conf', stage: 'resolv.conf', run: () => this.refreshResolvFiles(netns) }] : []),
    ];
  }

  /** After their DNAT rules are gone: the sockets that held the endpoints' published ports. */
  private releasePorts(gone: readonly Endpoint[]): TeardownStep[] {
    return gone.filter((e) => (e.ports ?? []).length > 0).map((e) => ({ name: `release the host ports of "${e.name}"`, stage: 'host ports', run: () => this.ports.release(e.id) }));
  }

  /** A gone endpoint's health state goes with it (set by its probes or from outside). */
  private forgetHealth(gone: readonly Endpoint[]): void {
    for (const e of gone) this.deps.registry.health.delete(e.network, e.id);
  }

  /**
   * After a disconnect: a namespace left without a default route while still on another
   * non-internal network gets one through that network's gateway, as docker moves it. A route
   * that is still there (on another interface, or set by hand) is left alone.
   */
  private async moveDefaultRoute(netns: string): Promise<void> {
    if (!this.host.namespaceExists(netns)) return;
    const snapshot = this.deps.registry.current();
    const candidates = (snapshot.namespaces().get(netns) ?? []).filter((e) => e.ifname && !snapshot.networks.get(e.network)?.network.internal);
    if (candidates.length === 0) return;
    const have = await this.links.defaultRoutes(netns);
    const routes: Array<{ gateway: string; ifname: string }> = [];
    for (const kind of ['ipv4', 'ipv6'] as const) {
      if (have[kind]) continue;
      for (const e of candidates) {
        const network = snapshot.networks.get(e.network)!.network;
        const subnet = network.subnets.find((s) => s.gateway && (parseCidr(s.subnet).kind === kind) && e[kind].length > 0);
        if (subnet) {
          routes.push({ gateway: subnet.gateway!, ifname: e.ifname! });
          break;
        }
      }
    }
    await this.links.addDefaultRoutes(netns, routes);
    if (routes.length > 0) this.deps.log.info({ netns, routes }, 'default route moved to another network of the namespace');
  }

  /** By namespace (name, path or PID), endpoint name, alias, or id (full or short). */
  private findEndpoint(record: NetworkRecord, which: string): Endpoint {
    const lower = which.toLowerCase();
    // The namespace may be gone already: match its path without requiring it to exist.
    let netnsPath: string | undefined;
    try { netnsPath = namespaceTarget(which).path; } catch { /* not a namespace: a name or id */ }
    const found = (netnsPath !== undefined ? record.endpoints.find((e) => e.netns === netnsPath) : undefined)
      ?? record.endpoints.find((e) => e.name === lower || e.aliases.includes(lower) || e.id === lower || e.id.startsWith(lower) && lower.length >= 12);
    if (!found) throw new NsdnsError('ERR_NOT_FOUND', `no endpoint "${printable(which)}" on network "${record.network.name}"`);
    return found;
  }

  /** Rewrites (or removes) /etc/netns/NAME/resolv.conf for named namespaces. */
  private async refreshResolvFiles(netnsPaths: readonly string[]): Promise<void> {
    const snapshot = this.deps.registry.current();
    for (const netns of new Set(netnsPaths)) {
      const name = netns.startsWith('/run/netns/') ? netns.slice('/run/netns/'.length) : undefined;
      if (!name) continue;
      const endpoints = snapshot.namespaces().get(netns) ?? [];
      if (endpoints.length === 0) {
        await this.resolvFiles.remove(name);
        continue;
      }
      const domains = endpoints.map((e) => snapshot.networks.get(e.network)?.network.domain).filter((d): d is string => Boolean(d));
      await this.resolvFiles.write(name, [...new Set(domains)]);
    }
  }

  /** The /etc/netns/NAME/resolv.conf a namespace gets, or undefined when it gets none (PID and path targets). */
  resolvConfFile(netns: string): string | undefined {
    return netns.startsWith('/run/netns/') ? this.resolvFiles.file(netns.slice('/run/netns/'.length)) : undefined;
  }

  resolvConfOf(name: string): Promise<string | undefined> {
    return this.resolvFiles.read(name);
  }

  /**
   * Endpoints whose namespace is gone while the daemon runs (`ip netns del`, the process behind a
   * /proc/PID path exited, or a new namespace added under the old name): their links, addresses
   * and entries are removed, which also lets the namespace listener close its sockets so the
   * kernel can free the namespace.
   */
  reapVanished(): Promise<string[]> {
    return this.lock.run(() => this.reapGone());
  }

  /** reapVanished, under the lock; `only`: look at the endpoints in this namespace path only. */
  private async reapGone(only?: string): Promise<string[]> {
    const report: string[] = [];
    for (const record of this.records()) {
      if (!this.deps.registry.isProvisioned(record.network.name)) continue;
      const gone = record.endpoints.filter((e) => (only === undefined || e.netns === only) && this.namespaceGone(e) !== undefined);
      if (gone.length === 0) continue;
      for (const e of gone) report.push(`endpoint "${e.name}" of network "${record.network.name}" removed: its namespace ${e.netns} ${this.namespaceGone(e)}`);
      const failures = await runAll(this.endpointTeardown(record, gone));
      report.push(...failureLines(failures).map((l) => `network "${record.network.name}": ${l}`));
    }
    report.push(...failureLines(await this.retireEmptyOverlays()));
    return report;
  }

  /**
   * Why an endpoint's namespace is no longer the one it was connected to (as the end of a
   * sentence), or undefined while it is.
   */
  private namespaceGone(e: Endpoint): string | undefined {
    if (e.netns === undefined) return undefined;
    if (e.netnsIdentity === undefined || !this.host.namespaceIdentity) return this.host.namespaceExists(e.netns) ? undefined : 'is gone';
    const now = this.host.namespaceIdentity(e.netns);
    if (now === undefined) return 'is gone';
    return now === e.netnsIdentity ? undefined : 'was replaced by a new namespace of the same name';
  }

  /**
   * At start: roll back connects a killed daemon left half done, recreate bridges lost with a
   * reboot and put their links back, drop endpoints whose namespace is gone, write the firewall
   * table from the state, and hold the published ports again (unless `holdPorts` is false: a
   * successor in a handover, whose predecessor holds them until it exits).
   */
  recover({ holdPorts = true }: { holdPorts?: boolean } = {}): Promise<string[]> {
    return this.lock.run(async () => {
      const report: string[] = [];
      const intents = await this.deps.intents.list();
      // Nothing provisioned and nothing half done: no kernel state to check (and no tools to load).
      if (intents.length === 0 && this.ownRecords().length === 0) return report;
      // Namespaces whose endpoints are dropped here: their /etc/netns files go too, as at runtime.
      const vanished: string[] = [];
      // Every step runs; each failure becomes a report line (logged as a warning) and the start goes on.
      const failures = await runAll(intents.map((intent) => ({
        name: `roll back the unfinished connect ${intent.endpointId.slice(0, 12)}`,
        run: async () => {
          report.push(await this.rollBack(intent));
          vanished.push(intent.netns);
          await this.deps.intents.remove(intent.endpointId);
        },
      })));
      const links = await this.host.linkNames();
      for (const record of this.ownRecords()) {
        const gone = record.endpoints.filter((e) => e.netns !== undefined && (this.namespaceGone(e) !== undefined || (e.hostIf !== undefined && !links.has(e.hostIf))));
        if (gone.length === 0) continue;
        for (const e of gone) report.push(`endpoint "${e.name}" of network "${record.network.name}" removed: ${whyGone(e, this.namespaceGone(e))}`);
        vanished.push(...gone.map((e) => e.netns!));
        // Firewall and resolv.conf follow below, once for all networks.
        failures.push(...await runAll(this.endpointTeardown(record, gone, false)));
      }
      failures.push(...await this.retireEmptyOverlays());
      report.push(...await this.checkLinks());
      // Only namespaces nsdns attached itself: a registry file's endpoints get no resolv.conf.
      const netns = [...this.ownRecords().flatMap((r) => r.endpoints.map((e) => e.netns)).filter((n): n is string => n !== undefined), ...vanished];
      failures.push(...await runAll([
        { name: 'apply firewall rules', run: () => this.applyFirewall() },
        { name: 'enable IPv4 forwarding', run: () => this.enableForwarding() },
        { name: 'update resolv.conf files', run: () => this.refreshResolvFiles(netns) },
        ...(holdPorts ? [{ name: 'hold the published host ports', run: async () => { report.push(...await this.ports.retake(this.ownEndpoints())); } }] : []),
      ]));
      report.push(...failureLines(failures));
      return report;
    });
  }

  /**
   * A connect whose note outlived the daemon never answered its client, so it is undone whether
   * or not it got as far as the state file: the client was told it failed, and a retry of the
   * same connect then succeeds instead of finding the namespace "already connected".
   */
  private async rollBack(intent: ConnectIntent): Promise<string> {
    const record = this.ownRecords().find((r) => r.network.name === intent.network);
    const endpoint = record?.endpoints.find((e) => e.id === intent.endpointId);
    if (!record || !endpoint) {
      if (intent.hostIf !== undefined) await this.links.deleteLink(intent.hostIf);
      else if (!await this.removeLeftSubLink(intent.netns, intent.ifname)) return `nothing to remove for a connect to "${intent.network}" that did not finish`;
      return `removed ${intent.hostIf ?? `${intent.ifname} in ${intent.netns}`}, left by a connect to "${intent.network}" that did not finish`;
    }
    const failures = await runAll(this.endpointTeardown(record, [endpoint], false));
    if (failures.length > 0) throw teardownError(`rolling back the connect of "${endpoint.name}"`, failures);
    return `rolled back the connect of "${endpoint.name}" to network "${intent.network}": the daemon stopped before it finished; connect it again`;
  }

  /**
   * The link a connect that did not finish may have left inside the namespace: removed only when
   * it is a macvlan/ipvlan link (the name may be the user's own interface, whose creation failed).
   */
  private async removeLeftSubLink(netns: string, ifname: string): Promise<boolean> {
    if (!this.host.namespaceExists(netns)) return false;
    const link = await this.subLinks.read(netns, ifname);
    if (link?.kind !== 'macvlan' && link?.kind !== 'ipvlan') return false;
    await this.subLinks.remove(netns, ifname);
    return true;
  }

  /** Every endpoint of the networks nsdns provisioned. */
  private ownEndpoints(): Endpoint[] {
    return this.ownRecords().flatMap((r) => r.endpoints);
  }

  /** Reads every provisioned link back and repairs what it can; returns what was repaired. */
  private async checkLinks(): Promise<string[]> {
    const own = this.ownRecords();
    const bridged = await reconcileLinks(own.filter((r) => r.network.bridge !== undefined), this.host, this.links);
    const sublinked = await reconcileSubLinks(own.filter((r) => subLinkOf(r.network) !== undefined), this.host, this.subLinks);
    const tunneled = await this.overlays.reconcile(own, this.host);
    for (const netns of new Set(sublinked.relinked)) {
      await this.moveDefaultRoute(netns).catch((err) => sublinked.problems.push(`the default route of ${netns} could not be set again: ${errorMessage(err)}`));
    }
    const repaired = [...bridged.repaired, ...sublinked.repaired, ...tunneled.repaired];
    const problems = [...bridged.problems, ...sublinked.problems, ...tunneled.problems];
    const fresh = problems.filter((p) => !this.linkProblems.includes(p));
    this.linkProblems = problems;
    return [...repaired, ...fresh];
  }

  /**
   * The self-heal loop's pass: links put right (a bridge deleted by hand comes back with its
   * ports), and published ports held that were not. Returns what changed, and new problems.
   */
  heal(): Promise<string[]> {
    return this.lock.run(async () => {
      if (this.ownRecords().length === 0) {
        this.linkProblems = [];
        return [];
      }
      return [...await this.checkLinks(), ...await this.ports.retake(this.ownEndpoints())];
    });
  }

  /** What keeps the plumbing from being what the state says: broken links, ports not held. */
  plumbingProblems(): string[] {
    return [...this.linkProblems, ...this.ports.problems()];
  }
}

function whyGone(e: Endpoint, namespace: string | undefined): string {
  return namespace !== undefined ? `its namespace ${e.netns} ${namespace}` : `its link ${e.hostIf} is gone`;
}

function prefixOf(subnet: string): number {
  return parseCidr(subnet).prefix;
}

function endpointAddresses(endpoint: Endpoint, network: Network): string[] {
  const prefixFor = (a: string) => {
    const s = network.subnets.find((x) => contains(parseCidr(x.subnet), a));
    return s ? prefixOf(s.subnet) : a.includes(':') ? 128 : 32;
  };
  return [...endpoint.ipv4, ...endpoint.ipv6].map((a) => `${a}/${prefixFor(a)}`);
}
