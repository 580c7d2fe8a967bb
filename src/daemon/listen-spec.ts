// `--listen ADDR:PORT[=net1,net2]`: a standalone listener on the host and, optionally, the
// networks it may see.
import { NsdnsError } from '../errors.js';
import { parseHostPort } from '../host-port.js';
import { printable } from '../registry/fields.js';

export interface ListenSpec {
  address: string;
  port: number;
  networks?: string[];
}

export function parseListenSpec(spec: string): ListenSpec {
  const [where, nets] = spec.split('=', 2);
  // Port 0 binds any free port; a zone id binds a link-local address on one interface.
  const at = parseHostPort(where, { defaultPort: 53, allowZone: true });
  if (!at) {
    throw new NsdnsError('ERR_CONFIG', `--listen "${printable(spec, 80)}": expected ADDR:PORT (IPv6 as [ADDR]:PORT), optionally =NETWORK,...`);
  }
  const networks = nets === undefined ? undefined : nets.split(',').map((n) => n.trim()).filter(Boolean);
  return { address: at.host, port: at.port, ...(networks && { networks }) };
}
