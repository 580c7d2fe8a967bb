// The race over the upstreams, driven through an injected exchange that keeps the Exchange
// contract for slow exchanges (it tells the watch at `afterMs`, then waits on to its timeout):
// the next server asked early, the first usable answer winning, what health learns from the
// exchanges left behind, and the drop-in's first answer whatever its rcode. The hedge delay's
// bounds are checked on UpstreamHealth directly. Real sockets: test/integration/forward-dead-first.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import dnsPacket from 'dns-packet';
import { AnswerCache } from '../../src/resolver/cache.js';
import { Forwarder, type ForwardOptions } from '../../src/resolver/forwarder.js';
import { UpstreamHealth } from '../../src/resolver/health.js';
import { parseUpstream } from '../../src/resolver/upstream-address.js';
import { UpstreamTimeout, type Exchange } from '../../src/resolver/upstream.js';
import { parseQuery, type Query } from '../../src/wire/query.js';
import { silentLogger } from '../../src/log.js';
import { decode, queryPacket } from '../helpers/packets.js';
import { waitFor } from '../helpers/wait.js';

const q = (name: string) => parseQuery(queryPacket(name)) as Query;
const A = parseUpstream('127.0.0.1:1001');
const B = parseUpstream('127.0.0.1:1002');

function reply(query: Buffer, rcode: 0 | 2 | 5): Buffer {
  const p = dnsPacket.decode(query);
  return dnsPacket.encode({ type: 'response', id: p.id, flags: 0x8180 | rcode, questions: p.questions, answers: rcode === 0 ? [{ type: 'A', name: p.questions![0].name, ttl: 60, data: '192.0.2.1' }] : [] });
}

/** How one server behaves: answers with `rcode` after `ms`, or never (then its timeout). */
type Server = { rcode: 0 | 2 | 5; ms: number } | 'silent';

/** An exchange where each port behaves as told, with a real timer standing for the socket's. */
function fakeUpstreams(servers: Record<number, Server>, asked: string[]): Exchange {
  return (raw, _qe, server, _transport, timeoutMs, _caseExact, watch) => new Promise((resolve, reject) => {
    asked.push(server.key);
    const how = servers[server.port];
    const slow = watch ? setTimeout(() => watch.slow(), watch.afterMs) : undefined;
    const end = (fn: () => void) => setTimeout(() => { clearTimeout(slow); fn(); }, how === 'silent' ? timeoutMs : Math.min(how.ms, timeoutMs));
    if (how === 'silent' || how.ms >= timeoutMs) end(() => reject(new UpstreamTimeout(server, 'udp', timeoutMs)));
    else end(() => resolve(reply(raw, how.rcode)));
  });
}

const options: ForwardOptions = { timeoutMs: 400, budgetMs: 1000, maxInflight: 10, maxInflightPerListener: 10, maxInflightPerClient: 10, clientQueriesPerSecond: 0, randomizeCase: false, maxUdpSize: 1232 };
const noCache = () => new AnswerCache({ size: 0, maxTtl: 60, maxNegativeTtl: 60, maxBytes: 1 << 20, tenantShare: 1 });

function forwarder(servers: Record<number, Server>, extra: Partial<ForwardOptions> = {}) {
  const asked: string[] = [];
  const fwd = new Forwarder({ ...options, ...extra }, noCache(), fakeUpstreams(servers, asked), silentLogger);
  const ask = async (name: string) => {
    const started = performance.now();
    const got = await fwd.forward(q(name), [A, B], 'k', 'udp', { inflight: 0 }, 'c');
    return { rcode: decode(got.reply!).rcode, origin: got.origin, ms: performance.now() - started };
  };
  return { fwd, asked, ask };
}

