// What is wanted for Podman (src/podman, nsdns as netavark's aardvark-dns): a listener on every
// listen address of every network in netavark's config directory, on the port netavark chose. A
// container sees every network it is on, whichever of its gateways it asks (aardvark's rule);
// anyone else (the host) sees the network of the gateway it asks. Every client is answered, as
// aardvark answers them: the addresses are the networks' own gateways.
import { formatHostPort } from '../host-port.js';
import type { Logger } from '../log.js';
import ipaddr from 'ipaddr.js';
import type { Registry, Snapshot } from '../registry/registry.js';
import type { View } from '../registry/view.js';
import type { ListenerContext } from '../resolver/resolver.js';
import { ANSWER_ALL } from '../server/client-policy.js';
import { DnsServer, type ListenerSockets, type ServerShared } from '../server/dns-server.js';
import { bindHostSockets } from './host-sockets.js';
import type { CloseReason, Listener, ListenerSpec } from './listener-set.js';

export interface AardvarkWant {
  /** `NETWORK ADDRESS` */
  readonly key: string;
  readonly network: string;
  readonly address: string;
}

/** Network → the addresses its DNS server listens on, as the config directory says now. */
export type ListenAddresses = ReadonlyMap<string, readonly string[]>;

export class AardvarkSpec implements ListenerSpec<AardvarkWant> {
  readonly kind = 'aardvark';
  readonly parallel = 1;
  /** netavark waits for every address to be bound, and is told why one cannot be. */
  readonly failHard = true;

  constructor(
    private readonly registry: Registry,
    private readonly shared: ServerShared,
    private readonly log: Logger,
    private readonly listen: () => ListenAddresses,
    private readonly port: number,
  ) {}

  wanted(): ReadonlyMap<string, AardvarkWant> {
    const out = new Map<string, AardvarkWant>();
    for (const [network, addresses] of this.listen()) {
      for (const address of addresses) {
        const key = `${network} ${address}`;
        out.set(key, { key, network, address });
      }
    }
    return out;
  }

  /** The sockets, or an error whose message is the line netavark shows (aardvark's words). */
  async bind(want: AardvarkWant): Promise<ListenerSockets> {
    try {
      return await bindHostSockets(want.address, this.port);
    } catch (err) {
      const message = (err as Error).message;
      const protocol = /\btcp\b/.test(message) ? 'tcp' : 'udp';
      const reason = /\b(E[A-Z]+)\b/.exec(message)?.[1] ?? 'error';
      throw new Error(`failed to bind ${protocol} listener on ${formatHostPort(want.address, this.port)}: ${reason}`, { cause: err });
    }
  }

  serve(want: AardvarkWant, sockets: ListenerSockets): DnsServer {
    const { network } = want;
    const views = this.registry.derived((snapshot) => containerViews(snapshot, network));
    const context: ListenerContext = {
      name: `${network} ${formatHostPort(want.address, this.port)}`,
      inflight: 0,
      view: this.registry.derived((snapshot) => snapshot.view([network])),
      clientView: (address) => views()(address),
      endpoints: () => undefined,
    };
    return new DnsServer(sockets, this.shared, context, this.log.child({ network, address: want.address }), ANSWER_ALL);
  }

  opened(listener: Listener<AardvarkWant>): void {
    this.log.info({ network: listener.want.network, address: formatHostPort(listener.address, listener.port) }, 'listening');
  }

  closed(listener: Listener<AardvarkWant>, _why: CloseReason): void {
    this.log.info({ network: listener.want.network, address: formatHostPort(listener.address, listener.port) }, 'listener closed');
  }

  failed(want: AardvarkWant, err: unknown): void {
    this.log.error({ network: want.network, err: { message: (err as Error).message } }, 'listener not opened');
  }
}

/** Clients remembered per snapshot and listener: spoofed sources must not grow it without bound. */
const MEMO_LIMIT = 4096;

/**
 * aardvark-dns's rule for a listener of network `home`: a container (known by any of its
 * addresses) sees every network it is on, whichever gateway it asks; anyone else sees `home`.
 * Containers are endpoints with the same id on several networks (netavark writes the container id).
 */
function containerViews(snapshot: Snapshot, home: string): (address: string) => View {
  const idsAt = new Map<string, Set<string>>();
  const networksOf = new Map<string, Set<string>>();
  for (const { network, endpoints } of snapshot.networks.values()) {
    for (const e of endpoints) {
      let networks = networksOf.get(e.id);
      if (!networks) networksOf.set(e.id, (networks = new Set()));
      networks.add(network.name);
      for (const address of [...e.ipv4, ...e.ipv6]) {
        const key = canonical(address);
        let ids = idsAt.get(key);
        if (!ids) idsAt.set(key, (ids = new Set()));
        ids.add(e.id);
      }
    }
  }
  const others = snapshot.view([home]);
  const memo = new Map<string, View>();
  return (address) => {
    let view = memo.get(address);
    if (view === undefined) {
      const ids = idsAt.get(canonical(address));
      view = ids === undefined ? others : snapshot.view([...new Set([...ids].flatMap((id) => [...(networksOf.get(id) ?? [])]))]);
      if (memo.size >= MEMO_LIMIT) memo.clear();
      memo.set(address, view);
    }
    return view;
  };
}

/** One spelling per address (an IPv4-mapped IPv6 address as IPv4); the text itself when it is none. */
function canonical(address: string): string {
  try {
    return ipaddr.process(address).toString();
  } catch {
    return address;
  }
}
