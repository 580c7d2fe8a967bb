// Health checks without a network: parsing of --health and durations (garbage refused), the
// limits in registry files, the state machine, and the prober's schedule (spread, one slow probe
// holding only itself, the concurrency bound, following registry changes) with a probe function
// that records when it is called.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { silentLogger } from '../../src/log.js';
import { parseDocumentText } from '../../src/registry/document.js';
import { Registry } from '../../src/registry/registry.js';
import type { HealthCheck } from '../../src/registry/types.js';
import { checkHealth } from '../../src/plumbing/requests.js';
import { formatDuration, parseDuration, parseHealthSpec } from '../../src/health/spec.js';
import { HealthMachine, type ProbeResult } from '../../src/health/state-machine.js';
import { HealthProber } from '../../src/health/prober.js';
import type { Probe } from '../../src/health/probes.js';
import { until } from '../helpers/wait.js';

const check = (over: Partial<HealthCheck> = {}): HealthCheck => ({ type: 'tcp', port: 80, intervalMs: 1000, timeoutMs: 100, retries: 3, startPeriodMs: 0, ...over });
const result = (ok: boolean, start = Date.now()): ProbeResult => ({ ok, detail: ok ? 'connected' : 'connection refused', start, end: start });

describe('--health and durations', () => {
  it('parse tcp and http checks', () => {
    assert.deepEqual(parseHealthSpec('tcp:8080'), { type: 'tcp', port: 8080 });
    assert.deepEqual(parseHealthSpec('http:8080/healthz?full=1'), { type: 'http', port: 8080, path: '/healthz?full=1' });
    assert.deepEqual(parseHealthSpec('HTTP:80'), { type: 'http', port: 80, path: '/' });
  });

  it('refuse garbage', () => {
    for (const bad of ['', 'tcp', 'tcp:', 'tcp:0', 'tcp:65536', 'tcp:99999', 'udp:53', 'tcp:80/x', 'http:80/a b', 'http:80x', 'http://x:80/',
      'tcp:8080\n', ' tcp:80', 'tcp:-1', 'http:80/\u0000', 'http:80/é', `http:80/${'a'.repeat(400)}`, 42, null, undefined, {}]) {
      assert.equal(parseHealthSpec(bad), undefined, JSON.stringify(bad));
    }
  });

  it('read durations as docker writes them, and refuse bare numbers and junk', () => {
    assert.deepEqual(['5s', '500ms', '1m30s', '1.5s', '2h', '0', '1m0s'].map(parseDuration), [5000, 500, 90_000, 1500, 7_200_000, 0, 60_000]);
    for (const bad of ['5', '-1s', '5 s', '1d', 's', '1e3s', '', '5s ', 'ms', '1..5s', 'x'.repeat(50)]) assert.equal(parseDuration(bad), undefined, bad);
    assert.deepEqual([5000, 1500, 250, 120_000].map(formatDuration), ['5s', '1.5s', '250ms', '2m']);
  });

  it('give a connect its check with docker\'s defaults, within the limits, naming the flag', () => {
    assert.deepEqual(checkHealth({ health: 'tcp:8080' }), { type: 'tcp', port: 8080, intervalMs: 5000, timeoutMs: 2000, retries: 3, startPeriodMs: 0 });
    assert.deepEqual(checkHealth({ health: 'http:80/up', healthIntervalMs: 2000, healthRetries: 1, healthStartPeriodMs: 10_000 }),
      { type: 'http', port: 80, path: '/up', intervalMs: 2000, timeoutMs: 2000, retries: 1, startPeriodMs: 10_000 });
    assert.equal(checkHealth({}), undefined);
    assert.throws(() => checkHealth({ healthIntervalMs: 1000 }), /--health-interval needs --health/);
    assert.throws(() => checkHealth({ health: 'tcp:80', healthIntervalMs: 10 }), /--health-interval: must be at least 100 ms/);
    assert.throws(() => checkHealth({ health: 'tcp:80', healthRetries: 0 }), /--health-retries: must be at least 1/);
    assert.throws(() => checkHealth({ health: 'tcp:80', healthTimeoutMs: 3_600_000 }), /--health-timeout: must be at most 60000 ms/);
    assert.throws(() => checkHealth({ health: 'tcp:80', healthRetries: 1.5 }), /--health-retries: must be a whole number/);
    assert.throws(() => checkHealth({ health: 'ftp:21' }), /--health "ftp:21": expected tcp:PORT or http:PORT/);
    assert.throws(() => checkHealth({ health: `http:80/${'a'.repeat(260)}` }), /not an HTTP path/);
  });

  it('take healthCheck in a registry file, with defaults, and refuse what is out of bounds', () => {
    const doc = (hc: string) => `name: n\nendpoints:\n  - {name: a, ipv4: 10.0.0.1, healthCheck: ${hc}}\n`;
    const a = parseDocumentText(doc('{type: http, port: 8080}'), 'h.yaml').endpoints[0];
    assert.deepEqual(a.healthCheck, { type: 'http', port: 8080, path: '/', intervalMs: 5000, timeoutMs: 2000, retries: 3, startPeriodMs: 0 });
    assert.throws(() => parseDocumentText(doc('{type: udp, port: 53}'), 'h.yaml'), /endpoints\.0\.healthCheck\.type/);
    assert.throws(() => parseDocumentText(doc('{type: tcp, port: 80, intervalMs: 5}'), 'h.yaml'), /endpoints\.0\.healthCheck\.intervalMs: at least 100 ms/);
    assert.throws(() => parseDocumentText(doc('{type: tcp, port: 80, path: /x}'), 'h.yaml'), /a tcp check has no path/);
    assert.throws(() => parseDocumentText(doc('{type: tcp, port: 80, command: "rm -rf /"}'), 'h.yaml'), /Unrecognized key "command"/);
    assert.throws(() => parseDocumentText(doc('{type: http, port: 80, path: "/a b"}'), 'h.yaml'), /not an HTTP path/);
  });
});

