// Deciding what a new network or endpoint will be, before anything changes: validation, subnet
// and address allocation, names, interface names, ports. Decisions over the registry's
// current networks, the reservations of connects still in progress and (read only) the host's
// addresses and links; nothing here changes anything: the manager applies the plans.
import { randomBytes } from 'node:crypto';
import { NsdnsError } from '../errors.js';
import { describeSource, isRemoteSource, type Registry } from '../registry/registry.js';
import type { Endpoint, Network, NetworkRecord, Subnet } from '../registry/types.js';
import { allocate, canonical, contains, firstHost, macFor, overlaps, parseCidr, pickSubnet, isCidr, hasHostBits, type Cidr, type Pool } from './ipam.js';
import { kernelHost, type HostInspector } from './drivers.js';
import { joinProblem } from '../registry/name-rules.js';
import { printable } from '../registry/fields.js';
import { isServiceLabel } from '../wire/names.js';
import { bad, checkHealth, checkNamespaceUpstream, checkRecords, checkServices, checkAlias, checkDomain, checkNetworkName, checkLabel, parsePublish } from './requests.js';
import type { ConnectRequest, CreateNetworkRequest } from './request-schemas.js';
import { STATE_SOURCE } from './state.js';
import type { NamespaceTarget } from './target.js';
import { egressBypass, parentProblem, subLinkOf, subLinkOptions } from './sublinks.js';
import { auxAddresses, auxOptions } from './aux-addresses.js';

export interface PlanOptions {
  linkPrefix: string;
  pools: Pool[];
}

/** Addresses, names and namespaces promised to connects still in progress. */
export interface Reservation {
  network: string;
  endpoint: Endpoint;
}

export type OwnedRecord = NetworkRecord & { network: Network & { bridge: string } };

export interface EndpointPlan {
  endpoint: Endpoint;
  network: Network;
  gateway4?: string;
  gateway6?: string;
}

export class Planner {
  constructor(
    private readonly registry: Registry,
    private readonly options: PlanOptions,
    private readonly reservations: Map<string, Reservation>,
    /** What is read from the host (its links and prefixes): the kernel's, or a test's fake. */
    private readonly host: HostInspector = kernelHost,
  ) {}

  records(): NetworkRecord[] {
    return this.registry.current().records;
  }

  /** By name (any case), full id or unique id prefix. */
  record(name: string): NetworkRecord {
    const compiled = this.registry.current().find(name);
    if (!compiled) throw new NsdnsError('ERR_NOT_FOUND', `network "${printable(name)}" not found; see \`nsdns network ls\``);
    // Its primary source's endpoints only: what is planned and saved is never another host's.
    return { network: compiled.network, endpoints: [...(compiled.primary ?? compiled).endpoints] };
  }

  /** A network this daemon provisioned (not one from a registry file). */
  owned(name: string): OwnedRecord {
    const record = this.record(name);
    // Said before "not provisioned": an overlay network is the cluster's; this host provisions it while it has endpoints on it (overlay-presence.ts).
    if (record.network.overlay !== undefined && !this.registry.isProvisioned(record.network.name)) {
      throw new NsdnsError('ERR_NOT_FOUND', `overlay network "${printable(record.network.name)}" has no endpoints on this host`);
    }
    if (!this.registry.isProvisioned(record.network.name)) {
      throw new NsdnsError('ERR_CONFLICT', `network "${printable(record.network.name)}" comes from ${printable(this.registry.sourceOf(record.network.name), 200)}; it is not provisioned by nsdns (edit its file instead)`);
    }
    return record as OwnedRecord;
  }

