// One DNS-over-TCP connection: reads length-prefixed queries, answers them (pipelined, in any
// order, RFC 7766 §6.2.1.1), and keeps what the client can cost us bounded. Reading stops while
// too many queries are open or too many reply bytes wait for the client to read them, and goes on
// when they drain; the listener's sweep closes a connection whose message, or whose unread
// output, stays stuck past its deadline.
import type net from 'node:net';
import { FrameReader, frame } from '../wire/tcp-framing.js';
import type { Client } from '../resolver/resolver.js';
import type { TcpBudget } from './tcp-budget.js';

export interface ConnectionOwner {
  /** The reply to a message: now, later, or never (null). */
  answer(message: Buffer, client: Client): Buffer | null | Promise<Buffer | null>;
  /** A reply is being worked on / is done (the listener drains these before it closes). */
  started(): void;
  settled(): void;
  closed(connection: TcpConnection): void;
}

export class TcpConnection {
  readonly client: Client;
  /** When the connection last did something (a message in, a reply out), ms since the epoch. */
  lastActive = Date.now();
  /** Since when an incomplete message has been waiting for the rest (0: none). */
  partialSince = 0;
  /** Since when the client has left more reply bytes unread than allowed (0: not over). */
  overSince = 0;
  private readonly reader = new FrameReader();
  private open = 0;
  private queries = 0;
  /** The client half-closed: answer what it sent, then end. */
  private ended = false;
  /** The connection used up its queries: take no more, answer what is open, then end. */
  private retiring = false;
  private paused = false;
  /** Unread bytes this connection has counted in the shared budget. */
  private counted = 0;

  constructor(readonly socket: net.Socket, private readonly owner: ConnectionOwner, private readonly budget: TcpBudget) {
    this.client = { address: socket.remoteAddress ?? '', transport: 'tcp' };
    budget.connections++;
    socket.on('data', (chunk) => {
      this.lastActive = Date.now();
      this.reader.append(chunk);
      this.process();
    });
    socket.on('end', () => {
      // A client that stops half way through a message gets no more of our time.
      if (this.reader.partial) {
        socket.destroy();
        return;
      }
      this.ended = true;
      this.process();
    });
    socket.on('drain', () => {
      this.release();
      this.overSince = 0;
      this.process();
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      this.release();
      budget.connections--;
      owner.closed(this);
    });
  }

  /** Nothing open and nothing half-received: the client owes us nothing and we owe it nothing new. */
  get quiet(): boolean {
    return this.open === 0 && !this.reader.partial;
  }

  /** Closes with a reset: unread replies are thrown away instead of pinning kernel memory in FIN-WAIT. */
  abort(): void {
    if (!this.socket.destroyed) this.socket.resetAndDestroy();
  }

  /** Nothing open, nothing half-received, nothing unread: safe to close to make room. */
  get idle(): boolean {
    return this.open === 0 && this.reader.buffered === 0 && this.socket.writableLength === 0;
  }

  /** Answers the messages already received while the limits allow, then reads on or waits. */
  process(): void {
    const limits = this.budget.limits;
    let took = false;
    while (!this.socket.destroyed && !this.blocked()) {
      const message = this.reader.next();
      if (message === undefined) break;
      took = true;
      this.handle(message);
      if (++this.queries >= limits.maxQueriesPerConnection) this.retiring = true;
    }
    if (this.retiring || this.ended) {
      if (this.open === 0 && (this.retiring || this.reader.buffered === 0)) this.socket.end();
      if (this.retiring) return;
    }
    // The deadline is per message: a client that keeps completing messages is never cut off.
    this.partialSince = !this.reader.partial ? 0 : took ? Date.now() : this.partialSince || Date.now();
    const block = this.blocked();
    if (block !== this.paused) {
      this.paused = block;
      if (block) this.socket.pause();
      else this.socket.resume();
    }
  }

  private blocked(): boolean {
    const limits = this.budget.limits;
    const unread = this.socket.writableLength;
    // Over the daemon-wide cap only the connections holding unread replies wait, not everyone.
    return this.retiring || this.open >= limits.maxPendingPerConnection || unread > limits.maxUnsentBytes || (unread > 0 && this.budget.overMemory);
  }

  private handle(message: Buffer): void {
    const reply = this.owner.answer(message, this.client);
    if (reply === null) return;
    if (!(reply instanceof Promise)) {
      this.write(reply);
      return;
    }
    this.open++;
    this.owner.started();
    reply.then((buf) => buf !== null && this.write(buf), () => {}).finally(() => {
      this.open--;
      this.owner.settled();
      this.process();
    });
  }

  private write(reply: Buffer): void {
    if (this.socket.destroyed) return;
    this.lastActive = Date.now();
    if (this.socket.write(frame(reply))) return;
    // Over the stream's high-water mark: count what waits until 'drain' says it left.
    const unread = this.socket.writableLength;
    this.budget.unsentBytes += unread - this.counted;
    this.counted = unread;
    if (unread > this.budget.limits.maxUnsentBytes && this.overSince === 0) this.overSince = Date.now();
  }

  private release(): void {
    this.budget.unsentBytes -= this.counted;
    this.counted = 0;
  }
}
