// A UDP socket whose datagrams mostly go unanswered (dropped: over its share of the upstreams, not
// a query, not an allowed client; or answered FORMERR or NOTIMP) is read less. Past WASTE_LIMIT
// such datagrams in a window, the socket is not read for a pause that doubles while the flood goes
// on (50 to 250 ms): the kernel drops the excess at no cost to the daemon, and every other
// namespace or client keeps the event loop (and the garbage collector) to itself. Pauses stay
// short: a client that stops flooding is answered again within a quarter of a second. Only for a
// socket whose clients share one fate already: a namespace's own, or one socket of a host
// listener's group (steered by source address, so a pause stops only the clients that share the
// flooder's kernel queue, and costs them most of what they got through it: dns-server.ts). A host
// listener of one socket has no gate: a pause would starve every client. Only unanswered datagrams
// count: a client whose queries are answered, however many (a NAT of many hosts behind one
// address), never comes closer to a pause; and the limit is far above a legitimate client's
// unanswered rate (a client is dropped only past its upstream share, and then answered REFUSED to
// one query in 4).

/**
 * Unanswered datagrams in one window that start a pause (2 560/s): 5x the default upstream rate
 * share. For a host socket the count is of all the clients steered to it together.
 */
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

