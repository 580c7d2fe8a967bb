// A TCP proxy on loopback that a test can cut: one daemon reaches etcd through it, so that daemon
// alone is partitioned from etcd while etcd, and everyone else, goes on. Cut, no byte passes either
// way and new connections hang (as with packets dropped); restored, the connections held are reset
// and new ones pass.
import net from 'node:net';
import { freePort } from './free-port.js';

export class CuttableProxy {
  private cutOff = false;
  private readonly sockets = new Set<net.Socket>();

  private constructor(private readonly server: net.Server, readonly hostPort: string) {}

  static async start(target: string, portBase: number): Promise<CuttableProxy> {
    const i = target.lastIndexOf(':');
    const [host, port] = [target.slice(0, i), Number(target.slice(i + 1))];
    let proxy: CuttableProxy | undefined;
    const server = net.createServer((client) => proxy!.accept(client, host, port));
    const listenPort = await freePort('127.0.0.1', portBase, 100);
    await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(listenPort, '127.0.0.1', resolve); });
    proxy = new CuttableProxy(server, `127.0.0.1:${listenPort}`);
    return proxy;
  }

  private accept(client: net.Socket, host: string, port: number): void {
    this.track(client);
    client.on('error', () => client.destroy());
    // Cut: the connection is accepted and then nothing happens, as when packets are dropped.
    if (this.cutOff) {
      client.pause();
      return;
    }
    const upstream = net.connect(port, host);
    this.track(upstream);
    upstream.on('error', () => { upstream.destroy(); client.destroy(); });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  }

  private track(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
  }

  /** From now on nothing passes, on the connections open and on new ones. */
  cut(): void {
    this.cutOff = true;
    for (const s of this.sockets) {
      s.unpipe();
      s.pause();
    }
  }

  /** Resets what was held during the cut; new connections pass. */
  restore(): void {
    this.cutOff = false;
    for (const s of this.sockets) s.destroy();
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
