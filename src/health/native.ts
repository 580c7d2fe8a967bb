// The native prober (src/native/nsdns-probe.c): one long-lived child with its own epoll loop runs
// the probes, so the daemon no longer wakes per probe nor makes an object per probe; it gets every
// result in one read per tick (a tenth of the shortest interval, 50-250 ms) and feeds the state
// machines as before. Started with the first probed endpoint, ended (its input closed) with the
// last. The child is trusted no more than an endpoint: what it is told is validated here (zod),
// what it says is checked record by record and bounded in rate, and a child that dies, stalls or
// says nonsense is restarted with backoff, then given up for the Node prober (logged once).
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { constants } from 'node:os';
import { z } from 'zod';
import type { Logger } from '../log.js';
import { nativeHelperPath, nativeHelperUsable } from '../native/helpers.js';
import { isHealthPath, isIp } from '../registry/fields.js';

/** Built by src/native/build.mjs when a C compiler was there at install time. */
export const NATIVE_PROBE = nativeHelperPath('nsdns-probe');

/** The native prober serves when it was built and not switched off (NSDNS_NATIVE=0). */
export function nativeProbeAvailable(binary = NATIVE_PROBE): boolean {
  return nativeHelperUsable(binary);
}

/** The child's limits (nsdns-probe.c has the same). */
export const MAX_SLOTS = 65_536;
const RECORD_SIZE = 32;
/** Deaths within RESTART_WINDOW_MS after which the child is given up for the Node prober. */
const MAX_RESTARTS = 3;
const RESTART_WINDOW_MS = 60_000;
/** Backoff before the n-th restart: BACKOFF_MS × 4^(n-1). */
const BACKOFF_MS = 100;
/** Input the child has not read yet beyond this when more is to go: it is stuck. */
const MAX_PENDING_INPUT = 1 << 20;
/** How often the watchdog looks for a child that stopped reporting. */
const WATCHDOG_MS = 5_000;

/** Result kinds, as the child writes them. */
export const Kind = { Connected: 0, Errno: 1, Http: 2, NotHttp: 3, Timeout: 4, Closed: 5 } as const;
export type Kind = (typeof Kind)[keyof typeof Kind];

/** One probe as the child is told it: the endpoint's own address and port from the registry. */
const probeSpec = z.object({
  slot: z.number().int().min(0).max(MAX_SLOTS - 1),
  gen: z.number().int().min(0).max(0xffff_ffff),
  type: z.enum(['tcp', 'http']),
  // net.isIP too: the child's inet_pton takes no leading zeros either.
  address: z.string().refine((a) => isIp(a) && net.isIP(a) !== 0, 'not an IP address'),
  port: z.number().int().min(1).max(65535),
  intervalMs: z.number().int().min(100).max(86_400_000),
  timeoutMs: z.number().int().min(10).max(60_000),
  firstMs: z.number().int().min(0).max(86_400_000),
  path: z.string().refine(isHealthPath, 'not an HTTP path').optional(),
}).strict().refine((p) => (p.type === 'http') === (p.path !== undefined), 'a path goes with http only');
export type ProbeSpec = z.infer<typeof probeSpec>;

export interface NativeEvents {
  /** One probe result (slot and gen as given to add()). */
  result(slot: number, gen: number, kind: number, value: number, start: number, end: number): void;
  /** The child is given up for good: every probe goes back to the Node prober. */
  fallback(reason: string): void;
  /** Where in its interval a probe first runs after a (re)start, 0..1. */
  spread(): number;
}

export class NativeProber {
  private child: ChildProcess | undefined;
  /** What each slot runs, to be told again to a restarted child. */
  private readonly specs = new Map<number, ProbeSpec>();
  private carry: Buffer | undefined;
  /** Lines not yet written to the child, and the flush that will write them. */
  private outbox = '';
  private flushing: NodeJS.Immediate | undefined;
  private deaths: number[] = [];
  private restartTimer: NodeJS.Timeout | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private lastReport = 0;
  /** Records in the current second, against the flood bound. */
  private windowStart = 0;
  private windowRecords = 0;
  private dead = false;
  readonly stats = { starts: 0, records: 0 };

