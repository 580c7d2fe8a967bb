// Metrics and health as an operator's scraper and probes see them: /metrics parsed as Prometheus
// text after real dig queries, /readyz flipping when the only upstream stops answering (and back),
// and `nsdns status` saying the same.
import assert from 'node:assert/strict';
import net from 'node:net';
import dgram from 'node:dgram';
import path from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { execa } from 'execa';
import { MAIN, ROOT, startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { FakeUpstream } from '../helpers/fake-upstream.js';
import { dig } from '../helpers/dig.js';
import { tempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

interface Sample { name: string; labels: Record<string, string>; value: number }

/** The Prometheus text format, read as a scraper would (and checked to be well-formed). */
function parseMetrics(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const type = /^# TYPE (\w+) (\w+)$/.exec(line);
    if (type) { types.set(type[1], type[2]); continue; }
    if (line.startsWith('#')) continue;
    const m = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return { samples, types };
}

class Scraper {
  constructor(readonly address: string) {}

  async get(urlPath: string, method = 'GET'): Promise<{ status: number; body: string; type: string }> {
    const r = await fetch(`http://${this.address}${urlPath}`, { method });
    return { status: r.status, body: await r.text(), type: r.headers.get('content-type') ?? '' };
  }

  async metrics() {
    const r = await this.get('/metrics');
    assert.equal(r.status, 200);
    assert.match(r.type, /^text\/plain; version=0\.0\.4/);
    const parsed = parseMetrics(r.body);
    const value = (name: string, labels: Record<string, string> = {}) => parsed.samples
      .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
      .reduce((sum, s) => sum + s.value, 0);
    return { ...parsed, value };
  }
}

async function start(args: string[], config?: string): Promise<{ daemon: RunningDaemon; scraper: Scraper; socket: string }> {
  const extra: string[] = [];
  if (config) {
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    extra.push('--config', dir.write('c.yaml', config), '--no-resolv-conf');
  }
  const daemon = await startDaemon(['--listen', '127.0.0.1:0', '--metrics', '127.0.0.1:0', ...extra, ...args]);
  cleanups.push(() => daemon.stop());
  const ready = await daemon.waitForLog((l) => l.msg === 'ready');
  assert.match(String(ready.metrics), /^127\.0\.0\.1:\d+$/);
  return { daemon, scraper: new Scraper(String(ready.metrics)), socket: path.join(daemon.stateDir, 'nsdns.sock') };
}

async function upstream(behaviour: 'answer' | 'silent' = 'answer'): Promise<FakeUpstream> {
  const u = await FakeUpstream.start({ zone: { 'up.test': ['192.0.2.1'], 'again.test': ['192.0.2.2'], 'back.test': ['192.0.2.3'] }, behaviour });
  cleanups.push(() => u.stop());
  return u;
}

function udp(server: string, packet: Buffer): Promise<void> {
  const socket = dgram.createSocket('udp4');
  return new Promise((resolve) => socket.send(packet, Number(server.split(':')[1]), '127.0.0.1', () => { socket.close(); resolve(); }));
}

const nsdns = (...args: string[]) => execa(process.execPath, [MAIN, ...args], { reject: false, cwd: ROOT });

describe('/metrics', () => {
  it('counts answers by source, qtype and rcode, the cache, the upstream and bad packets', async () => {
    const up = await upstream();
    const { daemon, scraper } = await start(['--registry', path.join(ROOT, 'fixtures/lab'), '--upstream', up.spec]);
    const before = await scraper.metrics();
    assert.equal(before.types.get('nsdns_queries_total'), 'counter');
    assert.equal(before.types.get('nsdns_answer_duration_seconds'), 'histogram');
    assert.equal(before.types.get('nsdns_cache_entries'), 'gauge');
    assert.equal(before.value('nsdns_networks'), 2);
    assert.equal(before.value('nsdns_endpoints'), 4);
    assert.equal(before.value('nsdns_ready'), 1);

    assert.equal((await dig(daemon.server, 'web.lab')).status, 'NOERROR');
    assert.equal((await dig(daemon.server, 'nope.lab', 'AAAA')).status, 'NXDOMAIN');
    assert.equal((await dig(daemon.server, 'up.test')).answers[0]?.data, '192.0.2.1');
    assert.equal((await dig(daemon.server, 'up.test')).answers[0]?.data, '192.0.2.1');
    assert.equal((await dig(daemon.server, 'web.lab', 'MX')).status, 'NOERROR');
    // A message too short for a header is dropped; two questions get FORMERR.
    await udp(daemon.server, Buffer.from([1, 2, 3]));
    const twoQuestions = Buffer.from('abcd0100000200000000000000010001', 'hex');
    await udp(daemon.server, twoQuestions);
    // Neither gets an answer the test could wait for: wait for the daemon to have counted both.
    const m = await waitFor(async () => {
      const now = await scraper.metrics();
      return now.value('nsdns_dropped_messages_total', { reason: 'not-a-query' }) >= 1 && now.value('nsdns_malformed_queries_total') >= 1 ? now : undefined;
    }, { what: 'both bad packets counted' });
    const q = (labels: Record<string, string>) => m.value('nsdns_queries_total', { listener: 'host', ...labels });
    assert.equal(q({ source: 'local', qtype: 'A', rcode: 'NOERROR' }), 1);
    assert.equal(q({ source: 'local', qtype: 'AAAA', rcode: 'NXDOMAIN' }), 1);
    assert.equal(q({ source: 'local', qtype: 'other', rcode: 'NOERROR' }), 1);
    assert.equal(q({ source: 'upstream', qtype: 'A', rcode: 'NOERROR' }), 1);
    assert.equal(q({ source: 'cache', qtype: 'A', rcode: 'NOERROR' }), 1);
    assert.equal(q({ source: 'error', rcode: 'FORMERR' }), 1);
    assert.equal(m.value('nsdns_queries_total', { listener: 'namespace' }), 0);
    // The three local answers (web.lab A and MX, nope.lab) all came from network lab.
    assert.equal(m.value('nsdns_local_answers_total', { network: 'lab' }), 3);
    assert.equal(m.value('nsdns_cache_hits_total'), 1);
    assert.equal(m.value('nsdns_cache_misses_total'), 1);
    assert.equal(m.value('nsdns_cache_entries'), 1);
    assert.equal(m.value('nsdns_upstream_queries_total', { server: up.spec }), 1);
    assert.equal(m.value('nsdns_upstream_timeouts_total', { server: up.spec }), 0);
    assert.equal(m.value('nsdns_upstream_duration_seconds_count', { server: up.spec }), 1);
    assert.equal(m.value('nsdns_upstream_duration_seconds_bucket', { server: up.spec, le: '+Inf' }), 1);
    assert.equal(m.value('nsdns_dropped_messages_total', { reason: 'not-a-query' }), 1);
    assert.equal(m.value('nsdns_malformed_queries_total'), 1);
    // Sampled: at most one answer in eight is timed, and the buckets add up.
    const timed = m.value('nsdns_answer_duration_seconds_count');
    assert.ok(timed <= 1, `timed ${timed}`);
    assert.equal(m.value('nsdns_answer_duration_seconds_bucket', { le: '+Inf' }), timed);
    // Names a client sent never become label values.
    assert.doesNotMatch((await scraper.get('/metrics')).body, /up\.test|web\.lab|nope/);

    // A short name, an alias and a name in a network's domain are counted under their network.
    for (const name of ['www', 'grafana', 'mon.ops.example', 'db']) assert.equal((await dig(daemon.server, name)).status, 'NOERROR', name);
    const after = await scraper.metrics();
    const labels = after.samples.filter((s) => s.name === 'nsdns_local_answers_total').map((s) => s.labels.network).sort();
    assert.deepEqual(labels, ['lab', 'ops']);
    assert.equal(after.value('nsdns_local_answers_total', { network: 'lab' }), 5);
    assert.equal(after.value('nsdns_local_answers_total', { network: 'ops' }), 2);
  });

  it('counts queries refused for load (a client over its share)', async () => {
    const up = await upstream();
    const { daemon, scraper } = await start(['--upstream', up.spec], 'forward:\n  clientQueriesPerSecond: 2\n');
    const names = Array.from({ length: 12 }, (_, i) => `n${i}.flood.test`);
    // Over TCP, so that every query turned away is answered (over UDP only one in 4 is).
    const results = await Promise.all(names.map((n) => dig(daemon.server, '+tcp', n)));
    const refused = results.filter((r) => r.status === 'REFUSED').length;
    assert.ok(refused >= 5, `only ${refused} refused`);
    const m = await scraper.metrics();
    assert.equal(m.value('nsdns_refused_for_load_total', { limit: 'client' }), refused);
    assert.equal(m.value('nsdns_queries_total', { source: 'error', rcode: 'REFUSED' }), refused);
  });

  it('counts health probes by result and checked endpoints by state', async () => {
    const listener = net.createServer((c) => c.destroy());
    await new Promise<void>((r) => listener.listen(0, '127.0.0.7', () => r()));
    cleanups.push(() => new Promise<void>((r) => listener.close(() => r())));
    const port = (listener.address() as net.AddressInfo).port;
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    const check = (p: number) => `{type: tcp, port: ${p}, intervalMs: 100, timeoutMs: 300, retries: 1}`;
    dir.write('hc.yaml', `name: hc\nendpoints:\n  - {name: up, ipv4: 127.0.0.7, healthCheck: ${check(port)}}\n  - {name: down, ipv4: 127.0.0.8, healthCheck: ${check(port)}}\n`);
    // Loopback is probed only where the operator allows it (registry files never may).
    const { scraper } = await start(['--registry', dir.dir], 'registryFiles:\n  probeAllow: [127.0.0.0/8]\n');
    // Three probes each (every 100 ms), however long a busy machine takes to run them.
    const m = await waitFor(async () => {
      const now = await scraper.metrics();
      return now.value('nsdns_health_probes_total', { result: 'ok' }) >= 3 && now.value('nsdns_health_probes_total', { result: 'failed' }) >= 3
        && now.value('nsdns_health_checked_endpoints', { state: 'unhealthy' }) === 1 ? now : undefined;
    }, { what: 'three probes of each endpoint, one endpoint unhealthy' });
    assert.equal(m.value('nsdns_health_checked_endpoints', { state: 'healthy' }), 1);
    assert.equal(m.value('nsdns_health_checked_endpoints', { state: 'unhealthy' }), 1);
  });

  it('serves /healthz, and nothing but GET on known paths', async () => {
    const { scraper } = await start([]);
    assert.deepEqual(await scraper.get('/healthz').then((r) => [r.status, r.body]), [200, 'ok\n']);
    assert.equal((await scraper.get('/nope')).status, 404);
    assert.equal((await scraper.get('/metrics', 'POST')).status, 405);
  });
});

describe('/readyz and nsdns status', () => {
  it('flips to 503 with the reason when the only upstream stops answering (not on one slow name), and back when it answers', async () => {
    const up = await upstream();
    const { daemon, scraper, socket } = await start(['--upstream', up.spec], 'forward:\n  timeoutMs: 300\n  budgetMs: 600\n');
    assert.deepEqual(await scraper.get('/readyz').then((r) => [r.status, r.body]), [200, 'ready\n']);
    const ok = await nsdns('status', '--socket', socket);
    assert.equal(ok.exitCode, 0, ok.stderr);
    assert.match(ok.stdout, /^nsdns: ready \(pid \d+/);
    assert.match(ok.stdout, new RegExp(`upstreams: +${up.spec.replace(/\./g, '\\.')}\\n`));

    up.behaviour = 'silent';
    // One timeout is one slow name (a lame delegation behind the upstream), not a dead upstream.
    assert.equal((await dig(daemon.server, 'slow.test')).status, 'SERVFAIL');
    assert.deepEqual(await scraper.get('/readyz').then((r) => [r.status, r.body]), [200, 'ready\n']);
    // Three in a row are: the upstream is known dead.
    assert.equal((await dig(daemon.server, 'up.test')).status, 'SERVFAIL');
    assert.equal((await dig(daemon.server, 'up2.test')).status, 'SERVFAIL');
    const down = await scraper.get('/readyz');
    assert.equal(down.status, 503);
    assert.equal(down.body, `not ready:\n- no upstream is answering: ${up.spec} failed their recent queries\n`);
    const status = await nsdns('status', '--socket', socket);
    assert.equal(status.exitCode, 1);
    assert.match(status.stdout, /^nsdns: NOT READY/);
    assert.match(status.stdout, /- no upstream is answering/);
    assert.match(status.stdout, /\(failing\)/);
    const json = JSON.parse((await nsdns('status', '--json', '--socket', socket)).stdout);
    assert.equal(json.ready, false);
    assert.deepEqual(json.upstreams, [{ server: up.spec, failing: true }]);
    const m = await scraper.metrics();
    assert.equal(m.value('nsdns_upstream_timeouts_total', { server: up.spec }), 3);
    assert.equal(m.value('nsdns_upstream_failing', { server: up.spec }), 1);
    assert.equal(m.value('nsdns_ready'), 0);

    // Passive: only an answer to a real query clears it.
    up.behaviour = 'answer';
    assert.equal((await scraper.get('/readyz')).status, 503);
    // A known-dead upstream is asked by one query per probe interval: the first such query finds it back.
    await waitFor(async () => (await dig(daemon.server, 'back.test')).answers[0]?.data === '192.0.2.3', { what: 'the upstream answers again', everyMs: 200 });
    assert.deepEqual(await scraper.get('/readyz').then((r) => [r.status, r.body]), [200, 'ready\n']);
    assert.equal((await nsdns('status', '--socket', socket)).exitCode, 0);
  });

  it('stays ready when the only upstream refuses a name, and passes its REFUSED to the client', async () => {
    const up = await upstream();
    const { daemon, scraper, socket } = await start(['--upstream', up.spec], 'forward:\n  timeoutMs: 300\n  budgetMs: 600\n');
    up.behaviour = 'refused';
    assert.equal((await dig(daemon.server, 'up.test')).status, 'REFUSED');
    up.behaviour = 'servfail';
    assert.equal((await dig(daemon.server, 'again.test')).status, 'SERVFAIL');
    assert.deepEqual(await scraper.get('/readyz').then((r) => [r.status, r.body]), [200, 'ready\n']);
    assert.equal((await nsdns('status', '--socket', socket)).exitCode, 0);
    assert.equal((await scraper.metrics()).value('nsdns_upstream_failing', { server: up.spec }), 0);
  });

  it('is ready with no upstream at all (nothing to forward), and status says so', async () => {
    const { scraper, socket } = await start(['--registry', path.join(ROOT, 'fixtures/lab')]);
    assert.equal((await scraper.get('/readyz')).status, 200);
    const r = await nsdns('status', '--socket', socket);
    assert.equal(r.exitCode, 0);
    assert.match(r.stdout, /networks: +2 \(4 endpoints\)/);
    assert.match(r.stdout, /upstreams: +none/);
  });

  it('refuses an invalid --metrics address before starting', async () => {
    for (const bad of ['localhost:9100', '127.0.0.1', '127.0.0.1:70000', '[::1:9100', 'fd00::1:9100']) {
      const r = await nsdns('serve', '--metrics', bad, '--state-dir', '/nonexistent/nsdns-never', '--no-resolv-conf');
      assert.equal(r.exitCode, 1, bad);
      assert.match(r.stderr, /metrics\.listen: not ADDRESS:PORT/, bad);
    }
  });
});