  /**
   * A validated new network: name, subnets (given or picked), gateway, range, bridge name. `req`
   * has passed its schema (request-schemas.ts): what that checks is not checked again here.
   */
  async network(req: CreateNetworkRequest): Promise<Network> {
    // Kept as typed (MixedNet), found in any case: two names that differ only in case would be one.
    const name = checkNetworkName(req.name);
    const existing = this.records().find((r) => r.network.name.toLowerCase() === name.toLowerCase());
    // A network another host defined in a shared registry may be provisioned here too: this
    // host's definition is served first, and the announcer checks that the two agree.
    const shared = existing !== undefined && existing.network.name === name && isRemoteSource(this.registry.sourceOf(name) ?? '') ? existing.network : undefined;
    if (existing && !shared) throw new NsdnsError('ERR_CONFLICT', `network "${existing.network.name}" already exists`);
    for (const s of req.subnets ?? []) {
      if (!isCidr(s)) throw bad(`subnet "${printable(s)}" is not a CIDR (like 10.1.0.0/24 or fd00:1::/64)`);
      if (hasHostBits(s)) throw bad(`--subnet ${s} has host bits set: it should be ${parseCidr(s).text}`);
    }
    const requested = (req.subnets ?? []).map(parseCidr);
    for (const [i, a] of requested.entries()) {
      for (const b of requested.slice(i + 1)) if (overlaps(a, b)) throw new NsdnsError('ERR_CONFLICT', `subnets ${a.text} and ${b.text} overlap`);
    }
    // A macvlan/ipvlan network is the LAN of its parent: the host may well have an address in it.
    const sub = req.driver === 'macvlan' || req.driver === 'ipvlan' ? subLinkOptions(req.driver, req.options ?? {}) : undefined;
    if (sub && req.bridge !== undefined) throw bad(`--bridge: a ${req.driver} network has no bridge`);
    const bypass = req.egress !== undefined ? egressBypass(name, req.driver) : undefined;
    if (bypass !== undefined) throw bad(`--egress-policy: ${bypass}`);
    const taken = (await this.takenPrefixes()).filter((t) => (shared === undefined || t.owner !== `network ${name}`) && !(sub && t.owner === 'in use on the host'));
    for (const s of requested) {
      const clash = taken.find((t) => overlaps(t.cidr, s));
      if (clash) throw new NsdnsError('ERR_CONFLICT', `subnet ${s.text} overlaps ${clash.cidr.text} (${clash.owner})`);
    }
    if (shared && requested.length === 0) requested.push(...shared.subnets.map((s) => parseCidr(s.subnet)));
    if (!requested.some((s) => s.kind === 'ipv4')) {
      const picked = pickSubnet(this.options.pools, taken.map((t) => t.cidr));
      if (!picked) throw new NsdnsError('ERR_IPAM_EXHAUSTED', 'no free subnet left in the address pools; give one with --subnet');
      requested.unshift(parseCidr(picked));
    }
    // On a LAN the gateway is the LAN's router: none unless given.
    const subnets: Subnet[] = requested.map((cidr) => (sub ? { subnet: cidr.text } : { subnet: cidr.text, gateway: firstHost(cidr) }));
    if (req.gateway !== undefined) {
      const target = subnets.find((s) => contains(parseCidr(s.subnet), req.gateway!));
      if (!target) throw bad(`gateway ${req.gateway} is outside the subnets ${subnets.map((s) => s.subnet).join(', ')}`);
      target.gateway = canonical(req.gateway);
    }
    if (req.ipRange !== undefined) {
      if (!isCidr(req.ipRange)) throw bad(`--ip-range "${printable(req.ipRange)}" is not a CIDR`);
      const range = parseCidr(req.ipRange);
      const target = subnets.find((s) => { const c = parseCidr(s.subnet); return c.kind === range.kind && range.first >= c.first && range.last <= c.last; });
      if (!target) throw bad(`--ip-range ${range.text} is not inside any subnet of the network`);
      target.ipRange = range.text;
    }
    for (const u of req.dnsUpstreams ?? []) checkNamespaceUpstream('--dns-upstream', u);
    // The shared id when it is one nsdns would make (it names the bridge): `inspect ID` finds one network on every host.
    const id = shared && /^[0-9a-f]{64}$/.test(shared.id) ? shared.id : randomBytes(32).toString('hex');
    const options = { ...(sub ?? req.options ?? {}), ...auxOptions(req.auxAddresses ?? {}, subnets) };
    if (sub) {
      const problem = parentProblem(subLinkOf({ name, id, subnets, internal: false, upstreams: [], options })!, await this.host.linkStates(), this.records().map((r) => r.network));
      if (problem) throw new NsdnsError('ERR_CONFLICT', problem);
    }
    const bridge = sub ? undefined : req.bridge ?? `${this.options.linkPrefix}br-${id.slice(0, 8)}`;
    if (bridge !== undefined && (await this.host.linkNames()).has(bridge)) throw new NsdnsError('ERR_CONFLICT', `a link named ${bridge} already exists on the host`);
    if (bridge !== undefined && this.records().some((r) => r.network.bridge === bridge)) throw new NsdnsError('ERR_CONFLICT', `bridge ${bridge} belongs to another network`);
    return {
      name, id, subnets, internal: req.internal ?? false, upstreams: req.dnsUpstreams ?? [],
      created: new Date().toISOString(), ...(bridge !== undefined && { bridge }),
      ...(req.mtu !== undefined && { mtu: req.mtu }),
      ...(req.domain !== undefined && { domain: checkDomain(req.domain) }),
      options,
      ...optional('labels', nonEmpty(req.labels)),
      ...optional('records', checkRecords(req.records, { name })),
      ...optional('egress', req.egress),
    };
  }

