// Orchestrates networks and endpoints: validate everything first, then apply named steps that are
// undone in reverse on failure. Allocation and commit run under one lock, so concurrent requests
// never get the same address or name; the slow kernel work of a connect runs outside it.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { NsdnsError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { Registry } from '../registry/registry.js';
import type { Endpoint, Network, NetworkRecord, Subnet } from '../registry/types.js';
import { isUpstreamAddress } from '../registry/document.js';
import type { Firewall } from './firewall.js';
import { allocate, canonical, contains, firstHost, macFor, overlaps, parseCidr, pickSubnet, isCidr, type Cidr, type Pool } from './ipam.js';
import { createBridge, createEndpointLink, deleteLink, hostLinks, hostPrefixes, setSysctl } from './links.js';
import { Mutex } from './mutex.js';
import { NamespaceResolvConf } from './netns-resolv.js';
import { bad, checkAddress, checkAlias, checkInterfaceName, checkLabel, checkMac, parsePublish, type ConnectRequest, type CreateNetworkRequest } from './requests.js';
import { STATE_SOURCE, type IntentStore, type StateStore } from './state.js';
import { runSteps } from './steps.js';
import { resolveTarget, type NamespaceTarget } from './target.js';

export interface PlumbingOptions {
  /** Prefix of every link nsdns names itself (bridges, host ends of veths). */
  linkPrefix: string;
  pools: Pool[];
  resolvConfDir: string;
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
  log: Logger;
}

/** Addresses, names and namespaces promised to connects still in progress. */
interface Reservation {
  network: string;
  endpoint: Endpoint;
}

export class NetworkManager {
  private readonly lock = new Mutex();
  private readonly reservations = new Map<string, Reservation>();
  private readonly resolvFiles: NamespaceResolvConf;

  constructor(private readonly deps: PlumbingDeps, private readonly options: PlumbingOptions) {
    this.resolvFiles = new NamespaceResolvConf(options.resolvConfDir);
  }

  private records(): NetworkRecord[] {
    return this.deps.registry.current().records;
  }

  private record(name: string): NetworkRecord {
    const compiled = this.deps.registry.current().networks.get(name);
    if (!compiled) throw new NsdnsError('ERR_NOT_FOUND', `network "${name}" not found; see \`nsdns network ls\``);
    return { network: compiled.network, endpoints: [...compiled.endpoints] };
  }

  /** A network this daemon provisioned (not one from a registry file). */
  private owned(name: string): NetworkRecord & { network: Network & { bridge: string } } {
    const record = this.record(name);
    if (this.deps.registry.sourceOf(name) !== STATE_SOURCE || !record.network.bridge) {
      throw new NsdnsError('ERR_CONFLICT', `network "${name}" comes from ${this.deps.registry.sourceOf(name)}; it is not provisioned by nsdns (edit its file instead)`);
    }
    return record as NetworkRecord & { network: Network & { bridge: string } };
  }

  private async commit(record: NetworkRecord): Promise<void> {
    await this.deps.state.save(record);
    this.deps.registry.setNetwork(record, STATE_SOURCE);
  }

  private async applyFirewall(): Promise<void> {
    await this.deps.firewall.apply(this.records());
  }

  // ---- networks ----

  createNetwork(req: CreateNetworkRequest): Promise<Network> {
    return this.lock.run(async () => {
      const network = await this.planNetwork(req);
      const record: NetworkRecord = { network, endpoints: [] };
      const bridge = network.bridge!;
      await runSteps([
        {
          name: `create bridge ${bridge}`,
          apply: () => createBridge({ name: bridge, addresses: gatewayAddresses(network), mtu: network.mtu }),
          undo: () => deleteLink(bridge),
        },
        {
          name: 'save the network',
          apply: () => this.commit(record),
          undo: async () => {
            await this.deps.state.remove(network.name);
            this.deps.registry.removeNetwork(network.name, STATE_SOURCE);
          },
        },
        { name: 'apply firewall rules', apply: () => this.applyFirewall() },
        { name: 'enable forwarding', apply: () => this.enableForwarding() },
      ]);
      this.deps.log.info({ network: network.name, bridge, subnets: network.subnets.map((s) => s.subnet) }, 'network created');
      return network;
    });
  }

