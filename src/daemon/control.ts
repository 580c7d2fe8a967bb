// The control socket (a unix socket only root may open): `nsdns network ...` and `nsdns debug`
// talk to the daemon through it. Each request is validated by the method it names; errors go back
// with their code and message, and never take the daemon down.
import { chmod, mkdir, rm } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { NsdnsError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { ControlRequest, ControlResponse } from './control-protocol.js';

export type Handler = (params: unknown) => Promise<unknown>;

export interface ControlOptions {
  /** A group whose members may use the socket too; root only when absent. */
  group?: string;
}

export class ControlServer {
  private server: net.Server | undefined;

  constructor(private readonly socketPath: string, private readonly handlers: Record<string, Handler>, private readonly log: Logger, readonly options: ControlOptions = {}) {}

  async start(): Promise<void> {
    await mkdir(path.dirname(this.socketPath), { recursive: true, mode: 0o755 });
    if (await isAlive(this.socketPath)) throw new NsdnsError('ERR_LISTEN', `another nsdns daemon is already listening on ${this.socketPath}`);
    await rm(this.socketPath, { force: true });
    const server = net.createServer((socket) => this.serve(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.socketPath, () => { server.off('error', reject); resolve(); });
    });
    await chmod(this.socketPath, 0o600);
    this.server = server;
    this.log.info({ socket: this.socketPath }, 'control socket ready');
  }

  private serve(socket: net.Socket): void {
    let buffered = '';
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk) => {
      buffered += chunk.toString();
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        void this.answer(line).then((response) => { if (!socket.destroyed) socket.write(`${JSON.stringify(response)}\n`); });
      }
    });
  }

  private async answer(line: string): Promise<ControlResponse> {
    let request: ControlRequest;
    try {
      request = JSON.parse(line) as ControlRequest;
    } catch {
      return { id: 0, ok: false, error: { code: 'ERR_BAD_REQUEST', message: 'the request is not JSON' } };
    }
    const handler = this.handlers[request.method];
    if (!handler) return { id: request.id, ok: false, error: { code: 'ERR_BAD_REQUEST', message: `unknown method ${request.method}` } };
    try {
      return { id: request.id, ok: true, result: await handler(request.params ?? {}) };
    } catch (err) {
      const code = err instanceof NsdnsError ? err.code : 'ERR_INTERNAL';
      if (code === 'ERR_INTERNAL') this.log.error({ err, method: request.method }, 'control request failed');
      else this.log.info({ method: request.method, code, reason: errorMessage(err) }, 'control request refused');
      return { id: request.id, ok: false, error: { code, message: errorMessage(err) } };
    }
  }

  async close(): Promise<void> {
    if (!this.server) return;
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    await rm(this.socketPath, { force: true });
  }
}

function isAlive(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(socketPath);
    probe.once('connect', () => { probe.destroy(); resolve(true); });
    probe.once('error', () => resolve(false));
  });
}
