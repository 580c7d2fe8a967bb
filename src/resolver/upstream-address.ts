// Upstream servers as written by people ("10.0.0.2", "10.0.0.2:5353", "[fd00::2]:53", "fd00::2")
// and as the forwarder uses them.
import ipaddr from 'ipaddr.js';
import { NsdnsError } from '../errors.js';

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
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(text) ?? /^([^:]+)(?::(\d+))?$/.exec(text);
  const host = m ? m[1] : text;
  const port = m?.[2] !== undefined ? Number(m[2]) : defaultPort;
  if (!ipaddr.isValid(host) || !(port > 0 && port < 65536)) {
    throw new NsdnsError('ERR_CONFIG', `"${text}" is not an upstream address (IP, IP:PORT or [IPv6]:PORT)`);
  }
  const addr = ipaddr.process(host);
  const family = addr.kind() === 'ipv4' ? 4 : 6;
  const canonical = addr.toString();
  server = { host: canonical, port, family, key: family === 4 ? `${canonical}:${port}` : `[${canonical}]:${port}` };
  parsed.set(key, server);
  return server;
}