  private async planNetwork(req: CreateNetworkRequest): Promise<Network> {
    const name = checkLabel('network name', req.name);
    if (this.deps.registry.current().networks.has(name)) throw new NsdnsError('ERR_CONFLICT', `network "${name}" already exists`);
    for (const s of req.subnets ?? []) if (!isCidr(s)) throw bad(`subnet "${s}" is not a CIDR (like 10.1.0.0/24 or fd00:1::/64)`);
    const requested = (req.subnets ?? []).map(parseCidr);
    for (const [i, a] of requested.entries()) {
      for (const b of requested.slice(i + 1)) if (overlaps(a, b)) throw new NsdnsError('ERR_CONFLICT', `subnets ${a.text} and ${b.text} overlap`);
    }
    const taken = await this.takenPrefixes();
    for (const s of requested) {
      const clash = taken.find((t) => overlaps(t.cidr, s));
      if (clash) throw new NsdnsError('ERR_CONFLICT', `subnet ${s.text} overlaps ${clash.cidr.text} (${clash.owner})`);
    }
    if (!requested.some((s) => s.kind === 'ipv4')) {
      const picked = pickSubnet(this.options.pools, taken.map((t) => t.cidr));
      if (!picked) throw new NsdnsError('ERR_IPAM_EXHAUSTED', 'no free subnet left in the address pools; give one with --subnet');
      requested.unshift(parseCidr(picked));
    }
    const subnets: Subnet[] = requested.map((cidr) => ({ subnet: cidr.text, gateway: firstHost(cidr) }));
    if (req.gateway !== undefined) {
      const target = subnets.find((s) => contains(parseCidr(s.subnet), req.gateway!));
      if (!target) throw bad(`gateway ${req.gateway} is outside the subnets ${subnets.map((s) => s.subnet).join(', ')}`);
      target.gateway = canonical(req.gateway);
    }
    if (req.ipRange !== undefined) {
      if (!isCidr(req.ipRange)) throw bad(`--ip-range "${req.ipRange}" is not a CIDR`);
      const range = parseCidr(req.ipRange);
      const target = subnets.find((s) => { const c = parseCidr(s.subnet); return c.kind === range.kind && range.first >= c.first && range.last <= c.last; });
      if (!target) throw bad(`--ip-range ${range.text} is not inside any subnet of the network`);
      target.ipRange = range.text;
    }
    for (const u of req.dnsUpstreams ?? []) if (!isUpstreamAddress(u)) throw bad(`--dns-upstream "${u}" is not an address (IP or IP:PORT)`);
    if (req.mtu !== undefined && !(Number.isInteger(req.mtu) && req.mtu >= 68 && req.mtu <= 65535)) throw bad(`--mtu ${req.mtu} is not between 68 and 65535`);
    const id = randomBytes(32).toString('hex');
    const bridge = checkInterfaceName('bridge name', req.bridge ?? `${this.options.linkPrefix}br-${id.slice(0, 8)}`);
    if ((await hostLinks()).has(bridge)) throw new NsdnsError('ERR_CONFLICT', `a link named ${bridge} already exists on the host`);
    if (this.records().some((r) => r.network.bridge === bridge)) throw new NsdnsError('ERR_CONFLICT', `bridge ${bridge} belongs to another network`);
    return {
      name, id, subnets, internal: req.internal ?? false, upstreams: req.dnsUpstreams ?? [],
      created: new Date().toISOString(), bridge,
      ...(req.mtu !== undefined && { mtu: req.mtu }),
      ...(req.domain !== undefined && { domain: checkAlias(req.domain) }),
      options: req.options ?? {},
    };
  }

  /** Prefixes a new subnet must not overlap: every network's, and the host's addresses and routes. */
  private async takenPrefixes(): Promise<Array<{ cidr: Cidr; owner: string }>> {
    const fromNetworks = this.records().flatMap((r) => r.network.subnets.map((s) => ({ cidr: parseCidr(s.subnet), owner: `network ${r.network.name}` })));
    const fromHost = (await hostPrefixes()).filter(isCidr).map((p) => ({ cidr: parseCidr(p), owner: 'in use on the host' }));
    return [...fromNetworks, ...fromHost];
  }

