// Upstream servers as written by people ("10.0.0.2", "10.0.0.2:5353", "[fd00::2]:53", "fd00::2")
// and as the forwarder uses them.
import { NsdnsError } from '../errors.js';
import { formatHostPort, parseHostPort } from '../host-port.js';
import { printable } from '../registry/fields.js';

export interface UpstreamServer {
  readonly host: string;
  readonly port: number;
  readonly family: 4 | 6;
  /** "host:port" ("[v6]:port"), the key for health and loop protection. */
  readonly key: string;
}

const parsed = new Map<string, UpstreamServer>();

export function parseUpstream(text: string, defaultPort = 53): UpstreamServer {
  const key = `${text}|${defaultPort}`;
  let server = parsed.get(key);
  if (server) return server;
  // A link-local server (a router's fe80::1%eth0 in resolv.conf) is reached through its zone only.
  const at = parseHostPort(text, { defaultPort, allowZero: false, allowZone: true });
  if (!at) throw new NsdnsError('ERR_CONFIG', `"${printable(text, 80)}" is not an upstream address (IP, IP:PORT or [IPv6]:PORT)`);
  server = { ...at, key: formatHostPort(at.host, at.port) };
  parsed.set(key, server);
  return server;
}
