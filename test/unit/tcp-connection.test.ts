// One DNS-over-TCP connection (src/server/tcp-connection.ts) on a real loopback socket, with an
// owner that answers from memory: a message split across segments is read whole, pipelined
// messages are all answered (a quick answer does not wait for a slow one, RFC 7766 §6.2.1.1), a
// client that stops half way through a message is cut off, a half-close after whole messages is
// answered first, and the per-connection limits (queries, open answers) hold.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { TcpBudget, type TcpLimits } from '../../src/server/tcp-budget.js';
import { TcpConnection, type ConnectionOwner } from '../../src/server/tcp-connection.js';
import { waitFor } from '../helpers/wait.js';

const LIMITS: TcpLimits = {
  idleTimeoutMs: 60_000, messageTimeoutMs: 60_000, maxConnections: 10, maxConnectionsPerClient: 10, maxTotalConnections: 10,
  maxPendingPerConnection: 10, maxQueriesPerConnection: 100, maxUnsentBytes: 1 << 20, maxTotalUnsentBytes: 1 << 20,
};

/** A message: 2 id bytes and a body; the owner's reply is the message with 'R' appended. */
const message = (id: number, body = 'q') => Buffer.concat([Buffer.from([id >> 8, id & 0xff]), Buffer.from(body)]);
const framed = (m: Buffer) => Buffer.concat([Buffer.from([m.length >> 8, m.length & 0xff]), m]);

interface Harness {
  client: net.Socket;
  /** Replies the client read, in arrival order. */
  replies: Buffer[];
  /** Messages the owner was asked, in order. */
  asked: Buffer[];
  /** Bytes the server side has read. */
  received: () => number;
  closed: () => boolean;
  /** Answers later: resolve a deferred reply by its id. */
  release: (id: number) => void;
}

const servers: net.Server[] = [];
after(() => { for (const s of servers) s.close(); });

/** A server whose connections are TcpConnections; `later` ids are answered only when released. */
async function harness(limits: Partial<TcpLimits> = {}, later: number[] = []): Promise<Harness> {
  const asked: Buffer[] = [];
  const pending = new Map<number, () => void>();
  let received = 0;
  let closed = false;
  const owner: ConnectionOwner = {
    answer: (m) => {
      asked.push(m);
      const reply = Buffer.concat([m, Buffer.from('R')]);
      const id = m.readUInt16BE(0);
      if (!later.includes(id)) return reply;
      return new Promise((resolve) => pending.set(id, () => resolve(reply)));
    },
    started: () => {},
    settled: () => {},
    closed: () => { closed = true; },
  };
  // Half-open allowed, as DnsServer sets on every listener's server.
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('data', (chunk) => { received += chunk.length; });
    new TcpConnection(socket, owner, new TcpBudget({ ...LIMITS, ...limits }));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  client.setNoDelay(true);
  const replies: Buffer[] = [];
  let buffered = Buffer.alloc(0);
  client.on('data', (chunk) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
      const length = buffered.readUInt16BE(0);
      replies.push(buffered.subarray(2, 2 + length));
      buffered = buffered.subarray(2 + length);
    }
  });
  client.on('error', () => {});
  await new Promise<void>((resolve) => client.once('connect', () => resolve()));
  return {
    client, replies, asked, received: () => received, closed: () => closed,
    release: (id) => pending.get(id)?.(),
  };
}

const ids = (list: Buffer[]) => list.map((b) => b.readUInt16BE(0));
const clientClosed = (client: net.Socket) => new Promise<void>((resolve) => (client.closed ? resolve() : client.once('close', () => resolve())));

describe('TCP connection', () => {
  it('reads a message split across segments, even its length prefix', async () => {
    const h = await harness();
    const bytes = framed(message(7, 'split-me'));
    const pieces = [bytes.subarray(0, 1), bytes.subarray(1, 5), bytes.subarray(5)];
    for (const [i, piece] of pieces.entries()) {
      const before = h.received();
      h.client.write(piece);
      await waitFor(() => h.received() >= before + piece.length, { what: 'the server read the piece' });
      if (i < pieces.length - 1) assert.equal(h.asked.length, 0, 'nothing asked before the message is whole');
    }
    await waitFor(() => h.replies.length === 1, { what: 'the reply' });
    assert.deepEqual(h.replies[0], Buffer.concat([message(7, 'split-me'), Buffer.from('R')]));
    h.client.destroy();
  });

  it('answers pipelined messages, a quick answer before a slow one', async () => {
    const h = await harness({}, [1]);
    h.client.write(Buffer.concat([framed(message(1)), framed(message(2)), framed(message(3))]));
    await waitFor(() => h.replies.length === 2, { what: 'the quick replies' });
    assert.deepEqual(ids(h.replies), [2, 3]);
    h.release(1);
    await waitFor(() => h.replies.length === 3, { what: 'the slow reply' });
    assert.deepEqual(ids(h.replies), [2, 3, 1]);
    h.client.destroy();
  });

  it('answers what a half-closing client sent, then ends the connection', async () => {
    const h = await harness();
    h.client.end(Buffer.concat([framed(message(1)), framed(message(2))]));
    await clientClosed(h.client);
    assert.deepEqual(ids(h.replies), [1, 2], 'both answered before the end');
  });

  it('answers a half-closing client\'s slow query too', async () => {
    const h = await harness({}, [1]);
    h.client.end(Buffer.concat([framed(message(1)), framed(message(2))]));
    await waitFor(() => h.replies.length === 1, { what: 'the first reply' });
    setImmediate(() => h.release(1));
    await clientClosed(h.client);
    assert.deepEqual(ids(h.replies), [2, 1], 'both answered before the end');
  });

  it('cuts off a client that stops half way through a message', async () => {
    const h = await harness();
    h.client.end(framed(message(1)).subarray(0, 3));
    await clientClosed(h.client);
    await waitFor(() => h.closed(), { what: 'the owner told of the close' });
    assert.deepEqual(h.asked, []);
    assert.deepEqual(h.replies, []);
  });

  it('takes at most maxQueriesPerConnection messages, answers them, then ends', async () => {
    const h = await harness({ maxQueriesPerConnection: 2 });
    h.client.write(Buffer.concat([1, 2, 3, 4].map((id) => framed(message(id)))));
    await clientClosed(h.client);
    assert.deepEqual(ids(h.asked), [1, 2]);
    assert.deepEqual(ids(h.replies), [1, 2]);
  });

  it('reads no further while maxPendingPerConnection answers are open, and on once they settle', async () => {
    const h = await harness({ maxPendingPerConnection: 1 }, [1]);
    h.client.write(Buffer.concat([framed(message(1)), framed(message(2))]));
    await waitFor(() => h.asked.length === 1, { what: 'the first message asked' });
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(ids(h.asked), [1], 'the second waits while the first is open');
    h.release(1);
    await waitFor(() => h.replies.length === 2, { what: 'both replies' });
    assert.deepEqual(ids(h.asked), [1, 2]);
    h.client.destroy();
  });
});
