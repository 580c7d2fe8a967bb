// Binding 127.0.0.11:53 inside a namespace. A Node process cannot enter a namespace, but a child
// started under nsenter can bind there and hand the sockets back over IPC (sockets keep the
// namespace they were created in). The daemon receives a working UDP socket and TCP server.
import { spawn, type ChildProcess } from 'node:child_process';
import type dgram from 'node:dgram';
import type net from 'node:net';
import { fileURLToPath } from 'node:url';
import { NsdnsError } from '../errors.js';
import { nativeHelperPath, nativeHelperUsable } from '../native/helpers.js';

const HELPER = fileURLToPath(new URL('./bind-helper.js', import.meta.url));
/** Built by src/native/build.mjs when a C compiler was there at install time. */
const NATIVE_HELPER = nativeHelperPath('nsdns-bind');

/** Which bind helper serves: the native one when it was built and not switched off (NSDNS_NATIVE=0). */
export function bindHelperKind(): 'native' | 'node' {
  return nativeHelperUsable(NATIVE_HELPER) ? 'native' : 'node';
}

export const RESOLVER_ADDRESS = '127.0.0.11';

export interface NamespaceSockets {
  udp: dgram.Socket;
  tcp: net.Server;
}

export interface Binder {
  /** Starts the helper for `netns` early, so its start-up overlaps the rest of the setup. */
  prepare?(netnsPath: string): void;
  /** Drops a prepared helper that will not be needed (the connect failed). */
  cancel?(netnsPath: string): void;
  bind(netnsPath: string): Promise<NamespaceSockets>;
  /** How many binds at once pay off (4 when unset). */
  readonly parallel?: number;
}

/** How long a prepared helper waits for its bind before it is dropped. */
const PREPARED_TTL_MS = 30_000;

export class NsenterBinder implements Binder {
  private readonly prepared = new Map<string, { helper: Helper; timer: NodeJS.Timeout }>();
  readonly kind = bindHelperKind();
  /**
   * A Node helper is a full Node start: more than a few at once only slow each other down on a
   * small machine. A native one is done in a few ms; more at once keep the daemon's loop busy
   * instead of waiting for each helper's exit (1 000 namespaces at start).
   */
  readonly parallel = this.kind === 'native' ? 16 : 4;

  constructor(private readonly address = RESOLVER_ADDRESS, private readonly port = 53, private readonly timeoutMs = 30_000) {}

  prepare(netnsPath: string): void {
    // The native helper starts in a few ms: nothing to win by starting it early.
    // A few at a time: fifty node start-ups at once would only slow each other down.
    if (this.kind === 'native' || this.prepared.has(netnsPath) || this.prepared.size >= 4) return;
    const timer = setTimeout(() => this.cancel(netnsPath), PREPARED_TTL_MS);
    timer.unref();
    this.prepared.set(netnsPath, { helper: new Helper(netnsPath, this.address, this.port, this.timeoutMs), timer });
  }

  cancel(netnsPath: string): void {
    const entry = this.prepared.get(netnsPath);
    if (!entry) return;
    this.prepared.delete(netnsPath);
    clearTimeout(entry.timer);
    entry.helper.abandon();
  }

  bind(netnsPath: string): Promise<NamespaceSockets> {
    const entry = this.prepared.get(netnsPath);
    this.prepared.delete(netnsPath);
    if (entry) clearTimeout(entry.timer);
    return (entry?.helper ?? new Helper(netnsPath, this.address, this.port, this.timeoutMs, this.kind === 'native')).bind();
  }
}

/** One helper process inside one namespace: started at once, binds when asked. */
class Helper {
  private readonly child: ChildProcess;
  private readonly result: Promise<NamespaceSockets>;
  private started: (() => void) | undefined;

  constructor(private readonly netnsPath: string, private readonly address: string, private readonly port: number, private readonly timeoutMs: number, private readonly native = false) {
    // The native helper enters the namespace itself and binds at once; the Node one waits for "bind".
    const [command, args] = native
      ? [NATIVE_HELPER, [netnsPath, address, String(port)]]
      : ['nsenter', [`--net=${netnsPath}`, '--', process.execPath, HELPER, address, String(port)]];
    this.child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    // Collect from the start; nothing can be lost while the helper boots.
    this.result = this.collect();
    this.result.catch(() => {});
  }

  bind(): Promise<NamespaceSockets> {
    this.started?.();
    if (!this.native && this.child.connected) this.child.send({ kind: 'bind' }, () => {});
    return this.result;
  }

  abandon(): void {
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }

  private collect(): Promise<NamespaceSockets> {
    const { child, netnsPath } = this;
    return new Promise((resolve, reject) => {
      let udp: dgram.Socket | undefined;
      let tcp: net.Server | undefined;
      let stderr = '';
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
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
      // The clock runs from the bind request, not from a prepare that may come much earlier.
      this.started = () => { timer ??= setTimeout(() => finish(failure(`the bind helper did not finish within ${this.timeoutMs} ms`)), this.timeoutMs); };
      child.stderr!.on('data', (c: Buffer) => { stderr += c.toString(); });
      child.on('message', (msg: { kind: string; stage?: string; message?: string }, handle: unknown) => {
        if (settled) return;
        if (msg.kind === 'udp') udp = handle as dgram.Socket;
        else if (msg.kind === 'tcp') tcp = handle as net.Server;
        else if (msg.kind === 'error') finish(failure(`${msg.stage} ${this.address}:${this.port}: ${msg.message}`));
      });
      child.on('error', (err) => finish(failure(err.message)));
      // 'close' comes after the IPC channel is drained; 'exit' can overtake the last message.
      // Done only once the helper is gone: until then its copies of the sockets hold the port, and
      // a close-and-rebind of the same namespace would find it taken.
      child.on('close', (code) => {
        if (udp && tcp) finish();
        else finish(failure(stderr.trim() || `the bind helper exited with ${code}`));
      });
    });
  }
}
