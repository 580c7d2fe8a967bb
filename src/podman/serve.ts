// The server process netavark knows by its pid file: loads the config directory into a registry,
// holds the UDP and TCP sockets of every listen address and answers there (answering.ts), and
// reloads on SIGHUP: listeners of a (network, address) that went away close, new ones open, the
// others keep their sockets. With no network left it removes its pid file and exits 0, as aardvark
// does.
import { renameSync, rmSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { Registry } from '../registry/registry.js';
import { PID_FILE } from './aardvark-config.js';
import { AardvarkSource, type WantedListeners } from './aardvark-source.js';
import { Answering } from './answering.js';
import { bindGateway, endpointText } from './gateway-sockets.js';
import type { DnsServer } from '../server/dns-server.js';
import type { Readiness } from './start.js';
import type { RunArgs } from './argv.js';

export class PodmanServer {
  readonly registry = new Registry();
  private readonly source: AardvarkSource;
  private readonly answering: Answering;
  /** `network address` → the server answering there. */
  private readonly listeners = new Map<string, DnsServer>();
  private reloading: Promise<void> = Promise.resolve();

  /** `resolvConf`: the host resolvers' file, the last upstreams (false: none). */
  constructor(private readonly args: RunArgs, private readonly log: Logger, resolvConf: string | false) {
    this.source = new AardvarkSource(this.registry, args.config, log.child({ module: 'aardvark-source' }));
    this.answering = new Answering(this.registry, log, resolvConf);
  }

  /** Binds and serves one (network, address); throws with the line for netavark. */
  private async open(key: string, network: string, address: string): Promise<void> {
    const sockets = await bindGateway(address, this.args.port);
    this.listeners.set(key, this.answering.serve(network, address, sockets, this.args.port));
    this.log.info({ network, address: endpointText(address, this.args.port) }, 'listening');
  }

  private ownAddresses(): void {
    const addresses = [...this.listeners.keys()].map((key) => key.slice(key.indexOf(' ') + 1));
    // Written as upstream keys are ([IPv6]:port), as the host listeners write theirs.
    this.answering.listeningOn(new Set(addresses.map((a) => endpointText(a, this.args.port))));
  }

  private get pidFile(): string {
    return path.join(this.args.config, PID_FILE);
  }

  /** Loads, binds every listen address, writes the pid file: the readiness to report. */
  async start(): Promise<Readiness> {
    let wanted: WantedListeners;
    try {
      wanted = await this.source.load();
    } catch (err) {
      return { kind: 'failed', message: `cannot read config directory ${this.args.config}: ${errorMessage(err)}`.slice(0, 512) };
    }
    if (wanted.size === 0) return { kind: 'failed', message: `no network to serve in ${this.args.config}`.slice(0, 512) };
    for (const [key, network, address] of entries(wanted)) {
      try {
        await this.open(key, network, address);
      } catch (err) {
        await this.closeAll();
        return { kind: 'failed', message: errorMessage(err).slice(0, 512) };
      }
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
    let wanted: WantedListeners;
    try {
      wanted = await this.source.load();
    } catch (err) {
      this.log.error({ err: { message: errorMessage(err) } }, 'config directory unreadable; serving what was loaded');
      return true;
    }
    const keys = new Set(entries(wanted).map(([key]) => key));
    // Close first: an address that moved to another network is bound again for that one.
    for (const [key, server] of this.listeners) {
      if (keys.has(key)) continue;
      this.listeners.delete(key);
      await server.close();
      this.log.info({ listener: key }, 'listener closed');
    }
    if (wanted.size === 0) return false;
    for (const [key, network, address] of entries(wanted)) {
      if (this.listeners.has(key)) continue;
      try {
        await this.open(key, network, address);
      } catch (err) {
        this.log.error({ network, err: { message: errorMessage(err) } }, 'listener not opened');
      }
    }
    this.ownAddresses();
    return true;
  }

  /** Removes the pid file if it is still ours, then closes every listener. */
  async stop(): Promise<void> {
    try {
      if (readFileSync(this.pidFile, 'utf8') === String(process.pid)) rmSync(this.pidFile);
    } catch { /* gone already */ }
    await this.closeAll();
    await this.answering.close();
  }

  private async closeAll(): Promise<void> {
    const servers = [...this.listeners.values()];
    this.listeners.clear();
    await Promise.all(servers.map((s) => s.close()));
  }
}

/** Every (network, address) wanted, keyed `network address`. */
function entries(wanted: WantedListeners): [key: string, network: string, address: string][] {
  return [...wanted].flatMap(([network, addresses]) => addresses.map((a): [string, string, string] => [`${network} ${a}`, network, a]));
}
