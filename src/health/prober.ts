// The daemon's health checks: every endpoint with a `healthCheck` is probed from the host side
// at its interval, and its state goes into `registry.health`, which the next query sees. Each
// endpoint is first probed at a random point of its interval (no thundering herd), then every
// interval; one timer serves them all in ticks (a tenth of the shortest interval, within
// TICK_MIN_MS..TICK_MAX_MS), so the probes due in a tick start, and mostly end, in one wakeup of
// the event loop: a wakeup per probe costs more than the probe, and even short fixed ticks cost a
// noticeable part of the probes' own CPU (bench/health-probes.sh measures it). At
// most `maxConcurrent` probes are in flight, each with its own deadline, so a slow endpoint holds
// only its own slot. Deadlines are kept here and checked on the same tick, not with a timer per
// probe: a probe that ends after its deadline counts as timed out whatever it saw, and one still
// running is stopped at the first tick past it. Nothing here runs on the query path.
//
// Where the native prober is built (src/native/nsdns-probe.c, see native.ts) the probes run in it
// instead: each probed endpoint gets a slot there, and its results come back in one read per tick
// into the same state machines, logs and counters. A tracker without a slot (no native prober,
// NSDNS_NATIVE=0, or it was given up) is run here, on the schedule below.
import type { Logger } from '../log.js';
import { printable } from '../registry/fields.js';
import type { Registry, Snapshot } from '../registry/registry.js';
import type { Endpoint, HealthCheck, HealthState, Network } from '../registry/types.js';
import { Kind, MAX_SLOTS, NativeProber, errnoName, nativeProbeAvailable } from './native.js';
import { codeText, probeFor, type Probe } from './probes.js';
import { HealthMachine, type ProbeResult } from './state-machine.js';
import { hostAddresses, probeTarget } from './probe-scope.js';

/** Probes due within one tick start together: a tick is a tenth of the shortest interval, within these. */
const TICK_MIN_MS = 50;
const TICK_MAX_MS = 250;

export interface ProberOptions {
  /** Probes in flight at once; more due wait their turn (default 256). */
  maxConcurrent?: number;
  /** The probe to run (default: TCP or HTTP by the check's type). */
  probe?: (check: HealthCheck) => Probe;
  /** Where in its interval an endpoint is first probed, 0..1 (default Math.random). */
  spread?: () => number;
  /**
   * Run the probes in the native prober: false (the Node prober), or its binary's path (default:
   * the built one, unless NSDNS_NATIVE=0 or a `probe` is given).
   */
  native?: false | string;
  /**
   * Probes only where probe-scope.ts allows (inside the network's subnets, never the host's own
   * addresses), plus the operator's `allow` ranges. The daemon always passes it; tests of the
   * scheduling alone leave it out and probe wherever the endpoint's address is.
   */
  scope?: {
    allow(): readonly string[];
    /** The host's own addresses now (default: its interfaces'); tests give their own. */
    hostAddresses?(): Set<string>;
    /** How often the host's addresses are read again (default 10 s). */
    recheckMs?: number;
  };
}

/** What inspect and debug show of one probed endpoint. */
export interface HealthInfo {
  status: HealthState;
  failingStreak: number;
  check: HealthCheck;
  address: string;
  /** The last results, oldest first; entries are reused by later probes: read them at once. */
  log: readonly ProbeResult[];
}

interface Tracker {
  id: string;
  /** Set when dropped: its entries left in the schedule are skipped. */
  gone?: boolean;
  network: string;
  name: string;
  address: string;
  /** The check and address it was made for: a change of either makes a new tracker. */
  key: string;
  machine: HealthMachine;
  due: number;
  /** Stops the probe in flight. */
  inFlight?: () => void;
  /** A probe is running (between its start and its result). */
  busy: boolean;
  /** When the running probe started, and by when it must end (epoch ms). */
  started: number;
  deadline: number;
  /** The running probe passed its deadline and is being stopped. */
  expired: boolean;
  /** Takes the running probe's result: made once per tracker, not per probe. */
  done: (result: ProbeResult) => void;
  queued: boolean;
  /** Its slot in the native prober (undefined: probed here), and which use of the slot it is. */
  slot?: number;
  gen: number;
}

