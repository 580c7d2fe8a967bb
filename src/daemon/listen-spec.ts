// `--listen ADDR:PORT[=net1,net2]`: a standalone listener on the host and, optionally, the
// networks it may see.
import net from 'node:net';
import { NsdnsError } from '../errors.js';

export interface ListenSpec {
  address: string;
  port: number;
  networks?: string[];
}

export function parseListenSpec(spec: string): ListenSpec {
  const [where, nets] = spec.split('=', 2);
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(where) ?? /^([^:]+):(\d+)$/.exec(where) ?? /^\[?([^\]]+?)\]?$/.exec(where);
  const address = m?.[1];
  const port = m?.[2] === undefined ? 53 : Number(m[2]);
  if (!address || net.isIP(address) === 0 || !(port >= 0 && port < 65536)) {
    throw new NsdnsError('ERR_CONFIG', `--listen "${spec}": expected ADDR:PORT (IPv6 as [ADDR]:PORT), optionally =NETWORK,...`);
  }
  const networks = nets === undefined ? undefined : nets.split(',').map((n) => n.trim()).filter(Boolean);
  return { address, port, ...(networks && { networks }) };
}
