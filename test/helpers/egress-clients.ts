// Clients the egress tests run inside a namespace (`ip netns exec NS node egress-clients.js MODE ...`),
// where what they reach is what the namespace's firewall lets through.
//   rotate PORT TOTAL CONCURRENCY NAME...  TOTAL lookups of the NAMEs (A, at 127.0.0.11), each followed at
//                                         once by a TCP connect to the answered address that must say
//                                         "hello"; prints {lookups, connected, blocked, ...} as JSON
//   probe HOST PORT [EVERY_MS]            connects again and again (each given 1 s) until killed; prints
//                                         one line per attempt: "hello", an error code or "timeout"; with
//                                         EVERY_MS a new attempt starts that often, not waiting for the last
//                                         (so a moment the address is open cannot fall between two SYNs)
//   hold HOST PORT                        one connection kept open: prints "connected", then sends each
//                                         stdin line and prints what comes back
import { Resolver } from 'node:dns/promises';
import net from 'node:net';
import readline from 'node:readline';

const [mode, ...args] = process.argv.slice(2);

/** "hello" when the server greets, else why not; `timeoutMs` bounds a dropped SYN. */
function greet(host: string, port: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, host);
    const done = (what: string) => { clearTimeout(timer); s.destroy(); resolve(what); };
    const timer = setTimeout(() => done('timeout'), timeoutMs);
    s.on('data', (d) => done(String(d).trim()));
    s.on('error', (e: NodeJS.ErrnoException) => done(e.code ?? 'error'));
  });
}

async function rotate(port: number, total: number, concurrency: number, names: string[]): Promise<void> {
  const resolver = new Resolver({ timeout: 3000, tries: 2 });
  resolver.setServers(['127.0.0.11']);
  const result = { lookups: 0, connected: 0, blocked: [] as Array<{ name: string; address: string; ttl: number; why: string; sinceAnswerMs: number }>, dnsErrors: [] as string[], addresses: 0, maxSinceAnswerMs: 0, ms: 0 };
  const seen = new Set<string>();
  const started = Date.now();
  let next = 0;
  const worker = async () => {
    while (next < total) {
      const name = names[next++ % names.length];
      let answer;
      try {
        [answer] = await resolver.resolve4(name, { ttl: true });
      } catch (err) {
        if (result.dnsErrors.length < 20) result.dnsErrors.push(`${name}: ${(err as NodeJS.ErrnoException).code}`);
        continue;
      }
      result.lookups++;
      seen.add(answer.address);
      const answered = Date.now();
      const why = await greet(answer.address, port, 3000);
      // How long after the answer the connection was settled (a blocked SYN waits out the timeout).
      const sinceAnswerMs = Date.now() - answered;
      if (why === 'hello') {
        result.connected++;
        result.maxSinceAnswerMs = Math.max(result.maxSinceAnswerMs, sinceAnswerMs);
      } else if (result.blocked.length < 50) result.blocked.push({ name, address: answer.address, ttl: answer.ttl, why, sinceAnswerMs });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  result.ms = Date.now() - started;
  result.addresses = seen.size;
  console.log(JSON.stringify(result));
}

async function probe(host: string, port: number, everyMs: number): Promise<void> {
  if (everyMs > 0) setInterval(() => void greet(host, port, 1000).then((what) => console.log(what)), everyMs);
  else for (;;) console.log(await greet(host, port, 1000));
}

function hold(host: string, port: number): void {
  const s = net.connect(port, host, () => console.log('connected'));
  s.on('data', (d) => console.log(String(d).trim()));
  s.on('error', (e: NodeJS.ErrnoException) => { console.log(e.code); process.exit(1); });
  readline.createInterface({ input: process.stdin }).on('line', (line) => s.write(`${line}\n`)).on('close', () => s.destroy());
}

if (mode === 'rotate') await rotate(Number(args[0]), Number(args[1]), Number(args[2]), args.slice(3));
else if (mode === 'probe') await probe(args[0], Number(args[1]), Number(args[2] ?? 0));
else if (mode === 'hold') hold(args[0], Number(args[1]));
else throw new Error(`unknown mode ${mode}`);