/** A tracker's key: the network, then the endpoint id (ids are unique only inside a network). */
function trackerKey(network: string, endpointId: string): string {
  return `${network}\0${endpointId}`;
}

/** `HTTP NNN` for each status, made once. */
const httpDetail: string[] = [];

export class HealthProber {
  /** By trackerKey(network, id): an id is unique only inside its network (health-state.ts). */
  private readonly trackers = new Map<string, Tracker>();
  private readonly queue: Tracker[] = [];
  /** Trackers by due time (a binary min-heap; a tracker is in it once, at its `due`). */
  private readonly schedule: Tracker[] = [];
  private timer: NodeJS.Timeout | undefined;
  /**
   * Reads the host's addresses again: one it gains later (DHCP, a new bridge or interface) is no
   * longer probed even if no registry change comes to check its endpoints again.
   */
  private rescopeTimer: NodeJS.Timeout | undefined;
  /** The host's addresses the trackers were last checked against, sorted and joined. */
  private hostSeen = '';
  private timerAt = Infinity;
  private readonly inFlight = new Set<Tracker>();
  /** The earliest deadline of a probe in flight (Infinity: none), for the timer. */
  private nextDeadline = Infinity;
  /** In tick(): the timer is armed at its end. */
  private ticking = false;
  private tickMs = TICK_MIN_MS;
  private readonly maxConcurrent: number;
  private readonly probe: (check: HealthCheck) => Probe;
  private readonly spread: () => number;
  private readonly scope: ProberOptions['scope'];
  /** Endpoints (and networks) already logged as not probed: one line each, not one per change. */
  private readonly refusedLogged = new Set<string>();
  private running = false;
  /** Probe results so far, for the metrics: plain counters, read at scrape time. */
  readonly results = { ok: 0, failed: 0 };
  /** Probes skipped because the endpoint's previous one had not finished. */
  skipped = 0;
  private native: NativeProber | undefined;
  private readonly nativeBinary: string | undefined;
  /** Trackers by native slot; released slots are reused (the generation tells uses apart). */
  private readonly slots: (Tracker | undefined)[] = [];
  private readonly freeSlots: number[] = [];
  private generation = 0;
  /** The result handed to the state machine for a native record (it copies what it keeps). */
  private readonly scratch: ProbeResult = { ok: false, detail: '', start: 0, end: 0 };

  private readonly onChange = (snapshot: Snapshot, network: string): void => this.syncNetwork(snapshot, network);
  private readonly onFailOpen = (name: string, endpoints: number): void => {
    this.log.warn({ name, endpoints }, `no healthy endpoint behind "${printable(name, 80)}": answering all ${endpoints} (fail open)`);
  };

  constructor(private readonly registry: Registry, private readonly log: Logger, options: ProberOptions = {}) {
    this.maxConcurrent = Math.max(1, options.maxConcurrent ?? 256);
    this.probe = options.probe ?? probeFor;
    this.spread = options.spread ?? Math.random;
    this.scope = options.scope;
    const native = options.native ?? (options.probe === undefined && nativeProbeAvailable() ? undefined : false);
    this.nativeBinary = native === false ? undefined : native ?? '';
  }

  /** Which prober runs the probes: the native one, or this process's (its fallback). */
  get kind(): 'native' | 'node' {
    return this.native?.usable ? 'native' : 'node';
  }

  /** The native prober's PID while it runs. */
  get nativePid(): number | undefined {
    return this.native?.pid;
  }