  /**
   * A namespace under an egress policy has no macvlan/ipvlan endpoint (egressBypass): refused
   * whichever comes second, the policy or the link.
   */
  private checkEgress(req: ConnectRequest, network: Network, inNamespace: readonly Endpoint[], target: NamespaceTarget): void {
    const networkOf = (name: string) => (name === network.name ? network : this.registry.current().networks.get(name)?.network);
    const bypassOf = (n: Network | undefined) => (n === undefined ? undefined : egressBypass(n.name, subLinkOf(n)?.driver));
    const own = bypassOf(network);
    if (own !== undefined && req.egress !== undefined) throw bad(`--egress-allow: ${own}`);
    const policed = inNamespace.some((e) => (e.egress ?? networkOf(e.network)?.egress) !== undefined);
    if (own !== undefined && (network.egress !== undefined || policed)) throw bad(`${target.shown} is under an egress policy, and ${own}`);
    if ((req.egress ?? network.egress) === undefined) return;
    const other = inNamespace.map((e) => bypassOf(networkOf(e.network))).find((b) => b !== undefined);
    if (other !== undefined) throw bad(`${req.egress !== undefined ? '--egress-allow: ' : ''}${target.shown} is also on another network, and ${other}`);
  }

  /**
   * `endpoint` of `network` may take an egress policy of its own (`nsdns endpoint egress`): neither
   * its network nor another of its namespace's is macvlan/ipvlan (egressBypass).
   */
  checkEndpointEgress(endpoint: Endpoint, network: Network): void {
    const own = egressBypass(network.name, subLinkOf(network)?.driver);
    if (own !== undefined) throw bad(own);
    const snapshot = this.registry.current();
    const others = endpoint.netns === undefined ? [] : (snapshot.namespaces().get(endpoint.netns) ?? []).filter((e) => e.id !== endpoint.id);
    for (const e of others) {
      const n = snapshot.networks.get(e.network)?.network;
      const other = n === undefined ? undefined : egressBypass(n.name, subLinkOf(n)?.driver);
      if (other !== undefined) throw bad(`${printable(endpoint.name)} is also on another network, and ${other}`);
    }
  }

  /** Prefixes a new subnet must not overlap: every network's, and the host's addresses and routes. */
  private async takenPrefixes(): Promise<Array<{ cidr: Cidr; owner: string }>> {
    const fromNetworks = this.records().flatMap((r) => r.network.subnets.map((s) => ({ cidr: parseCidr(s.subnet), owner: `network ${r.network.name}` })));
    const fromHost = (await this.host.prefixes()).filter(isCidr).map((p) => ({ cidr: parseCidr(p), owner: 'in use on the host' }));
    return [...fromNetworks, ...fromHost];
  }

