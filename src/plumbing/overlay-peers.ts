// Other hosts' endpoints in this host's VXLAN devices. For each overlay network present here
// (overlay-presence.ts), every endpoint another host announced (its value carries its MAC and its
// host's underlay address) gets a forwarding entry to that host and a permanent neighbour entry;
// an endpoint that leaves etcd (disconnected, its host stopped, or its lease expired after a
// crash) loses them. Changes are applied as differences against what the kernel holds, coalesced
// per event-loop turn; `reconcile` compares every network again (at start, and in the self-heal
// pass after a device was made again). Nothing here is on the query path.
import { errorMessage } from '../errors.js';
import { rateLimited, type Logger } from '../log.js';
import type { Registry } from '../registry/registry.js';
import { applyPeers, type PeerEntry } from './overlay-kernel.js';
import { gatewayMac } from './overlay-gateway.js';
import { isPresence } from './overlay-presence.js';

export type PeerApplier = (vxlan: string, peers: readonly PeerEntry[]) => Promise<{ added: number; removed: number }>;

export class OverlayPeers {
  private readonly dirty = new Set<string>();
  private scheduled = false;
  private running: Promise<void> | undefined;
  private stopped = false;
  private readonly warnRateLimited = rateLimited(10_000);

  constructor(
    private readonly registry: Registry,
    /** This host's underlay address: entries pointing here would loop (own endpoints are on the bridge). */
    private readonly advertiseAddress: string,
    private readonly log: Logger,
    private readonly apply: PeerApplier = applyPeers,
  ) {}

  /** Follows the registry from now on, and compares every present network once. */
  start(): void {
    this.registry.on('change', this.onChange);
    for (const name of this.registry.current().networks.keys()) this.dirty.add(name);
    this.schedule();
  }

  private readonly onChange = (_snapshot: unknown, network: string): void => {
    this.dirty.add(network);
    this.schedule();
  };

  private schedule(): void {
    if (this.stopped || this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.running ??= this.flush().finally(() => {
        this.running = undefined;
        if (this.dirty.size > 0) this.schedule();
      });
    });
  }

  private async flush(): Promise<void> {
    const names = [...this.dirty];
    this.dirty.clear();
    for (const name of names) {
      try {
        await this.sync(name);
      } catch (err) {
        // Tried again at the next change of the network, and in the self-heal pass.
        this.warnRateLimited((suppressed) => this.log.warn({ network: name, err: errorMessage(err), suppressed }, 'overlay forwarding entries not applied'));
      }
    }
  }

  /**
   * The entries `name` should have here: its other hosts' endpoints; none when the network has no
   * presence here. Another host's value never takes this host's gateway (address or MAC) or an
   * address a local endpoint holds: the VXLAN device would answer ARP for it with that MAC.
   */
  private wanted(name: string): { vxlan: string; peers: PeerEntry[] } | undefined {
    const compiled = this.registry.current().networks.get(name);
    if (!compiled || !isPresence(compiled.network) || !this.registry.isProvisioned(name)) return undefined;
    const { network } = compiled;
    const local = new Set([...network.subnets.map((s) => s.gateway), ...(compiled.primary ?? compiled).endpoints.flatMap((e) => e.ipv4)]);
    const gateway = gatewayMac(network.overlay.vni);
    const v4 = !this.advertiseAddress.includes(':');
    const peers: PeerEntry[] = [];
    for (const e of compiled.endpoints) {
      const peer = e.overlay;
      // An underlay address of the other family than this host's cannot be a VXLAN destination here.
      if (peer === undefined || peer.host === this.advertiseAddress || peer.mac === gateway || peer.host.includes(':') === v4) continue;
      peers.push({ mac: peer.mac, host: peer.host, ips: e.ipv4.filter((ip) => !local.has(ip)) });
    }
    return { vxlan: network.overlay.vxlan, peers };
  }

  private async sync(name: string): Promise<void> {
    const wanted = this.wanted(name);
    // No presence: its VXLAN device went with it, and its entries with the device.
    if (wanted === undefined) return;
    const { added, removed } = await this.apply(wanted.vxlan, wanted.peers);
    if (added + removed > 0 && this.log.isLevelEnabled('debug')) this.log.debug({ network: name, vxlan: wanted.vxlan, added, removed, peers: wanted.peers.length }, 'overlay forwarding entries applied');
  }

  /** Every present network compared with the kernel again; returns what could not be applied. */
  async reconcile(): Promise<string[]> {
    const problems: string[] = [];
    for (const name of this.registry.current().networks.keys()) {
      try {
        await this.sync(name);
      } catch (err) {
        problems.push(`overlay network "${name}": forwarding entries not applied: ${errorMessage(err)}`);
      }
    }
    return problems;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.registry.off('change', this.onChange);
    await this.running?.catch(() => undefined);
  }
}