  /** Starts probing every endpoint with a check, and follows registry changes. */
  start(): this {
    if (this.running) return this;
    this.running = true;
    if (this.nativeBinary !== undefined && !this.native) {
      this.native = new NativeProber(this.log, {
        result: (slot, gen, kind, value, start, end) => this.nativeResult(slot, gen, kind, value, start, end),
        fallback: () => this.nativeGone(),
        spread: this.spread,
      }, this.nativeBinary || undefined);
    }
    this.registry.on('change', this.onChange);
    this.registry.on('failOpen', this.onFailOpen);
    if (this.scope) {
      this.hostSeen = [...this.hostAddresses()].sort().join(' ');
      this.rescopeTimer = setInterval(() => this.rescope(), this.scope.recheckMs ?? 10_000).unref();
    }
    const snapshot = this.registry.current();
    for (const name of snapshot.networks.keys()) this.syncNetwork(snapshot, name);
    const count = this.trackers.size;
    if (count > 0) this.log.info({ endpoints: count, prober: this.kind }, `health checks: probing ${count} endpoint(s) (${this.kind} prober)`);
    return this;
  }

  /** Stops every timer and probe in flight; resolves once the probes have ended. */
  async stop(): Promise<void> {
    this.running = false;
    this.registry.off('change', this.onChange);
    this.registry.off('failOpen', this.onFailOpen);
    clearInterval(this.rescopeTimer);
    for (const t of this.trackers.values()) this.drop(t);
    this.trackers.clear();
    this.native?.stop();
    this.queue.length = 0;
    this.schedule.length = 0;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
    this.nextDeadline = Infinity;
    // Stopping a probe ends it at once (its socket is closed), so nothing is left in flight.
    for (const t of [...this.inFlight]) t.inFlight?.();
    for (const t of this.inFlight) t.busy = false;
    this.inFlight.clear();
  }

  /** Endpoints being probed. */
  get size(): number {
    return this.trackers.size;
  }

  /** Endpoints with a check, by their state now. */
  states(): Record<'healthy' | 'unhealthy' | 'starting', number> {
    const out = { healthy: 0, unhealthy: 0, starting: 0 };
    for (const t of this.trackers.values()) out[this.registry.health.get(t.network, t.id)]++;
    return out;
  }

  info(network: string, endpointId: string): HealthInfo | undefined {
    const t = this.trackers.get(trackerKey(network, endpointId));
    if (!t) return undefined;
    const m = t.machine;
    return { status: this.registry.health.get(t.network, t.id), failingStreak: m.failingStreak, check: m.check, address: t.address, log: m.log };
  }

  /**
   * A state set from outside (`nsdns endpoint health`). For a probed endpoint it holds until the
   * next probe result changes it: a success makes it healthy, `retries` failures unhealthy.
   * True when the answered state changed.
   */
  set(network: string, endpointId: string, state: HealthState, endpointName = endpointId.slice(0, 12)): boolean {
    const t = this.trackers.get(trackerKey(network, endpointId));
    t?.machine.override(state);
    const previous = this.registry.health.get(network, endpointId);
    const changed = this.registry.health.set(network, endpointId, state);
    if (changed) this.log.info({ network, endpoint: endpointName, status: state, previous, by: 'endpoint health' }, `endpoint "${endpointName}" is now ${state} (set from outside, was ${previous})`);
    return changed;
  }

