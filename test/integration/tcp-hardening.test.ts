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

  it('a client that pipelines 20 000 queries for a 4 KB answer and never reads costs bounded memory; others are still answered', async () => {
    for (let i = 0; i < 20; i++) await dig(daemon.server, '+tcp', 'fat.big');
    const baseline = await rssMb(daemon.proc.pid!);
    const steady = steadyClient(daemon.port, 'web.big');
    const query = frame(queryPacket('fat.big'));
    const burst = Buffer.concat(Array.from({ length: 20_000 }, () => query));
    const hostile = await Promise.all([1, 2, 3, 4].map(() => connect(daemon.port)));
    for (const s of hostile) { s.pause(); s.write(burst); }
    let peak = baseline;
    for (let i = 0; i < 25; i++) {
      await sleep(100);
      peak = Math.max(peak, await rssMb(daemon.proc.pid!));
    }
    const fresh = await dig(daemon.server, '+tcp', 'web.big');
    assert.equal(fresh.answers[0]?.data, '10.55.1.10', 'a fresh TCP client is answered');
    const result = await steady.stop();
    assert.equal(result.lost, 0, `UDP client lost ${result.lost} of ${result.sent}`);
    // Loose on purpose: the test process itself writes the 2.4 MB on a 2-core machine; bench/'s
    // attack stage measures the neighbour's p99 against the 5 ms target with pinned processes.
    assert.ok(result.p99 < 250, `UDP client p99 ${result.p99.toFixed(2)} ms`);
    assert.ok(peak - baseline < 30, `RSS grew by ${(peak - baseline).toFixed(1)} MB (baseline ${baseline.toFixed(1)} MB)`);
    // They stayed over their unread-bytes cap past the deadline: the daemon let them go.
    const closed = await Promise.all(hostile.map((s) => closedWithin(s, 5000)));
    assert.deepEqual(closed, [true, true, true, true]);
  });

  it('a slow sender is cut off when its message misses the deadline, long before the idle timeout', async () => {
    const socket = await connect(daemon.port);
    socket.on('error', () => {});
    const started = Date.now();
    socket.write(Buffer.from([0, 30]));
    const drip = setInterval(() => { if (!socket.destroyed) socket.write(Buffer.from([0x41])); }, 300);
    const closed = await closedWithin(socket, 4000);
    clearInterval(drip);
    assert.ok(closed, 'closed');
    const after = Date.now() - started;
    assert.ok(after >= 900 && after < 3000, `closed after ${after} ms (deadline 1000 ms, idle timeout 10 000 ms)`);
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
    await sleep(200);
    assert.equal(socket.destroyed || socket.readableEnded, false, 'still open');
    assert.equal(replies, 15);
    socket.destroy();
  });

  it('one client address cannot take every slot: busy connections beyond its share are refused, another client is served', async () => {
    const hoard: net.Socket[] = [];
    for (let i = 0; i < 20; i++) {
      const s = await connect(daemon.port, '127.0.0.2');
      s.on('error', () => {});
      s.write(Buffer.from([0, 30, 1])); // half a message: busy, never idle
      hoard.push(s);
    }
    await sleep(100);
    const open = hoard.filter((s) => !s.destroyed && !s.readableEnded);
    const stillOpen = (await Promise.all(open.map((s) => closedWithin(s, 50)))).filter((c) => !c).length;
    assert.ok(stillOpen <= 4, `${stillOpen} connections of one client kept (share 4)`);
    const other = await dig(daemon.server, '+tcp', '-b', '127.0.0.3', 'web.big');
    assert.equal(other.answers[0]?.data, '10.55.1.10', 'another client gets a slot');
    for (const s of hoard) s.destroy();
  });

  it('many addresses each within their share cannot lock a newcomer out: the one holding the most slots makes room', async () => {
    const busy: net.Socket[] = [];
    for (const source of ['127.0.0.21', '127.0.0.22', '127.0.0.23', '127.0.0.24']) {
      for (let i = 0; i < 4; i++) {
        const s = await connect(daemon.port, source);
        s.on('error', () => {});
        s.write(Buffer.from([0, 30, 1])); // busy: never idle
        busy.push(s);
      }
    }
    await sleep(100);
    const other = await dig(daemon.server, '+tcp', '-b', '127.0.0.25', 'web.big');
    assert.equal(other.answers[0]?.data, '10.55.1.10', 'the newcomer is served although all 16 slots were busy');
    for (const s of busy) s.destroy();
  });

  it('2 000 idle connections keep file descriptors bounded, and a fresh client is served over TCP and UDP', async () => {
    const fdsBefore = readdirSync(`/proc/${daemon.proc.pid}/fd`).length;
    const sockets: net.Socket[] = [];
    for (let batch = 0; batch < 20; batch++) {
      const made = await Promise.allSettled(Array.from({ length: 100 }, () => connect(daemon.port, '127.0.0.4')));
      for (const m of made) if (m.status === 'fulfilled') { m.value.on('error', () => {}); sockets.push(m.value); }
    }
    await sleep(200);
    const fds = readdirSync(`/proc/${daemon.proc.pid}/fd`).length;
    assert.ok(fds - fdsBefore <= 16, `${fds - fdsBefore} more file descriptors (listener cap 16)`);
    assert.equal((await dig(daemon.server, '+tcp', '-b', '127.0.0.5', 'web.big')).answers[0]?.data, '10.55.1.10');
    assert.equal((await dig(daemon.server, 'web.big')).answers[0]?.data, '10.55.1.10');
    for (const s of sockets) s.destroy();
  });

  it('a frame of length 0 gets no reply and the connection goes on; a 65535-byte frame that never completes is closed', async () => {
    const socket = await connect(daemon.port);
    const replies: Buffer[] = [];
    socket.on('data', (d) => replies.push(d));
    socket.write(Buffer.from([0, 0]));
    socket.write(frame(queryPacket('web.big')));
    await sleep(200);
    const got = Buffer.concat(replies);
    assert.ok(got.length > 14 && got.readUInt16BE(0) === got.length - 2, `the query after the empty frame is answered (got ${got.length} bytes)`);
    socket.destroy();

    const big = await connect(daemon.port);
    big.write(Buffer.concat([Buffer.from([0xff, 0xff]), Buffer.alloc(30_000)]));
    assert.ok(await closedWithin(big, 3000), 'the unfinished 65535-byte message is cut off');
    assert.equal((await dig(daemon.server, 'web.big')).answers[0]?.data, '10.55.1.10');
  });
});