  /** Everything about the new endpoint, decided and reserved under the lock; `req` has passed its schema. */
  endpoint(req: ConnectRequest, target: NamespaceTarget): EndpointPlan {
    const { network, endpoints: committed } = this.owned(req.network);
    const other = this.registry.otherOwner(target.path, STATE_SOURCE, undefined, target.identity);
    if (other) {
      throw new NsdnsError('ERR_REGISTRY_CONFLICT',
        `${target.shown} is served by network "${printable(other.network)}" from ${describeSource(other.source)}; a namespace belongs to one source: take it out of that file first, or connect another namespace`);
    }
    const reserved = [...this.reservations.values()].filter((r) => r.network === network.name).map((r) => r.endpoint);
    const onNetwork = [...committed, ...reserved];
    const inNamespace = [...this.registry.current().namespaces().get(target.path) ?? [], ...[...this.reservations.values()].map((r) => r.endpoint).filter((e) => e.netns === target.path)];

    if (onNetwork.some((e) => e.netns === target.path)) throw new NsdnsError('ERR_CONFLICT', `${target.shown} is already connected to network "${network.name}"`);
    if (req.name === undefined && target.name === undefined) throw bad('give the endpoint a name with --name (the target is not a named namespace)');
    if (req.name === undefined && !isServiceLabel(target.name!)) {
      throw bad(`the namespace name "${printable(target.name)}" cannot be an endpoint name (letters, digits, "_" and "-", at most 63); give one with --name`);
    }
    const name = checkLabel('endpoint name', req.name ?? target.name!);
    const aliases = [...new Set((req.aliases ?? []).map(checkAlias))];
    const id = randomBytes(32).toString('hex');
    // The names an endpoint may take (its own, aliases, its id) are the registry's rules, as for files.
    const clash = joinProblem(network, onNetwork, { id, name, aliases });
    if (clash !== undefined) throw new NsdnsError('ERR_CONFLICT', clash);
    const services = checkServices(req.services);
    const labels = nonEmpty(req.labels);
    const healthCheck = checkHealth(req);

    // On an overlay network, other hosts' endpoints hold addresses too (as far as this host knows them).
    const elsewhere = network.overlay !== undefined ? this.registry.current().networks.get(network.name)?.endpoints ?? [] : [];
    const used = new Set([...onNetwork, ...elsewhere].flatMap((e) => [...e.ipv4, ...e.ipv6]));
    // Gateways and auxiliary addresses are never allocated, and refused to --ip with what they are.
    const notForEndpoints = new Map<string, string>(network.subnets.filter((s) => s.gateway !== undefined).map((s) => [canonical(s.gateway!), 'the gateway']));
    for (const [auxName, ip] of Object.entries(auxAddresses(network))) notForEndpoints.set(canonical(ip), `the auxiliary address "${auxName}"`);
    for (const r of notForEndpoints.keys()) used.add(r);
    const ipv4 = this.address(network, used, 'ipv4', req.ip, notForEndpoints);
    const ipv6 = this.address(network, used, 'ipv6', req.ip6, notForEndpoints);

    const ifnamesInUse = new Set(inNamespace.map((e) => e.ifname));
    let ifname = req.ifname;
    if (ifname !== undefined && ifnamesInUse.has(ifname)) throw new NsdnsError('ERR_CONFLICT', `interface ${ifname} already exists in ${target.shown}`);
    for (let i = 0; ifname === undefined; i++) if (!ifnamesInUse.has(`eth${i}`)) ifname = `eth${i}`;

    for (const u of req.dns ?? []) checkNamespaceUpstream('--dns', u);
    const ports = (req.publish ?? []).map(parsePublish);
    const sub = subLinkOf(network);
    // Docker publishes no ports on macvlan/ipvlan: the endpoint is on the LAN with its own address.
    if (ports.length > 0 && sub) throw bad(`--publish: network "${network.name}" is a ${sub.driver} network; its endpoints are reached at their own address on the LAN, so nothing is published (connect to a bridge network to publish ports)`);
    // An internal network has no path to or from the host's addresses: a published port there would never answer.
    if (ports.length > 0 && network.internal) throw bad(`--publish: network "${network.name}" is internal, so nothing outside it can reach a published port; connect the endpoint to a non-internal network to publish ports`);
    this.checkPorts(ports);
    this.checkEgress(req, network, inNamespace, target);

    const routed = inNamespace.some((e) => !this.registry.current().networks.get(e.network)?.network.internal);
    const v4Subnet = network.subnets.find((s) => parseCidr(s.subnet).kind === 'ipv4');
    const v6Subnet = network.subnets.find((s) => parseCidr(s.subnet).kind === 'ipv6');
    const endpoint: Endpoint = {
      id, network: network.name, name, aliases, ipv4: ipv4 ? [ipv4] : [], ipv6: ipv6 ? [ipv6] : [],
      upstreams: req.dns ?? [], netns: target.path, ...(target.identity !== undefined && { netnsIdentity: target.identity }), ifname, ...(!sub && { hostIf: `${this.options.linkPrefix}v${id.slice(0, 8)}` }),
      mac: req.mac ?? macFor(ipv4), ports,
      ...optional('services', services.length > 0 ? services : undefined),
      ...optional('labels', labels),
      ...optional('healthCheck', healthCheck),
      ...optional('healthHideOwn', req.healthHideOwn === true ? true : undefined),
      ...optional('egress', req.egress),
    };
    this.reservations.set(id, { network: network.name, endpoint });
    return {
      endpoint, network,
      ...(!network.internal && !routed && v4Subnet?.gateway && ipv4 && { gateway4: v4Subnet.gateway }),
      ...(!network.internal && !routed && v6Subnet?.gateway && ipv6 && { gateway6: v6Subnet.gateway }),
    };
  }

