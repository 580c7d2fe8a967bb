// The native prober (src/native/nsdns-probe) as a user relies on it: probes go on when its process
// dies (restarted with backoff, or given up for the Node prober after three deaths a minute, logged
// once), it ends when no probed endpoint is left, a missing binary means the Node prober, and
// neither side takes hostile input: the daemon refuses specs the child must not see, the child
// ends on a line it does not know, and a child that says nonsense, floods or stalls is cut off.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { silentLogger } from '../../src/log.js';
import { parseDocumentText } from '../../src/registry/document.js';
import { Registry } from '../../src/registry/registry.js';
import { HealthProber } from '../../src/health/prober.js';
import { NATIVE_PROBE, NativeProber, type ProbeSpec } from '../../src/health/native.js';
import { tempDir } from '../helpers/tmp.js';
import { capturedLog, Listener } from '../helpers/probe-fixtures.js';
import { until } from '../helpers/wait.js';

const skip = !existsSync(NATIVE_PROBE) && 'nsdns-probe was not built (no C compiler)';

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** A registry with one network "nat" of probed endpoints: `[name, address, port]`. */
function probedRegistry(endpoints: Array<[string, string, number]>): Registry {
  const registry = new Registry();
  const lines = endpoints.map(([name, address, port]) => `  - {name: ${name}, ${address.includes(':') ? 'ipv6' : 'ipv4'}: "${address}", healthCheck: {type: tcp, port: ${port}, intervalMs: 100, timeoutMs: 200, retries: 1}}`);
  registry.setNetwork(parseDocumentText(`name: nat\nendpoints:\n${lines.join('\n')}\n`, 'nat.yaml'), 'test');
  return registry;
}
const idOf = (registry: Registry, name: string) => registry.current().networks.get('nat')!.endpoints.find((e) => e.name === name)!.id;

/** The endpoint follows its listener: unhealthy when it stops, healthy when it listens again. */
async function follows(registry: Registry, name: string, listener: Listener): Promise<void> {
  const id = idOf(registry, name);
  await until(`${name} healthy`, () => registry.health.get('nat', id), (s) => s === 'healthy');
  await listener.close();
  await until(`${name} unhealthy once its listener stopped`, () => registry.health.get('nat', id), (s) => s === 'unhealthy');
  await listener.listen();
  await until(`${name} healthy again`, () => registry.health.get('nat', id), (s) => s === 'healthy');
}

