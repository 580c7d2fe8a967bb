// The registry's data model: networks and the endpoints attached to them. Plain data, shared by
// the registry files, the daemon's state directory, the plumbing (writer) and the resolver (reader).
import type { EgressRule } from './egress-rules.js';

export type { EgressRule } from './egress-rules.js';

export interface Subnet {
  /** CIDR, IPv4 or IPv6. */
  subnet: string;
  gateway?: string;
  /** CIDR inside `subnet` that addresses are allocated from. */
  ipRange?: string;
}

export interface PortMapping {
  hostIp?: string;
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp';
}

/** A service an endpoint offers: SRV `_<name>._<protocol>.<endpoint name>`. */
export interface Service {
  name: string;
  port: number;
  protocol: 'tcp' | 'udp';
  priority: number;
  weight: number;
}

/** A network-wide record served by DNS to every namespace on the network (its name is relative to the network's zones). */
export type StaticRecord =
  | { name: string; type: 'A' | 'AAAA' | 'CNAME' | 'TXT'; value: string }
  | { name: string; type: 'SRV'; priority: number; weight: number; port: number; target: string };

export type HealthState = 'healthy' | 'unhealthy' | 'starting';

/**
 * How the daemon checks an endpoint from the host side: a TCP connect, or an HTTP GET whose status
 * is 2xx or 3xx. `retries` consecutive failures make it unhealthy, one success healthy; failures
 * within `startPeriodMs` of the check's start do not count.
 */
export interface HealthCheck {
  type: 'tcp' | 'http';
  port: number;
  /** HTTP only: the path (and query) asked for, starting with '/'. */
  path?: string;
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  startPeriodMs: number;
}

export interface Network {
  name: string;
  id: string;
  subnets: Subnet[];
  /** No route out, no upstream forwarding for namespaces that are only on internal networks. */
  internal: boolean;
  /** DNS zone for names on this network besides `<name>.<network>`. */
  domain?: string;
  /**
   * false: the network's name is no zone (`<name>.<network>` is not ours, and may be forwarded);
   * only `domain` is. aardvark-dns's networks are so: a network may be named like a TLD.
   */
  nameIsZone?: boolean;
  /** Upstream servers for queries from this network's endpoints (`IP` or `IP:PORT`). */
  upstreams: string[];
  created?: string;
  /** Plumbing details, set when nsdns provisions the network itself. */
  bridge?: string;
  mtu?: number;
  options?: Record<string, string>;
  /** Free-form metadata (`network create --label`), shown by inspect and used by `ls --filter label=`. */
  labels?: Record<string, string>;
  /** Static records (`network create --record`, `records:` in files). */
  records?: StaticRecord[];
  /** The default egress policy of the network's endpoints (`network create --egress-policy`, `egress:`); see egress/policy.ts. */
  egress?: EgressRule[];
  /**
   * An overlay network of the cluster (`--driver overlay`): its VXLAN id, the same on every host,
   * and its MTU when `--mtu` gave one; `vxlan`, the device on this host's bridge, only in the
   * local presence nsdns provisions (whose MTU is the network's `mtu`).
   */
  overlay?: { vni: number; mtu?: number; vxlan?: string };
}

export interface Endpoint {
  id: string;
  network: string;
  name: string;
  aliases: string[];
  ipv4: string[];
  ipv6: string[];
  /** Upstream servers for this endpoint's own queries; they take precedence over the network's. */
  upstreams: string[];
  /** The namespace the endpoint lives in (a path such as /run/netns/NAME), when nsdns serves it. */
  netns?: string;
  /**
   * Which namespace `netns` was when nsdns connected the endpoint (namespace-identity.ts): a
   * namespace deleted and added again under the same name is another one. Set by connect only.
   */
  netnsIdentity?: string;
  ifname?: string;
  hostIf?: string;
  mac?: string;
  ports?: PortMapping[];
  /** Services answered as SRV under every name form of the endpoint and its aliases. */
  services?: Service[];
  /** Answered as TXT at the endpoint's names, one `key=value` string per label. */
  labels?: Record<string, string>;
  /** A state given in a registry file (`health:`), fed into the registry's HealthStates when it loads. */
  health?: HealthState;
  /** Leave the endpoint's own name out of answers too while it is not healthy. */
  healthHideOwn?: boolean;
  /** Probed by the daemon (`connect --health`, `healthCheck:` in files). */
  healthCheck?: HealthCheck;
  /** The endpoint's egress policy (`connect --egress-allow`, `egress:`): it replaces the network's; see egress/policy.ts. */
  egress?: EgressRule[];
  /** Another host's endpoint on an overlay network (a shared registry's value): its MAC, and that host's underlay address. */
  overlay?: { mac: string; host: string };
}

/** One network with its endpoints: the unit the registry replaces on every change. */
export interface NetworkRecord {
  network: Network;
  endpoints: Endpoint[];
}
