// The attacker of the attack stage: one of the hostile clients of issue #7, bounded in time
// (--secs) and in count (--max packets or connection opens), aimed at one server address that lies
// inside the bench's own pb-* topology (or 127.0.0.11 of a pb-* namespace). Prints one JSON line.
//   node attack.js --kind KIND --server ADDR [--port 53] [--secs 10] [--conns N] [--max N]
// kinds:
//   pipeline  --conns (4) TCP connections each pipeline 20 000 queries for --name (a ~4 KB answer)
//             and never read a byte
//   slow      --conns (300) TCP connections each send one byte of a query every --interval-ms (3000);
//             a connection the server closes is opened again 1 s later (slot holding)
//   idle      --conns (2000) TCP connections that send nothing; reopened 1 s after a close
//   frames    --conns (200) TCP connections: half send zero-length frames, half a 65535-byte frame
//             header and 1 000 bytes of it, then nothing; reopened 1 s after a close
//   fuzz      random and mutated UDP packets as fast as the socket takes them
//   flood     UDP queries for unique random names under --zone (fl.test), as fast as possible
//   tenant    a tenant of one network asks for another network's names, one query at a time (--conns
//             (8) at once): o1..o100, o1.pbother.. and the PTRs of 10.97.0.1..100 (the bench's
//             network pbother); `leaked` counts replies with an answer record (must be 0)
//   bigcache  --conns (4) TCP connections each ask unique names under --zone (bigc.test) whose
//             answers are large (~56 KB from big-upstream.js), 4 in flight per connection, reading
//             every reply: answers the server caches, as many as it takes in --secs
import dgram from 'node:dgram';
import net from 'node:net';
import { randomBytes, randomInt } from 'node:crypto';
import { parseArgs } from 'node:util';
import { framed, query, replyHead } from './wire.js';

const { values: opt } = parseArgs({
  options: {
    kind: { type: 'string' },
    server: { type: 'string' },
    port: { type: 'string', default: '53' },
    secs: { type: 'string', default: '10' },
    conns: { type: 'string' },
    max: { type: 'string' },
    name: { type: 'string', default: 'big' },
    zone: { type: 'string', default: 'fl.test' },
    'interval-ms': { type: 'string', default: '3000' },
  },
});
const server = opt.server ?? '';
if (!net.isIP(server)) throw new Error('--server ADDR is required');
const port = Number(opt.port);
const secs = Number(opt.secs);
if (!(secs > 0 && secs <= 600)) throw new Error('--secs must be in (0, 600]');
const endAt = Date.now() + secs * 1000;
const stats = { kind: opt.kind, sent: 0, received: 0, opened: 0, closed_by_server: 0, connect_errors: 0, leaked: 0 };
const sockets = new Set<net.Socket>();

/** Keep N TCP connections open until the end, each driven by BEHAVE; reopened when closed. */
function hold(n: number, maxOpens: number, behave: (sock: net.Socket, i: number) => void, reopen = true): void {
  const open = (i: number) => {
    if (Date.now() >= endAt || stats.opened >= maxOpens) return;
    stats.opened++;
    const sock = net.connect({ host: server, port });
    sockets.add(sock);
    let connected = false;
    sock.on('connect', () => { connected = true; behave(sock, i); });
    sock.on('data', (d) => { stats.received += d.length; });
    sock.on('error', () => { if (!connected) stats.connect_errors++; });
    sock.on('close', () => {
      sockets.delete(sock);
      if (connected && Date.now() < endAt) stats.closed_by_server++;
      if (reopen) setTimeout(() => open(i), 1000).unref(); // as a persistent client would, not a connect flood
    });
  };
  for (let i = 0; i < n; i++) open(i);
}