  private async enableForwarding(): Promise<void> {
    if (this.records().some((r) => r.network.bridge && !r.network.internal)) await setSysctl('net.ipv4.ip_forward', '1');
  }

  removeNetworks(names: readonly string[], force: boolean): Promise<string[]> {
    return this.lock.run(async () => {
      const records = names.map((n) => this.owned(n));
      for (const r of records) {
        if (r.endpoints.length > 0 && !force) {
          throw new NsdnsError('ERR_CONFLICT', `network "${r.network.name}" has ${r.endpoints.length} endpoint(s) attached (${r.endpoints.map((e) => e.name).join(', ')}); disconnect them or use --force`);
        }
      }
      for (const r of records) await this.removeNetworkNow(r);
      return records.map((r) => r.network.name);
    });
  }

  private async removeNetworkNow(record: NetworkRecord & { network: { bridge: string } }): Promise<void> {
    for (const e of record.endpoints) if (e.hostIf) await deleteLink(e.hostIf).catch(() => {});
    await deleteLink(record.network.bridge);
    await this.deps.state.remove(record.network.name);
    this.deps.registry.removeNetwork(record.network.name, STATE_SOURCE);
    await this.applyFirewall();
    await this.refreshResolvFiles(record.endpoints.map((e) => e.netns).filter((n): n is string => n !== undefined));
    this.deps.log.info({ network: record.network.name }, 'network removed');
  }

  prune(): Promise<string[]> {
    return this.lock.run(async () => {
      const unused = this.records().filter((r) => r.endpoints.length === 0 && this.deps.registry.sourceOf(r.network.name) === STATE_SOURCE && r.network.bridge);
      for (const r of unused) await this.removeNetworkNow(r as NetworkRecord & { network: { bridge: string } });
      return unused.map((r) => r.network.name);
    });
  }

  // ---- endpoints ----

  async connect(req: ConnectRequest): Promise<Endpoint> {
    const started = performance.now();
    const target = resolveTarget(req.target);
    const plan = await this.lock.run(() => this.planEndpoint(req, target));
    const { endpoint, network } = plan;
    let committed = false;
    this.deps.namespaceComing?.(target.path);
    try {
      await runSteps([
        {
          name: 'note the connect in progress',
          apply: () => this.deps.intents.write({ endpointId: endpoint.id, network: network.name, hostIf: endpoint.hostIf!, netns: target.path }),
        },
        {
          name: `create ${endpoint.ifname} in ${target.path}`,
          apply: () => createEndpointLink({
            hostIf: endpoint.hostIf!, bridge: network.bridge!, netns: target.path, ifname: endpoint.ifname!, mac: endpoint.mac!,
            mtu: network.mtu, addresses: endpointAddresses(endpoint, network), gateway4: plan.gateway4, gateway6: plan.gateway6,
          }),
          undo: () => deleteLink(endpoint.hostIf!),
        },
        {
          name: 'register the endpoint',
          apply: () => this.lock.run(async () => {
            const current = this.record(network.name);
            await this.commit({ network: current.network, endpoints: [...current.endpoints, endpoint] });
            this.reservations.delete(endpoint.id);
            committed = true;
            if ((endpoint.ports ?? []).length > 0) await this.applyFirewall();
          }),
          undo: () => this.lock.run(() => this.uncommit(network.name, endpoint.id)),
        },
        { name: 'write resolv.conf', apply: () => this.refreshResolvFiles([target.path]) },
        { name: 'serve DNS in the namespace', apply: () => this.deps.namespaceReady(target.path) },
      ]);
    } catch (err) {
      if (!committed) this.reservations.delete(endpoint.id);
      this.deps.namespaceNotComing?.(target.path);
      await this.refreshResolvFiles([target.path]).catch(() => {});
      throw err;
    } finally {
      await this.deps.intents.remove(endpoint.id).catch(() => {});
    }
    const ms = Math.round((performance.now() - started) * 10) / 10;
    this.deps.log.info({ network: network.name, endpoint: endpoint.name, netns: target.path, ipv4: endpoint.ipv4, ipv6: endpoint.ipv6, ms }, 'endpoint connected');
    return endpoint;
  }