describe('health state machine', () => {
  it('is starting until the first success, then healthy; unhealthy after `retries` failures in a row; one success brings it back', () => {
    const m = new HealthMachine(check(), Date.now());
    assert.equal(m.status, 'starting');
    assert.equal(m.record(result(false)), 'starting');
    assert.equal(m.record(result(true)), 'healthy');
    assert.equal(m.record(result(false)), 'healthy');
    assert.equal(m.record(result(false)), 'healthy');
    assert.equal(m.failingStreak, 2);
    assert.equal(m.record(result(false)), 'unhealthy');
    assert.equal(m.record(result(false)), 'unhealthy');
    assert.equal(m.failingStreak, 4);
    assert.equal(m.record(result(true)), 'healthy');
    assert.equal(m.failingStreak, 0);
  });

  it('does not count failures within the start period; after it, `retries` failures make it unhealthy', () => {
    const since = Date.now();
    const m = new HealthMachine(check({ startPeriodMs: 10_000, retries: 2 }), since);
    for (let i = 0; i < 5; i++) assert.equal(m.record(result(false, since + i * 1000)), 'starting');
    assert.equal(m.failingStreak, 0);
    assert.equal(m.record(result(false, since + 11_000)), 'starting');
    assert.equal(m.record(result(false, since + 12_000)), 'unhealthy');
  });

  it('takes a state set from outside and moves on from it at the next result; keeps the last five results', () => {
    const m = new HealthMachine(check({ retries: 2 }), Date.now());
    m.record(result(false));
    m.override('unhealthy');
    assert.equal(m.failingStreak, 0);
    assert.equal(m.record(result(true)), 'healthy', 'a success ends a state set by hand');
    m.override('healthy');
    assert.equal(m.record(result(false)), 'healthy');
    assert.equal(m.record(result(false)), 'unhealthy');
    for (let i = 0; i < 9; i++) m.record(result(true));
    assert.equal(m.log.length, 5);
  });
});

/** A registry with `n` probed endpoints on network "p", all holding alias "pool". */
function registryWith(n: number, hc: Partial<HealthCheck> = {}): { registry: Registry; ids: string[] } {
  const registry = new Registry();
  const endpoints = Array.from({ length: n }, (_, i) => `  - {name: e${i}, aliases: [pool], ipv4: 10.0.${i >> 8}.${(i & 255) + 1}, healthCheck: ${JSON.stringify({ type: 'tcp', port: 80, intervalMs: 200, timeoutMs: 100, retries: 1, ...hc })}}`);
  const record = parseDocumentText(`name: p\nendpoints:\n${endpoints.join('\n')}\n`, 'p.yaml');
  registry.setNetwork(record, 'test');
  return { registry, ids: record.endpoints.map((e) => e.id) };
}

