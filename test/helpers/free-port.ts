// A port free for both UDP and TCP on one address, picked at random in a test file's own range
// (test files run one after another, but engineers run theirs side by side: each keeps to its range).
import dgram from 'node:dgram';
import net from 'node:net';

/** A port in `from` .. `from + count - 1` free for UDP and TCP on `address`. */
export async function freePort(address: string, from: number, count = 100): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = from + Math.floor(Math.random() * count);
    const udp = dgram.createSocket(net.isIPv6(address) ? 'udp6' : 'udp4');
    const tcp = net.createServer();
    try {
      await new Promise<void>((resolve, reject) => { udp.once('error', reject); udp.bind(port, address, resolve); });
      await new Promise<void>((resolve, reject) => { tcp.once('error', reject); tcp.listen(port, address, resolve); });
      return port;
    } catch { /* taken: another one */ } finally {
      udp.close();
      tcp.close();
    }
  }
  throw new Error(`no free port in ${from}-${from + count - 1} on ${address}`);
}