describe('the native prober\'s process', { skip }, () => {
  const listener = new Listener('127.0.0.21');
  before(async () => { await listener.listen(); });
  after(async () => { await listener.close(); });

  it('is restarted when it dies (killed by its PID), and the probes go on', async () => {
    const registry = probedRegistry([['web', '127.0.0.21', listener.port]]);
    const { log, lines } = capturedLog();
    const prober = new HealthProber(registry, log).start();
    try {
      assert.equal(prober.kind, 'native');
      const first = await until('the child runs', () => prober.nativePid, (p) => p !== undefined);
      await until('web healthy', () => registry.health.get('nat', idOf(registry, 'web')), (s) => s === 'healthy');
      process.kill(first!, 'SIGKILL');
      const second = await until('a new child', () => prober.nativePid, (p) => p !== undefined && p !== first);
      assert.ok(lines.some((l) => /native prober: killed by SIGKILL; restarting it in 100 ms/.test(l.msg)), 'the restart is logged');
      assert.ok(alive(second!));
      assert.equal(prober.kind, 'native');
      await follows(registry, 'web', listener);
    } finally {
      await prober.stop();
    }
  });

  it('is given up for the Node prober after dying four times within a minute (logged once), and the probes go on', async () => {
    const registry = probedRegistry([['web', '127.0.0.21', listener.port]]);
    const { log, lines } = capturedLog();
    const prober = new HealthProber(registry, log).start();
    try {
      for (let i = 0; i < 4; i++) {
        const pid = await until(`child ${i + 1}`, () => prober.nativePid, (p) => p !== undefined);
        process.kill(pid!, 'SIGKILL');
        await until(`child ${i + 1} gone`, () => prober.nativePid, (p) => p !== pid);
      }
      await until('given up', () => prober.kind, (k) => k === 'node');
      await follows(registry, 'web', listener);
      const gaveUp = lines.filter((l) => /native prober given up/.test(l.msg));
      assert.equal(gaveUp.length, 1, 'logged once');
      assert.match(gaveUp[0].msg, /killed by SIGKILL; 4 times within a minute\): probing with the Node prober/);
      assert.equal(prober.nativePid, undefined);
    } finally {
      await prober.stop();
    }
  });

  it('ends when no probed endpoint is left, and starts again with the next', async () => {
    const registry = probedRegistry([['web', '127.0.0.21', listener.port]]);
    const prober = new HealthProber(registry, silentLogger).start();
    try {
      const pid = await until('the child runs', () => prober.nativePid, (p) => p !== undefined);
      registry.removeNetwork('nat', 'test');
      await until('the child ended', () => alive(pid!), (a) => !a);
      assert.equal(prober.nativePid, undefined);
      registry.setNetwork(parseDocumentText(`name: nat\nendpoints:\n  - {name: web, ipv4: 127.0.0.21, healthCheck: {type: tcp, port: ${listener.port}, intervalMs: 100, timeoutMs: 200, retries: 1}}\n`, 'nat.yaml'), 'test');
      await until('a new child', () => prober.nativePid, (p) => p !== undefined && p !== pid);
      await until('web healthy', () => registry.health.get('nat', idOf(registry, 'web')), (s) => s === 'healthy');
    } finally {
      await prober.stop();
    }
  });

  it('probes IPv6 endpoints', async () => {
    const v6 = await new Listener('::1').listen();
    const registry = probedRegistry([['six', '::1', v6.port]]);
    const prober = new HealthProber(registry, silentLogger).start();
    try {
      assert.equal(prober.kind, 'native');
      await follows(registry, 'six', v6);
      assert.equal(prober.info('nat', idOf(registry, 'six'))?.log.at(-1)?.detail, 'connected');
    } finally {
      await prober.stop();
      await v6.close();
    }
  });

  it('ends each connection with a reset and reuses its sockets: no TIME_WAIT, no more sockets than probes at once', async () => {
    const many = Array.from({ length: 20 }, (_, i): [string, string, number] => [`w${i}`, '127.0.0.21', listener.port]);
    const registry = probedRegistry(many);
    const prober = new HealthProber(registry, silentLogger).start();
    try {
      await until('all healthy', () => many.every(([name]) => registry.health.get('nat', idOf(registry, name)) === 'healthy'), (x) => x);
      // Enough probes that each socket was used many times over.
      await until('200 probes', () => prober.results.ok, (n) => n >= 200, 30_000);
      const { stdout } = await execa('ss', ['-Htan', 'state', 'time-wait', `( dport = :${listener.port} )`]);
      assert.equal(stdout.trim(), '', 'no TIME_WAIT left by the probes');
      const fds = readdirSync(`/proc/${prober.nativePid}/fd`).length;
      assert.ok(fds <= 20 + 5, `${fds} descriptors open in the child for 20 endpoints`);
    } finally {
      await prober.stop();
    }
  });

  it('stops a connect that gets no answer at its deadline: timed out, unhealthy', async () => {
    // A listener that never accepts, its queue (backlog 0: one connection) filled by us: the kernel
    // drops further SYNs, so the probe's connect hangs.
    const py = spawn('python3', ['-c', 'import socket,sys,time\ns=socket.socket()\ns.bind(("127.0.0.24",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(60)'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const fill: net.Socket[] = [];
    try {
      const port = Number(await new Promise<string>((resolve) => py.stdout!.once('data', (d) => resolve(String(d).trim()))));
      for (let i = 0; i < 3; i++) fill.push(net.connect(port, '127.0.0.24').on('error', () => undefined));
      // Its one queue slot is taken: further SYNs (the probe's) are dropped.
      await until('a connection in the listener\'s queue', () => fill.filter((s) => !s.connecting && !s.destroyed).length, (n) => n >= 1);
      const registry = probedRegistry([['hung', '127.0.0.24', port]]);
      const prober = new HealthProber(registry, silentLogger).start();
      try {
        assert.equal(prober.kind, 'native');
        const id = idOf(registry, 'hung');
        await until('hung unhealthy', () => registry.health.get('nat', id), (s) => s === 'unhealthy');
        assert.equal(prober.info('nat', id)?.log.at(-1)?.detail, 'timed out after 200 ms');
        const took = prober.info('nat', id)!.log.at(-1)!;
        // Not before its deadline; how soon after is the machine's pace (a probe left to the kernel
        // would hang for minutes, and never turn the endpoint unhealthy within the wait above).
        assert.ok(took.end - took.start >= 200, `ended after ${took.end - took.start} ms`);
      } finally {
        await prober.stop();
      }
    } finally {
      for (const f of fill) f.destroy();
      py.kill();
    }
  });

  it('is not used without its binary: the Node prober probes, and says why once', async () => {
    const registry = probedRegistry([['web', '127.0.0.21', listener.port]]);
    const { log, lines } = capturedLog();
    const prober = new HealthProber(registry, log, { native: '/nonexistent/nsdns-probe' }).start();
    try {
      await until('given up', () => prober.kind, (k) => k === 'node');
      await follows(registry, 'web', listener);
      const gaveUp = lines.filter((l) => /native prober given up/.test(l.msg));
      assert.deepEqual(gaveUp.map((l) => l.msg), ['native prober given up (it could not be started (ENOENT)): probing with the Node prober']);
    } finally {
      await prober.stop();
    }
  });
});

describe('the native prober\'s boundaries', { skip }, () => {
  const dir = tempDir();
  after(() => dir.cleanup());
  const spec = (over: Partial<Record<keyof ProbeSpec, unknown>>): ProbeSpec =>
    ({ slot: 0, gen: 1, type: 'tcp', address: '127.0.0.1', port: 80, intervalMs: 1000, timeoutMs: 100, firstMs: 0, ...over }) as ProbeSpec;

  it('refuses to pass on a probe the child must not see', () => {
    const native = new NativeProber(silentLogger, { result: () => undefined, fallback: () => undefined, spread: () => 0 });
    const hostile = [
      { address: '127.0.0.1 80 100 0\nA 1 1 tcp 10.0.0.1' }, { address: '::1%lo' }, { address: '010.0.0.1' }, { address: 'localhost' },
      { port: 0 }, { port: 65536 }, { port: 80.5 }, { slot: 65536 }, { slot: -1 }, { intervalMs: 50 }, { timeoutMs: 60_001 },
      { type: 'udp' }, { type: 'http', path: '/a b' }, { type: 'http', path: '/a\r\nX: y' }, { type: 'http', path: '/#x' },
      { type: 'http', path: `/${'a'.repeat(300)}` }, { type: 'http' }, { path: '/x' },
    ];
    for (const h of hostile) assert.equal(native.add(spec(h)), false, JSON.stringify(h));
    assert.equal(native.pid, undefined, 'no child started for any of them');
    native.stop();
  });

  /** Runs the binary with `input` on stdin; resolves its exit status (null: still running after 2 s). */
  function childWith(input: string): Promise<number | null> {
    return new Promise((resolve) => {
      const child = spawn(NATIVE_PROBE, [], { stdio: ['pipe', 'ignore', 'ignore'] });
      const timer = setTimeout(() => { child.kill('SIGKILL'); resolve(null); }, 2000);
      child.on('exit', (code) => { clearTimeout(timer); resolve(code); });
      child.stdin.on('error', () => undefined);
      child.stdin.write(input);
    });
  }

  it('the child ends (status 2) on a line it does not take, and at the end of its input (status 0)', async () => {
    const bad = [
      'A 0 1 tcp 127.0.0.1 0 1000 100 0', 'A 0 1 udp 127.0.0.1 80 1000 100 0', 'A 65536 1 tcp 127.0.0.1 80 1000 100 0',
      'A 0 1 tcp 127.0.0.1 80 99 100 0', 'A 0 1 tcp 127.1 80 1000 100 0', 'A 0 1 tcp 127.0.0.1 80 1000 100 0 /path',
      'A 0 1 http 127.0.0.1 80 1000 100 0', 'A 0 1 http 127.0.0.1 80 1000 100 0 /a#b', 'A 0 1 http 127.0.0.1 80 1000 100 0 nopath',
      'A 0 1 tcp 127.0.0.1 80 1000 100 0 x y', 'A 0 1 tcp 127.0.0.1 +80 1000 100 0', 'X', `A ${'9'.repeat(600)}`, 'D -1',
    ];
    for (const line of bad) assert.equal(await childWith(`${line}\n`), 2, line);
    const child = spawn(NATIVE_PROBE, [], { stdio: ['pipe', 'ignore', 'ignore'] });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    child.stdin.end('A 3 1 tcp 127.0.0.1 9 1000 100 60000\nD 3\nD 4\n');
    assert.equal(await exited, 0);
  });

  /** A stand-in binary: a script run instead of nsdns-probe. */
  function script(name: string, body: string): string {
    const file = path.join(dir.dir, name);
    writeFileSync(file, `#!${process.execPath}\n${body}\n`);
    chmodSync(file, 0o755);
    return file;
  }

  it('cuts off a child that sends nonsense or more results than its probes can have, then gives it up', async () => {
    const listener = await new Listener('127.0.0.22').listen();
    const garbage = script('garbage.cjs', `process.stdin.resume(); process.stdout.write(require('crypto').randomBytes(64 * 32)); setInterval(() => {}, 1000);`);
    // Well-formed records, now and for the slot and generation it was given, but 100 000 of them.
    const flood = script('flood.cjs', `process.stdin.once('data', (d) => {
  const [, slot, gen] = String(d).split(' ').map(Number);
  const b = Buffer.alloc(32 * 100000);
  for (let i = 0; i < 100000; i++) { const o = i * 32; b.writeUInt32LE(slot, o); b.writeUInt32LE(gen, o + 4); b.writeDoubleLE(Date.now(), o + 16); b.writeDoubleLE(Date.now(), o + 24); }
  process.stdout.write(b);
}); setInterval(() => {}, 1000);`);
    try {
      for (const [binary, why] of [[garbage, 'it sent a malformed result'], [flood, 'it sent more results than its probes can have']]) {
        const registry = probedRegistry([['web', '127.0.0.22', listener.port]]);
        const { log, lines } = capturedLog();
        const prober = new HealthProber(registry, log, { native: binary }).start();
        try {
          await until('given up', () => prober.kind, (k) => k === 'node');
          assert.ok(lines.some((l) => l.msg === `native prober: ${why}; restarting it in 100 ms`), `${why}: ${lines.map((l) => l.msg).join(' | ')}`);
          assert.equal(lines.filter((l) => /native prober given up/.test(l.msg)).length, 1);
          await follows(registry, 'web', listener);
          // A flood's connected results came from no probe: the Node prober's own say "connected" too,
          // but its log holds at most five, and the counters only what was applied.
          assert.ok(prober.results.ok < 1000, `${prober.results.ok} results applied`);
        } finally {
          await prober.stop();
        }
      }
    } finally {
      await listener.close();
    }
  });

  it('restarts a child that stops reporting', { timeout: 30_000 }, async () => {
    const stall = script('stall.cjs', 'process.stdin.resume(); setInterval(() => {}, 1000);');
    const registry = probedRegistry([['web', '127.0.0.23', 9]]);
    const { log, lines } = capturedLog();
    const prober = new HealthProber(registry, log, { native: stall }).start();
    try {
      const first = await until('the child runs', () => prober.nativePid, (p) => p !== undefined);
      await until('the stall noticed', () => lines.some((l) => l.msg === 'native prober: it stopped reporting; restarting it in 100 ms'), (x) => x, 15_000);
      await until('the stalled child killed', () => alive(first!), (a) => !a);
      await until('a new child', () => prober.nativePid, (p) => p !== undefined && p !== first);
    } finally {
      await prober.stop();
    }
  });
});
