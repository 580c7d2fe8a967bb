// `ADDRESS:PORT` as people write it and as nsdns shows it: "10.0.0.2:53", "[fd00::2]:53" and,
// where a default port applies, "10.0.0.2", "[fd00::2]" or "fd00::2". Literal addresses only,
// never host names: naming a resolver by a name would need a resolver. Every layer parses and
// prints these through here, so a listener, an upstream and a log line agree on one form.
import ipaddr from 'ipaddr.js';

export interface HostPort {
  /** Canonical: IPv4 dotted decimal, IPv6 compressed lower case, an IPv4-mapped IPv6 as IPv4. */
  readonly host: string;
  readonly port: number;
  readonly family: 4 | 6;
}

export interface HostPortRules {
  /** The port when the text has none (a bare IPv6 address is then unambiguous too); absent: a port is required. */
  defaultPort?: number;
  /** Port 0, "any free port", makes sense for a listener only, never for a server to ask. Default: allowed. */
  allowZero?: boolean;
  /** An IPv6 zone id (`fe80::1%eth0`), which a link-local address needs to leave the host. Default: refused. */
  allowZone?: boolean;
}

/** Longer than any valid text: "[" + 45-character IPv6 + "%" + 15-character interface + "]:65535". */
const MAX_TEXT = 80;
const BRACKETED = /^\[([^\]]+)\](?::(\d{1,5}))?$/;
const IPV4_PORT = /^([0-9.]+)(?::(\d{1,5}))?$/;
/** A zone as the kernel names interfaces (or their index): letters, digits, '_', '.', '-'. */
const ZONE = /^[A-Za-z0-9_.-]{1,15}$/;

/** A bare address ("10.0.0.2", "fd00::2", with `allowZone` "fe80::1%eth0") in canonical form, or undefined. */
export function parseAddress(text: string, rules: Pick<HostPortRules, 'allowZone'> = {}): Omit<HostPort, 'port'> | undefined {
  if (typeof text !== 'string' || text.length > MAX_TEXT) return undefined;
  return text.includes(':') ? ipv6(text, rules.allowZone === true) : ipv4(text);
}

/** The address and port of `text`, or undefined when it is not one under `rules`; never throws. */
export function parseHostPort(text: string, rules: HostPortRules = {}): HostPort | undefined {
  if (typeof text !== 'string' || text.length > MAX_TEXT) return undefined;
  const zone = rules.allowZone === true;
  const bracketed = BRACKETED.exec(text);
  if (bracketed) return withPort(ipv6(bracketed[1], zone), bracketed[2], rules);
  const dotted = IPV4_PORT.exec(text);
  if (dotted) return withPort(ipv4(dotted[1]), dotted[2], rules);
  // Without brackets an IPv6 address takes no port: "fd00::2:53" is the address fd00::2:53.
  return withPort(ipv6(text, zone), undefined, rules);
}

function withPort(address: Omit<HostPort, 'port'> | undefined, portText: string | undefined, rules: HostPortRules): HostPort | undefined {
  const port = portText === undefined ? rules.defaultPort : Number(portText);
  if (address === undefined || port === undefined || port > 65535 || (port === 0 && rules.allowZero === false)) return undefined;
  return { ...address, port };
}

/** Four decimal octets; "010.0.0.1" or "10.1" is refused, since inet_aton would read them as 8.0.0.1 or 10.0.0.1. */
function ipv4(address: string): Omit<HostPort, 'port'> | undefined {
  return ipaddr.IPv4.isValidFourPartDecimal(address) ? { host: ipaddr.IPv4.parse(address).toString(), family: 4 } : undefined;
}

function ipv6(address: string, allowZone: boolean): Omit<HostPort, 'port'> | undefined {
  const cut = address.indexOf('%');
  const bare = cut < 0 ? address : address.slice(0, cut);
  if (cut >= 0 && !(allowZone && ZONE.test(address.slice(cut + 1)))) return undefined;
  if (bare.includes('/') || !ipaddr.IPv6.isValid(bare)) return undefined;
  const parsed = ipaddr.IPv6.parse(bare);
  if (parsed.isIPv4MappedAddress()) return cut < 0 ? { host: parsed.toIPv4Address().toString(), family: 4 } : undefined;
  return { host: cut < 0 ? parsed.toString() : `${parsed.toString()}${address.slice(cut)}`, family: 6 };
}

/** "10.0.0.2:53" or "[fd00::2]:53": the one form of logs, keys and messages. */
export function formatHostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