  private address(network: Network, used: Set<string>, kind: 'ipv4' | 'ipv6', requested: string | undefined, reserved: ReadonlyMap<string, string>): string | undefined {
    const subnet = network.subnets.find((s) => parseCidr(s.subnet).kind === kind);
    const flag = kind === 'ipv4' ? '--ip' : '--ip6';
    if (!subnet) {
      if (requested !== undefined) throw bad(`${flag} ${printable(requested)}: network "${network.name}" has no ${kind === 'ipv4' ? 'IPv4' : 'IPv6'} subnet`);
      return undefined;
    }
    const cidr = parseCidr(subnet.subnet);
    if (requested !== undefined) {
      const address = canonical(requested);
      if (!contains(cidr, address)) throw bad(`${flag} ${address} is outside the subnet ${cidr.text} of network "${network.name}"`);
      if (reserved.has(address)) throw new NsdnsError('ERR_CONFLICT', `${flag} ${address} is ${reserved.get(address)} of network "${network.name}"; give another address`);
      if (used.has(address)) throw new NsdnsError('ERR_CONFLICT', `${address} is already in use on network "${network.name}"`);
      return address;
    }
    const address = allocate(cidr, used, subnet.ipRange ? parseCidr(subnet.ipRange) : cidr);
    if (!address) throw new NsdnsError('ERR_IPAM_EXHAUSTED', `no free address left in ${subnet.ipRange ?? subnet.subnet} of network "${network.name}"`);
    return address;
  }

  private checkPorts(ports: readonly NonNullable<Endpoint['ports']>[number][]): void {
    // Endpoints that publish ports are among each network's few notable ones: no walk over a large file network.
    const taken = [...[...this.registry.current().networks.values()].flatMap((n) => n.notable), ...[...this.reservations.values()].map((r) => r.endpoint)].flatMap((e) => (e.ports ?? []).map((p) => ({ p, e })));
    for (const p of ports) {
      const clash = taken.find(({ p: q }) => q.protocol === p.protocol && q.hostPort === p.hostPort && (!q.hostIp || !p.hostIp || q.hostIp === p.hostIp));
      if (clash) throw new NsdnsError('ERR_CONFLICT', `host port ${p.hostPort}/${p.protocol} is already published by endpoint "${clash.e.name}"`);
    }
  }
}

/** Labels as the registry keeps them: absent rather than empty. */
function nonEmpty(labels: Record<string, string> | undefined): Record<string, string> | undefined {
  return labels !== undefined && Object.keys(labels).length > 0 ? labels : undefined;
}

/** `{ key: value }` when value is defined, else nothing: optional fields stay absent in records and state files. */
function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}
