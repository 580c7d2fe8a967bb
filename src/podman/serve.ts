// The server process netavark knows by its pid file: loads the config directory into a registry,
// serves every listen address through a listener set (listeners/aardvark-spec.ts), and reloads on
// SIGHUP: listeners of a (network, address) that went away close, new ones open, the others keep
// their sockets. With no network left it removes its pid file and exits 0, as aardvark does.
import { renameSync, rmSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { errorMessage } from '../errors.js';
import { formatHostPort } from '../host-port.js';
import type { Logger } from '../log.js';
import { Registry } from '../registry/registry.js';
import { AardvarkSpec, type AardvarkWant, type ListenAddresses } from '../listeners/aardvark-spec.js';
import { ListenerSet } from '../listeners/listener-set.js';
import { PID_FILE } from './aardvark-config.js';
import { AardvarkSource } from './aardvark-source.js';
import { PodmanResolver } from './podman-resolver.js';
import type { Readiness } from './start.js';
import type { RunArgs } from './argv.js';

export class PodmanServer {
  readonly registry = new Registry();
  readonly source: AardvarkSource;
  readonly resolver: PodmanResolver;
  private readonly listeners: ListenerSet<AardvarkWant>;
  /** What the config directory asked for at its last load. */
  private listen: ListenAddresses = new Map();
  private reloading: Promise<void> = Promise.resolve();

  /** `resolvConf`: the host resolvers' file, the last upstreams (false: none). */
  constructor(private readonly args: RunArgs, private readonly log: Logger, resolvConf: string | false) {
    this.source = new AardvarkSource(this.registry, args.config, log.child({ module: 'aardvark-source' }));
    this.resolver = new PodmanResolver(log, resolvConf);
    const spec = new AardvarkSpec(this.registry, this.resolver.shared, log, () => this.listen, args.port);
    this.listeners = new ListenerSet(spec, log);
  }

  /** Our own listen addresses: never an upstream, so we cannot ask ourselves. */
  private ownAddresses(): void {
    this.resolver.listeningOn(new Set(this.listeners.listeners.map((l) => formatHostPort(l.address, l.port))));
  }

  private get pidFile(): string {
    return path.join(this.args.config, PID_FILE);
  }

  /** Loads, binds every listen address, writes the pid file: the readiness to report. */
  async start(): Promise<Readiness> {
    try {
      this.listen = await this.source.load();
    } catch (err) {
      return { kind: 'failed', message: `cannot read config directory ${this.args.config}: ${errorMessage(err)}`.slice(0, 512) };
    }
    if (this.listen.size === 0) return { kind: 'failed', message: `no network to serve in ${this.args.config}`.slice(0, 512) };
    try {
      await this.listeners.open();
    } catch (err) {
      await this.listeners.close();
      return { kind: 'failed', message: errorMessage(err).slice(0, 512) };
    }
    this.ownAddresses();
    // Whole or absent: netavark reads it at any time to send SIGHUP.
    const tmp = `${this.pidFile}.${process.pid}.tmp`;
    writeFileSync(tmp, String(process.pid));
    renameSync(tmp, this.pidFile);
    return { kind: 'ready' };
  }

  /** SIGHUP: reloads one at a time. Resolves with false when no network is left (the caller exits). */
  reload(): Promise<boolean> {
    const next = this.reloading.then(() => this.reloadNow());
    this.reloading = next.then(() => undefined, () => undefined);
    return next;
  }

  private async reloadNow(): Promise<boolean> {
    try {
      this.listen = await this.source.load();
    } catch (err) {
      this.log.error({ err: { message: errorMessage(err) } }, 'config directory unreadable; serving what was loaded');
      return true;
    }
    // A listener that cannot be opened is logged by the spec; the others serve.
    await this.listeners.reconcile().catch(() => undefined);
    this.ownAddresses();
    return this.listen.size > 0;
  }

  /** Removes the pid file if it is still ours, then closes every listener. */
  async stop(): Promise<void> {
    try {
      if (readFileSync(this.pidFile, 'utf8') === String(process.pid)) rmSync(this.pidFile);
    } catch { /* gone already */ }
    await this.listeners.close();
    await this.resolver.close();
  }
}
