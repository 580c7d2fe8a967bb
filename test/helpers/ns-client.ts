// Clients that run inside a namespace (`ip netns exec NS node ns-client.js MODE ...`), where a
// test process cannot go: a steady client that reports what it saw as JSON, and the hostile
// clients of the tenant-isolation tests. Each one stops by itself after its duration.
//   steady   SERVER NAME SECONDS [EVERY_MS [ATTEMPTS]]
//                                     one query every EVERY_MS (2), each asked up to ATTEMPTS times (3)
//                                     (steady-client.ts); says "asking" on stderr once the first query
//                                     is answered, and prints {sent, answered, retried, lost, ...} at the end
//   pipeline SERVER NAME SECONDS      2 TCP connections pipelining 10 000 queries each, never reading
//   flood    SERVER ZONE SECONDS      distinct names under ZONE, as fast as answers come back (512 in flight)
import dgram from 'node:dgram';
import net from 'node:net';
import { frame } from '../../src/wire/tcp-framing.js';
import { queryPacket } from './packets.js';
import { steadyClient } from './steady-client.js';

const [mode, server, name, seconds, ...extra] = process.argv.slice(2);
const [host, port] = [server.slice(0, server.lastIndexOf(':')), Number(server.slice(server.lastIndexOf(':') + 1))];
const durationMs = Number(seconds) * 1000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function steady(): Promise<void> {
  const [everyMs = 2, attempts = 3] = extra.map(Number);
  const client = steadyClient(port, name, { host, everyMs, attempts, retryMs: attempts > 1 ? 500 : 5000 });
  const started = Date.now();
  while (client.progress().answered === 0 && Date.now() - started < durationMs) await sleep(5);
  process.stderr.write('asking\n');
  await sleep(durationMs - (Date.now() - started));
  process.stdout.write(`${JSON.stringify(await client.stop())}\n`);
}

async function pipeline(): Promise<void> {
  const burst = Buffer.concat(Array.from({ length: 10_000 }, () => frame(queryPacket(name))));
  const sockets = [1, 2].map(() => {
    const s = net.connect(port, host, () => { s.pause(); s.write(burst); });
    s.on('error', () => {});
    return s;
  });
  await sleep(durationMs);
  for (const s of sockets) s.destroy();
}

async function flood(): Promise<void> {
  const socket = dgram.createSocket('udp4');
  let n = 0;
  const send = () => socket.send(queryPacket(`u${n++}-${process.pid}.${name}`, 'A', { id: n & 0xffff }), port, host);
  socket.on('message', send);
  for (let i = 0; i < 512; i++) send();
  // Refill what was dropped or refused without an answer, so the pressure never lets up.
  const refill = setInterval(() => { for (let i = 0; i < 64; i++) send(); }, 10);
  await sleep(durationMs);
  clearInterval(refill);
  socket.close();
}

await ({ steady, pipeline, flood } as Record<string, () => Promise<void>>)[mode]();
