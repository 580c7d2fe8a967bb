// The registry's data model: networks and the endpoints attached to them. Plain data, shared by
// the registry files, the daemon's state directory, the plumbing (writer) and the resolver (reader).

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

export interface Network {
  name: string;
  id: string;
  subnets: Subnet[];
  /** No route out, no upstream forwarding for namespaces that are only on internal networks. */
  internal: boolean;
  /** DNS zone for names on this network besides `<name>.<network>`. */
  domain?: string;
  /** Upstream servers for queries from this network's endpoints (`IP` or `IP:PORT`). */
  upstreams: string[];
  created?: string;
  /** Plumbing details, set when nsdns provisions the network itself. */
  bridge?: string;
  mtu?: number;
  options?: Record<string, string>;
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
  ifname?: string;
  hostIf?: string;
  mac?: string;
  ports?: PortMapping[];
}

/** One network with its endpoints: the unit the registry replaces on every change. */
export interface NetworkRecord {
  network: Network;
  endpoints: Endpoint[];
}
