// The client of bench/egress.ts, run inside a namespace (ip netns exec): asks 127.0.0.11 for
// COUNT distinct names TAG<i>-t<TTL>.allow.test (distinct, so no answer comes from the cache and
// every allowed one brings new addresses), either one at a time (RATE 0: each query's latency) or
// at RATE queries a second without waiting (the set-size run). SAME 1 asks one name TAG-t<TTL>
// COUNT times instead (answered from the cache after the first). Prints one JSON line:
// { latenciesMs, failed } (failed: no answer within 2 s, or not NOERROR with an address).
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';

const [tag, countText, ttlText, rateText, sameText] = process.argv.slice(2);
const same = sameText === '1';
const count = Number(countText);
const ttl = Number(ttlText);
const rate = Number(rateText ?? 0);
const TIMEOUT_MS = 2000;

const socket = dgram.createSocket('udp4');
const pending = new Map<number, { start: bigint; done: (ok: boolean) => void }>();
socket.on('message', (m) => {
  const id = m.readUInt16BE(0);
  const p = pending.get(id);
  if (p === undefined) return;
  pending.delete(id);
  const reply = dnsPacket.decode(m) as dnsPacket.Packet & { rcode?: string };
  p.done(reply.rcode === 'NOERROR' && (reply.answers ?? []).some((a) => a.type === 'A'));
});

const latenciesMs: number[] = [];
let failed = 0;

/** One query; resolves when it is answered or timed out, its latency recorded when it succeeded. */
function ask(i: number): Promise<void> {
  const id = i % 65536;
  const name = same ? `${tag}-t${ttl}.allow.test` : `${tag}${i}-t${ttl}.allow.test`;
  return new Promise((resolve) => {
    const timer = setTimeout(() => { pending.delete(id); failed++; resolve(); }, TIMEOUT_MS);
    const start = process.hrtime.bigint();
    pending.set(id, {
      start,
      done: (ok) => {
        clearTimeout(timer);
        if (ok) latenciesMs.push(Number(process.hrtime.bigint() - start) / 1e6);
        else failed++;
        resolve();
      },
    });
    socket.send(dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: 'A', class: 'IN' }] }), 53, '127.0.0.11');
  });
}

async function main(): Promise<void> {
  if (rate === 0) {
    for (let i = 0; i < count; i++) await ask(i);
  } else {
    const all: Promise<void>[] = [];
    const t0 = performance.now();
    for (let i = 0; i < count; i++) {
      const due = t0 + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      all.push(ask(i));
    }
    await Promise.all(all);
  }
  socket.close();
  process.stdout.write(`${JSON.stringify({ latenciesMs, failed })}\n`);
}

void main();