  /** Brings one network's trackers in line with the snapshot: new checks start, gone ones stop. */
  private syncNetwork(snapshot: Snapshot, network: string, hostNow?: Set<string>): void {
    if (!this.running) return;
    const compiled = snapshot.networks.get(network);
    const present = new Set<string>();
    let host = hostNow;
    for (const e of compiled?.notable ?? []) {
      if (!e.healthCheck) continue;
      const address = this.scope ? this.scopedAddress(e, compiled!.network, (host ??= this.hostAddresses())) : e.ipv4[0] ?? e.ipv6[0];
      if (address === undefined) continue;
      present.add(e.id);
      const key = `${address}|${JSON.stringify(e.healthCheck)}`;
      const existing = this.trackers.get(trackerKey(network, e.id));
      if (existing?.key === key) continue;
      if (existing) this.drop(existing);
      this.add(e, network, address, key);
    }
    let shortest = Infinity;
    for (const t of this.trackers.values()) {
      if (t.network !== network || present.has(t.id)) {
        shortest = Math.min(shortest, t.machine.check.intervalMs);
        continue;
      }
      this.drop(t);
      this.trackers.delete(trackerKey(t.network, t.id));
      // Its state was ours to keep; a state set in a file or by hand goes with the endpoint too.
      this.registry.health.delete(t.network, t.id);
    }
    this.tickMs = Math.min(TICK_MAX_MS, Math.max(TICK_MIN_MS, Math.floor(shortest / 10)));
  }

  private hostAddresses(): Set<string> {
    return this.scope?.hostAddresses?.() ?? hostAddresses();
  }

  /** When the host's addresses changed, every network's probes are checked against them again. */
  private rescope(): void {
    const host = this.hostAddresses();
    const now = [...host].sort().join(' ');
    if (now === this.hostSeen) return;
    this.hostSeen = now;
    const snapshot = this.registry.current();
    for (const name of snapshot.networks.keys()) this.syncNetwork(snapshot, name, host);
  }

  /** The address to probe, or undefined (logged once, naming the network's source) when it may not be probed. */
  private scopedAddress(e: Endpoint, network: Network, host: ReadonlySet<string>): string | undefined {
    const target = probeTarget(e, network, this.scope!.allow(), host);
    if ('address' in target) return target.address;
    const subnetless = network.subnets.length === 0;
    const key = subnetless ? `${network.name}\0` : `${network.name}\0${e.id}\0${target.refused}`;
    if (!this.refusedLogged.has(key)) {
      if (this.refusedLogged.size >= 4096) this.refusedLogged.clear();
      this.refusedLogged.add(key);
      const source = printable(this.registry.sourceOf(network.name) ?? 'unknown', 200);
      const what = subnetless ? `network "${printable(network.name, 80)}" (${source}): no health probes` : `endpoint "${printable(e.name, 80)}" on network "${printable(network.name, 80)}" (${source}) is not probed`;
      this.log.warn({ network: network.name, endpoint: subnetless ? undefined : e.name, source }, `${what}: ${target.refused}${target.unreachable ? '' : "; registryFiles.probeAllow in the daemon's configuration can allow a range"}`);
    }
    return undefined;
  }

  private add(e: Endpoint, network: string, address: string, key: string): void {
    const check = e.healthCheck!;
    // A state given in a file is where it starts; otherwise `starting`, before any query sees it.
    const initial: HealthState = e.health ?? 'starting';
    this.registry.health.set(network, e.id, initial);
    const now = Date.now();
    const first = Math.floor(this.spread() * check.intervalMs);
    const t: Tracker = {
      id: e.id, network, name: e.name, address, key, queued: false,
      machine: new HealthMachine(check, now, initial),
      due: now + first,
      busy: false, started: 0, deadline: 0, expired: false, done: (result) => this.finished(t, result), gen: 0,
    };
    this.trackers.set(trackerKey(network, e.id), t);
    if (this.toNative(t, first)) return;
    this.push(t);
    this.arm();
  }

  /** Gives the tracker a slot in the native prober; false when it is to be probed here. */
  private toNative(t: Tracker, firstMs: number): boolean {
    const native = this.native;
    if (!native?.usable) return false;
    const slot = this.freeSlots.pop() ?? (this.slots.length < MAX_SLOTS ? this.slots.length : undefined);
    if (slot === undefined) return false;
    const check = t.machine.check;
    t.slot = slot;
    t.gen = this.generation = (this.generation + 1) >>> 0;
    this.slots[slot] = t;
    const sent = native.add({
      slot, gen: t.gen, type: check.type, address: t.address, port: check.port, intervalMs: check.intervalMs,
      timeoutMs: check.timeoutMs, firstMs, ...(check.type === 'http' && { path: check.path ?? '/' }),
    });
    if (sent) return true;
    // Refused (not valid for the child) or the child was given up: probed here.
    if (t.slot !== undefined) this.release(t);
    return false;
  }

