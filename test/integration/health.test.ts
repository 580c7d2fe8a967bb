// Health checks against real listeners on loopback: a shared alias leaves out an endpoint whose
// TCP listener stops and takes it back when it listens again, answers everyone when no one is
// healthy (fail open, logged); HTTP checks by status, asking the path and following no redirect;
// `nsdns endpoint health` and `network inspect` through a real control socket. With a daemon that
// runs the prober (daemon.ts wired), the same seen with dig. Every suite runs twice: on the native
// prober (src/native/nsdns-probe, when built) and on the Node prober (its portable path).
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { parseDocumentText } from '../../src/registry/document.js';
import { Registry } from '../../src/registry/registry.js';
import { HealthProber, type ProberOptions } from '../../src/health/prober.js';
import { NATIVE_PROBE } from '../../src/health/native.js';
import { ControlServer } from '../../src/daemon/control.js';
import { controlHandlers, type HandlerDeps } from '../../src/daemon/handlers.js';
import { MAIN, ROOT, startDaemon } from '../helpers/daemon.js';
import { dig } from '../helpers/dig.js';
import { tempDir } from '../helpers/tmp.js';
import { capturedLog, Listener, type Line } from '../helpers/probe-fixtures.js';
import { until } from '../helpers/wait.js';

/** The addresses the registry answers for `name` now, sorted: what a query would get. */
function answers(registry: Registry, name: string): string[] {
  const found = registry.current().view().lookup(name);
  return found.kind === 'found' ? found.a.map((b) => [...b].join('.')).sort() : [];
}

/** The two probers: the native one is skipped (and says why) where it was not built. */
const KINDS = [
  { kind: 'native' as const, options: {} as ProberOptions, skip: !existsSync(NATIVE_PROBE) && 'nsdns-probe was not built (no C compiler)' },
  { kind: 'node' as const, options: { native: false } as ProberOptions, skip: false as const },
];

/** The processes whose parent is `pid`, by /proc (name: field 2 of stat). */
function childrenOf(pid: number): Array<{ pid: number; name: string }> {
  const out: Array<{ pid: number; name: string }> = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try { stat = readFileSync(`/proc/${entry}/stat`, 'utf8'); } catch { continue; }
    const close = stat.lastIndexOf(')');
    if (Number(stat.slice(close + 2).split(' ')[1]) === pid) out.push({ pid: Number(entry), name: stat.slice(stat.indexOf('(') + 1, close) });
  }
  return out;
}

const hc = (port: number, intervalMs = 100) => `{type: tcp, port: ${port}, intervalMs: ${intervalMs}, timeoutMs: 200, retries: 2}`;

