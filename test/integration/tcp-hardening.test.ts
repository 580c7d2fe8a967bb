// Hostile TCP clients against the real daemon: one that pipelines and never reads, slow senders,
// connection hoarders, odd frame lengths. Each must cost bounded memory and slots, and a
// well-behaved client (UDP and a fresh TCP connection) must keep getting its answers.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDaemon, ROOT, type RunningDaemon } from '../helpers/daemon.js';
import { dig } from '../helpers/dig.js';
import { queryPacket } from '../helpers/packets.js';
import { rssMb, steadyClient } from '../helpers/steady-client.js';
import { tempDir } from '../helpers/tmp.js';
import { tcpEstablished } from '../helpers/proc-net.js';
import { waitFor } from '../helpers/wait.js';
import { frame } from '../../src/wire/tcp-framing.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** 250 addresses: a ~4 KB answer over TCP. */
const FAT = Array.from({ length: 250 }, (_, i) => `10.55.0.${i + 1}`);
const REGISTRY = JSON.stringify({
  name: 'big',
  subnets: [{ subnet: '10.55.0.0/16' }],
  endpoints: [{ name: 'fat', ipv4: FAT }, { name: 'web', ipv4: '10.55.1.10' }],
});

function connect(port: number, localAddress = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress }, () => resolve(s));
    s.on('error', reject);
  });
}

/** Resolves true when the socket is closed by the other side within `ms`. */
function closedWithin(socket: net.Socket, ms: number): Promise<boolean> {
  if (socket.destroyed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    socket.on('close', () => { clearTimeout(timer); resolve(true); });
    socket.on('error', () => {});
    socket.resume();
  });
}

/** Tracks whether the daemon closed `socket` (read on, so its end is seen). */
function watchClose(socket: net.Socket): { readonly closed: boolean } {
  const state = { closed: socket.destroyed };
  socket.on('error', () => {});
  socket.on('close', () => { state.closed = true; });
  socket.resume();
  return state;
}

describe('hostile TCP clients', () => {
  let daemon: RunningDaemon;
  const registry = tempDir();

  before(async () => {
    registry.write('big.json', REGISTRY);
    daemon = await startDaemon(['--config', path.join(ROOT, 'fixtures/config/tcp-hardening.yaml'), '--registry', registry.dir, '--listen', '127.0.0.1:0', '--no-resolv-conf']);
  });
  after(async () => {
    await daemon?.stop();
    registry.cleanup();
  });

  it('clients that pipeline 10 000 queries each for a 4 KB answer and never read cost bounded memory and are let go; others are still answered', async (t) => {
    for (let i = 0; i < 20; i++) await dig(daemon.server, '+tcp', 'fat.big');
    const baseline = await rssMb(daemon.proc.pid!);
    const steady = steadyClient(daemon.port, 'web.big', { everyMs: 5 });
    const query = frame(queryPacket('fat.big'));
    // 2 x 10 000 x 4 KB: 80 MB of replies if the daemon kept them all, against a 30 MB bound.
    const burst = Buffer.concat(Array.from({ length: 10_000 }, () => query));
    const hostile = await Promise.all([1, 2].map(() => connect(daemon.port)));
    for (const s of hostile) { s.pause(); s.write(burst); s.on('error', () => {}); }
    try {
      const fresh = await dig(daemon.server, '+tcp', 'web.big');
      assert.equal(fresh.answers[0]?.data, '10.55.1.10', 'a fresh TCP client is answered');
      // They stay over their unread-bytes cap past the message deadline: the daemon lets them go
      // (seen in the kernel's table: the paused clients would not notice). Memory is sampled
      // until then; the timeout only bounds a broken run.
      let peak = baseline;
      await waitFor(async () => {
        peak = Math.max(peak, await rssMb(daemon.proc.pid!));
        const open = await Promise.all(hostile.map((s) => tcpEstablished(s.localAddress!, s.localPort!)));
        return !open.includes(true);
      }, { timeoutMs: 30_000, everyMs: 100, what: 'the daemon closes the connections that never read' });
      const result = await steady.stop();
      t.diagnostic(`UDP neighbour: ${JSON.stringify(result)}; RSS ${baseline.toFixed(1)} -> peak ${peak.toFixed(1)} MB`);
      assert.equal(result.lost, 0, `UDP client lost ${result.lost} of ${result.sent} (each asked up to 3 times)`);
      assert.ok(peak - baseline < 30, `RSS grew by ${(peak - baseline).toFixed(1)} MB (baseline ${baseline.toFixed(1)} MB)`);
    } finally {
      await steady.stop();
      for (const s of hostile) s.destroy();
    }
  });

  it('a slow sender is cut off when its message misses the deadline, before the idle timeout', async () => {
    const socket = await connect(daemon.port);
    socket.on('error', () => {});
    const started = Date.now();
    socket.write(Buffer.from([0, 30]));
    // A byte every 300 ms keeps it from ever being idle: only the message deadline (1 s) ends it.
    const drip = setInterval(() => { if (!socket.destroyed) socket.write(Buffer.from([0x41])); }, 300);
    const closed = await closedWithin(socket, 9_000);
    clearInterval(drip);
    const after = Date.now() - started;
    assert.ok(closed, 'closed before the idle timeout (10 000 ms)');
    assert.ok(after >= 900, `closed after ${after} ms, not before the message deadline (1000 ms)`);
  });

  it('a client that pipelines in writes that each end half way through the next message is never cut off', async () => {
    const socket = await connect(daemon.port);
    let replies = 0;
    let buffered = Buffer.alloc(0);
    socket.on('data', (d) => {
      buffered = Buffer.concat([buffered, d]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) { buffered = buffered.subarray(2 + buffered.readUInt16BE(0)); replies++; }
    });
    const query = frame(queryPacket('web.big'));
    const half = query.length >> 1;
    socket.write(query.subarray(0, half));
    // 15 writes, 100 ms apart, over 1.5 s (the message deadline is 1 s): each finishes one query and starts the next.
    for (let i = 0; i < 15; i++) {
      await sleep(100);
      socket.write(Buffer.concat([query.subarray(half), query.subarray(0, half)]));
    }
    await waitFor(() => replies === 15, { what: 'all 15 queries answered' });
    assert.equal(socket.destroyed || socket.readableEnded, false, 'still open');
    socket.destroy();
  });

  it('a frame of length 0 gets no reply and the connection goes on; a 65535-byte frame that never completes is closed', async () => {
    const socket = await connect(daemon.port);
    const replies: Buffer[] = [];
    socket.on('data', (d) => replies.push(d));
    socket.write(Buffer.from([0, 0]));
    socket.write(frame(queryPacket('web.big')));
    const got = await waitFor(() => { const all = Buffer.concat(replies); return all.length >= 2 && all.length >= 2 + all.readUInt16BE(0) ? all : undefined; }, { what: 'a reply to the query after the empty frame' });
    assert.ok(got.length > 14 && got.readUInt16BE(0) === got.length - 2, `the query after the empty frame is answered (got ${got.length} bytes)`);
    socket.destroy();

    const big = await connect(daemon.port);
    big.write(Buffer.concat([Buffer.from([0xff, 0xff]), Buffer.alloc(30_000)]));
    assert.ok(await closedWithin(big, 3000), 'the unfinished 65535-byte message is cut off');
    assert.equal((await dig(daemon.server, 'web.big')).answers[0]?.data, '10.55.1.10');
  });
});

