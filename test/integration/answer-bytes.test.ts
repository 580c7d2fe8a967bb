// A client is charged for the bytes of the answers it is served, not only for its queries: one
// asking for large answers (over TCP, from an upstream that answers with thousands of records) is
// refused after a few of them, from the upstream and from the cache alike, while a neighbour is
// still answered. Real sockets, the fake upstream, clients on distinct loopback addresses.
import assert from 'node:assert/strict';
import net from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { FakeUpstream } from '../helpers/fake-upstream.js';
import { decode, queryPacket } from '../helpers/packets.js';
import { tempDir } from '../helpers/tmp.js';
import { FrameReader, frame } from '../../src/wire/tcp-framing.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** ~56 KB over TCP: 3 500 A records (as the bench's bigcache attack). */
const BIG = Array.from({ length: 3500 }, (_, i) => `198.18.${i >> 8}.${i & 0xff}`);

/** Every name under big.test has the 3 500 records; small.test one; the rest is NXDOMAIN. */
const zone = new Proxy({ 'small.test': ['192.0.2.10'] } as Record<string, string[]>, {
  get: (target, name) => (typeof name === 'string' && name.endsWith('.big.test') ? BIG : target[name as string]),
});

/** One query over TCP from `source`: the reply's RCODE and its number of answers. */
async function askTcp(server: string, name: string, source: string): Promise<{ rcode: string; answers: number }> {
  const port = Number(server.slice(server.lastIndexOf(':') + 1));
  const socket = net.connect({ host: '127.0.0.1', port, localAddress: source });
  socket.on('error', () => {});
  try {
    const reply = await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply to ${name} within 5 s`)), 5000);
      const reader = new FrameReader();
      socket.on('data', (chunk) => {
        const [message] = reader.push(chunk);
        if (message) { clearTimeout(timer); resolve(message); }
      });
      socket.on('close', () => { clearTimeout(timer); reject(new Error(`connection closed before the reply to ${name}`)); });
      socket.write(frame(queryPacket(name)));
    });
    const decoded = decode(reply);
    return { rcode: decoded.rcode!, answers: decoded.answers?.length ?? 0 };
  } finally {
    socket.destroy();
  }
}

async function start(config: string): Promise<{ d: RunningDaemon; u: FakeUpstream }> {
  // Large answers come over TCP only: over UDP the upstream says TC.
  const u = await FakeUpstream.start({ zone, behaviour: 'truncate-udp' });
  cleanups.push(() => u.stop());
  const dir = tempDir();
  cleanups.push(dir.cleanup);
  const d = await startDaemon(['--listen', '127.0.0.1:0', '--config', dir.write('c.yaml', config), '--no-resolv-conf', '--upstream', u.spec]);
  cleanups.push(() => d.stop());
  return { d, u };
}

/** Asks `names` in turn from `source` until one is refused; the RCODEs it got. */
async function untilRefused(server: string, names: string[], source: string): Promise<string[]> {
  const rcodes: string[] = [];
  for (const name of names) {
    rcodes.push((await askTcp(server, name, source)).rcode);
    if (rcodes.at(-1) === 'REFUSED') break;
  }
  return rcodes;
}

describe('answer bytes count against a client\'s share', () => {
  it('refuses a client asking for large answers, from the upstream and from the cache, while a neighbour is answered', async () => {
    // 100 queries a second: 30 queries fit in that burst; 30 answers of ~46 queries' bytes each do not.
    const { d, u } = await start('forward: { clientQueriesPerSecond: 100 }\n');
    const names = (prefix: string) => Array.from({ length: 30 }, (_, i) => `${prefix}${i}.big.test`);

    const fresh = await untilRefused(d.server, names('a'), '127.0.0.2');
    assert.equal(fresh.at(-1), 'REFUSED', `the attacker is refused within 30 queries: ${fresh.join(' ')}`);
    assert.ok(fresh.slice(0, -1).every((r) => r === 'NOERROR'), 'it was answered until then');
    assert.equal(u.received.filter((r) => r.name.startsWith('a')).length, fresh.length - 1, 'a refused query is not asked upstream');

    // The neighbour is answered, small and large answers alike; its large answer is now cached.
    assert.deepEqual(await askTcp(d.server, 'small.test', '127.0.0.3'), { rcode: 'NOERROR', answers: 1 });
    assert.deepEqual(await askTcp(d.server, 'shared.big.test', '127.0.0.3'), { rcode: 'NOERROR', answers: 3500 });

    // Large answers from the cache cost the attacker too.
    const cached = await untilRefused(d.server, Array(30).fill('shared.big.test'), '127.0.0.2');
    assert.equal(cached.at(-1), 'REFUSED', `the attacker is refused large cached answers within 30 queries: ${cached.join(' ')}`);
    assert.deepEqual(await askTcp(d.server, 'shared.big.test', '127.0.0.3'), { rcode: 'NOERROR', answers: 3500 });
    assert.equal(u.countFor('shared.big.test'), 1, 'asked upstream once, then served from the cache');
  });
});