/** Send packets from MAKE over one UDP socket as fast as the kernel takes them (at most 256 queued). */
function blast(make: () => Buffer, max: number): void {
  const udp = dgram.createSocket('udp4');
  let pending = 0;
  let scheduled = false; // one pump queued at a time, so that replies and timers get their turn
  udp.on('message', () => { stats.received++; });
  udp.on('error', () => undefined);
  const pump = () => {
    scheduled = false;
    while (pending < 256 && stats.sent < max && Date.now() < endAt) {
      pending++;
      stats.sent++;
      udp.send(make(), port, server, () => {
        pending--;
        if (pending < 128 && !scheduled) { scheduled = true; setImmediate(pump); }
      });
    }
  };
  udp.bind(0, pump);
  setTimeout(() => udp.close(), secs * 1000 + 200).unref();
}

const num = (s: string | undefined, dflt: number) => (s === undefined ? dflt : Number(s));

function header(id: number, flags: number, qd: number, an: number, ns: number, ar: number): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(id, 0); h.writeUInt16BE(flags, 2); h.writeUInt16BE(qd, 4);
  h.writeUInt16BE(an, 6); h.writeUInt16BE(ns, 8); h.writeUInt16BE(ar, 10);
  return h;
}
const TYPE_A_IN = Buffer.from([0, 1, 0, 1]);
const OPT = Buffer.from([0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]); // root, OPT, 1232, no options

/** One hostile UDP packet: the shapes issue #7 lists, and random mutations of a good query. */
function fuzzPacket(): Buffer {
  const id = randomInt(65536);
  switch (randomInt(10)) {
    case 0: return randomBytes(randomInt(600));
    case 1: return randomBytes(randomInt(12)); // truncated header
    case 2: return Buffer.concat([header(id, 0x0100, 1, 0, 0, 0), Buffer.from([0xc0, 12]), TYPE_A_IN]); // pointer to itself
    case 3: return Buffer.concat([header(id, 0x0100, 1, 0, 0, 0), Buffer.from([0xc0, 14, 0xc0, 12]), TYPE_A_IN]); // two-pointer loop
    case 4: { // a label longer than 63 (and often longer than the packet)
      const len = 64 + randomInt(192);
      return Buffer.concat([header(id, 0x0100, 1, 0, 0, 0), Buffer.from([len]), randomBytes(randomInt(len + 1)), Buffer.from([0]), TYPE_A_IN]);
    }
    case 5: { // a name over 255 bytes
      const labels = Array.from({ length: 5 }, () => Buffer.concat([Buffer.from([63]), Buffer.alloc(63, 0x61)]));
      return Buffer.concat([header(id, 0x0100, 1, 0, 0, 0), ...labels, Buffer.from([0]), TYPE_A_IN]);
    }
    case 6: { // qdcount 0, 2 or 65535 around one question
      const q = query(id, `c${randomInt(1000)}`);
      q.writeUInt16BE([0, 2, 65535][randomInt(3)], 4);
      return q;
    }
    case 7: { // several OPT records
      const q = query(id, `c${randomInt(1000)}`);
      const n = 2 + randomInt(3);
      q.writeUInt16BE(n, 10);
      return Buffer.concat([q, ...Array.from({ length: n }, () => OPT)]);
    }
    case 8: { // a good query with 1-3 random bytes changed
      const q = randomInt(2) ? query(id, `c${randomInt(1000)}`) : query(id, `x${randomInt(1e9)}.${opt.zone}`);
      for (let k = 1 + randomInt(3); k > 0; k--) q[randomInt(q.length)] = randomInt(256);
      return q;
    }
    default: { // a response, or another opcode
      const q = query(id, `c${randomInt(1000)}`);
      q[2] = randomInt(2) ? 0x80 | q[2] : (randomInt(16) << 3) | 1;
      return q;
    }
  }
}