  private async uncommit(networkName: string, endpointId: string): Promise<void> {
    const current = this.record(networkName);
    const endpoint = current.endpoints.find((e) => e.id === endpointId);
    await this.commit({ network: current.network, endpoints: current.endpoints.filter((e) => e.id !== endpointId) });
    if ((endpoint?.ports ?? []).length > 0) await this.applyFirewall();
  }

  /** Everything about the new endpoint, decided and reserved under the lock. */
  private planEndpoint(req: ConnectRequest, target: NamespaceTarget): { endpoint: Endpoint; network: Network; gateway4?: string; gateway6?: string } {
    const { network, endpoints: committed } = this.owned(req.network);
    const reserved = [...this.reservations.values()].filter((r) => r.network === network.name).map((r) => r.endpoint);
    const onNetwork = [...committed, ...reserved];
    const inNamespace = [...this.deps.registry.current().namespaces().get(target.path) ?? [], ...[...this.reservations.values()].map((r) => r.endpoint).filter((e) => e.netns === target.path)];

    if (onNetwork.some((e) => e.netns === target.path)) throw new NsdnsError('ERR_CONFLICT', `${target.path} is already connected to network "${network.name}"`);
    if (req.name === undefined && target.name === undefined) throw bad('give the endpoint a name with --name (the target is not a named namespace)');
    const name = checkLabel('endpoint name', req.name ?? target.name!);
    const aliases = [...new Set((req.aliases ?? []).map(checkAlias))];
    const id = randomBytes(32).toString('hex');
    const namesInUse = new Map<string, string>();
    for (const e of onNetwork) for (const n of [e.name, ...e.aliases]) namesInUse.set(n, e.name);
    for (const n of [name, ...aliases]) {
      const owner = namesInUse.get(n);
      if (owner !== undefined) throw new NsdnsError('ERR_CONFLICT', `the name "${n}" is already used on network "${network.name}" by endpoint "${owner}"`);
    }

    const used = new Set(onNetwork.flatMap((e) => [...e.ipv4, ...e.ipv6]));
    for (const s of network.subnets) if (s.gateway) used.add(canonical(s.gateway));
    const ipv4 = this.address(network, used, 'ipv4', req.ip);
    const ipv6 = this.address(network, used, 'ipv6', req.ip6);

    const ifnamesInUse = new Set(inNamespace.map((e) => e.ifname));
    let ifname = req.ifname !== undefined ? checkInterfaceName('--ifname', req.ifname) : undefined;
    if (ifname !== undefined && ifnamesInUse.has(ifname)) throw new NsdnsError('ERR_CONFLICT', `interface ${ifname} already exists in ${target.path}`);
    for (let i = 0; ifname === undefined; i++) if (!ifnamesInUse.has(`eth${i}`)) ifname = `eth${i}`;

    for (const u of req.dns ?? []) if (!isUpstreamAddress(u)) throw bad(`--dns "${u}" is not an address (IP or IP:PORT)`);
    const ports = (req.publish ?? []).map(parsePublish);
    this.checkPorts(ports);

    const routed = inNamespace.some((e) => !this.deps.registry.current().networks.get(e.network)?.network.internal);
    const v4Subnet = network.subnets.find((s) => parseCidr(s.subnet).kind === 'ipv4');
    const v6Subnet = network.subnets.find((s) => parseCidr(s.subnet).kind === 'ipv6');
    const endpoint: Endpoint = {
      id, network: network.name, name, aliases, ipv4: ipv4 ? [ipv4] : [], ipv6: ipv6 ? [ipv6] : [],
      upstreams: req.dns ?? [], netns: target.path, ifname, hostIf: `${this.options.linkPrefix}v${id.slice(0, 8)}`,
      mac: req.mac !== undefined ? checkMac(req.mac) : macFor(ipv4), ports,
    };
    this.reservations.set(id, { network: network.name, endpoint });
    return {
      endpoint, network,
      ...(!network.internal && !routed && v4Subnet?.gateway && ipv4 && { gateway4: v4Subnet.gateway }),
      ...(!network.internal && !routed && v6Subnet?.gateway && ipv6 && { gateway6: v6Subnet.gateway }),
    };
  }

