// loop-probe.mjs -- preloaded into nsdns by bench/forward/loopback.sh (NODE_FLAGS="--import=...")
// to see the event loop from inside: a 1 ms-resolution loop-delay histogram, and every stall over
// STALL_MS (2) with its time, printed to stderr when the process ends. For diagnosis only.
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';

const STALL_MS = Number(process.env.STALL_MS ?? 2);
const h = monitorEventLoopDelay({ resolution: 1 });
h.enable();
const stalls = [];
let last = performance.now();
const tick = setInterval(() => {
  const now = performance.now();
  if (now - last - 1 > STALL_MS && stalls.length < 1000) stalls.push([Math.round(now), +(now - last - 1).toFixed(2)]);
  last = now;
}, 1);
tick.unref();
function report() {
  h.disable();
  const ms = (n) => (n / 1e6).toFixed(2);
  process.stderr.write(`loop delay ms: p50 ${ms(h.percentile(50))} p99 ${ms(h.percentile(99))} p99.9 ${ms(h.percentile(99.9))} max ${ms(h.max)} n ${h.count}\n`);
  process.stderr.write(`stalls over ${STALL_MS} ms: ${stalls.length}: ${stalls.slice(0, 60).map(([t, d]) => `${t}:${d}`).join(' ')}\n`);
}
process.once('exit', report);
for (const sig of ['SIGINT', 'SIGTERM']) process.prependListener(sig, report);

// RENICE_WORKERS=1: V8's worker threads (concurrent compiler, GC helpers) at nice 19, the main
// thread left as is: on a CPU the daemon shares with its own workers, a background compile of a
// hot function then no longer keeps the main thread (and the queries it holds) waiting.
if (process.env.RENICE_WORKERS === '1') {
  const { readdirSync } = await import('node:fs');
  const os = await import('node:os');
  for (const tid of readdirSync('/proc/self/task')) if (Number(tid) !== process.pid) os.setPriority(Number(tid), 19);
}