  constructor(private readonly log: Logger, private readonly events: NativeEvents, private readonly binary = NATIVE_PROBE) {}

  /** False once given up (the Node prober serves). */
  get usable(): boolean {
    return !this.dead;
  }

  /** The child's PID while it runs (for tests and status). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Validates and sends one probe (replacing the slot's). False when it is refused. */
  add(spec: ProbeSpec): boolean {
    if (this.dead) return false;
    const parsed = probeSpec.safeParse(spec);
    if (!parsed.success) return false;
    this.specs.set(spec.slot, parsed.data);
    // New work, maybe a shorter round: the watchdog's allowance starts again.
    this.lastReport = Date.now();
    if (this.child) this.send(line(parsed.data));
    else if (!this.restartTimer) this.spawn();
    return !this.dead;
  }

  remove(slot: number): void {
    if (!this.specs.delete(slot) || this.dead) return;
    if (this.specs.size === 0) return this.end();
    this.send(`D ${slot}\n`);
  }

  /** Ends the child (its input closed) and forgets every probe. */
  stop(): void {
    this.specs.clear();
    this.end();
  }

  private end(): void {
    this.outbox = '';
    clearImmediate(this.flushing);
    this.flushing = undefined;
    clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    clearInterval(this.watchdog);
    this.watchdog = undefined;
    const child = this.child;
    this.child = undefined;
    if (!child) return;
    child.removeAllListeners('exit');
    child.on('exit', () => undefined);
    child.stdout?.removeAllListeners('data');
    child.stdin?.end();
    // An input closed ends it; one that does not end is killed.
    setTimeout(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); }, 1000).unref();
  }

  private spawn(): void {
    this.restartTimer = undefined;
    if (this.dead || this.specs.size === 0) return;
    let child: ChildProcess;
    try {
      child = spawn(this.binary, [], { stdio: ['pipe', 'pipe', 'ignore'], env: {} });
    } catch {
      // Not from inside add(): the prober is still placing the probe that called it.
      setImmediate(() => this.giveUp('it could not be started'));
      return;
    }
    this.child = child;
    this.stats.starts++;
    this.carry = undefined;
    this.lastReport = Date.now();
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (this.child !== child) return;
      this.child = undefined;
      this.giveUp(`it could not be started (${/^[A-Z_]{1,32}$/.test(String(err.code)) ? err.code : 'error'})`);
    });
    child.stdin!.on('error', () => undefined);
    child.stdout!.on('data', (chunk: Buffer) => this.onData(chunk));
    child.on('exit', (code, signal) => {
      if (this.child !== child) return;
      this.child = undefined;
      this.died(signal ? `killed by ${signal}` : `exit status ${code}`);
    });
    // Every probe is told afresh: what was queued for the last child is in specs already.
    this.outbox = '';
    const lines: string[] = [];
    for (const spec of this.specs.values()) lines.push(line({ ...spec, firstMs: Math.floor(this.events.spread() * spec.intervalMs) }));
    this.send(lines.join(''));
    clearInterval(this.watchdog);
    this.watchdog = setInterval(() => this.checkStalled(), WATCHDOG_MS).unref();
  }

  /**
   * Queues lines for the child; they go in one write once this turn of the event loop is over (a
   * network of a thousand probed endpoints is one write, not a thousand).
   */
  private send(text: string): void {
    if (!this.child || text.length === 0) return;
    this.outbox += text;
    if (this.flushing) return;
    this.flushing = setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushing = undefined;
    const text = this.outbox;
    this.outbox = '';
    const stdin = this.child?.stdin;
    if (!stdin || text.length === 0) return;
    // One batch may be big (every probe, after a start); a child still sitting on the last one is stuck.
    if (stdin.writableLength > MAX_PENDING_INPUT) return this.kill('it stopped reading its input');
    stdin.write(text);
  }

  /** Records: each checked, the rate bounded; a partial one waits for its rest. */
  private onData(chunk: Buffer): void {
    let buf = chunk;
    if (this.carry) {
      buf = Buffer.concat([this.carry, chunk]);
      this.carry = undefined;
    }
    const whole = buf.length - (buf.length % RECORD_SIZE);
    if (whole < buf.length) this.carry = Buffer.from(buf.subarray(whole));
    const now = Date.now();
    this.lastReport = now;
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.windowRecords = 0;
    }
    this.windowRecords += whole / RECORD_SIZE;
    // At most one result per probe per interval (>= 100 ms): ten a second per slot, twice over.
    if (this.windowRecords > 20 * this.specs.size + 1000) return this.kill('it sent more results than its probes can have');
    for (let at = 0; at < whole; at += RECORD_SIZE) {
      const slot = buf.readUInt32LE(at);
      const gen = buf.readUInt32LE(at + 4);
      const kind = buf.readUInt16LE(at + 8);
      const value = buf.readInt32LE(at + 12);
      const start = buf.readDoubleLE(at + 16);
      const end = buf.readDoubleLE(at + 24);
      if (!validRecord(slot, kind, value, start, end, now)) return this.kill('it sent a malformed result');
      this.stats.records++;
      // A slot removed or replaced since: its result is not wanted.
      const spec = this.specs.get(slot);
      if (spec === undefined || spec.gen !== gen) continue;
      this.events.result(slot, gen, kind, value, start, end);
      // The result may have stopped everything (a fallback, the prober's stop).
      if (this.child === undefined) return;
    }
  }

  /** A child that sends nothing for several of its shortest rounds is stuck: restarted. */
  private checkStalled(): void {
    if (!this.child || this.specs.size === 0) return;
    let round = Infinity;
    let timeout = 0;
    for (const s of this.specs.values()) {
      round = Math.min(round, s.intervalMs);
      timeout = Math.max(timeout, s.timeoutMs);
    }
    if (Date.now() - this.lastReport > 2 * (round + timeout) + WATCHDOG_MS) this.kill('it stopped reporting');
  }

  /** Ends a misbehaving child; its exit restarts it (or gives up). */
  private kill(why: string): void {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    this.outbox = '';
    child.removeAllListeners('exit');
    child.stdout?.removeAllListeners('data');
    child.kill('SIGKILL');
    this.died(why);
  }

  private died(why: string): void {
    clearInterval(this.watchdog);
    this.watchdog = undefined;
    if (this.dead) return;
    const now = Date.now();
    this.deaths = this.deaths.filter((t) => now - t < RESTART_WINDOW_MS);
    this.deaths.push(now);
    if (this.deaths.length > MAX_RESTARTS) return this.giveUp(`${why}; ${this.deaths.length} times within a minute`);
    const delay = BACKOFF_MS * 4 ** (this.deaths.length - 1);
    this.log.warn({ why, restartInMs: delay }, `native prober: ${why}; restarting it in ${delay} ms`);
    this.restartTimer = setTimeout(() => this.spawn(), delay);
    this.restartTimer.unref();
  }

  private giveUp(why: string): void {
    if (this.dead) return;
    this.dead = true;
    this.specs.clear();
    this.end();
    this.log.warn({ why }, `native prober given up (${why}): probing with the Node prober`);
    this.events.fallback(why);
  }
}

function line(s: ProbeSpec): string {
  return `A ${s.slot} ${s.gen} ${s.type} ${s.address} ${s.port} ${s.intervalMs} ${s.timeoutMs} ${s.firstMs}${s.path === undefined ? '' : ` ${s.path}`}\n`;
}

const DAY_MS = 86_400_000;

function validRecord(slot: number, kind: number, value: number, start: number, end: number, now: number): boolean {
  if (slot >= MAX_SLOTS || !(Math.abs(now - end) < DAY_MS) || !(start <= end) || end - start > DAY_MS) return false;
  switch (kind) {
    case Kind.Errno: return value > 0 && value < 4096;
    case Kind.Http: return value >= 100 && value <= 599;
    case Kind.Connected: case Kind.NotHttp: case Kind.Timeout: case Kind.Closed: return value === 0;
    default: return false;
  }
}

let errnoNames: Map<number, string> | undefined;

/** An errno from the child by its name (ECONNREFUSED), for probes.ts's words. */
export function errnoName(value: number): string {
  if (!errnoNames) {
    errnoNames = new Map();
    for (const [name, n] of Object.entries(constants.errno)) if (!errnoNames.has(n)) errnoNames.set(n, name);
  }
  return errnoNames.get(value) ?? 'error';
}
