// Registering nsdns's bridges with systemd-resolved, so the host's own lookups of a network's names
// go to that network's gateway listener (`--host-dns`): `resolvectl dns BRIDGE GATEWAY...` and
// `resolvectl domain BRIDGE ~ZONE...` (routing-only domains: nothing else is sent there). The
// registration lives on the link, so it goes away with the bridge; `revert` drops it sooner.
// Runs `resolvectl` from the daemon's PATH, without a shell; every argument is checked first.
import { execa } from 'execa';
import ipaddr from 'ipaddr.js';
import { NsdnsError } from '../errors.js';
import { isIfname } from '../registry/fields.js';
import type { Logger } from '../log.js';

export interface LinkRegistration {
  bridge: string;
  /** Gateway addresses the link's DNS servers are (IPv4 and/or IPv6). */
  servers: readonly string[];
  /** Zones routed to those servers, without the leading `~`. */
  zones: readonly string[];
}

export interface ResolvedOptions {
  /** The program; `resolvectl` from PATH by default. */
  command?: string;
  /** Each run of it, ms. */
  timeoutMs?: number;
  /** How long an answer to "does systemd-resolved run?" is kept, ms. */
  recheckMs?: number;
}

/** A DNS name we hand to resolvectl: letters, digits, `-`, `_`, dots between labels, never an option. */
const ZONE = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*$/;
/** Cut and made printable: a tool's output never reaches the log raw. */
const printable = (text: string): string => text.replace(/[^\x20-\x7e]/g, '?').slice(0, 200);

export class ResolvedLinks {
  private readonly command: string;
  private readonly timeoutMs: number;
  private readonly recheckMs: number;
  private checked: { at: number; running: boolean } | undefined;

  constructor(private readonly log: Logger, options: ResolvedOptions = {}) {
    this.command = options.command ?? 'resolvectl';
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.recheckMs = options.recheckMs ?? 30_000;
  }

  /** Whether systemd-resolved answers (`resolvectl status` exits 0); remembered for recheckMs. */
  async running(): Promise<boolean> {
    const now = Date.now();
    if (this.checked && now - this.checked.at < this.recheckMs) return this.checked.running;
    const r = await this.run(['status']);
    const running = r.ok;
    if (this.checked?.running !== running) {
      this.log.info({ running }, running
        ? 'systemd-resolved runs: the bridges of networks are registered with it for the host\'s lookups'
        : 'systemd-resolved does not run (resolvectl status failed): `nsdns host-dns` prints what to add to the host\'s resolver');
    }
    this.checked = { at: now, running };
    return running;
  }

  /** Registers one bridge; false (and a warning) when resolvectl refused. Throws on arguments that are not names or addresses. */
  async register(link: LinkRegistration): Promise<boolean> {
    const { bridge, servers, zones } = checked(link);
    for (const args of [['dns', bridge, ...servers], ['domain', bridge, ...zones.map((z) => `~${z}`)]]) {
      const r = await this.run(args);
      if (!r.ok) {
        this.log.warn({ bridge, step: args[0], error: r.error }, `resolvectl ${args[0]} ${bridge} failed: ${r.error}`);
        return false;
      }
    }
    // Only its routing domains go to this link, never every lookup. Older versions lack the verb: no matter.
    await this.run(['default-route', bridge, 'false']);
    this.log.info({ bridge, servers, zones }, 'registered with systemd-resolved');
    return true;
  }

  /** Drops the link's DNS settings; quiet when the bridge is already gone (the settings went with it). */
  async revert(bridge: string): Promise<void> {
    if (!isIfname(bridge)) throw new NsdnsError('ERR_BAD_REQUEST', 'not an interface name');
    const r = await this.run(['revert', bridge]);
    if (r.ok) this.log.info({ bridge }, 'unregistered from systemd-resolved');
    else this.log.debug({ bridge, error: r.error }, 'resolvectl revert failed (the bridge is gone?)');
  }

  private async run(args: string[]): Promise<{ ok: true } | { ok: false; error: string }> {
    try {
      const r = await execa(this.command, args, { reject: false, timeout: this.timeoutMs, stdin: 'ignore', maxBuffer: 1024 * 1024 });
      if (r.exitCode === 0) return { ok: true };
      const why = r.timedOut ? `no answer within ${this.timeoutMs} ms` : (r.stderr || `exit status ${r.exitCode ?? 'none'}`);
      return { ok: false, error: printable(why.split('\n')[0]) };
    } catch (err) {
      return { ok: false, error: printable((err as NodeJS.ErrnoException).code ?? 'cannot run') };
    }
  }
}

/** The registration with canonical addresses and lower-case zones; ERR_BAD_REQUEST for anything else. */
export function checked(link: LinkRegistration): LinkRegistration {
  if (!isIfname(link.bridge) || link.bridge.startsWith('-')) throw new NsdnsError('ERR_BAD_REQUEST', 'not an interface name');
  if (link.servers.length === 0 || link.servers.length > 16) throw new NsdnsError('ERR_BAD_REQUEST', 'a link takes 1-16 DNS servers');
  if (link.zones.length === 0 || link.zones.length > 16) throw new NsdnsError('ERR_BAD_REQUEST', 'a link takes 1-16 routing domains');
  const servers = link.servers.map((s) => {
    if (!ipaddr.isValid(s)) throw new NsdnsError('ERR_BAD_REQUEST', 'not an IP address');
    return ipaddr.parse(s).toString();
  });
  const zones = link.zones.map((z) => {
    const zone = z.toLowerCase();
    if (!ZONE.test(zone)) throw new NsdnsError('ERR_BAD_REQUEST', 'not a DNS zone name');
    return zone;
  });
  return { bridge: link.bridge, servers, zones };
}
