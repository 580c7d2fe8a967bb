// A well-behaved client that keeps asking while something else happens (a hostile client, a big
// registry file): one UDP query every `everyMs`, each with its own id. Like a stub resolver, it
// asks again (same id) when no answer came within `retryMs`, and counts a query lost only when
// none of its `attempts` was answered. Tests assert that such a client is still answered, not how
// fast: a busy machine delays datagrams and drops some on its own, and a stub resolver's retry
// is what a user relies on then. Latency figures are reported for the test's diagnostics only;
// the figures that matter are measured by bench/.
import dgram from 'node:dgram';
import { queryPacket } from './packets.js';

export interface SteadyResult {
  sent: number;
  answered: number;
  /** Answers that were not NOERROR (REFUSED, SERVFAIL...): answered, but not with the name. */
  refused: number;
  /** Queries that needed more than one attempt. */
  retried: number;
  lost: number;
  p50: number;
  p99: number;
  max: number;
}

export interface SteadyOptions {
  everyMs?: number;
  /** Ask again after this long without an answer (with one attempt: how long to wait for it). */
  retryMs?: number;
  /** Attempts per query before it counts as lost. */
  attempts?: number;
  host?: string;
}

interface Waiting { firstAt: number; lastAt: number; attempts: number; packet: Buffer }

export function steadyClient(port: number, name: string, options: SteadyOptions = {}) {
  const { everyMs = 2, retryMs = 500, attempts = 3, host = '127.0.0.1' } = options;
  const socket = dgram.createSocket('udp4');
  const waiting = new Map<number, Waiting>();
  const latencies: number[] = [];
  let sent = 0;
  let retried = 0;
  let lost = 0;
  let refused = 0;
  let id = 0;
  const now = () => performance.now();
  socket.on('message', (msg) => {
    if (msg.length < 2) return;
    const query = waiting.get(msg.readUInt16BE(0));
    if (query === undefined) return;
    waiting.delete(msg.readUInt16BE(0));
    if (query.attempts > 1) retried++;
    if (msg.length > 3 && (msg[3] & 0x0f) !== 0) refused++;
    latencies.push(now() - query.firstAt);
  });
  socket.on('error', () => {});
  const retryOrGiveUp = () => {
    const at = now();
    for (const [qid, query] of waiting) {
      if (at - query.lastAt < retryMs) continue;
      if (query.attempts >= attempts) { waiting.delete(qid); lost++; continue; }
      query.attempts++;
      query.lastAt = at;
      socket.send(query.packet, port, host);
    }
  };
  const ask = () => {
    retryOrGiveUp();
    id = (id + 1) & 0xffff;
    const packet = queryPacket(name, 'A', { id });
    const at = now();
    waiting.set(id, { firstAt: at, lastAt: at, attempts: 1, packet });
    sent++;
    socket.send(packet, port, host);
  };
  const tick = setInterval(ask, everyMs);
  let stopped: Promise<SteadyResult> | undefined;
  const finish = async (): Promise<SteadyResult> => {
    clearInterval(tick);
    await new Promise<void>((resolve) => {
      const settle = setInterval(() => {
        retryOrGiveUp();
        if (waiting.size === 0) { clearInterval(settle); resolve(); }
      }, 10);
    });
    socket.close();
    const sorted = [...latencies].sort((a, b) => a - b);
    const at = (q: number) => Number((sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN).toFixed(2));
    return { sent, answered: latencies.length, refused, retried, lost, p50: at(0.5), p99: at(0.99), max: at(1) };
  };
  return {
    /** How many queries were asked and answered so far. */
    progress: () => ({ sent, answered: latencies.length }),
    /** Stops asking, lets every query still waiting get its answer or use up its attempts, and reports (once; later calls get the same report). */
    stop: (): Promise<SteadyResult> => (stopped ??= finish()),
  };
}

/** Resident memory of a process, MB. */
export async function rssMb(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}
