// Clients that run inside a namespace (`ip netns exec NS node ns-client.js MODE ...`), where a
// test process cannot go: a steady client that reports what it saw as JSON, and the hostile
// clients of the tenant-isolation tests. Each one stops by itself after its duration.
//   steady   SERVER NAME SECONDS      one query every 2 ms; prints {sent, answered, lost, p50, p99, max}
//   pipeline SERVER NAME SECONDS      4 TCP connections pipelining 20 000 queries each, never reading
//   flood    SERVER ZONE SECONDS      distinct names under ZONE, as fast as answers come back (512 in flight)
import dgram from 'node:dgram';
import net from 'node:net';
import { frame } from '../../src/wire/tcp-framing.js';
import { queryPacket } from './packets.js';
import { steadyClient } from './steady-client.js';

const [mode, server, name, seconds] = process.argv.slice(2);
const [host, port] = [server.slice(0, server.lastIndexOf(':')), Number(server.slice(server.lastIndexOf(':') + 1))];
const durationMs = Number(seconds) * 1000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function steady(): Promise<void> {
  const client = steadyClient(port, name, { host });
  await sleep(durationMs);
  process.stdout.write(`${JSON.stringify(await client.stop())}\n`);
}

async function pipeline(): Promise<void> {
  const burst = Buffer.concat(Array.from({ length: 20_000 }, () => frame(queryPacket(name))));
  const sockets = [1, 2, 3, 4].map(() => {
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