/**
 * Runs the prober's clock `ms` forward on the mocked timers, 10 ms at a time, letting promises
 * settle between steps: the schedule is the behaviour here, and a busy machine's real clock would
 * bunch late ticks together.
 */
async function advance(ms: number): Promise<void> {
  for (let t = 0; t < ms; t += 10) {
    mock.timers.tick(10);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('health prober schedule', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 }));
  afterEach(() => mock.timers.reset());

  it('spreads first probes over the interval instead of firing them together', async () => {
    const { registry } = registryWith(10, { intervalMs: 1000 });
    const first = new Map<string, number>();
    const started = Date.now();
    let i = 0;
    const probe: Probe = (address, _c, done) => { if (!first.has(address)) first.set(address, Date.now() - started); done(result(true)); return () => undefined; };
    const prober = new HealthProber(registry, silentLogger, { probe: () => probe, spread: () => (i++ % 10) / 10 }).start();
    try {
      await advance(1100);
      const times = [...first.values()].sort((a, b) => a - b);
      assert.equal(times.length, 10);
      assert.ok(times[9] - times[0] >= 700, `first probes at ${times.join(', ')} ms`);
      // Probes due within one tick (here 100 ms) start in it together: due times 100 ms apart that
      // straddle a tick boundary can share one, never three.
      for (let k = 2; k < times.length; k++) assert.ok(times[k] - times[k - 2] >= 50, `three probes within 50 ms: ${times.join(', ')}`);
    } finally {
      await prober.stop();
    }
  });

  it('lets one endpoint\'s hanging probe hold only itself, and never runs more than maxConcurrent probes', async () => {
    const { registry, ids } = registryWith(6, { intervalMs: 100, timeoutMs: 5000 });
    const counts = new Map<string, number>();
    let active = 0;
    let most = 0;
    const probe: Probe = (address, _c, done) => {
      counts.set(address, (counts.get(address) ?? 0) + 1);
      active++;
      most = Math.max(most, active);
      const end = (r: ProbeResult) => { active--; done(r); };
      // 10.0.0.1 never answers (until stopped); the others take 20 ms.
      if (address === '10.0.0.1') return () => end({ ...result(false), detail: 'stopped' });
      const timer = setTimeout(() => end(result(true)), 20);
      return () => { clearTimeout(timer); end({ ...result(false), detail: 'stopped' }); };
    };
    const prober = new HealthProber(registry, silentLogger, { probe: () => probe, maxConcurrent: 2, spread: () => 0 }).start();
    try {
      await advance(1000);
      assert.equal(counts.get('10.0.0.1'), 1, 'the hanging probe is not started again while it runs');
      for (const a of ['10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6']) assert.ok((counts.get(a) ?? 0) >= 5, `${a} probed ${counts.get(a)} times in 1 s at 100 ms`);
      assert.ok(most <= 2, `${most} probes ran at once`);
      assert.ok(prober.skipped >= 5);
      assert.equal(registry.health.get('p', ids[0]), 'starting');
      assert.equal(registry.health.get('p', ids[1]), 'healthy');
    } finally {
      await prober.stop();
    }
  });

  it('stops a probe at its deadline and counts it as timed out, as it does a result that came after the deadline', async () => {
    const { registry, ids } = registryWith(2, { intervalMs: 300, timeoutMs: 100, retries: 1 });
    let stops = 0;
    const probe: Probe = (address, _c, done) => {
      const start = Date.now();
      // 10.0.0.1 never answers until stopped; 10.0.0.2 reports a success seen 150 ms after it began.
      if (address === '10.0.0.2') { done({ ok: true, detail: 'connected', start, end: start + 150 }); return () => undefined; }
      return () => { stops++; done({ ok: false, detail: 'stopped', start, end: Date.now() }); };
    };
    const prober = new HealthProber(registry, silentLogger, { probe: () => probe, spread: () => 0 }).start();
    try {
      await advance(250);
      assert.ok(stops >= 1, 'the hanging probe was stopped');
      assert.deepEqual(ids.map((id) => registry.health.get('p', id)), ['unhealthy', 'unhealthy']);
      for (const id of ids) assert.equal(prober.info('p', id)?.log.at(-1)?.detail, 'timed out after 100 ms');
      const last = prober.info('p', ids[0])!.log.at(-1)!;
      assert.ok(last.end - last.start >= 100 && last.end - last.start < 200, `stopped after ${last.end - last.start} ms`);
    } finally {
      await prober.stop();
    }
  });

  it('follows the registry: a new check is starting before any query, a gone endpoint takes its state along', async () => {
    const { registry, ids } = registryWith(2, { intervalMs: 100 });
    const probed: string[] = [];
    const probe: Probe = (address, _c, done) => { probed.push(address); done(result(false)); return () => undefined; };
    const prober = new HealthProber(registry, silentLogger, { probe: () => probe, spread: () => 0 }).start();
    try {
      assert.deepEqual(ids.map((id) => registry.health.get('p', id)), ['starting', 'starting']);
      await advance(250);
      assert.deepEqual(ids.map((id) => registry.health.get('p', id)), ['unhealthy', 'unhealthy']);
      // e1 leaves the network: no more probes, and its state goes.
      registry.setNetwork(parseDocumentText('name: p\nendpoints:\n  - {name: e0, aliases: [pool], ipv4: 10.0.0.1, healthCheck: {type: tcp, port: 80, intervalMs: 100, timeoutMs: 100, retries: 1}}\n', 'p.yaml'), 'test');
      assert.equal(prober.size, 1);
      assert.equal(registry.health.get('p', ids[0]), 'unhealthy', 'an unchanged check keeps its state');
      probed.length = 0;
      await advance(250);
      assert.ok(!probed.includes('10.0.0.2'));
      assert.ok(probed.includes('10.0.0.1'));
      // A state set from outside holds until the next result changes it.
      prober.set('p', ids[0], 'healthy');
      assert.equal(prober.info('p', ids[0])?.failingStreak, 0);
      registry.removeNetwork('p', 'test');
      assert.equal(prober.size, 0);
    } finally {
      await prober.stop();
    }
  });
});

