// A well-behaved client that keeps asking while something else happens (a hostile client, a big
// registry file): one UDP query every `everyMs`, each with its own id, answered or counted lost
// after `timeoutMs`. What the tests assert on is what such a client would notice.
import dgram from 'node:dgram';
import { queryPacket } from './packets.js';

export interface SteadyResult {
  sent: number;
  answered: number;
  lost: number;
  p50: number;
  p99: number;
  max: number;
}

export function steadyClient(port: number, name: string, options: { everyMs?: number; timeoutMs?: number; host?: string } = {}) {
  const { everyMs = 2, timeoutMs = 1000, host = '127.0.0.1' } = options;
  const socket = dgram.createSocket('udp4');
  const waiting = new Map<number, number>();
  const latencies: number[] = [];
  let sent = 0;
  let lost = 0;
  let id = 0;
  socket.on('message', (msg) => {
    const started = waiting.get(msg.readUInt16BE(0));
    if (started === undefined) return;
    waiting.delete(msg.readUInt16BE(0));
    latencies.push(Number(process.hrtime.bigint() - BigInt(started)) / 1e6);
  });
  const tick = setInterval(() => {
    const now = Number(process.hrtime.bigint());
    for (const [qid, started] of waiting) if ((now - started) / 1e6 > timeoutMs) { waiting.delete(qid); lost++; }
    id = (id + 1) & 0xffff;
    waiting.set(id, now);
    sent++;
    socket.send(queryPacket(name, 'A', { id }), port, host);
  }, everyMs);
  return {
    /** Stops sending, waits for the last answers, and reports. */
    async stop(): Promise<SteadyResult> {
      clearInterval(tick);
      await new Promise((r) => setTimeout(r, timeoutMs));
      lost += waiting.size;
      socket.close();
      const sorted = [...latencies].sort((a, b) => a - b);
      const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
      return { sent, answered: latencies.length, lost, p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] ?? NaN };
    },
  };
}

/** Resident memory of a process, MB. */
export async function rssMb(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}
