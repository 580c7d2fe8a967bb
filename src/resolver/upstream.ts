// One exchange with one upstream server. Each UDP exchange uses a new socket (so a fresh random
// source port, RFC 5452 §9.2) and a random id; a reply counts only if it comes from the server we
// asked, carries our id and exactly the question we sent, and is well-formed. Anything else is
// ignored, as a spoofing attempt would be, and the wait goes on until the timeout.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import dgram from 'node:dgram';
import { Match, matchReply } from '../wire/upstream-query.js';
import { recordsWellFormed } from '../wire/records.js';
import { FrameReader, frame } from '../wire/tcp-framing.js';
import { NsdnsError } from '../errors.js';
import type { UpstreamServer } from './upstream-address.js';

export type Transport = 'udp' | 'tcp';

export interface Exchange {
  /**
   * Sends `query` (from buildUpstreamQuery, under a fresh id) and resolves with the first reply
   * that matches it; `caseExact`: the question must come back in the very case it was sent (0x20).
   * `watch`: told once when no reply has come within its `afterMs` (read when the exchange starts),
   * while the exchange waits on to its timeout; the same timer serves both.
   */
  (query: Buffer, questionEnd: number, server: UpstreamServer, transport: Transport, timeoutMs: number, caseExact: boolean, watch?: SlowWatch): Promise<Buffer>;
}

/** Who wants to know that an exchange is slow (the forwarder, to ask the next server early). */
export interface SlowWatch {
  readonly afterMs: number;
  slow(): void;
}

/** The server answered our question, but not in the letter case we asked it in. */
export class CaseMismatch extends NsdnsError {
  constructor(server: UpstreamServer) {
    super('ERR_UPSTREAM_UNREACHABLE', `${server.key} did not keep the case of the question`);
  }
}

let idPool = Buffer.alloc(0);
let idOffset = 0;

/** Random 16-bit ids, drawn in batches from the CSPRNG. */
function randomId(): number {
  if (idOffset + 2 > idPool.length) {
    idPool = randomBytes(2048);
    idOffset = 0;
  }
  const id = idPool.readUInt16BE(idOffset);
  idOffset += 2;
  return id;
}

export const exchange: Exchange = (query, questionEnd, server, transport, timeoutMs, caseExact, watch) => {
  const out = Buffer.from(query);
  out.writeUInt16BE(randomId(), 0);
  // Anything but a well-formed reply to exactly this packet is ignored: a spoofed or stray
  // datagram must not end the wait, let alone fail the clients sharing this exchange.
  const accept = (reply: Buffer): boolean => {
    const match = matchReply(reply, out, questionEnd);
    if (match === Match.No || !recordsWellFormed(reply, questionEnd)) return false;
    if (match === Match.OtherCase && caseExact) throw new CaseMismatch(server);
    return true;
  };
  // Only a watch that would hear before the timeout is kept.
  const slow = watch !== undefined && watch.afterMs < timeoutMs ? watch : undefined;
  return transport === 'udp' ? exchangeUdp(out, server, timeoutMs, slow, accept) : exchangeTcp(out, server, timeoutMs, slow, accept);
};

/** The server did not answer in time (told apart from other failures in the metrics). */
export class UpstreamTimeout extends NsdnsError {
  constructor(server: UpstreamServer, transport: Transport, ms: number) {
    super('ERR_UPSTREAM_UNREACHABLE', `${server.key} did not answer over ${transport} within ${ms} ms`);
  }
}

function timeoutError(server: UpstreamServer, transport: Transport, ms: number): NsdnsError {
  return new UpstreamTimeout(server, transport, ms);
}

/**
 * One UDP exchange waiting for its reply. Its socket is its own: bound ahead of need (a fresh random
 * port), used for this one query and then closed. The socket's listeners are attached once, when it
 * is bound, and find the exchange through `slot`, so a packet costs no new closure or promise.
 */
interface UdpWait {
  server: UpstreamServer;
  timeoutMs: number;
  /** Told once at `slowAfterMs`; the timer then waits out the rest of the timeout. */
  watch: SlowWatch | undefined;
  slowAfterMs: number;
  accept: (reply: Buffer) => boolean;
  resolve: (reply: Buffer) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout | undefined;
}

interface Slot {
  socket: dgram.Socket;
  wait: UdpWait | undefined;
  closed: boolean;
}

/** Sockets bound per refill turn: few enough that one turn never holds the loop long. */
const REFILL_BATCH = 8;

/**
 * Sockets bound ahead of need, each used for exactly one exchange and then closed: every upstream
 * query still gets a fresh random port, without paying for the bind while the client waits. The
 * pool is refilled in small batches, one per turn of the event loop, off the query's path.
 */
class SocketPool {
  private readonly ready: Record<4 | 6, Slot[]> = { 4: [], 6: [] };
  private readonly refilling: Record<4 | 6, boolean> = { 4: false, 6: false };

  constructor(private readonly size: number) {}

  /** A bound socket: from the pool, or bound now when the pool is empty (a burst). */
  take(family: 4 | 6): Slot | Promise<Slot> {
    const ready = this.ready[family];
    let slot = ready.pop();
    while (slot?.closed) slot = ready.pop();
    if (!this.refilling[family]) {
      this.refilling[family] = true;
      setImmediate(refillTurn, this, family);
    }
    return slot ?? bindSlot(family);
  }

