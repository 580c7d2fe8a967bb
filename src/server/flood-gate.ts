// A namespace's own listener whose datagrams mostly go unanswered (dropped: over its share of the
// upstreams, not a query; or answered FORMERR, NOTIMP or REFUSED) is read less. Past WASTE_LIMIT
// such datagrams in a window, its UDP socket is not read for a pause that doubles while the flood
// goes on (50 to 250 ms): the kernel drops the excess at no cost to the daemon, and every other
// namespace keeps the event loop (and the garbage collector) to itself. Pauses stay short: a
// namespace that stops flooding is answered again within a quarter of a second. Only for a socket
// one tenant owns: on a shared host socket a pause would starve its other clients (PenaltyBox).

/** Unanswered datagrams in one window that start a pause: 5x the default upstream rate share. */
const WASTE_LIMIT = 256;
const WINDOW_MS = 100;
const MIN_PAUSE_MS = 50;
const MAX_PAUSE_MS = 250;

export interface GatedSocket {
  /** Stops reading; false when this Node cannot pause a socket (then the gate does nothing). */
  stopReading(): boolean;
  startReading(): void;
  /** Told of each pause, for a log line. */
  paused(ms: number): void;
}

export class FloodGate {
  private wasted = 0;
  private windowStart = 0;
  private pauseMs = 0;
  private resumedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly socket: GatedSocket) {}

  /** One datagram read and dropped, or answered with an error. */
  waste(): void {
    const now = Date.now();
    if (now - this.windowStart > WINDOW_MS) {
      this.windowStart = now;
      this.wasted = 0;
    }
    if (++this.wasted < WASTE_LIMIT || this.timer !== undefined || this.closed) return;
    if (!this.socket.stopReading()) return;
    // Tripped again right after a pause: the flood goes on, so the next pause is longer.
    this.pauseMs = now - this.resumedAt <= WINDOW_MS ? Math.min(this.pauseMs * 2, MAX_PAUSE_MS) : MIN_PAUSE_MS;
    this.socket.paused(this.pauseMs);
    this.timer = setTimeout(() => this.resume(), this.pauseMs);
    this.timer.unref();
  }

  /** Whether reading is paused now. */
  get holding(): boolean {
    return this.timer !== undefined;
  }

  /** The socket is closing or handed over: never start reading it again. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private resume(): void {
    this.timer = undefined;
    if (this.closed) return;
    this.resumedAt = this.windowStart = Date.now();
    this.wasted = 0;
    this.socket.startReading();
  }
}

/**
 * The same rule for a socket many clients share (a host listener), where pausing the socket would
 * starve the others: a source address past WASTE_LIMIT unanswerable datagrams in a window has its
 * datagrams dropped unread (no parse, no reply) for a pause that doubles while it goes on (50 ms
 * to 1 s). Dropping costs a fraction of answering, so the socket drains faster than one client
 * floods it and the kernel's queue stays short for the others. Keyed by source address like the
 * upstream shares: a client that can spoof another's address can spend that one's share too.
 */
export class PenaltyBox {
  private readonly counts = new Map<string, { wasted: number; windowStart: number; pauseMs: number; releasedAt: number }>();
  private readonly boxed = new Map<string, number>();

  /** Whether datagrams from `address` are dropped now: one size check while nobody floods. */
  holds(address: string): boolean {
    if (this.boxed.size === 0) return false;
    const until = this.boxed.get(address);
    if (until === undefined) return false;
    if (Date.now() < until) return true;
    this.boxed.delete(address);
    return false;
  }

  /** One datagram from `address` went unanswered or was answered with an error. */
  waste(address: string): void {
    const now = Date.now();
    let count = this.counts.get(address);
    if (!count) {
      // Bounded: spoofed sources must not grow the map without end.
      if (this.counts.size >= MAX_TRACKED) this.counts.clear();
      count = { wasted: 0, windowStart: now, pauseMs: 0, releasedAt: 0 };
      this.counts.set(address, count);
    }
    if (now - count.windowStart > WINDOW_MS) {
      count.windowStart = now;
      count.wasted = 0;
    }
    if (++count.wasted < WASTE_LIMIT) return;
    count.pauseMs = now - count.releasedAt <= WINDOW_MS * 2 ? Math.min(count.pauseMs * 2, MAX_BOX_MS) : MIN_PAUSE_MS;
    count.releasedAt = now + count.pauseMs;
    count.wasted = 0;
    if (this.boxed.size >= MAX_TRACKED) this.boxed.clear();
    this.boxed.set(address, count.releasedAt);
  }
}

const MAX_BOX_MS = 1000;
const MAX_TRACKED = 4096;
