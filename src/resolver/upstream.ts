// One exchange with one upstream server. Each UDP exchange uses a new socket (so a fresh random
// source port, RFC 5452 §9.2) and a random id; a reply counts only if it comes from the server we
// asked, carries our id and exactly the question we sent, and is well-formed. Anything else is
// ignored, as a spoofing attempt would be, and the wait goes on until the timeout.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import DgramAsPromised from 'dgram-as-promised';
import { Match, matchReply } from '../wire/upstream-query.js';
import { inspectReply } from '../wire/records.js';
import { FrameReader, frame } from '../wire/tcp-framing.js';
import { NsdnsError } from '../errors.js';
import type { UpstreamServer } from './upstream-address.js';

export type Transport = 'udp' | 'tcp';

export interface Exchange {
  /**
   * Sends `query` (from buildUpstreamQuery, under a fresh id) and resolves with the first reply
   * that matches it; `caseExact`: the question must come back in the very case it was sent (0x20).
   */
  (query: Buffer, questionEnd: number, server: UpstreamServer, transport: Transport, timeoutMs: number, caseExact: boolean): Promise<Buffer>;
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

export const exchange: Exchange = (query, questionEnd, server, transport, timeoutMs, caseExact) => {
  const out = Buffer.from(query);
  out.writeUInt16BE(randomId(), 0);
  // Anything but a well-formed reply to exactly this packet is ignored: a spoofed or stray
  // datagram must not end the wait, let alone fail the clients sharing this exchange.
  const accept = (reply: Buffer): boolean => {
    const match = matchReply(reply, out, questionEnd);
    if (match === Match.No || !inspectReply(reply, questionEnd)) return false;
    if (match === Match.OtherCase && caseExact) throw new CaseMismatch(server);
    return true;
  };
  return transport === 'udp' ? exchangeUdp(out, server, timeoutMs, accept) : exchangeTcp(out, server, timeoutMs, accept);
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

type PooledSocket = ReturnType<typeof DgramAsPromised.createSocket>;

/**
 * Sockets bound ahead of need, each used for exactly one exchange and then closed: every upstream
 * query still gets a fresh random port, without paying for the bind while the client waits.
 */
class SocketPool {
  private readonly ready: Record<4 | 6, PooledSocket[]> = { 4: [], 6: [] };
  private refilling: Record<4 | 6, boolean> = { 4: false, 6: false };

  constructor(private readonly size: number) {}

  async take(family: 4 | 6): Promise<PooledSocket> {
    const socket = this.ready[family].pop();
    this.refill(family);
    return socket ?? bindSocket(family);
  }

  private refill(family: 4 | 6): void {
    if (this.refilling[family]) return;
    this.refilling[family] = true;
    setImmediate(async () => {
      try {
        while (this.ready[family].length < this.size) this.ready[family].push(await bindSocket(family));
      } catch {
        // No such family here (IPv6 off, say): take() binds on demand and reports the error there.
      } finally {
        this.refilling[family] = false;
      }
    });
  }
}

async function bindSocket(family: 4 | 6): Promise<PooledSocket> {
  const socket = DgramAsPromised.createSocket(family === 6 ? 'udp6' : 'udp4');
  await socket.bind(0);
  // Pooled sockets must not keep the daemon alive on their own.
  socket.unref();
  return socket;
}

const pool = new SocketPool(16);

async function exchangeUdp(query: Buffer, server: UpstreamServer, timeoutMs: number, accept: (r: Buffer) => boolean): Promise<Buffer> {
  const socket = await pool.take(server.family).catch((err) => {
    throw new NsdnsError('ERR_UPSTREAM_UNREACHABLE', `cannot open a udp socket for ${server.key}: ${(err as Error).message}`, { cause: err });
  });
  socket.ref();
  const timer = setTimeout(() => void socket.close().catch(() => {}), timeoutMs);
  try {
    await socket.send(query, server.port, server.host);
    for (;;) {
      const packet = await socket.recv();
      if (packet === undefined) throw timeoutError(server, 'udp', timeoutMs);
      const { msg, rinfo } = packet;
      if (rinfo.port === server.port && normalizeHost(rinfo.address) === server.host && accept(msg)) return msg;
    }
  } catch (err) {
    if (err instanceof NsdnsError) throw err;
    throw new NsdnsError('ERR_UPSTREAM_UNREACHABLE', `${server.key} over udp: ${(err as Error).message}`, { cause: err });
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
}

function normalizeHost(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

function exchangeTcp(query: Buffer, server: UpstreamServer, timeoutMs: number, accept: (r: Buffer) => boolean): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: server.host, port: server.port });
    const reader = new FrameReader();
    const finish = (err: Error | undefined, reply?: Buffer) => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(reply!);
    };
    const timer = setTimeout(() => finish(timeoutError(server, 'tcp', timeoutMs)), timeoutMs);
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
