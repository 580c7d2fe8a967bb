// Published host ports are held the way docker-proxy holds them: while an endpoint publishes
// HOSTIP:PORT/PROTO, the daemon keeps a socket bound there (0.0.0.0 when no HOSTIP is given, as
// the DNAT rule then takes every local address). The kernel then refuses that port to every other
// program, and a port some program already uses is refused to the publication instead of being
// silently taken over by the DNAT rule. The sockets see no traffic while the rule is there: it
// rewrites the packets first.
import dgram from 'node:dgram';
import net from 'node:net';
import { NsdnsError } from '../errors.js';
import type { Endpoint, PortMapping } from '../registry/types.js';

/** What the network manager asks of published ports; NoPortHolder is the no-op. */
export interface PortHolder {
  /** Binds every port of `endpointId`, or none: the first one in use fails the whole call (ERR_CONFLICT). */
  hold(endpointId: string, ports: readonly PortMapping[]): Promise<void>;
  /** Lets go of every port `endpointId` holds; nothing held is no error. */
  release(endpointId: string): Promise<void>;
  /**
   * The start and the self-heal loop: holds what `endpoints` publish and is not held yet (ports
   * of endpoints restored from the state). Returns a line for each port that cannot be held now.
   */
  retake(endpoints: readonly Endpoint[]): Promise<string[]>;
  /** Ports that are published but not held (someone else took them while nsdns was down). */
  problems(): string[];
  /** Lets go of everything (the daemon stops). */
  close(): Promise<void>;
}

type Socket = { kind: 'tcp'; server: net.Server } | { kind: 'udp'; socket: dgram.Socket };

function inUse(p: PortMapping, code: string | undefined): NsdnsError {
  // No program holds it: the address is on none of the host's interfaces, so no other port would do.
  if (code === 'EADDRNOTAVAIL' && p.hostIp !== undefined) {
    return new NsdnsError('ERR_BAD_REQUEST', `--publish ${p.hostIp}:${p.hostPort}: ${p.hostIp} is not an address of this host; give one of its addresses, or no address to publish on all of them`);
  }
  const why = code === 'EADDRINUSE' ? 'is already in use' : `cannot be bound (${code ?? 'unknown error'})`;
  return new NsdnsError('ERR_CONFLICT', `host port ${p.hostPort}/${p.protocol} ${why} on ${p.hostIp ?? 'the host'}; publish another host port, or stop what uses it`);
}

async function bindOne(p: PortMapping): Promise<Socket> {
  const address = p.hostIp ?? '0.0.0.0';
  if (p.protocol === 'udp') {
    const socket = dgram.createSocket({ type: 'udp4' });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', (err: NodeJS.ErrnoException) => { socket.close(); reject(inUse(p, err.code)); });
      socket.bind({ address, port: p.hostPort, exclusive: true }, () => resolve());
    });
    // Nothing arrives past the DNAT rule; a stray datagram is dropped unread.
    socket.on('message', () => {});
    socket.on('error', () => {});
    return { kind: 'udp', socket };
  }
  // Reached only when the DNAT rule is gone (the table deleted, until the self-heal restores it):
  // reset, so a client fails at once instead of reading an empty answer.
  const server = net.createServer((conn) => conn.resetAndDestroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(inUse(p, err.code)));
    server.listen({ host: address, port: p.hostPort, exclusive: true, backlog: 1 }, () => resolve());
  });
  server.on('error', () => {});
  return { kind: 'tcp', server };
}

function closeOne(s: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (s.kind === 'udp') s.socket.close(() => resolve());
    else s.server.close(() => resolve());
  });
}

export class HostPorts implements PortHolder {
  private readonly held = new Map<string, Socket[]>();
  /** Published but not held, by endpoint id: the lines `problems()` reports. */
  private readonly unheld = new Map<string, string>();

  async hold(endpointId: string, ports: readonly PortMapping[]): Promise<void> {
    const taken: Socket[] = [];
    try {
      for (const p of ports) taken.push(await bindOne(p));
    } catch (err) {
      await Promise.all(taken.map(closeOne));
      throw err;
    }
    if (taken.length > 0) this.held.set(endpointId, [...(this.held.get(endpointId) ?? []), ...taken]);
    this.unheld.delete(endpointId);
  }

  async release(endpointId: string): Promise<void> {
    const sockets = this.held.get(endpointId) ?? [];
    this.held.delete(endpointId);
    this.unheld.delete(endpointId);
    await Promise.all(sockets.map(closeOne));
  }

  async retake(endpoints: readonly Endpoint[]): Promise<string[]> {
    const lines: string[] = [];
    for (const e of endpoints) {
      if ((e.ports ?? []).length === 0 || this.held.has(e.id)) continue;
      const before = this.unheld.get(e.id);
      try {
        await this.hold(e.id, e.ports!);
        if (before !== undefined) lines.push(`endpoint "${e.name}" of network "${e.network}": its published host ports are held again`);
      } catch (err) {
        const line = `endpoint "${e.name}" of network "${e.network}" publishes a host port nsdns cannot hold: ${(err as Error).message}`;
        this.unheld.set(e.id, line);
        // Said once, not on every pass of the self-heal loop.
        if (line !== before) lines.push(line);
      }
    }
    // Nothing is released here: a connect holds its ports before it is saved, and every removal
    // of an endpoint releases its own (NetworkManager's teardown steps).
    return lines;
  }

  problems(): string[] {
    return [...this.unheld.values()];
  }

  async close(): Promise<void> {
    await Promise.all([...this.held.keys()].map((id) => this.release(id)));
  }
}

/** For tests on fake plumbing, and where nothing should be bound. */
export class NoPortHolder implements PortHolder {
  async hold(): Promise<void> {}
  async release(): Promise<void> {}
  async retake(): Promise<string[]> { return []; }
  problems(): string[] { return []; }
  async close(): Promise<void> {}
}
