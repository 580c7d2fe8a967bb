// One resolver listener per namespace that has endpoints, reconciled on every registry change:
// a namespace that gains its first endpoint gets 127.0.0.11:53; one that loses its last has its
// sockets closed at once (an open socket would keep the namespace alive). Each listener knows
// which namespace it bound in (namespace-identity.ts): when the path names another one (deleted
// and added again), the old sockets are closed and the new namespace is served.
import { DnsServer, startReceiving } from '../server/dns-server.js';
import type { TcpBudget } from '../server/tcp-budget.js';
import type { ListenerContext, Resolver } from '../resolver/resolver.js';
import type { Registry } from '../registry/registry.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { namespaceIdentity } from '../namespace-identity.js';
import type { Endpoint } from '../registry/types.js';
import type { Binder, NamespaceSockets } from './binder.js';

interface Served {
  server: DnsServer;
  context: ListenerContext;
  /** The namespace the sockets were bound in; undefined when it could not be looked at. */
  identity: string | undefined;
}

export class NamespaceListeners {
  private readonly served = new Map<string, Served>();
  private readonly starting = new Map<string, Promise<void>>();
  private readonly failed = new Map<string, string>();
  /** Each bind starts a short-lived process; a few at a time finish sooner than fifty at once. */
  private readonly bindSlots: Semaphore;
  /** Set while a handover is under way: the set of served namespaces must not change. */
  private frozen = false;
  /** Set once closeAll() has begun: a pass still scheduled must not bind anything. */
  private closed = false;
  /** Unset until open(): see there. */
  private opened = false;
  /** The next reconcile pass, shared by every call until it runs (see reconcile()). */
  private pass: { begun: Promise<void>; done: Promise<void> } | undefined;

  constructor(
    private readonly registry: Registry,
    private readonly resolver: Resolver,
    private readonly binder: Binder,
    private readonly tcpBudget: TcpBudget,
    private readonly log: Logger,
  ) {
    this.bindSlots = new Semaphore(binder.parallel ?? 4);
  }

  /**
   * Brings listeners in line with the registry: closes the ones whose namespace has no endpoint
   * left, starts the missing ones. Resolves when all of that is done. Calls within one turn of the
   * event loop share one pass: loading a registry of 1 000 files publishes 1 000 snapshots, and a
   * pass for each (each reading every endpoint for the namespaces) cost ~1 s of a 1 000-namespace start.
   */
  reconcile(): Promise<void> {
    return this.schedule().done;
  }

  /**
   * The daemon's start: until here registry changes bind nothing. The registry is loaded file by
   * file and the namespaces a predecessor handed over are adopted first; one pass then binds the
   * rest, instead of a pass and a bind between every two of 1 000 files (and no bind for a
   * namespace that is adopted a moment later, or whose endpoints recovery drops as gone).
   */
  open(): Promise<void> {
    this.opened = true;
    return this.reconcile();
  }

  private schedule(): { begun: Promise<void>; done: Promise<void> } {
    if (this.pass) return this.pass;
    let begin!: () => void;
    let finish!: (work: Promise<void>) => void;
    const pass = {
      begun: new Promise<void>((resolve) => { begin = resolve; }),
      done: new Promise<void>((resolve) => { finish = resolve; }),
    };
    this.pass = pass;
    setImmediate(() => {
      this.pass = undefined;
      finish(this.reconcileNow());
      begin();
    });
    return pass;
  }

  private reconcileNow(): Promise<void> {
    // Handing over: the successor serves what changes from now on; a bind here would take the port from it.
    if (this.frozen || this.closed || !this.opened) return Promise.resolve();
    const wanted = this.registry.current().namespaces();
    const work: Promise<void>[] = [];
    for (const [netns, served] of this.served) {
      const endpoints = wanted.get(netns);
      if (endpoints && !boundElsewhere(netns, served, endpoints)) continue;
      this.served.delete(netns);
      const why = endpoints ? 'namespace was replaced by a new one of the same name; the old one\'s resolver sockets are closed' : 'namespace has no endpoint left; its resolver sockets are closed';
      work.push(served.server.close().then(() => this.log.info({ netns }, why)));
    }
    for (const netns of this.failed.keys()) if (!wanted.has(netns)) this.failed.delete(netns);
    for (const netns of wanted.keys()) if (!this.served.has(netns)) work.push(this.start(netns));
    return Promise.all(work).then(() => undefined);
  }

  /** Warms up the bind for a namespace about to get its first endpoint. */
  prepare(netns: string): void {
    if (!this.served.has(netns) && !this.starting.has(netns)) this.binder.prepare?.(netns);
  }

  cancel(netns: string): void {
    this.binder.cancel?.(netns);
  }

  /** Resolves once `netns` is served (its own bind only: other namespaces do not hold it up). */
  async ready(netns: string): Promise<boolean> {
    await this.schedule().begun;
    await this.starting.get(netns);
    return this.served.has(netns);
  }

  /** Served, and in the namespace the path names now (not one deleted and added again since). */
  isServed(netns: string): boolean {
    const served = this.served.get(netns);
    return served !== undefined && (served.identity === undefined || served.identity === namespaceIdentity(netns));
  }

  failure(netns: string): string | undefined {
    return this.failed.get(netns);
  }

  context(netns: string): ListenerContext | undefined {
    return this.served.get(netns)?.context;
  }

  get namespaces(): string[] {
    return [...this.served.keys()];
  }

