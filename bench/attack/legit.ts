// The legitimate client of the attack stage: while an attack runs from another namespace, it asks
// its own resolver for local names at a fixed rate over UDP (one socket, sequential ids, each
// query's latency recorded, no answer within --timeout-ms = lost), and every 100 ms makes a fresh
// TCP connection for one query (can a newcomer still get a TCP slot?). Prints one JSON line.
//   node legit.js --server ADDR [--port 53] [--secs 10] [--qps 1000] [--prefix c] [--count 1000]
//                 [--timeout-ms 1000] [--tcp-per-sec 10]     (names asked: c0 .. c999, in turn)
import dgram from 'node:dgram';
import net from 'node:net';
import { parseArgs } from 'node:util';
import { framed, query, replyHead } from './wire.js';

const { values: opt } = parseArgs({
  options: {
    server: { type: 'string' },
    port: { type: 'string', default: '53' },
    secs: { type: 'string', default: '10' },
    qps: { type: 'string', default: '1000' },
    prefix: { type: 'string', default: 'c' },
    count: { type: 'string', default: '1000' },
    'timeout-ms': { type: 'string', default: '1000' },
    'tcp-per-sec': { type: 'string', default: '10' },
  },
});
const server = opt.server ?? '';
if (!net.isIP(server)) throw new Error('--server ADDR is required');
const port = Number(opt.port);
const secs = Number(opt.secs);
const qps = Number(opt.qps);
const names = Number(opt.count);
const timeoutMs = Number(opt['timeout-ms']);
const tcpPerSec = Number(opt['tcp-per-sec']);
if (![port, secs, qps, names, timeoutMs, tcpPerSec].every((n) => Number.isFinite(n) && n >= 0) || secs > 600 || qps > 100_000) {
  throw new Error('bad numeric option');
}

const total = Math.floor(secs * qps);
const sentAt = new Float64Array(65536); // by id: send time in ms, 0 = nothing outstanding
const latencies: number[] = [];
let sent = 0;
let errors = 0; // replies that are not NOERROR with an answer
let late = 0; // replies after their timeout (counted lost)
const now = () => performance.now();

const udp = dgram.createSocket('udp4');
udp.on('message', (msg) => {
  const head = replyHead(msg);
  if (!head) return;
  const t0 = sentAt[head.id];
  if (t0 === 0) { late++; return; }
  sentAt[head.id] = 0;
  const ms = now() - t0;
  if (ms > timeoutMs) { late++; return; }
  latencies.push(ms);
  if (head.rcode !== 0 || head.answers === 0) errors++;
});
udp.on('error', () => undefined); // ICMP unreachable while a server is down: counted as lost

let tcpSent = 0;
let tcpOk = 0;
function tcpProbe(): void {
  tcpSent++;
  const id = tcpSent & 0xffff;
  const sock = net.connect({ host: server, port });
  const timer = setTimeout(() => sock.destroy(), timeoutMs);
  let buf = Buffer.alloc(0);
  sock.on('connect', () => sock.write(framed(query(id, `${opt.prefix}${tcpSent % names}`))));
  sock.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const head = replyHead(buf.subarray(2));
      if (head && head.id === id && head.rcode === 0 && head.answers > 0) tcpOk++;
      clearTimeout(timer);
      sock.destroy();
    }
  });
  sock.on('error', () => undefined);
  sock.on('close', () => clearTimeout(timer));
}

udp.bind(0, () => {
  const start = now();
  let tcpDue = 0;
  const tick = setInterval(() => {
    const elapsed = now() - start;
    const due = Math.min(total, Math.floor((elapsed / 1000) * qps));
    while (sent < due) {
      const id = sent & 0xffff;
      const t = now();
      // An id still outstanding after 65536 sends is long past its timeout: reuse it.
      sentAt[id] = t;
      udp.send(query(id, `${opt.prefix}${sent % names}`), port, server);
      sent++;
    }
    const tcpWanted = Math.floor((elapsed / 1000) * tcpPerSec);
    while (tcpDue < tcpWanted && elapsed < secs * 1000) { tcpDue++; tcpProbe(); }
    if (sent >= total) {
      clearInterval(tick);
      setTimeout(finish, timeoutMs + 50);
    }
  }, 1);
});

function finish(): void {
  udp.close();
  const sorted = Float64Array.from(latencies).sort();
  const pct = (p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : NaN);
  const round = (x: number) => (Number.isFinite(x) ? Math.round(x * 1000) / 1000 : null);
  process.stdout.write(`${JSON.stringify({
    sent, answered: latencies.length, lost: sent - latencies.length, late, errors,
    p50_ms: round(pct(50)), p99_ms: round(pct(99)), max_ms: round(sorted.length ? sorted[sorted.length - 1] : NaN),
    tcp_sent: tcpSent, tcp_ok: tcpOk,
  })}\n`);
  setTimeout(() => process.exit(0), 100).unref();
}
