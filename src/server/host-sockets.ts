// Binding a standalone listener on the host: UDP and TCP on the same address and port. With port
// 0 the kernel picks the UDP port and TCP takes the same one.
import dgram from 'node:dgram';
import net from 'node:net';
import { NsdnsError } from '../errors.js';

export interface BoundSockets {
  udp: dgram.Socket;
  tcp: net.Server;
  port: number;
}

export async function bindHostSockets(address: string, port: number): Promise<BoundSockets> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const udp = dgram.createSocket({ type: net.isIPv6(address) ? 'udp6' : 'udp4' });
    try {
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(port, address, () => { udp.off('error', reject); resolve(); });
      });
    } catch (err) {
      udp.close();
      throw new NsdnsError('ERR_LISTEN', `cannot listen on udp ${address}:${port}: ${(err as Error).message}`, { cause: err });
    }
    const udpPort = udp.address().port;
    const tcp = net.createServer();
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen({ port: udpPort, host: address, backlog: 511 }, () => { tcp.off('error', reject); resolve(); });
      });
      return { udp, tcp, port: udpPort };
    } catch (err) {
      udp.close();
      // The kernel's free UDP port may be taken for TCP: pick another one.
      if (port === 0 && (err as NodeJS.ErrnoException).code === 'EADDRINUSE') continue;
      throw new NsdnsError('ERR_LISTEN', `cannot listen on tcp ${address}:${udpPort}: ${(err as Error).message}`, { cause: err });
    }
  }
  throw new NsdnsError('ERR_LISTEN', `no free port on ${address} for both udp and tcp`);
}
