// What `nsdns network graph` draws, read from the daemon's `network.inspect` answers (docker's
// shape). The answer crosses a boundary, so it is checked by hand here (the CLI starts without zod):
// every field is taken only when it has the expected type, strings and lists are bounded, and the
// result is sorted so the same networks always give the same picture.

/** Longest text kept from any one field; the rest is cut with "…" (names are far shorter). */
const MAX_TEXT = 200;
/** At most this many aliases, addresses or ports per endpoint, and endpoints per network. */
const MAX_LIST = 64;
const MAX_ENDPOINTS = 10_000;

export interface GraphSubnet {
  subnet: string;
  gateway?: string;
}

export interface GraphEndpoint {
  name: string;
  aliases: string[];
  /** With the prefix length, as inspect gives them (10.77.0.10/24). */
  addresses: string[];
  ifname?: string;
  /** The namespace path (/run/netns/NAME, /proc/PID/ns/net); absent for a registry file's entry. */
  namespace?: string;
  /** Published ports as people write them: [hostIp:]hostPort→port/proto. */
  ports: string[];
}

export interface GraphNetwork {
  name: string;
  id: string;
  driver: string;
  internal: boolean;
  bridge?: string;
  domain?: string;
  subnets: GraphSubnet[];
  endpoints: GraphEndpoint[];
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function text(v: unknown): string | undefined {
  if (typeof v !== 'string' || v === '') return undefined;
  return v.length > MAX_TEXT ? `${v.slice(0, MAX_TEXT)}…` : v;
}

function texts(v: unknown): string[] {
  return Array.isArray(v) ? v.slice(0, MAX_LIST).map(text).filter((t): t is string => t !== undefined) : [];
}

function port(v: unknown): string | undefined {
  if (!isObject(v)) return undefined;
  const host = Number(v.hostPort);
  const inner = Number(v.containerPort);
  if (!Number.isInteger(host) || !Number.isInteger(inner)) return undefined;
  const hostIp = text(v.hostIp);
  const proto = v.protocol === 'udp' ? 'udp' : 'tcp';
  return `${hostIp ? `${hostIp}:` : ''}${host}→${inner}/${proto}`;
}

function endpoint(v: unknown): GraphEndpoint | undefined {
  if (!isObject(v)) return undefined;
  const name = text(v.Name);
  if (name === undefined) return undefined;
  return {
    name,
    aliases: texts(v.Aliases),
    addresses: [text(v.IPv4Address), text(v.IPv6Address)].filter((a): a is string => a !== undefined),
    ...(text(v.Interface) !== undefined && { ifname: text(v.Interface) }),
    ...(text(v.Namespace) !== undefined && { namespace: text(v.Namespace) }),
    ports: Array.isArray(v.Ports) ? v.Ports.slice(0, MAX_LIST).map(port).filter((p): p is string => p !== undefined) : [],
  };
}

function network(v: unknown): GraphNetwork | undefined {
  if (!isObject(v)) return undefined;
  const name = text(v.Name);
  if (name === undefined) return undefined;
  const options = isObject(v.Options) ? v.Options : {};
  const config = isObject(v.IPAM) && Array.isArray(v.IPAM.Config) ? v.IPAM.Config.slice(0, MAX_LIST) : [];
  const containers = isObject(v.Containers) ? Object.values(v.Containers).slice(0, MAX_ENDPOINTS) : [];
  const bridge = text(options['com.docker.network.bridge.name']);
  const domain = isObject(v.DNS) ? text(v.DNS.Domain) : undefined;
  return {
    name,
    id: text(v.Id) ?? '',
    driver: text(v.Driver) ?? 'bridge',
    internal: v.Internal === true,
    ...(bridge !== undefined && { bridge }),
    ...(domain !== undefined && { domain }),
    subnets: config.filter(isObject).flatMap((c) => {
      const subnet = text(c.Subnet);
      const gateway = text(c.Gateway);
      return subnet === undefined ? [] : [{ subnet, ...(gateway !== undefined && { gateway }) }];
    }),
    endpoints: containers.map(endpoint).filter((e): e is GraphEndpoint => e !== undefined)
      .sort((a, b) => compare(a.name, b.name) || compare(a.namespace ?? '', b.namespace ?? '')),
  };
}

const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** The networks of an inspect answer, sorted by name; entries that are not networks are left out. */
export function graphModel(inspect: unknown): GraphNetwork[] {
  if (!Array.isArray(inspect)) return [];
  return inspect.map(network).filter((n): n is GraphNetwork => n !== undefined)
    .sort((a, b) => compare(a.name, b.name) || compare(a.id, b.id));
}

/** Endpoints in all: what the picture's size (and layout time) grows with. */
export const endpointCount = (networks: readonly GraphNetwork[]): number => networks.reduce((n, net) => n + net.endpoints.length, 0);