switch (opt.kind) {
  case 'pipeline': {
    const burst = Buffer.concat(Array.from({ length: 20_000 }, (_, i) => framed(query(i, opt.name ?? 'big'))));
    hold(num(opt.conns, 4), num(opt.max, num(opt.conns, 4)), (sock) => {
      sock.pause(); // never read: replies pile up on the server's side
      stats.sent += 20_000;
      sock.write(burst);
    }, false);
    break;
  }
  case 'slow': {
    const n = num(opt.conns, 300);
    const q = framed(query(1, 'c1'));
    const every = num(opt['interval-ms'], 3000);
    hold(n, num(opt.max, n * 20), (sock) => {
      let at = 0;
      const drip = () => {
        if (sock.destroyed || Date.now() >= endAt) return;
        sock.write(q.subarray(at % q.length, (at % q.length) + 1));
        at++; stats.sent++;
        setTimeout(drip, every).unref();
      };
      drip();
    });
    break;
  }
  case 'idle': {
    const n = num(opt.conns, 2000);
    hold(n, num(opt.max, n * 5), () => undefined);
    break;
  }
  case 'frames': {
    const n = num(opt.conns, 200);
    const zero = Buffer.alloc(2);
    const huge = Buffer.concat([Buffer.from([0xff, 0xff]), randomBytes(1000)]);
    hold(n, num(opt.max, n * 20), (sock, i) => {
      if (i % 2) { sock.write(huge); stats.sent++; return; }
      const again = () => {
        if (sock.destroyed || Date.now() >= endAt) return;
        sock.write(zero); stats.sent++;
        setTimeout(again, 100).unref();
      };
      again();
    });
    break;
  }
  case 'fuzz':
    blast(fuzzPacket, num(opt.max, 5_000_000));
    break;
  case 'flood': {
    let seq = 0;
    const salt = randomBytes(3).toString('hex');
    blast(() => query(seq & 0xffff, `f${salt}${(seq++).toString(36)}.${opt.zone}`), num(opt.max, 5_000_000));
    break;
  }
  case 'tenant': {
    const asks = Array.from({ length: 100 }, (_, i) => [query(0, `o${i + 1}`), query(0, `o${i + 1}.pbother`), query(0, `${i + 1}.0.97.10.in-addr.arpa`, 12)]).flat();
    const max = num(opt.max, 200_000);
    for (let c = 0; c < num(opt.conns, 8); c++) {
      const sock = dgram.createSocket(net.isIPv6(server) ? 'udp6' : 'udp4');
      let timer: NodeJS.Timeout | undefined;
      const next = () => {
        clearTimeout(timer);
        if (Date.now() >= endAt || stats.sent >= max) { sock.close(); return; }
        const q = Buffer.from(asks[stats.sent % asks.length]);
        q.writeUInt16BE(randomInt(65536), 0);
        stats.sent++;
        sock.send(q, port, server);
        timer = setTimeout(next, 1000); // unanswered: the next one
      };
      sock.on('message', (msg) => {
        const head = replyHead(msg);
        if (!head) return;
        stats.received++;
        if (head.answers > 0) stats.leaked++;
        next();
      });
      next();
    }
    break;
  }
  case 'bigcache': {
    let seq = 0;
    const salt = randomBytes(3).toString('hex');
    const ask = (sock: net.Socket) => {
      if (sock.destroyed || Date.now() >= endAt) return;
      stats.sent++;
      sock.write(framed(query(seq & 0xffff, `b${salt}${(seq++).toString(36)}.${opt.zone}`)));
    };
    hold(num(opt.conns, 4), num(opt.max, 1000), (sock) => {
      // A reply read whole (its 2-byte length, then its bytes) makes room for the next question.
      let pending = Buffer.alloc(0);
      sock.on('data', (d) => {
        pending = Buffer.concat([pending, d]);
        while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
          pending = pending.subarray(2 + pending.readUInt16BE(0));
          ask(sock);
        }
      });
      for (let i = 0; i < 4; i++) ask(sock);
    });
    break;
  }
  default:
    throw new Error('--kind must be pipeline, slow, idle, frames, fuzz, flood, tenant or bigcache');
}

setTimeout(() => {
  for (const s of sockets) s.destroy();
  process.stdout.write(`${JSON.stringify(stats)}\n`);
  setTimeout(() => process.exit(0), 200).unref();
}, secs * 1000 + 300);