  /** Binds up to REFILL_BATCH sockets; schedules another turn until the pool is full. */
  refill(family: 4 | 6): void {
    const ready = this.ready[family];
    let pending = Math.min(REFILL_BATCH, this.size - ready.length);
    if (pending <= 0) {
      this.refilling[family] = false;
      return;
    }
    const done = (slot: Slot | undefined) => {
      if (slot) {
        if (ready.length < this.size) ready.push(slot);
        else close(slot);
      }
      if (--pending > 0) return;
      // No such family here (IPv6 off, say): stop; take() binds on demand and reports the error.
      if (slot && ready.length < this.size) setImmediate(refillTurn, this, family);
      else this.refilling[family] = false;
    };
    for (let i = pending; i > 0; i--) bindSlot(family).then(done, () => done(undefined));
  }
}

function refillTurn(pool: SocketPool, family: 4 | 6): void {
  pool.refill(family);
}

function bindSlot(family: 4 | 6): Promise<Slot> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
    const slot: Slot = { socket, wait: undefined, closed: false };
    const failed = (err: Error) => {
      close(slot);
      reject(err);
    };
    socket.once('error', failed);
    socket.bind(0, () => {
      socket.removeListener('error', failed);
      socket.on('message', (msg, rinfo) => onMessage(slot, msg, rinfo));
      socket.on('error', (err) => onError(slot, err));
      // Pooled sockets must not keep the daemon alive on their own.
      socket.unref();
      resolve(slot);
    });
  });
}

function onMessage(slot: Slot, msg: Buffer, rinfo: dgram.RemoteInfo): void {
  const wait = slot.wait;
  // Not in use yet, or done: nobody asked for this datagram.
  if (!wait) return;
  const server = wait.server;
  if (rinfo.port !== server.port || normalizeHost(rinfo.address) !== server.host) return;
  let accepted: boolean;
  try {
    accepted = wait.accept(msg);
  } catch (err) {
    finish(slot, wait);
    wait.reject(err as Error);
    return;
  }
  if (!accepted) return;
  finish(slot, wait);
  wait.resolve(msg);
}

function onError(slot: Slot, err: Error): void {
  const wait = slot.wait;
  if (!wait) {
    // A pooled socket that failed is of no use: closed, and never handed out.
    close(slot);
    return;
  }
  finish(slot, wait);
  wait.reject(new NsdnsError('ERR_UPSTREAM_UNREACHABLE', `${wait.server.key} over udp: ${err.message}`, { cause: err }));
}

function onTimeout(slot: Slot): void {
  const wait = slot.wait;
  if (!wait) return;
  const watch = wait.watch;
  if (watch) {
    wait.watch = undefined;
    wait.timer = setTimeout(onTimeout, wait.timeoutMs - wait.slowAfterMs, slot);
    watch.slow();
    return;
  }
  wait.timer = undefined;
  finish(slot, wait);
  wait.reject(timeoutError(wait.server, 'udp', wait.timeoutMs));
}

/** Ends the exchange: no more packets are looked at, and the socket (its port) is given up. */
function finish(slot: Slot, wait: UdpWait): void {
  slot.wait = undefined;
  if (wait.timer) clearTimeout(wait.timer);
  close(slot);
}

function close(slot: Slot): void {
  if (slot.closed) return;
  slot.closed = true;
  slot.socket.close();
}

const pool = new SocketPool(32);

async function exchangeUdp(query: Buffer, server: UpstreamServer, timeoutMs: number, watch: SlowWatch | undefined, accept: (r: Buffer) => boolean): Promise<Buffer> {
  // Read now: the watch may hold another value by the time a socket is ready.
  const slowAfterMs = watch ? watch.afterMs : 0;
  let slot: Slot;
  try {
    slot = await pool.take(server.family);
  } catch (err) {
    throw new NsdnsError('ERR_UPSTREAM_UNREACHABLE', `cannot open a udp socket for ${server.key}: ${(err as Error).message}`, { cause: err });
  }
  return new Promise<Buffer>((resolve, reject) => {
    const wait: UdpWait = { server, timeoutMs, watch, slowAfterMs, accept, resolve, reject, timer: undefined };
    slot.wait = wait;
    try {
      // In use: the exchange keeps the daemon alive until it ends (close releases it).
      slot.socket.ref();
      wait.timer = setTimeout(onTimeout, watch ? slowAfterMs : timeoutMs, slot);
      // Without a callback, a failed send comes back as an 'error' event: onError ends the exchange.
      slot.socket.send(query, server.port, server.host);
    } catch (err) {
      onError(slot, err as Error);
    }
  });
}

function normalizeHost(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

function exchangeTcp(query: Buffer, server: UpstreamServer, timeoutMs: number, watch: SlowWatch | undefined, accept: (r: Buffer) => boolean): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const expire = () => finish(timeoutError(server, 'tcp', timeoutMs));
    const slowAfterMs = watch ? watch.afterMs : 0;
    const socket = net.connect({ host: server.host, port: server.port });
    const reader = new FrameReader();
    const finish = (err: Error | undefined, reply?: Buffer) => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(reply!);
    };
    let timer = watch
      ? setTimeout(() => {
        timer = setTimeout(expire, timeoutMs - slowAfterMs);
        watch.slow();
      }, slowAfterMs)
      : setTimeout(expire, timeoutMs);
    socket.on('connect', () => socket.write(frame(query)));
    socket.on('data', (chunk) => {
      try {
        const reply = reader.push(chunk).find(accept);
        if (reply) finish(undefined, Buffer.from(reply));
      } catch (err) {
        finish(err as Error);
      }
    });
    socket.on('error', (err) => finish(new NsdnsError('ERR_UPSTREAM_UNREACHABLE', `${server.key} over tcp: ${err.message}`, { cause: err })));
    socket.on('end', () => finish(new NsdnsError('ERR_UPSTREAM_UNREACHABLE', `${server.key} closed the tcp connection without an answer`)));
  });
}
