// One engine for every kind of listener: a set reconciles what its spec wants (namespaces from the
// registry, host listeners from the configuration, gateways from provisioned networks) against what
// runs. A listener no longer wanted is closed at once (an open socket keeps its namespace alive); a
// missing one is bound, by the spec's socket source or on sockets a predecessor handed over
// (adopt); one still wanted stays as it is. The same set freezes, hands its sockets to a successor
// and lets go of them (handover.ts), so every kind of listener survives a restart by construction.
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { startReceiving, type DnsServer, type ListenerSockets } from '../server/dns-server.js';

/** One listener a spec wants; `key` names it across passes and across a handover. */
export interface Want {
  readonly key: string;
}

export interface Listener<W extends Want> {
  readonly want: W;
  readonly server: DnsServer;
  /** Where the sockets were bound (a namespace's identity), when the source can tell. */
  readonly boundIn: string | undefined;
  /** The local address and port of its sockets (the kernel's pick when asked for port 0). */
  readonly address: string;
  readonly port: number;
}

/** Why a running listener is closed. */
export type CloseReason = 'unwanted' | 'outdated';

/** What one kind of listener wants, how it gets sockets and how it serves them. */
export interface ListenerSpec<W extends Want> {
  /** Names the kind in the handover ('namespace', 'host', 'gateway'). */
  readonly kind: string;
  /** Binds at once (1 for listeners on the host; a namespace's helper processes run side by side). */
  readonly parallel: number;
  /** A failed bind is tried again on a timer (a bridge not up yet), not only at the next change. */
  readonly retryFailed?: boolean;
  /** A failed bind fails the pass (a configured host listener: the daemon must not start without it). */
  readonly failHard?: boolean;
  /** What should run now, by key. */
  wanted(): ReadonlyMap<string, W>;
  /** New sockets for `want`, and where they were bound when that can change (a namespace replaced). */
  bind(want: W): Promise<ListenerSockets & { boundIn?: string }>;
  /** Where sockets a predecessor bound for `want` are now. */
  boundInNow?(want: W): string | undefined;
  /** The server for `want` on `sockets`. */
  serve(want: W, sockets: ListenerSockets): DnsServer;
  /** At a pass: a listener whose key is still wanted but whose sockets must be replaced. */
  outdated?(listener: Listener<W>, want: W): boolean;
  /** At a recheck: a listener whose sockets are no longer where its key points (a namespace replaced). */
  stale?(listener: Listener<W>): boolean;
  /** After every pass, with what runs and what was wanted (gateways: filters, systemd-resolved). */
  settle?(running: ReadonlyMap<string, Listener<W>>, wanted: ReadonlyMap<string, W>): Promise<void>;
  /** Before the listeners close for good (not at a handover, where the successor keeps what they set up). */
  stopping?(): Promise<void>;
  opened(listener: Listener<W>, takenOver: boolean): void;
  closed(listener: Listener<W>, why: CloseReason): void;
  /** A bind failed; `repeated`: with the same reason as the last time (say it quietly). */
  failed(want: W, err: unknown, attempts: number, repeated: boolean): void;
}

interface Failure {
  reason: string;
  attempts: number;
  error: unknown;
}

/** Longest wait between attempts to bind a listener that failed, with retryFailed. */
const MAX_RETRY_MS = 30_000;

type State = 'waiting' | 'open' | 'frozen' | 'closed';

export class ListenerSet<W extends Want> {
  private readonly running = new Map<string, Listener<W>>();
  private readonly starting = new Map<string, Promise<void>>();
  /** Listeners closing now, whichever pass closes them: a bind on their address waits for them. */
  private readonly closing = new Set<Promise<void>>();
  private readonly failures = new Map<string, Failure>();
  /** Handed over by a predecessor, by key, until a pass serves them or closes them. */
  private readonly inherited = new Map<string, ListenerSockets>();
  private readonly slots: Semaphore;
  /** Until open(), nothing is bound: see there. */
  private state: State = 'waiting';
  /** The next pass, shared by every call until it begins (see reconcile()). */
  private pass: { begun: Promise<void>; done: Promise<void> } | undefined;
  /** Passes settle one after the other, in order. */
  private settling: Promise<void> = Promise.resolve();
  private retry: NodeJS.Timeout | undefined;

  constructor(readonly spec: ListenerSpec<W>, private readonly log: Logger) {
    this.slots = new Semaphore(spec.parallel);
  }

