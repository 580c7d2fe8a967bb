// 100 000 mutated packets at the real daemon over UDP (and a share over TCP): random bytes,
// truncated headers, pointer loops, long labels, odd counts, several OPT records, and valid
// queries with bytes overwritten. The daemon must stay up with flat memory and keep answering.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { startDaemon, ROOT, type RunningDaemon } from '../helpers/daemon.js';
import { dig } from '../helpers/dig.js';
import { queryPacket } from '../helpers/packets.js';
import { rssMb } from '../helpers/steady-client.js';
import { frame } from '../../src/wire/tcp-framing.js';

const header = (flags: number, qd: number, an: number, ns: number, ar: number) => {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(0xbeef, 0);
  h.writeUInt16BE(flags, 2);
  [qd, an, ns, ar].forEach((c, i) => h.writeUInt16BE(c, 4 + i * 2));
  return h;
};
const OPT = Buffer.from([0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);

/** Hand-made nasties, each a kind the issue names. */
const NASTY: Buffer[] = [
  Buffer.alloc(0), Buffer.alloc(11), header(0x0100, 1, 0, 0, 0),
  Buffer.concat([header(0x0100, 1, 0, 0, 0), Buffer.from([0xc0, 0x0c, 0, 1, 0, 1])]), // pointer to itself
  Buffer.concat([header(0x0100, 1, 0, 0, 0), Buffer.from([1, 0x61, 0xc0, 0x0c, 0, 1, 0, 1])]), // loop through a label
  Buffer.concat([header(0x0100, 1, 0, 0, 0), Buffer.from([63]), Buffer.alloc(63, 0x61), Buffer.from([64]), Buffer.alloc(64, 0x61), Buffer.from([0, 0, 1, 0, 1])]),
  Buffer.concat([header(0x0100, 0, 0, 0, 0)]), Buffer.concat([header(0x0100, 2, 0, 0, 0), queryPacket('web.lab').subarray(12)]),
  Buffer.concat([header(0x0100, 65535, 0, 0, 0), queryPacket('web.lab').subarray(12)]),
  Buffer.concat([queryPacket('web.lab').subarray(0, 10), Buffer.from([0, 3]), queryPacket('web.lab').subarray(12), OPT, OPT, OPT]),
  Buffer.concat([header(0x0100, 1, 0, 0, 65535), queryPacket('web.lab').subarray(12), OPT]),
];

const mutations = fc.sample(fc.oneof(
  fc.uint8Array({ maxLength: 512 }).map((a) => Buffer.from(a)),
  fc.tuple(fc.constantFrom(...NASTY, queryPacket('web.lab'), queryPacket('db', 'AAAA', { edns: { udpSize: 4096 } }), queryPacket('example.com')),
    fc.array(fc.tuple(fc.nat(60), fc.nat(255)), { maxLength: 4 }), fc.option(fc.nat(60)))
    .map(([base, edits, cut]) => {
      const out = Buffer.from(base);
      for (const [at, v] of edits) if (at < out.length) out[at] = v;
      return cut === null ? out : out.subarray(0, cut);
    }),
), { numRuns: 2_000, seed: 7 });

describe('fuzz', () => {
  let daemon: RunningDaemon;

  before(async () => {
    daemon = await startDaemon(['--registry', path.join(ROOT, 'fixtures/lab'), '--listen', '127.0.0.1:0']);
  });
  after(() => daemon?.stop());

  it('100 000 mutated packets leave the daemon up, with flat memory, answering', async () => {
    await dig(daemon.server, 'web.lab');
    const baseline = await rssMb(daemon.proc.pid!);
    const socket = dgram.createSocket('udp4');
    socket.on('message', () => {});
    const packets = [...NASTY, ...mutations];
    let sent = 0;
    while (sent < 100_000) {
      // In batches that wait for the kernel, so the test measures the daemon, not a full buffer.
      await Promise.all(Array.from({ length: 500 }, (_, i) => new Promise<void>((resolve) => {
        socket.send(packets[(sent + i) % packets.length], daemon.port, '127.0.0.1', () => resolve());
      })));
      sent += 500;
    }
    // The same over TCP: a stream of the mutated messages, framed.
    const tcp = net.connect(daemon.port, '127.0.0.1');
    tcp.on('error', () => {});
    tcp.on('data', () => {});
    tcp.write(Buffer.concat(packets.slice(0, 2000).map((p) => frame(p.subarray(0, 65535)))));
    await new Promise((r) => setTimeout(r, 500));
    tcp.destroy();
    socket.close();
    const grown = (await rssMb(daemon.proc.pid!)) - baseline;
    assert.equal(daemon.exitCode, null, 'daemon still running');
    assert.ok(grown < 30, `RSS grew by ${grown.toFixed(1)} MB`);
    const r = await dig(daemon.server, 'web.lab');
    assert.equal(r.answers[0]?.data, '10.77.0.10');
    const t = await dig(daemon.server, '+tcp', 'db.lab', 'AAAA');
    assert.equal(t.answers[0]?.data, 'fd77::11');
  });
});