  private address(network: Network, used: Set<string>, kind: 'ipv4' | 'ipv6', requested: string | undefined): string | undefined {
    const subnet = network.subnets.find((s) => parseCidr(s.subnet).kind === kind);
    const flag = kind === 'ipv4' ? '--ip' : '--ip6';
    if (!subnet) {
      if (requested !== undefined) throw bad(`${flag} ${requested}: network "${network.name}" has no ${kind === 'ipv4' ? 'IPv4' : 'IPv6'} subnet`);
      return undefined;
    }
    const cidr = parseCidr(subnet.subnet);
    if (requested !== undefined) {
      const address = checkAddress(flag, requested, kind);
      if (!contains(cidr, address)) throw bad(`${flag} ${address} is outside the subnet ${cidr.text} of network "${network.name}"`);
      if (used.has(address)) throw new NsdnsError('ERR_CONFLICT', `${address} is already in use on network "${network.name}"`);
      return address;
    }
    const address = allocate(cidr, used, subnet.ipRange ? parseCidr(subnet.ipRange) : cidr);
    if (!address) throw new NsdnsError('ERR_IPAM_EXHAUSTED', `no free address left in ${subnet.ipRange ?? subnet.subnet} of network "${network.name}"`);
    return address;
  }

  private checkPorts(ports: readonly NonNullable<Endpoint['ports']>[number][]): void {
    const taken = [...this.records().flatMap((r) => r.endpoints), ...[...this.reservations.values()].map((r) => r.endpoint)].flatMap((e) => (e.ports ?? []).map((p) => ({ p, e })));
    for (const p of ports) {
      const clash = taken.find(({ p: q }) => q.protocol === p.protocol && q.hostPort === p.hostPort && (!q.hostIp || !p.hostIp || q.hostIp === p.hostIp));
      if (clash) throw new NsdnsError('ERR_CONFLICT', `host port ${p.hostPort}/${p.protocol} is already published by endpoint "${clash.e.name}"`);
    }
  }

  disconnect(networkName: string, which: string): Promise<Endpoint> {
    return this.lock.run(async () => {
      const record = this.owned(networkName);
      const endpoint = this.findEndpoint(record, which);
      if (endpoint.hostIf) await deleteLink(endpoint.hostIf);
      await this.commit({ network: record.network, endpoints: record.endpoints.filter((e) => e.id !== endpoint.id) });
      if ((endpoint.ports ?? []).length > 0) await this.applyFirewall();
      if (endpoint.netns) await this.refreshResolvFiles([endpoint.netns]);
      this.deps.log.info({ network: networkName, endpoint: endpoint.name }, 'endpoint disconnected');
      return endpoint;
    });
  }