  private start(netns: string): Promise<void> {
    let starting = this.starting.get(netns);
    if (!starting) {
      starting = this.bind(netns).finally(() => this.starting.delete(netns));
      this.starting.set(netns, starting);
    }
    return starting;
  }

  /**
   * The reaper's pass: closes the listeners whose path now names another namespace, or none (the
   * sockets would keep the old one alive), then binds the new one where endpoints still want it.
   */
  async closeReplaced(): Promise<void> {
    if (this.frozen || this.closed) return;
    const work: Promise<void>[] = [];
    for (const [netns, served] of this.served) {
      if (served.identity === undefined) continue;
      const now = namespaceIdentity(netns);
      if (now === served.identity) continue;
      this.served.delete(netns);
      const why = now === undefined ? 'namespace is gone; its resolver sockets are closed' : 'namespace was replaced by a new one of the same name; the old one\'s resolver sockets are closed';
      work.push(served.server.close().then(() => this.log.warn({ netns }, why)));
    }
    // A namespace deleted and added again between two passes failed its bind while it was gone:
    // it is tried again once it exists (no registry change would bring it back).
    const reappeared = [...this.failed.keys()].some((netns) => namespaceIdentity(netns) !== undefined);
    if (work.length === 0 && !reappeared) return;
    await Promise.all(work);
    await this.reconcile();
  }

  private async bind(netns: string): Promise<void> {
    try {
      // Before the bind: a namespace replaced in between is caught by the next check.
      const identity = namespaceIdentity(netns);
      const sockets = await this.bindSlots.run(() => this.binder.bind(netns));
      if (!this.registry.current().namespaces().has(netns)) {
        // Its last endpoint went while we were binding: let the namespace go.
        await new Promise<void>((resolve) => sockets.tcp.close(() => resolve()));
        sockets.udp.close();
        return;
      }
      const context = namespaceContext(netns, this.registry);
      const server = new DnsServer(sockets.udp, sockets.tcp, this.resolver, context, this.tcpBudget, this.log.child({ netns }));
      this.served.set(netns, { server, context, identity });
      this.failed.delete(netns);
      this.log.info({ netns, networks: context.view().networkNames }, 'serving DNS at 127.0.0.11:53 in namespace');
    } catch (err) {
      // Every registry change tries an unserved namespace again, and a namespace a registry file
      // names may not exist for a long time: one failure, one line (the next that differs is logged).
      const message = errorMessage(err);
      const again = this.failed.get(netns) === message;
      this.failed.set(netns, message);
      if (again) this.log.debug({ netns, reason: message }, 'still cannot serve DNS in namespace');
      else this.log.warn({ err, netns }, 'cannot serve DNS in namespace');
    }
  }

  /**
   * Serves `netns` on sockets bound elsewhere (handed over by the daemon before this one): no bind
   * helper runs, so the socket the namespace's clients send to is the very same.
   */
  adopt(netns: string, sockets: NamespaceSockets): void {
    const context = namespaceContext(netns, this.registry);
    const server = new DnsServer(sockets.udp, sockets.tcp, this.resolver, context, this.tcpBudget, this.log.child({ netns }));
    // Paused on arrival (handover.ts): what waited in the buffer is read now.
    startReceiving(sockets.udp);
    this.served.set(netns, { server, context, identity: namespaceIdentity(netns) });
    this.log.info({ netns }, 'serving DNS at 127.0.0.11:53 in namespace (sockets taken over)');
  }

  /**
   * Handover: waits for binds under way, then keeps the set of served namespaces as it is until
   * thaw(); returns each one's sockets for the successor. This daemon goes on answering on them.
   */
  async freeze(): Promise<Array<{ netns: string; udp: NamespaceSockets['udp']; tcp: NamespaceSockets['tcp'] }>> {
    this.frozen = true;
    await Promise.all(this.starting.values());
    return [...this.served].map(([netns, s]) => ({ netns, udp: s.server.udp, tcp: s.server.tcp }));
  }

  /** The handover failed: reconcile again as usual. */
  thaw(): Promise<void> {
    this.frozen = false;
    return this.reconcile();
  }

  /** The successor serves: stop reading, answer what was read, let go (see DnsServer.release). */
  async releaseAll(): Promise<void> {
    await Promise.all([...this.served.values()].map((s) => s.server.release()));
    this.served.clear();
  }

  async closeAll(): Promise<void> {
    this.closed = true;
    await Promise.all(this.starting.values());
    await Promise.all([...this.served.values()].map((s) => s.server.close()));
    this.served.clear();
  }
}

class Semaphore {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly size: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.size) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await task();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

/**
 * Whether a listener serves another namespace than its endpoints were connected to, and not the
 * one the path names now (a stale endpoint is the reaper's; the listener then stays).
 */
function boundElsewhere(netns: string, served: Served, endpoints: readonly Endpoint[]): boolean {
  if (served.identity === undefined) return false;
  const connected = endpoints.find((e) => e.netnsIdentity !== undefined)?.netnsIdentity;
  if (connected === undefined || connected === served.identity) return false;
  return namespaceIdentity(netns) !== served.identity;
}

/** What a namespace sees: the networks its endpoints are on; its endpoints pick the upstreams. */
function namespaceContext(netns: string, registry: Registry): ListenerContext {
  const current = registry.derived((snapshot) => {
    const endpoints = snapshot.namespaces().get(netns) ?? [];
    return { endpoints, view: snapshot.view([...new Set(endpoints.map((e) => e.network))]) };
  });
  return { name: `netns:${netns}`, inflight: 0, view: () => current().view, endpoints: () => current().endpoints };
}