// Deadlines far away, so that only the connection limits close a connection here (with the
// 1 s message deadline above, a busy machine could close a busy hoarder before the limit is
// reached, and the test would pass without the limit).
describe('TCP connection limits', () => {
  let daemon: RunningDaemon;
  const registry = tempDir();
  const config = tempDir();

  before(async () => {
    registry.write('big.json', REGISTRY);
    const file = config.write('tcp-limits.yaml', 'tcp:\n  idleTimeoutMs: 120000\n  messageTimeoutMs: 120000\n  maxConnections: 16\n  maxConnectionsPerClient: 4\n');
    daemon = await startDaemon(['--config', file, '--registry', registry.dir, '--listen', '127.0.0.1:0', '--no-resolv-conf']);
  });
  after(async () => {
    await daemon?.stop();
    registry.cleanup();
    config.cleanup();
  });

  /** Connects from `source` and sends half a message: busy, never idle, so never closed to make room for its own address. */
  async function busy(source: string): Promise<net.Socket> {
    const s = await connect(daemon.port, source);
    s.on('error', () => {});
    s.write(Buffer.from([0, 30, 1]));
    return s;
  }

  it('one client address cannot take every slot: busy connections beyond its share are refused, another client is served', async () => {
    const hoard: net.Socket[] = [];
    for (let i = 0; i < 20; i++) hoard.push(await busy('127.0.0.2'));
    const states = hoard.map(watchClose);
    const open = () => states.filter((c) => !c.closed).length;
    await waitFor(() => open() <= 4, { what: 'connections beyond the per-client share (4) closed' });
    const other = await dig(daemon.server, '+tcp', '-b', '127.0.0.3', 'web.big');
    assert.equal(other.answers[0]?.data, '10.55.1.10', 'another client gets a slot');
    assert.ok(open() >= 1, 'the client keeps its share');
    for (const s of hoard) s.destroy();
  });

  it('many addresses each within their share cannot lock a newcomer out: the one holding the most slots makes room', async () => {
    const held: net.Socket[] = [];
    for (const source of ['127.0.0.21', '127.0.0.22', '127.0.0.23', '127.0.0.24']) {
      for (let i = 0; i < 4; i++) held.push(await busy(source));
    }
    const states = held.map(watchClose);
    const other = await dig(daemon.server, '+tcp', '-b', '127.0.0.25', 'web.big');
    assert.equal(other.answers[0]?.data, '10.55.1.10', 'the newcomer is served although all 16 slots were busy');
    assert.ok(states.filter((c) => c.closed).length <= 1, 'one slot was made for it, not more');
    for (const s of held) s.destroy();
  });

  it('200 idle connections from one address keep file descriptors bounded, and a fresh client is served over TCP and UDP', async () => {
    const fdsBefore = readdirSync(`/proc/${daemon.proc.pid}/fd`).length;
    const sockets: net.Socket[] = [];
    for (let batch = 0; batch < 4; batch++) {
      const made = await Promise.allSettled(Array.from({ length: 50 }, () => connect(daemon.port, '127.0.0.4')));
      for (const m of made) if (m.status === 'fulfilled') sockets.push(m.value);
    }
    const states = sockets.map(watchClose);
    // Each newcomer beyond the share of 4 takes the place of the longest-idle one, which is closed.
    await waitFor(() => states.filter((c) => !c.closed).length <= 16, { what: 'idle connections beyond the caps closed' });
    const fds = readdirSync(`/proc/${daemon.proc.pid}/fd`).length;
    assert.ok(fds - fdsBefore <= 16, `${fds - fdsBefore} more file descriptors (listener cap 16)`);
    assert.equal((await dig(daemon.server, '+tcp', '-b', '127.0.0.5', 'web.big')).answers[0]?.data, '10.55.1.10');
    assert.equal((await dig(daemon.server, 'web.big')).answers[0]?.data, '10.55.1.10');
    for (const s of sockets) s.destroy();
  });
});