  get kind(): string {
    return this.spec.kind;
  }

  get listeners(): Listener<W>[] {
    return [...this.running.values()];
  }

  get(key: string): Listener<W> | undefined {
    return this.running.get(key);
  }

  /** Whether `key` is being bound now. */
  isStarting(key: string): boolean {
    return this.starting.has(key);
  }

  /** Why the last bind of `key` failed, while it is wanted and not running. */
  failure(key: string): string | undefined {
    return this.failures.get(key)?.reason;
  }

  /**
   * Brings the listeners in line with what the spec wants; resolves when that pass is done. Calls
   * within one turn of the event loop share one pass: loading a registry of many files publishes a
   * snapshot per file, and a pass for each would read every wanted listener each time. A pass does
   * not wait for another's binds: one namespace's slow helper never holds up the next connect.
   */
  reconcile(): Promise<void> {
    return this.schedule().done;
  }

  /**
   * The daemon's start: until here nothing is bound. The registry is loaded file by file and the
   * sockets a predecessor handed over are adopted first; one pass then serves them and binds the
   * rest, instead of a bind between every two files (and none for what is adopted a moment later).
   */
  open(): Promise<void> {
    if (this.state === 'waiting') this.state = 'open';
    return this.reconcile();
  }

  /** Resolves once the pass now due has served `key` (its own bind only); false when it is not served. */
  async ready(key: string): Promise<boolean> {
    await this.schedule().begun;
    await this.starting.get(key);
    return this.running.has(key);
  }

  /** Sockets a predecessor bound, by key: the next pass serves a wanted one on them instead of binding. */
  adopt(inherited: ReadonlyMap<string, ListenerSockets>): void {
    for (const [key, sockets] of inherited) this.inherited.set(key, sockets);
  }

  /**
   * Handover: waits for binds under way, then keeps the set as it is until thaw(); returns every
   * listener's sockets for the successor, whole groups included. This process goes on answering on them.
   */
  async freeze(): Promise<Array<{ key: string } & ListenerSockets>> {
    if (this.state === 'open') this.state = 'frozen';
    clearTimeout(this.retry);
    await Promise.all(this.starting.values());
    return this.listeners.map((l) => ({ key: l.want.key, udps: l.server.udps, tcp: l.server.tcp }));
  }

  /** The handover failed: reconcile again as usual. */
  thaw(): Promise<void> {
    if (this.state === 'frozen') this.state = 'open';
    return this.reconcile();
  }

  /** The successor serves: stop reading, answer what was read, let go (DnsServer.release). */
  async release(): Promise<void> {
    this.state = 'closed';
    clearTimeout(this.retry);
    await Promise.all(this.starting.values());
    await this.settling;
    await Promise.all(this.listeners.map((l) => l.server.release()));
    this.running.clear();
  }

  /** Stops every listener for good, answering the queries in flight first. */
  async close(): Promise<void> {
    const wasClosed = this.state === 'closed';
    this.state = 'closed';
    clearTimeout(this.retry);
    await Promise.all(this.starting.values());
    await this.settling;
    if (!wasClosed) await this.spec.stopping?.();
    await Promise.all(this.listeners.map((l) => l.server.close()));
    this.running.clear();
    for (const sockets of this.inherited.values()) closeSockets(sockets);
    this.inherited.clear();
  }