  private release(t: Tracker): void {
    const slot = t.slot!;
    t.slot = undefined;
    if (this.slots[slot] === t) {
      this.slots[slot] = undefined;
      this.freeSlots.push(slot);
    }
  }

  /** A result from the native prober, into the same state machine as ours. */
  private nativeResult(slot: number, gen: number, kind: number, value: number, start: number, end: number): void {
    const t = this.slots[slot];
    if (t === undefined || t.gen !== gen || t.gone || !this.running) return;
    const r = this.scratch;
    r.start = start;
    r.end = end;
    r.ok = kind === Kind.Connected || (kind === Kind.Http && value >= 200 && value < 400);
    switch (kind) {
      case Kind.Connected: r.detail = 'connected'; break;
      case Kind.Errno: r.detail = codeText(errnoName(value)); break;
      case Kind.Http: r.detail = httpDetail[value] ??= `HTTP ${value}`; break;
      case Kind.NotHttp: r.detail = 'not an HTTP reply'; break;
      case Kind.Timeout: r.detail = `timed out after ${t.machine.check.timeoutMs} ms`; break;
      default: r.detail = 'connection reset';
    }
    this.apply(t, r);
  }

  /** The native prober was given up (it logged why): every tracker is probed here from now on. */
  private nativeGone(): void {
    this.native = undefined;
    const now = Date.now();
    for (const t of this.trackers.values()) {
      if (t.slot === undefined) continue;
      this.release(t);
      t.due = now + Math.floor(this.spread() * t.machine.check.intervalMs);
      this.push(t);
    }
    this.arm();
  }

  private drop(t: Tracker): void {
    t.gone = true;
    if (t.slot !== undefined) {
      this.native?.remove(t.slot);
      this.release(t);
    }
    t.inFlight?.();
    const at = this.queue.indexOf(t);
    if (at >= 0) this.queue.splice(at, 1);
    t.queued = false;
  }

  /** Sets the one timer for the earliest due time or deadline, on a tick boundary. */
  private arm(): void {
    if (!this.running) return;
    const first = Math.min(this.schedule.length > 0 ? this.schedule[0].due : Infinity, this.nextDeadline);
    if (first === Infinity) return;
    const at = Math.ceil(first / this.tickMs) * this.tickMs;
    if (at >= this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.tick(), Math.max(0, at - Date.now()));
    this.timer.unref();
  }

  /** Starts every probe due by now, and schedules each one's next turn. */
  private tick(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    this.ticking = true;
    const now = Date.now();
    if (this.nextDeadline <= now) this.expire(now);
    while (this.schedule.length > 0 && this.schedule[0].due <= now) {
      const t = this.pop();
      if (t.gone) continue;
      // The next turn keeps its place in the interval, whatever this probe takes.
      const interval = t.machine.check.intervalMs;
      t.due += interval;
      if (t.due <= now) t.due = now + interval;
      this.push(t);
      this.fire(t);
    }
    this.ticking = false;
    this.arm();
  }

  /** Stops the probes past their deadline, and finds the next deadline of those left. */
  private expire(now: number): void {
    let next = Infinity;
    for (const t of this.inFlight) {
      if (t.deadline > now) {
        if (t.deadline < next) next = t.deadline;
        continue;
      }
      t.expired = true;
      t.inFlight?.();
      // A probe that did not end when stopped (not one of ours) is ended here.
      if (t.busy) this.finished(t, { ok: false, detail: 'stopped', start: t.started, end: now });
    }
    // Probes started while this ran (next() on a result) join inFlight, and a Set's iteration
    // visits entries added during it, so their deadlines are in `next` too.
    this.nextDeadline = Math.min(next, this.nextDeadline <= now ? Infinity : this.nextDeadline);
  }