for (const { kind, options, skip } of KINDS) {
describe(`health checks on loopback listeners (${kind} prober)`, { skip }, () => {
  const l1 = new Listener('127.0.0.2');
  const l2 = new Listener('127.0.0.3');
  let registry: Registry;
  let prober: HealthProber;
  let lines: Line[];

  before(async () => {
    await l1.listen();
    await l2.listen();
    registry = new Registry();
    registry.setNetwork(parseDocumentText(`name: hc\nendpoints:
  - {name: web1, aliases: [pool], ipv4: 127.0.0.2, healthCheck: ${hc(l1.port)}}
  - {name: web2, aliases: [pool], ipv4: 127.0.0.3, healthCheck: ${hc(l2.port)}}
  - {name: web3, aliases: [pool], ipv4: 127.0.0.4}
`, 'hc.yaml'), 'test');
    const captured = capturedLog();
    lines = captured.lines;
    prober = new HealthProber(registry, captured.log, options).start();
    assert.equal(prober.kind, kind);
  });
  after(async () => {
    await prober?.stop();
    await l1.close();
    await l2.close();
  });

  it('drop from a shared alias an endpoint whose listener stops, and take it back when it listens again', async () => {
    await until('pool', () => answers(registry, 'pool'), (a) => a.length === 3);
    await until('web1 and web2 probed healthy', () => lines.filter((l) => /is now healthy/.test(l.msg)).length, (n) => n >= 2);
    await l2.close();
    assert.deepEqual(await until('pool without web2', () => answers(registry, 'pool'), (a) => a.length === 2), ['127.0.0.2', '127.0.0.4']);
    assert.deepEqual(answers(registry, 'web2'), ['127.0.0.3'], 'its own name still answers (no --health-hide-own)');
    const down = lines.find((l) => l.endpoint === 'web2' && l.status === 'unhealthy');
    assert.ok(down, 'a line says web2 is unhealthy');
    assert.match(down.msg, /endpoint "web2" on network "hc" is now unhealthy \(was healthy; 2 failure\(s\) in a row, last: connection refused\)/);
    await l2.listen();
    assert.deepEqual(await until('pool with web2 again', () => answers(registry, 'pool'), (a) => a.length === 3), ['127.0.0.2', '127.0.0.3', '127.0.0.4']);
    assert.ok(lines.some((l) => l.endpoint === 'web2' && l.status === 'healthy' && l.previous === 'unhealthy'));
  });

  it('answer every holder when none is healthy (fail open), and say so in the log', async () => {
    registry.health.set('hc', registry.current().networks.get('hc')!.endpoints.find((e) => e.name === 'web3')!.id, 'unhealthy');
    await l1.close();
    await l2.close();
    try {
      await until('both probed unhealthy', () => lines.filter((l) => l.status === 'unhealthy' && (l.endpoint === 'web1' || l.endpoint === 'web2')).length, (n) => n >= 3);
      await until('web1 and web2 unhealthy', () => ['web1', 'web2'].map((n) => prober.info('hc', registry.current().networks.get('hc')!.endpoints.find((e) => e.name === n)!.id)?.status), (s) => s.every((x) => x === 'unhealthy'));
      assert.deepEqual(answers(registry, 'pool'), ['127.0.0.2', '127.0.0.3', '127.0.0.4']);
      const open = await until('fail-open line', () => lines.find((l) => /fail open/.test(l.msg)), (l) => l !== undefined);
      assert.match(open!.msg, /no healthy endpoint behind "pool.*": answering all 3 \(fail open\)/);
    } finally {
      await l1.listen();
      await l2.listen();
    }
  });
});

describe(`http health checks (${kind} prober)`, { skip }, () => {
  let server: http.Server;
  let status = 200;
  const asked: string[] = [];
  let registry: Registry;
  let prober: HealthProber;

  before(async () => {
    server = http.createServer((req, res) => {
      asked.push(req.url ?? '');
      if (req.url === '/elsewhere') { res.writeHead(500).end(); return; }
      res.writeHead(status, status === 302 ? { location: '/elsewhere' } : {});
      // A big body the probe must not wait for.
      res.end('x'.repeat(1 << 20));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.5', () => resolve()));
    const port = (server.address() as net.AddressInfo).port;
    registry = new Registry();
    registry.setNetwork(parseDocumentText(`name: web\nendpoints:
  - {name: api, aliases: [apis], ipv4: 127.0.0.5, healthCheck: {type: http, port: ${port}, path: "/healthz?deep=1", intervalMs: 100, timeoutMs: 500, retries: 1}}
  - {name: other, aliases: [apis], ipv4: 127.0.0.6}
`, 'web.yaml'), 'test');
    prober = new HealthProber(registry, capturedLog().log, options).start();
    assert.equal(prober.kind, kind);
  });
  after(async () => {
    await prober?.stop();
    server?.closeAllConnections();
    await new Promise<void>((resolve) => server?.close(() => resolve()));
  });

  it('count 2xx and 3xx healthy, anything else unhealthy, asking the path and following no redirect', async () => {
    const id = registry.current().networks.get('web')!.endpoints.find((e) => e.name === 'api')!.id;
    await until('api healthy on 200', () => registry.health.get('web', id), (s) => s === 'healthy');
    assert.deepEqual(answers(registry, 'apis'), ['127.0.0.5', '127.0.0.6']);
    status = 503;
    await until('api unhealthy on 503', () => registry.health.get('web', id), (s) => s === 'unhealthy');
    assert.deepEqual(answers(registry, 'apis'), ['127.0.0.6']);
    assert.equal(prober.info('web', id)?.log.at(-1)?.detail, 'HTTP 503');
    status = 302;
    await until('api healthy on 302', () => registry.health.get('web', id), (s) => s === 'healthy');
    assert.ok(asked.length > 0 && asked.every((u) => u === '/healthz?deep=1'), `asked ${[...new Set(asked)].join(', ')}`);
  });
});

describe(`http health checks against servers that misbehave (${kind} prober)`, { skip }, () => {
  // Each server on its own loopback address: one that answers 500, one that speaks something
  // else, one that accepts and never says anything, one that sends its status line in pieces,
  // and a plain 204.
  const replies: Record<string, string[] | undefined> = {
    '127.0.0.11': ['HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n'],
    '127.0.0.12': ['SSH-2.0-OpenSSH_9.6\r\n'],
    '127.0.0.13': undefined,
    '127.0.0.14': ['HTT', 'P/1.1 30', '2 Found\r\nlocation: /elsewhere\r\n\r\n'],
    '127.0.0.15': ['HTTP/1.0 204 No Content\r\n\r\n'],
  };
  const servers: net.Server[] = [];
  const sockets = new Set<net.Socket>();
  let registry: Registry;
  let prober: HealthProber;

  before(async () => {
    let port = 0;
    for (const [host, reply] of Object.entries(replies)) {
      const server = net.createServer((s) => {
        sockets.add(s.on('error', () => undefined).on('close', () => sockets.delete(s)));
        if (reply === undefined) return;
        s.once('data', async () => {
          for (const piece of reply.slice(0, -1)) { s.write(piece); await sleep(20); }
          s.end(reply[reply.length - 1]);
        });
      });
      await new Promise<void>((resolve) => server.listen(port, host, () => resolve()));
      port = (server.address() as net.AddressInfo).port;
      servers.push(server);
    }
    const endpoints = Object.keys(replies).map((host, i) => `  - {name: s${i}, ipv4: ${host}, healthCheck: {type: http, port: ${port}, path: /healthz, intervalMs: 200, timeoutMs: 300, retries: 1}}`);
    registry = new Registry();
    registry.setNetwork(parseDocumentText(`name: bad\nendpoints:\n${endpoints.join('\n')}\n`, 'bad.yaml'), 'test');
    prober = new HealthProber(registry, capturedLog().log, options).start();
    assert.equal(prober.kind, kind);
  });
  after(async () => {
    await prober?.stop();
    for (const s of sockets) s.destroy();
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  });

  it('fail on a 500, a reply that is not HTTP and no reply within the timeout; pass a 302 sent in pieces and a 204', async () => {
    const ids = registry.current().networks.get('bad')!.endpoints.map((e) => e.id);
    const last = () => ids.map((id) => prober.info('bad', id)?.log.at(-1)?.detail);
    await until('every server probed', last, (d) => d.every((x) => x !== undefined));
    assert.deepEqual(last(), ['HTTP 500', 'not an HTTP reply', 'timed out after 300 ms', 'HTTP 302', 'HTTP 204']);
    assert.deepEqual(ids.map((id) => registry.health.get('bad', id)), ['unhealthy', 'unhealthy', 'unhealthy', 'healthy', 'healthy']);
  });
});

describe(`nsdns endpoint health and network inspect over the control socket (${kind} prober)`, { skip }, () => {
  const dir = tempDir();
  const socket = path.join(dir.dir, 'nsdns.sock');
  const listener = new Listener('127.0.0.7');
  let registry: Registry;
  let prober: HealthProber;
  let control: ControlServer;
  let lines: Line[];
  const nsdns = (...args: string[]) => execa(process.execPath, [MAIN, ...args, '--socket', socket], { reject: false, cwd: ROOT });
  const idOf = (name: string) => registry.current().networks.get('ctl')!.endpoints.find((e) => e.name === name)!.id;

  before(async () => {
    await listener.listen();
    registry = new Registry();
    registry.setNetwork(parseDocumentText(`name: ctl\nendpoints:
  - {name: probed, aliases: [svc], ipv4: 127.0.0.7, healthCheck: ${hc(listener.port, 300)}}
  - {name: manual, aliases: [svc], ipv4: 127.0.0.8}
`, 'ctl.yaml'), 'test');
    const captured = capturedLog();
    lines = captured.lines;
    prober = new HealthProber(registry, captured.log, options).start();
    assert.equal(prober.kind, kind);
    // Only the methods under test reach the manager, resolver and namespaces: none of them is used.
    const deps = { registry, probes: prober } as unknown as HandlerDeps;
    control = new ControlServer(socket, controlHandlers(deps), captured.log);
    await control.start();
  });
  after(async () => {
    await control?.close();
    await prober?.stop();
    await listener.close();
    dir.cleanup();
  });

  it('sets a state an outside system decides; it holds on an endpoint without a check', async () => {
    const r = await nsdns('endpoint', 'health', 'ctl', 'manual', 'unhealthy');
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(r.stdout, 'manual on ctl: unhealthy');
    await until('svc without manual', () => answers(registry, 'svc'), (a) => a.join() === '127.0.0.7');
    await sleep(700);
    assert.deepEqual(answers(registry, 'svc'), ['127.0.0.7'], 'still left out: nothing probes it');
    const back = await nsdns('endpoint', 'health', 'CTL', idOf('manual').slice(0, 12), 'healthy', '--json');
    assert.equal(back.exitCode, 0, back.stderr);
    assert.deepEqual(JSON.parse(back.stdout), { network: 'ctl', name: 'manual', id: idOf('manual'), state: 'healthy', previous: 'unhealthy', probed: false });
    assert.deepEqual(answers(registry, 'svc'), ['127.0.0.7', '127.0.0.8']);
  });

  it('on a probed endpoint, holds the state until the next probe result changes it', async () => {
    await until('probed healthy', () => registry.health.get('ctl', idOf('probed')), (s) => s === 'healthy');
    const setStates: Array<{ id: string; state: string | undefined }> = [];
    const set = registry.health.set.bind(registry.health);
    registry.health.set = (network, id, state) => {
      const changed = set(network, id, state);
      setStates.push({ id, state: registry.health.get('ctl', id) });
      return changed;
    };
    let r;
    try {
      r = await nsdns('endpoint', 'health', 'ctl', 'probed', 'unhealthy');
    } finally {
      registry.health.set = set; // the prototype's method, bound as before
    }
    assert.equal(r.stdout, 'probed on ctl: unhealthy (until the next probe result changes it)');
    // Set in this process while the CLI ran; a probe (every 300 ms) may already have made it
    // healthy again by the time the CLI exits, so the state is read from when it was set.
    assert.equal(setStates.find((s) => s.id === idOf('probed'))?.state, 'unhealthy');
    await until('the next success makes it healthy', () => registry.health.get('ctl', idOf('probed')), (s) => s === 'healthy');
    assert.ok(lines.some((l) => l.endpoint === 'probed' && l.by === 'endpoint health' && l.status === 'unhealthy'));
  });

  it('shows Health in network inspect as docker does: Status, FailingStreak, Log, and the check', async () => {
    const r = await nsdns('network', 'inspect', 'ctl');
    assert.equal(r.exitCode, 0, r.stderr);
    const containers = JSON.parse(r.stdout)[0].Containers as Record<string, { Name: string; Health: { Status: string; FailingStreak: number; Log: Array<{ ExitCode: number; Output: string; Start: string }>; Check?: Record<string, unknown> } }>;
    const probed = Object.values(containers).find((c) => c.Name === 'probed')!.Health;
    assert.equal(probed.Status, 'healthy');
    assert.equal(probed.FailingStreak, 0);
    assert.ok(probed.Log.length >= 1 && probed.Log.length <= 5);
    assert.deepEqual([probed.Log.at(-1)!.ExitCode, probed.Log.at(-1)!.Output], [0, 'connected']);
    assert.ok(!Number.isNaN(Date.parse(probed.Log.at(-1)!.Start)));
    assert.deepEqual(probed.Check, { Test: `tcp:${listener.port}`, Interval: '300ms', Timeout: '200ms', Retries: 2, StartPeriod: '0ms', Address: '127.0.0.7' });
    assert.deepEqual(Object.values(containers).find((c) => c.Name === 'manual')!.Health, { Status: 'healthy', FailingStreak: 0, Log: [] });
  });

  it('refuses garbage with the usual exit statuses', async () => {
    const bad = await nsdns('endpoint', 'health', 'ctl', 'manual', 'sick');
    assert.equal(bad.exitCode, 1, 'refused by the daemon');
    assert.match(bad.stderr, /state: Invalid option: expected one of "healthy"\|"unhealthy"\|"starting"/);
    const missing = await nsdns('endpoint', 'health', 'ctl', 'nobody', 'healthy');
    assert.equal(missing.exitCode, 1);
    assert.match(missing.stderr, /no endpoint "nobody" on network "ctl"/);
    const shared = await nsdns('endpoint', 'health', 'ctl', 'svc', 'healthy');
    assert.equal(shared.exitCode, 1, 'a shared alias names no single endpoint');
    const noNet = await nsdns('endpoint', 'health', 'nonet', 'manual', 'healthy');
    assert.match(noNet.stderr, /network "nonet" not found/);
  });
});
}

// The daemon constructs and starts the HealthProber once daemon.ts is wired (engineer H).
const wired = readFileSync(path.join(ROOT, 'dist/src/daemon/daemon.js'), 'utf8').includes('HealthProber');

for (const { kind, skip } of KINDS) {
describe(`a running daemon probes registry endpoints (${kind} prober)`, { skip: (!wired && 'daemon.ts does not start the HealthProber yet') || skip }, () => {
  it('answers a shared alias with dig without the endpoint whose listener is down', async () => {
    const up = await new Listener('127.0.0.9').listen();
    const files = tempDir();
    files.write('hc.yaml', `name: hcd\nendpoints:
  - {name: up, aliases: [pool], ipv4: 127.0.0.9, healthCheck: ${hc(up.port)}}
  - {name: down, aliases: [pool], ipv4: 127.0.0.10, healthCheck: ${hc(up.port)}}
`);
    // NSDNS_NATIVE=0 is how a user turns the native helpers off.
    // Loopback is probed only where the operator allows it (registry files never may).
    const configDir = tempDir();
    const config = configDir.write('c.yaml', 'registryFiles:\n  probeAllow: [127.0.0.0/8]\n');
    const daemon = await startDaemon(['--registry', files.dir, '--listen', '127.0.0.1:0', '--no-resolv-conf', '--config', config], { env: { NSDNS_NATIVE: kind === 'node' ? '0' : '1' } });
    try {
      await daemon.waitForLog((l) => l.prober === kind && /health checks: probing 2 endpoint\(s\)/.test(l.msg));
      await daemon.waitForLog((l) => l.endpoint === 'down' && l.status === 'unhealthy');
      const r = await dig(daemon.server, 'pool.hcd', 'A');
      assert.deepEqual(r.answers.map((a) => a.data), ['127.0.0.9']);
      // The native prober is the daemon's child: killed by its PID, it is restarted and the probes go on.
      const helper = childrenOf(daemon.proc.pid!).find((c) => c.name === 'nsdns-probe');
      assert.equal(helper !== undefined, kind === 'native', `the daemon's children: ${JSON.stringify(childrenOf(daemon.proc.pid!))}`);
      if (helper) {
        process.kill(helper.pid, 'SIGKILL');
        await daemon.waitForLog((l) => /native prober: killed by SIGKILL; restarting it/.test(l.msg));
        await up.close();
        await daemon.waitForLog((l) => l.endpoint === 'up' && l.status === 'unhealthy');
        assert.ok(childrenOf(daemon.proc.pid!).some((c) => c.name === 'nsdns-probe' && c.pid !== helper.pid), 'a new nsdns-probe runs');
      }
    } finally {
      await daemon.stop();
      await up.close();
      files.cleanup();
      configDir.cleanup();
    }
  });
});
}