  /**
   * Closes the listeners the spec says are stale even though nothing in what it wants changed
   * (the reaper's pass: a namespace deleted and added again under the same path), then reconciles
   * when that closed anything or a failed bind may now succeed (`retry`).
   */
  async recheck(retry: (key: string) => boolean = () => false): Promise<void> {
    if (this.state !== 'open') return;
    const work: Promise<void>[] = [];
    for (const listener of this.running.values()) {
      if (this.spec.stale?.(listener)) work.push(this.stop(listener, 'outdated'));
    }
    if (work.length === 0 && ![...this.failures.keys()].some(retry)) return;
    await Promise.all(work);
    await this.reconcile();
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
    // Frozen for a handover: the successor serves what changes from now on; a bind here would take the port from it.
    if (this.state !== 'open') return Promise.resolve();
    const wanted = this.spec.wanted();
    const closing: Promise<void>[] = [];
    for (const [key, listener] of this.running) {
      const want = wanted.get(key);
      if (want && !this.spec.outdated?.(listener, want)) continue;
      closing.push(this.stop(listener, want ? 'outdated' : 'unwanted'));
    }
    for (const key of this.failures.keys()) if (!wanted.has(key)) this.failures.delete(key);
    // Binds wait for every close under way (this pass's or an earlier one's): a listener replaced
    // on the same address and port needs it free.
    const closed = this.closing.size === 0 ? undefined : Promise.all([...this.closing]);
    const work: Promise<void>[] = [...closing];
    for (const [key, want] of wanted) if (!this.running.has(key)) work.push(this.start(want, closed));
    // Handed over but not wanted (any more): not ours to keep open.
    for (const [key, sockets] of this.inherited) {
      if (wanted.has(key)) continue;
      this.inherited.delete(key);
      closeSockets(sockets);
    }
    const done = Promise.all(work).then(() => {
      // What is wanted when the settle runs: passes may finish out of order.
      const settled = this.settling.then(() => this.state === 'closed' ? undefined : this.spec.settle?.(this.running, this.spec.wanted()));
      this.settling = settled.catch((err) => this.log.error({ err }, `${this.kind} listeners: settling a pass failed`));
      return this.settling;
    }).finally(() => this.scheduleRetry());
    if (!this.spec.failHard) return done;
    // A configured listener that cannot be had fails the pass, with its own error.
    return done.then(() => {
      const failed = [...wanted.keys()].find((key) => this.failures.has(key) && !this.running.has(key));
      if (failed !== undefined) throw this.failures.get(failed)!.error;
    });
  }

  private stop(listener: Listener<W>, why: CloseReason): Promise<void> {
    this.running.delete(listener.want.key);
    const closed = listener.server.close().then(() => this.spec.closed(listener, why));
    this.closing.add(closed);
    return closed.finally(() => this.closing.delete(closed));
  }

  private start(want: W, after: Promise<unknown> | undefined): Promise<void> {
    let starting = this.starting.get(want.key);
    if (!starting) {
      starting = (after ? after.then(() => this.bind(want)) : this.bind(want)).finally(() => this.starting.delete(want.key));
      this.starting.set(want.key, starting);
    }
    return starting;
  }

  private async bind(want: W): Promise<void> {
    const handed = this.inherited.get(want.key);
    this.inherited.delete(want.key);
    let sockets: ListenerSockets & { boundIn?: string };
    try {
      sockets = handed ? { ...handed, boundIn: this.spec.boundInNow?.(want) } : await this.slots.run(() => this.spec.bind(want));
    } catch (err) {
      this.failed(want, err);
      return;
    }
    if (this.state === 'closed' || !this.spec.wanted().has(want.key)) {
      // Not wanted any more (its last endpoint went while we were binding): let it go.
      closeSockets(sockets);
      return;
    }
    let listener: Listener<W>;
    try {
      const { address, port } = sockets.udps[0].address();
      listener = { want, server: this.spec.serve(want, sockets), boundIn: sockets.boundIn, address, port };
    } catch (err) {
      closeSockets(sockets);
      this.failed(want, err);
      return;
    }
    // Handed over sockets are paused on arrival (handover.ts): what waited in their buffers is read now.
    if (handed) for (const udp of sockets.udps) startReceiving(udp);
    this.running.set(want.key, listener);
    this.failures.delete(want.key);
    this.spec.opened(listener, handed !== undefined);
  }

  /** Remembers why `want` is not running (retried, or failing the pass), and lets the spec say it. */
  private failed(want: W, err: unknown): void {
    const reason = errorMessage(err);
    const last = this.failures.get(want.key);
    const attempts = (last?.attempts ?? 0) + 1;
    this.failures.set(want.key, { reason, attempts, error: err });
    this.spec.failed(want, err, attempts, last?.reason === reason);
  }

  private scheduleRetry(): void {
    clearTimeout(this.retry);
    this.retry = undefined;
    if (!this.spec.retryFailed || this.failures.size === 0 || this.state !== 'open') return;
    const attempts = Math.max(...[...this.failures.values()].map((f) => f.attempts));
    const delay = Math.min(MAX_RETRY_MS, 250 * 2 ** Math.min(attempts - 1, 10));
    this.retry = setTimeout(() => void this.reconcile(), delay).unref();
  }
}

export function closeSockets(sockets: ListenerSockets): void {
  for (const udp of sockets.udps) udp.close();
  sockets.tcp.close();
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