  /** By namespace (name, path or PID), endpoint name, alias, or id (full or short). */
  private findEndpoint(record: NetworkRecord, which: string): Endpoint {
    const lower = which.toLowerCase();
    let netnsPath: string | undefined;
    try {
      netnsPath = resolveTarget(which).path;
    } catch {
      netnsPath = /^\d+$/.test(which) ? `/proc/${which}/ns/net` : which.includes('/') ? which : `/run/netns/${which}`;
    }
    const found = record.endpoints.find((e) => e.netns === netnsPath)
      ?? record.endpoints.find((e) => e.name === lower || e.aliases.includes(lower) || e.id === lower || e.id.startsWith(lower) && lower.length >= 12);
    if (!found) throw new NsdnsError('ERR_NOT_FOUND', `no endpoint "${which}" on network "${record.network.name}"`);
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

  resolvConfOf(name: string): Promise<string | undefined> {
    return this.resolvFiles.read(name);
  }

  /**
   * Endpoints whose namespace is gone while the daemon runs (`ip netns del`, the process behind a
   * /proc/PID path exited): their links, addresses and entries are removed, which also lets the
   * namespace listener close its sockets so the kernel can free the namespace.
   */
  reapVanished(): Promise<string[]> {
    return this.lock.run(async () => {
      const report: string[] = [];
      for (const record of this.records()) {
        if (this.deps.registry.sourceOf(record.network.name) !== STATE_SOURCE || !record.network.bridge) continue;
        const gone = record.endpoints.filter((e) => e.netns !== undefined && !existsSync(e.netns));
        if (gone.length === 0) continue;
        for (const e of gone) {
          if (e.hostIf) await deleteLink(e.hostIf).catch(() => {});
          report.push(`endpoint "${e.name}" of network "${record.network.name}" removed: its namespace ${e.netns} is gone`);
        }
        await this.commit({ network: record.network, endpoints: record.endpoints.filter((e) => !gone.includes(e)) });
        if (gone.some((e) => (e.ports ?? []).length > 0)) await this.applyFirewall();
        await this.refreshResolvFiles(gone.map((e) => e.netns!));
      }
      return report;
    });
  }

  /**
   * At start: finish what a killed daemon left half done, recreate bridges lost with a reboot, drop
   * endpoints whose namespace is gone, and write the firewall table from the state.
   */
  recover(): Promise<string[]> {
    return this.lock.run(async () => {
      const report: string[] = [];
      const state = new Map(this.records().map((r) => [r.network.name, r]));
      const intents = await this.deps.intents.list();
      // Nothing provisioned and nothing half done: no kernel state to check (and no tools to load).
      if (intents.length === 0 && ![...state.values()].some((r) => r.network.bridge)) return report;
      for (const intent of intents) {
        const committed = state.get(intent.network)?.endpoints.some((e) => e.id === intent.endpointId);
        if (!committed) {
          await deleteLink(intent.hostIf).catch(() => {});
          report.push(`removed ${intent.hostIf}, left by a connect to "${intent.network}" that did not finish`);
        }
        await this.deps.intents.remove(intent.endpointId);
      }
      const links = await hostLinks();
      for (const record of state.values()) {
        if (this.deps.registry.sourceOf(record.network.name) !== STATE_SOURCE || !record.network.bridge) continue;
        if (!links.has(record.network.bridge)) {
          await createBridge({ name: record.network.bridge, addresses: gatewayAddresses(record.network), mtu: record.network.mtu });
          report.push(`recreated bridge ${record.network.bridge} of network "${record.network.name}"`);
        }
        const alive = record.endpoints.filter((e) => e.netns === undefined || (existsSync(e.netns) && (!e.hostIf || links.has(e.hostIf))));
        const gone = record.endpoints.filter((e) => !alive.includes(e));
        for (const e of gone) {
          if (e.hostIf) await deleteLink(e.hostIf).catch(() => {});
          report.push(`endpoint "${e.name}" of network "${record.network.name}" removed: its namespace ${e.netns} or its link is gone`);
        }
        if (gone.length > 0) await this.commit({ network: record.network, endpoints: alive });
      }
      await this.applyFirewall().catch((err) => report.push(`firewall: ${errorMessage(err)}`));
      await this.enableForwarding().catch(() => {});
      await this.refreshResolvFiles([...this.deps.registry.current().namespaces().keys()]);
      return report;
    });
  }
}

function prefixOf(subnet: string): number {
  return parseCidr(subnet).prefix;
}

function gatewayAddresses(network: Network): string[] {
  return network.subnets.filter((s) => s.gateway).map((s) => `${s.gateway}/${prefixOf(s.subnet)}`);
}

function endpointAddresses(endpoint: Endpoint, network: Network): string[] {
  const prefixFor = (a: string) => {
    const s = network.subnets.find((x) => contains(parseCidr(x.subnet), a));
    return s ? prefixOf(s.subnet) : a.includes(':') ? 128 : 32;
  };
  return [...endpoint.ipv4, ...endpoint.ipv6].map((a) => `${a}/${prefixFor(a)}`);
}