describe('hedged forwarding', () => {
  it('asks the next server while a silent first one still waits; the answer comes before its timeout', async () => {
    const { fwd, asked, ask } = forwarder({ 1001: 'silent', 1002: { rcode: 0, ms: 0 } });
    const got = await ask('x.test');
    assert.equal(got.rcode, 'NOERROR');
    assert.deepEqual(got.origin, { source: 'upstream', server: B.key });
    assert.ok(got.ms < options.timeoutMs, `answered after ${got.ms} ms`);
    assert.deepEqual(asked, [A.key, B.key]);
    // Outrun: asked after the server that answered, at once.
    assert.deepEqual(fwd.health.order([A, B]).map((s) => s.key), [B.key, A.key]);
    // Its exchange goes on, still counted in flight, and its timeout makes it known dead at once.
    assert.equal(fwd.inflightCount, 1);
    await waitFor(() => fwd.inflightCount === 0, { what: 'the silent server\'s exchange ends' });
    assert.equal(fwd.health.isDead(A.key), true, 'timed out while another server answered: known dead');
  });

  it('drops a late answer but learns from it: the slow server is forgiven and its delay grows', async () => {
    const { fwd, ask } = forwarder({ 1001: { rcode: 0, ms: 150 }, 1002: { rcode: 0, ms: 0 } });
    const before = fwd.health.hedgeDelay(A.key, options.timeoutMs);
    assert.deepEqual((await ask('x.test')).origin, { source: 'upstream', server: B.key });
    await waitFor(() => fwd.inflightCount === 0, { what: 'the slow server\'s late answer' });
    assert.equal(fwd.health.isFailing(A.key), false, 'it answered: back at the head of the line');
    assert.ok(fwd.health.hedgeDelay(A.key, options.timeoutMs) > before, 'its measured time raises its hedge delay');
  });

  it('does not hedge a server that answers within its delay, nor when it is the last one', async () => {
    const { asked, ask } = forwarder({ 1001: { rcode: 0, ms: 0 }, 1002: { rcode: 0, ms: 0 } });
    for (const n of ['a', 'b', 'c']) assert.equal((await ask(`${n}.test`)).rcode, 'NOERROR');
    assert.deepEqual(asked, [A.key, A.key, A.key]);
  });

  it('in the daemon, REFUSED or SERVFAIL from the first server sends the question on', async () => {
    for (const rcode of [5, 2] as const) {
      const { asked, ask } = forwarder({ 1001: { rcode, ms: 0 }, 1002: { rcode: 0, ms: 0 } });
      assert.equal((await ask('x.test')).rcode, 'NOERROR');
      assert.deepEqual(asked, [A.key, B.key]);
    }
  });

  it('with firstAnswerWins (the drop-in), the first server\'s REFUSED or SERVFAIL is the answer; silence still moves on', async () => {
    for (const [rcode, name] of [[5, 'REFUSED'], [2, 'SERVFAIL']] as const) {
      const { asked, ask } = forwarder({ 1001: { rcode, ms: 0 }, 1002: { rcode: 0, ms: 0 } }, { firstAnswerWins: true });
      const got = await ask('x.test');
      assert.equal(got.rcode, name);
      assert.deepEqual(got.origin, { source: 'upstream', server: A.key });
      assert.deepEqual(asked, [A.key], 'the second server is not asked');
    }
    const { ask } = forwarder({ 1001: 'silent', 1002: { rcode: 0, ms: 0 } }, { firstAnswerWins: true });
    assert.equal((await ask('x.test')).rcode, 'NOERROR');
  });
});

describe('a race that breaks', () => {
  it('a throw while judging a reply costs that reply, not the process: the client gets SERVFAIL', async () => {
    class BrokenCache extends AnswerCache {
      override put(): number {
        throw new Error('cache broke');
      }
    }
    const asked: string[] = [];
    const fwd = new Forwarder(options, new BrokenCache({ size: 10, maxTtl: 60, maxNegativeTtl: 60, maxBytes: 1 << 20, tenantShare: 1 }), fakeUpstreams({ 1001: { rcode: 0, ms: 0 }, 1002: { rcode: 0, ms: 0 } }, asked), silentLogger);
    const got = await fwd.forward(q('x.test'), [A, B], 'k', 'udp', { inflight: 0 }, 'c');
    assert.equal(decode(got.reply!).rcode, 'SERVFAIL');
    assert.match((got.origin as { reason: string }).reason, /cache broke/);
    assert.deepEqual(asked, [A.key, B.key]);
  });
});

describe('hedge delay', () => {
  it('is short for a server not heard from yet, a few ms past a fast one\'s usual time, bounded for a slow one', () => {
    const health = new UpstreamHealth();
    const unmeasured = health.hedgeDelay('a', 1500);
    assert.ok(unmeasured > 0 && unmeasured < 50, `${unmeasured} ms`);
    for (let i = 0; i < 20; i++) health.succeeded('fast', 1);
    const fast = health.hedgeDelay('fast', 1500);
    assert.ok(fast >= 6 && fast < 20, `fast: ${fast} ms`);
    for (let i = 0; i < 20; i++) health.succeeded('slow', 1000);
    assert.ok(health.hedgeDelay('slow', 1500) < 1500 / 2, 'well under the timeout');
    assert.equal(health.hedgeDelay('slow', 100), 50, 'at most half of a short timeout');
  });

  it('grows with a server\'s variation (SRTT plus four deviations)', () => {
    const health = new UpstreamHealth();
    for (let i = 0; i < 20; i++) health.succeeded('steady', 20);
    for (let i = 0; i < 20; i++) health.succeeded('jumpy', i % 2 === 0 ? 5 : 35);
    assert.ok(health.hedgeDelay('jumpy', 1500) > health.hedgeDelay('steady', 1500));
  });
});
