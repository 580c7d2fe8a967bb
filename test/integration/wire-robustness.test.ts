// Bad and unusual messages over real sockets: what comes back (or does not), and that the daemon
// keeps serving afterwards. TCP framing edge cases too.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import dgram from 'node:dgram';
import net from 'node:net';
import path from 'node:path';
import { startDaemon, ROOT, type RunningDaemon } from '../helpers/daemon.js';
import { dig, digShort } from '../helpers/dig.js';
import { decode, queryPacket } from '../helpers/packets.js';
import { serverHasRead } from '../helpers/proc-net.js';
import { until, waitFor } from '../helpers/wait.js';
import { frame, FrameReader } from '../../src/wire/tcp-framing.js';

/** Sends one datagram and returns the reply, or undefined if none came within `waitMs`. */
function udpExchange(port: number, message: Buffer, waitMs = 400): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket('udp4');
    const timer = setTimeout(() => { socket.close(); resolve(undefined); }, waitMs);
    socket.on('message', (msg) => { clearTimeout(timer); socket.close(); resolve(msg); });
    socket.send(message, port, '127.0.0.1');
  });
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.on('error', reject);
  });
}

describe('wire robustness', () => {
  let daemon: RunningDaemon;

  before(async () => {
    daemon = await startDaemon(['--registry', path.join(ROOT, 'fixtures/lab'), '--listen', '127.0.0.1:0']);
  });
  after(() => daemon?.stop());

  it('drops messages shorter than a header and messages with QR set', async () => {
    assert.equal(await udpExchange(daemon.port, Buffer.from([1, 2, 3])), undefined);
    const response = queryPacket('web');
    response.writeUInt16BE(response.readUInt16BE(2) | 0x8000, 2);
    assert.equal(await udpExchange(daemon.port, response), undefined);
  });

  it('answers a message whose question cannot be read with FORMERR and the same id', async () => {
    const garbage = Buffer.concat([queryPacket('web', 'A', { id: 0x1234 }).subarray(0, 12), Buffer.from([0x3f, 0x41])]);
    const reply = decode((await udpExchange(daemon.port, garbage))!);
    assert.equal(reply.id, 0x1234);
    assert.equal(reply.rcode, 'FORMERR');
  });

  it('answers QDCOUNT other than 1 with FORMERR and other opcodes with NOTIMP', async () => {
    const two = queryPacket('web');
    two.writeUInt16BE(2, 4);
    assert.equal(decode((await udpExchange(daemon.port, two))!).rcode, 'FORMERR');
    const notify = queryPacket('web');
    notify.writeUInt16BE((notify.readUInt16BE(2) & ~0x7800) | (4 << 11), 2);
    const reply = decode((await udpExchange(daemon.port, notify))!);
    assert.equal(reply.rcode, 'NOTIMP');
    assert.equal((reply as { opcode?: string }).opcode, 'NOTIFY');
  });

  it('answers EDNS version 1 with BADVERS, and EDNS queries with an OPT', async () => {
    const bad = await dig(daemon.server, 'web', '+edns=1', '+noednsneg');
    assert.equal(bad.status, 'BADVERS');
    const ok = await dig(daemon.server, 'web', '+edns=0');
    assert.equal(ok.ednsUdp, 1232);
    const none = await dig(daemon.server, 'web', '+noedns');
    assert.equal(none.ednsUdp, undefined);
  });

  it('serves several pipelined queries on one TCP connection', async () => {
    const socket = await connect(daemon.port);
    const reader = new FrameReader();
    const replies: ReturnType<typeof decode>[] = [];
    const done = new Promise<void>((resolve) => socket.on('data', (chunk) => {
      replies.push(...reader.push(chunk).map((m) => decode(Buffer.from(m))));
      if (replies.length === 3) resolve();
    }));
    socket.write(Buffer.concat([frame(queryPacket('web', 'A', { id: 1 })), frame(queryPacket('db', 'AAAA', { id: 2 })), frame(queryPacket('mon', 'A', { id: 3 }))]));
    await done;
    socket.destroy();
    const byId = new Map(replies.map((r) => [r.id, (r.answers![0] as { data: string }).data]));
    assert.deepEqual([byId.get(1), byId.get(2), byId.get(3)], ['10.77.0.10', 'fd77::11', '10.78.0.5']);
  });

  it('closes a TCP connection whose client stops half way through a frame', async () => {
    const socket = await connect(daemon.port);
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.on('data', () => {});
    socket.end(Buffer.from([0, 40, 1, 2, 3]));
    await closed;
    assert.deepEqual(await digShort(daemon.server, 'web'), ['10.77.0.10'], 'still serving');
  });
});

describe('tcp limits', () => {
  let daemon: RunningDaemon;
  const config = path.join(ROOT, 'fixtures/config/tcp-limits.yaml');

  before(async () => {
    daemon = await startDaemon(['--config', config, '--registry', path.join(ROOT, 'fixtures/lab'), '--listen', '127.0.0.1:0', '--no-resolv-conf']);
  });
  after(() => daemon?.stop());

  it('closes idle connections after the idle timeout', async () => {
    const socket = await connect(daemon.port);
    const started = Date.now();
    await new Promise<void>((resolve) => socket.on('close', () => resolve()));
    const idle = Date.now() - started;
    assert.ok(idle >= 250, `closed after ${idle} ms, before the 300 ms idle timeout`);
  });

  it('at the cap, the longest-idle connection makes room for a new one (RFC 7766 §6.2.3)', async () => {
    const held = await Promise.all([connect(daemon.port), connect(daemon.port)]);
    const oldestClosed = new Promise<void>((resolve) => held[0].on('close', () => resolve()));
    await new Promise((r) => setTimeout(r, 50));
    const r = await dig(daemon.server, '+tcp', 'web');
    assert.equal(r.answers[0]?.data, '10.77.0.10', 'a new client is served');
    await oldestClosed;
    for (const s of held) s.destroy();
  });

  it('refuses a new connection when every slot is busy, and serves again once they close', async () => {
    const held = await Promise.all([connect(daemon.port), connect(daemon.port)]);
    // Half a message each: busy, so neither may be closed to make room.
    for (const s of held) { s.on('error', () => {}); s.write(Buffer.from([0, 40, 1])); }
    await waitFor(async () => (await Promise.all(held.map(serverHasRead))).every(Boolean), { what: 'the daemon has read both half messages' });
    // Refused, the third is closed without being read; accepted, its query would be answered
    // (and it would be closed only later, at the idle timeout).
    const extra = await connect(daemon.port);
    let answered = false;
    extra.on('data', () => { answered = true; });
    extra.on('error', () => {});
    extra.write(frame(queryPacket('web')));
    await new Promise<void>((resolve) => extra.on('close', () => resolve()));
    assert.equal(answered, false, 'a third connection is closed unanswered');
    for (const s of held) s.destroy();
    const r = await until('a client served once they close', () => dig(daemon.server, '+tcp', 'web'), (x) => x.answers.length > 0);
    assert.equal(r.answers[0]?.data, '10.77.0.10');
  });
});
