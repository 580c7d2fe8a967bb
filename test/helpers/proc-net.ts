// The kernel's own view of sockets, from /proc/net/{tcp,udp} of the test's network namespace:
// what a connection or a socket queue really is, whatever the process at either end believes
// (a paused client socket does not notice that the server reset it until it reads again).
import { readFile } from 'node:fs/promises';

export interface ProcSocket {
  local: string;
  remote: string;
  /** TCP state as the kernel numbers it (01 ESTABLISHED ... 0A LISTEN); 07 for UDP. */
  state: number;
  /** Bytes received and not yet read by the process that owns the socket. */
  rxQueue: number;
  /** Datagrams dropped at this socket's receive queue (UDP only; 0 for TCP). */
  drops: number;
}

/** "0100007F:1F90" (little-endian IPv4 and port, hex) → "127.0.0.1:8080". */
function endpoint(hex: string): string {
  const [address, port] = hex.split(':');
  const octets = address.match(/../g)!.map((h) => parseInt(h, 16)).reverse();
  return `${octets.join('.')}:${parseInt(port, 16)}`;
}

async function read(file: '/proc/net/tcp' | '/proc/net/udp'): Promise<ProcSocket[]> {
  const lines = (await readFile(file, 'utf8')).split('\n').slice(1).filter((l) => l.trim());
  return lines.map((line) => {
    const f = line.trim().split(/\s+/);
    return { local: endpoint(f[1]), remote: endpoint(f[2]), state: parseInt(f[3], 16), rxQueue: parseInt(f[4].split(':')[1], 16), drops: file === '/proc/net/udp' ? Number(f[12]) : 0 };
  });
}

export const TCP_ESTABLISHED = 1;

/** IPv4 TCP sockets of this namespace. */
export const tcpSockets = () => read('/proc/net/tcp');

/** IPv4 UDP sockets of this namespace. */
export const udpSockets = () => read('/proc/net/udp');

/**
 * True once the server end of the connection from `client` (its local address:port) has read
 * everything the client sent: what a server did with bytes it has not read is not yet decided.
 */
export async function serverHasRead(client: { localAddress?: string; localPort?: number }): Promise<boolean> {
  const at = `${client.localAddress}:${client.localPort}`;
  const server = (await tcpSockets()).find((s) => s.remote === at);
  return server !== undefined && server.rxQueue === 0;
}

/** True while the kernel still holds an established connection from local `address:port`. */
export async function tcpEstablished(localAddress: string, localPort: number): Promise<boolean> {
  const at = `${localAddress}:${localPort}`;
  return (await tcpSockets()).some((s) => s.local === at && s.state === TCP_ESTABLISHED);
}
