// What the health-probe tests share: a logger whose lines a test reads, a TCP listener that can go
// away and come back on the same port (an endpoint going down and up).
import net from 'node:net';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/log.js';

export interface Line { level: number; msg: string; [k: string]: unknown }

/** A JSON logger whose lines the test reads. */
export function capturedLog(): { log: ReturnType<typeof createLogger>; lines: Line[] } {
  const lines: Line[] = [];
  const sink = new Writable({ write(chunk, _e, cb) { for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l)); cb(); } });
  return { log: createLogger('info', sink), lines };
}

/** A TCP listener on `host` that can be stopped and started again on the same port. */
export class Listener {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  port = 0;
  constructor(readonly host: string) {}
  async listen(): Promise<this> {
    const server = net.createServer((s) => {
      this.sockets.add(s.on('error', () => undefined).on('close', () => this.sockets.delete(s)));
      s.end();
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(this.port, this.host, () => resolve()));
    this.port = (server.address() as net.AddressInfo).port;
    this.server = server;
    return this;
  }
  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((resolve) => { s.close(() => resolve()); for (const c of this.sockets) c.destroy(); });
  }
}

