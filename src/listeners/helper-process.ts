// A bind helper at work: a short-lived process (the native nsdns-bind, or Node's bind-helper.js
// under nsenter) that binds sockets where the daemon cannot (inside a namespace, or a reuseport
// group steered by a BPF program) and hands them over the IPC channel. Sockets keep the namespace
// they were created in, so the daemon then serves them from its own event loop. Everything the
// helper sends is checked against one schema; a handle that arrives after we gave up is closed,
// so nothing stays bound behind our back.
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { z } from 'zod';
import { NAMESPACE_IDENTITY } from '../namespace-identity.js';
import type { ListenerSockets } from '../server/dns-server.js';

/** What a helper sends: ready (the Node helper, waiting for "bind"), a socket with its handle, or why it failed. */
const helperMessage = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('ready') }),
  // netns: the namespace a namespace helper bound in (DEV:INO), as it saw it.
  z.object({ kind: z.literal('udp'), netns: z.string().regex(NAMESPACE_IDENTITY).optional() }),
  z.object({ kind: z.literal('tcp') }),
  z.object({ kind: z.literal('error'), stage: z.string().max(64), message: z.string().max(256) }),
]);

/** Kept of a helper's stderr: enough for nsenter's or the kernel's words, never unbounded. */
const STDERR_LIMIT = 1024;

export interface HelperOptions {
  /** UDP sockets expected: 1, or a group's size. */
  udps: number;
  /** How long the helper may take from bind() to its last socket. */
  timeoutMs: number;
  /** The Node helper waits for a "bind" message (so it can be started early); the native one binds at once. */
  waitsForBind: boolean;
  /** "ADDRESS:PORT" as the helper's errors name it. */
  where: string;
  /** The error the caller's user reads, from a reason. */
  failure(reason: string): Error;
}

/** What a helper hands over: its sockets, and the namespace they were bound in when it says. */
export type HelperSockets = ListenerSockets & { boundIn?: string };

/** One helper process: started at once, its sockets collected from the start, the clock running from bind(). */
export class HelperProcess {
  private readonly child: ChildProcess;
  private readonly result: Promise<HelperSockets>;
  private startClock: (() => void) | undefined;

  constructor(command: string, args: readonly string[], private readonly options: HelperOptions) {
    this.child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    // Collected from the start: nothing is lost while the helper boots.
    this.result = this.collect();
    this.result.catch(() => {});
  }

  bind(): Promise<HelperSockets> {
    this.startClock?.();
    if (this.options.waitsForBind && this.child.connected) this.child.send({ kind: 'bind' }, () => {});
    return this.result;
  }

  abandon(): void {
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }

  private collect(): Promise<HelperSockets> {
    const { child, options } = this;
    return new Promise((resolve, reject) => {
      const udps: dgram.Socket[] = [];
      let tcp: net.Server | undefined;
      let boundIn: string | undefined;
      let stderr = '';
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const finish = (reason?: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (reason === undefined && udps.length === options.udps && tcp) {
          resolve({ udps, tcp, boundIn });
          return;
        }
        for (const udp of udps) udp.close();
        tcp?.close();
        child.on('message', (_msg: unknown, late: unknown) => closeHandle(late));
        if (child.exitCode === null) child.kill('SIGKILL');
        reject(options.failure(reason ?? (stderr.trim() || `the bind helper exited after handing over ${udps.length} of ${options.udps} UDP sockets${tcp ? '' : ' and no TCP listener'}`)));
      };
      this.startClock = () => { timer ??= setTimeout(() => finish(`the bind helper did not finish within ${options.timeoutMs} ms`), options.timeoutMs); };
      child.stderr!.on('data', (chunk: Buffer) => { if (stderr.length < STDERR_LIMIT) stderr += chunk.toString().slice(0, STDERR_LIMIT - stderr.length); });
      child.on('message', (raw: unknown, handle: unknown) => {
        const parsed = helperMessage.safeParse(raw);
        if (settled || !parsed.success) {
          closeHandle(handle);
          if (!parsed.success) finish('unexpected message from the bind helper');
          return;
        }
        const msg = parsed.data;
        if (msg.kind === 'ready') return;
        if (msg.kind === 'error') finish(`${msg.stage} ${options.where}: ${msg.message}`);
        else if (msg.kind === 'udp' && handle instanceof dgram.Socket) {
          udps.push(handle);
          boundIn ??= msg.netns;
        }
        else if (msg.kind === 'tcp' && handle instanceof net.Server) tcp = handle;
        else {
          closeHandle(handle);
          finish(`the bind helper sent "${msg.kind}" without its socket`);
        }
      });
      child.on('error', (err) => finish(err.message));
      // 'close' comes after the IPC channel is drained ('exit' can overtake the last message). Done
      // only once the helper is gone: until then its copies of the sockets hold the port, and a
      // close-and-rebind of the same address would find it taken.
      child.on('close', () => finish());
    });
  }
}

function closeHandle(handle: unknown): void {
  (handle as { close?: () => void } | undefined)?.close?.();
}