  private fire(t: Tracker): void {
    if (t.inFlight || t.queued) {
      this.skipped++;
      return;
    }
    if (this.inFlight.size >= this.maxConcurrent) {
      t.queued = true;
      this.queue.push(t);
      return;
    }
    this.run(t);
  }

  // The heap moves trackers by hole, not by destructuring swaps, which allocate an array per step
  // (several per probe), garbage on every probe of every endpoint.
  private push(t: Tracker): void {
    const heap = this.schedule;
    let i = heap.length;
    heap.push(t);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent].due <= t.due) break;
      heap[i] = heap[parent];
      i = parent;
    }
    heap[i] = t;
  }

  private pop(): Tracker {
    const heap = this.schedule;
    const top = heap[0];
    const last = heap.pop()!;
    const n = heap.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const m = l + 1 < n && heap[l + 1].due < heap[l].due ? l + 1 : l;
        if (heap[m].due >= last.due) break;
        heap[i] = heap[m];
        i = m;
      }
      heap[i] = last;
    }
    return top;
  }

  private run(t: Tracker): void {
    const check = t.machine.check;
    const now = Date.now();
    t.busy = true;
    t.expired = false;
    t.started = now;
    t.deadline = now + check.timeoutMs;
    this.inFlight.add(t);
    let stop: (() => void) | undefined;
    try {
      stop = this.probe(check)(t.address, check, t.done);
    } catch {
      t.done({ ok: false, detail: 'error', start: now, end: Date.now() });
    }
    if (!t.busy) return;
    t.inFlight = stop;
    if (t.deadline < this.nextDeadline) {
      this.nextDeadline = t.deadline;
      // In a tick, its end arms the timer once for all the probes it started.
      if (!this.ticking) this.arm();
    }
  }

  /** A probe's result: once per run (a call after its end is ignored). */
  private finished(t: Tracker, reported: ProbeResult): void {
    if (!t.busy) return;
    t.busy = false;
    t.inFlight = undefined;
    this.inFlight.delete(t);
    let result = reported;
    // Past the deadline is a timeout, whatever the probe saw by then (the tick may come a little later).
    if (t.expired || (reported.detail !== 'stopped' && reported.end > t.deadline)) {
      result = { ok: false, detail: `timed out after ${t.machine.check.timeoutMs} ms`, start: t.started, end: reported.end };
    }
    // A tracker replaced or removed was dropped (gone) first.
    if (this.running && result.detail !== 'stopped' && !t.gone) this.apply(t, result);
    this.next();
  }

  private next(): void {
    while (this.running && this.inFlight.size < this.maxConcurrent && this.queue.length > 0) {
      const t = this.queue.shift()!;
      t.queued = false;
      if (!t.gone && !t.busy) this.run(t);
    }
  }

  private apply(t: Tracker, result: ProbeResult): void {
    if (result.ok) this.results.ok++;
    else this.results.failed++;
    const m = t.machine;
    const answered = this.registry.health.get(t.network, t.id);
    // Set from outside since our last result (a file's `health:`, `endpoint health`): go on from there.
    if (answered !== m.status) m.override(answered);
    const status = m.record(result);
    if (status === answered) return;
    this.registry.health.set(t.network, t.id, status);
    const why = result.ok ? result.detail : `${m.failingStreak} failure(s) in a row, last: ${result.detail}`;
    const line = { network: t.network, endpoint: t.name, status, previous: answered, failingStreak: m.failingStreak, detail: result.detail };
    const msg = `endpoint "${t.name}" on network "${t.network}" is now ${status} (was ${answered}; ${why})`;
    if (status === 'unhealthy') this.log.warn(line, msg);
    else this.log.info(line, msg);
  }
}
