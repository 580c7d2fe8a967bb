// The sockets of one gateway listen address, UDP and TCP on the port netavark chose. The one place
// the drop-in binds (server/host-sockets.ts does the work), and where a failure becomes the line
// netavark shows its user: aardvark's "failed to bind udp listener on 10.89.0.1:53".
import { bindHostSockets, type BoundSockets } from '../server/host-sockets.js';
import { errorMessage } from '../errors.js';

export type GatewaySockets = BoundSockets;

/** `address:port`, IPv6 in brackets, as aardvark names a listener. */
export function endpointText(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** Binds UDP and TCP on `address:port`; throws an Error whose message is the line for netavark. */
export async function bindGateway(address: string, port: number): Promise<GatewaySockets> {
  try {
    return await bindHostSockets(address, port);
  } catch (err) {
    const message = errorMessage(err);
    const protocol = /\btcp\b/.test(message) ? 'tcp' : 'udp';
    // The reason without the address again ("cannot listen on udp A:P: bind EADDRINUSE A:P").
    const reason = /\b(E[A-Z]+)\b/.exec(message)?.[1] ?? 'error';
    throw new Error(`failed to bind ${protocol} listener on ${endpointText(address, port)}: ${reason}`, { cause: err });
  }
}