describe('health of endpoints that share an id across networks', () => {
  it('keeps a copycat network from replacing the victim\'s probe or marking it unhealthy', async () => {
    const id = 'ab'.repeat(32);
    const hc = '{type: tcp, port: 80, intervalMs: 100, timeoutMs: 100, retries: 1}';
    const registry = new Registry();
    registry.setNetwork(parseDocumentText(`name: victim\nendpoints:\n  - {id: "${id}", name: web, healthHideOwn: true, ipv4: 10.0.0.1, healthCheck: ${hc}}\n`, 'v.yaml'), 'file:v.yaml');
    // Every probe of 10.0.0.1 passes, every probe of the copycat's address fails.
    const probe: Probe = (address, _c, done) => { done(result(address === '10.0.0.1')); return () => undefined; };
    const prober = new HealthProber(registry, silentLogger, { probe: () => probe, spread: () => 0 }).start();
    try {
      await until('victim healthy', () => prober.info('victim', id)?.status, (s) => s === 'healthy');
      registry.setNetwork(parseDocumentText(`name: copycat\nendpoints:\n  - {id: "${id}", name: fake, ipv4: 10.0.0.9, healthCheck: ${hc}}\n`, 'c.yaml'), 'file:c.yaml');
      await until('copycat unhealthy', () => prober.info('copycat', id)?.status, (s) => s === 'unhealthy');
      assert.equal(prober.size, 2, 'each network keeps its own probe');
      assert.equal(prober.info('victim', id)?.address, '10.0.0.1');
      const before = prober.info('victim', id)!.log.length;
      await until('the victim is probed again', () => prober.info('victim', id)!.log.length, (n) => n > before || n === 5);
      assert.equal(registry.health.get('victim', id), 'healthy');
      const web = registry.current().view(['victim']).lookup('web');
      assert.equal(web.kind, 'found');
      assert.deepEqual(web.kind === 'found' && web.a.map((b) => [...b].join('.')), ['10.0.0.1'], 'the victim\'s name still answers');
      // `endpoint health` names the network: setting the copycat's state leaves the victim alone.
      prober.set('copycat', id, 'unhealthy');
      assert.equal(registry.health.get('victim', id), 'healthy');
    } finally {
      await prober.stop();
    }
  });
});
