// Binding 127.0.0.11:53 inside a namespace. A Node process cannot enter a namespace, but a child
// started under nsenter can bind there and hand the sockets back over IPC (sockets keep the
// namespace they were created in). The daemon receives a working UDP socket and TCP server.
import { spawn } from 'node:child_process';
import type dgram from 'node:dgram';
import type net from 'node:net';
import { fileURLToPath } from 'node:url';
import { NsdnsError } from '../errors.js';

const HELPER = fileURLToPath(new URL('./bind-helper.js', import.meta.url));

export const RESOLVER_ADDRESS = '127.0.0.11';

export interface NamespaceSockets {
  udp: dgram.Socket;
  tcp: net.Server;
}

export interface Binder {
  bind(netnsPath: string): Promise<NamespaceSockets>;
}

export class NsenterBinder implements Binder {
  constructor(private readonly address = RESOLVER_ADDRESS, private readonly port = 53, private readonly timeoutMs = 30_000) {}

  bind(netnsPath: string): Promise<NamespaceSockets> {
    return new Promise((resolve, reject) => {
      const child = spawn('nsenter', [`--net=${netnsPath}`, '--', process.execPath, HELPER, this.address, String(this.port)], {
        stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      });
      let udp: dgram.Socket | undefined;
      let tcp: net.Server | undefined;
      let stderr = '';
      let settled = false;
      const finish = (err?: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) {
          udp?.close();
          tcp?.close();
          // A handle that still arrives after we gave up must not stay bound in the namespace.
          child.on('message', (_msg: unknown, late: unknown) => (late as { close?: () => void } | undefined)?.close?.());
          if (child.exitCode === null) child.kill('SIGKILL');
          reject(err);
        } else resolve({ udp: udp!, tcp: tcp! });
      };
      const failure = (message: string) => new NsdnsError('ERR_NETNS_BIND', `cannot serve DNS in ${netnsPath}: ${message}`);
      const timer = setTimeout(() => finish(failure(`the bind helper did not finish within ${this.timeoutMs} ms`)), this.timeoutMs);
      child.stderr!.on('data', (c: Buffer) => { stderr += c.toString(); });
      child.on('message', (msg: { kind: string; stage?: string; message?: string }, handle: unknown) => {
        if (settled) return;
        if (msg.kind === 'udp') udp = handle as dgram.Socket;
        else if (msg.kind === 'tcp') tcp = handle as net.Server;
        else if (msg.kind === 'error') finish(failure(`${msg.stage} ${this.address}:${this.port}: ${msg.message}`));
        if (udp && tcp) finish();
      });
      child.on('error', (err) => finish(failure(err.message)));
      // 'close' comes after the IPC channel is drained; 'exit' can overtake the last message.
      child.on('close', (code) => {
        if (!udp || !tcp) finish(failure(stderr.trim() || `the bind helper exited with ${code}`));
      });
    });
  }
}
