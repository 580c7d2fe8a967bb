// Requests from the `nsdns network` commands, validated before anything changes.
import ipaddr from 'ipaddr.js';
import { NsdnsError } from '../errors.js';
import { isValidLabel, isValidName } from '../wire/names.js';
import type { PortMapping } from '../registry/types.js';

export interface CreateNetworkRequest {
  name: string;
  subnets?: string[];
  gateway?: string;
  ipRange?: string;
  internal?: boolean;
  bridge?: string;
  mtu?: number;
  dnsUpstreams?: string[];
  domain?: string;
  options?: Record<string, string>;
}

export interface ConnectRequest {
  network: string;
  target: string;
  name?: string;
  aliases?: string[];
  ip?: string;
  ip6?: string;
  mac?: string;
  ifname?: string;
  dns?: string[];
  publish?: string[];
}

export function bad(message: string): NsdnsError {
  return new NsdnsError('ERR_BAD_REQUEST', message);
}

export function checkLabel(what: string, value: string): string {
  if (!isValidLabel(value)) throw bad(`${what} "${value}" is not a valid DNS label (letters, digits and hyphens, at most 63, not starting or ending with a hyphen)`);
  return value.toLowerCase();
}

export function checkAlias(value: string): string {
  if (!isValidName(value)) throw bad(`alias "${value}" is not a valid DNS name`);
  return value.toLowerCase().replace(/\.$/, '');
}

export function checkInterfaceName(what: string, value: string): string {
  if (!/^[a-zA-Z0-9_.-]{1,15}$/.test(value)) throw bad(`${what} "${value}" is not a valid interface name (at most 15 letters, digits, '.', '_' or '-')`);
  return value;
}

export function checkMac(value: string): string {
  if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(value)) throw bad(`MAC address "${value}" is not in the form aa:bb:cc:dd:ee:ff`);
  if (parseInt(value.slice(0, 2), 16) & 1) throw bad(`MAC address "${value}" is a multicast address`);
  return value.toLowerCase();
}

export function checkAddress(what: string, value: string, kind: 'ipv4' | 'ipv6'): string {
  if (!ipaddr.isValid(value) || ipaddr.parse(value).kind() !== kind) throw bad(`${what} "${value}" is not an ${kind === 'ipv4' ? 'IPv4' : 'IPv6'} address`);
  return ipaddr.parse(value).toString();
}

/** `[HOSTIP:]HOSTPORT:PORT[/tcp|udp]`, as `docker run --publish` takes it. */
export function parsePublish(spec: string): PortMapping {
  const m = /^(?:(\d{1,3}(?:\.\d{1,3}){3}):)?(\d+):(\d+)(?:\/(tcp|udp))?$/.exec(spec);
  const port = (s: string | undefined) => (s !== undefined && Number(s) >= 1 && Number(s) <= 65535 ? Number(s) : undefined);
  const hostPort = port(m?.[2]);
  const containerPort = port(m?.[3]);
  if (!m || hostPort === undefined || containerPort === undefined || (m[1] && !ipaddr.IPv4.isValidFourPartDecimal(m[1]))) {
    throw bad(`--publish "${spec}": expected [HOSTIP:]HOSTPORT:PORT[/tcp|udp] with ports 1-65535`);
  }
  return { ...(m[1] && { hostIp: m[1] }), hostPort, containerPort, protocol: (m[4] as 'tcp' | 'udp' | undefined) ?? 'tcp' };
}
