// A dead first upstream must not cost clients its timeout, not even before nsdns knows it is dead:
// a server that has not answered within its hedge delay has the next server asked too, and the
// first usable answer wins. The first upstream here is a black hole on loopback (it reads every
// query and never answers), the second a live fake; the forward timeout is long (5 s), so an
// answer that waited for the black hole shows as one that came after the timeout.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { askAll } from '../helpers/burst-client.js';
import { dig, queryTimeMs } from '../helpers/dig.js';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { FakeUpstream } from '../helpers/fake-upstream.js';
import { tempDir } from '../helpers/tmp.js';

const TIMEOUT_MS = 5000;
const LIVE_ADDRESS = '192.0.2.21';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function setUp(extraConfig = ''): Promise<{ d: RunningDaemon; blackHole: FakeUpstream; live: FakeUpstream; port: number }> {
  const blackHole = await FakeUpstream.start({ behaviour: 'silent' });
  cleanups.push(() => blackHole.stop());
  const names = Object.fromEntries(Array.from({ length: 400 }, (_, i) => [`n${i}.hedge.test`, [LIVE_ADDRESS]]));
  const live = await FakeUpstream.start({ zone: { ...names, 'first.hedge.test': [LIVE_ADDRESS], 'after.hedge.test': [LIVE_ADDRESS] } });
  cleanups.push(() => live.stop());
  const dir = tempDir();
  cleanups.push(dir.cleanup);
  const config = dir.write('c.yaml', `forward:\n  timeoutMs: ${TIMEOUT_MS}\n  budgetMs: ${2 * TIMEOUT_MS}\n${extraConfig}`);
  const d = await startDaemon(['--listen', '127.0.0.1:0', '--upstream', blackHole.spec, '--upstream', live.spec, '--cache-size', '0', '--no-resolv-conf', '--config', config]);
  cleanups.push(() => d.stop());
  return { d, blackHole, live, port: d.port };
}

function assertAllAnswered(result: Awaited<ReturnType<typeof askAll>>, count: number): void {
  assert.deepEqual(result.unanswered, [], 'every query was answered');
  assert.equal(result.replies.length, count);
  const wrong = result.replies.filter((r) => r.rcode !== 'NOERROR' || r.addresses.join() !== LIVE_ADDRESS);
  assert.deepEqual(wrong, [], 'each by the live server');
  const late = result.replies.filter((r) => r.ms >= TIMEOUT_MS);
  assert.deepEqual(late, [], 'none waited for the black hole to time out');
}

describe('a dead first upstream', () => {
  it('costs the very first query no timeout: the second server is asked early', async () => {
    const { blackHole, live, port } = await setUp();
    const result = await askAll('127.0.0.1', port, ['first.hedge.test'], { waitMs: 2 * TIMEOUT_MS });
    assertAllAnswered(result, 1);
    assert.equal(blackHole.countFor('first.hedge.test'), 1, 'the first server was asked first');
    assert.equal(live.countFor('first.hedge.test'), 1);
  });

  it('costs a TCP query no timeout either (the black hole takes the connection and never answers)', async () => {
    const { blackHole, port } = await setUp();
    const r = await dig(`127.0.0.1:${port}`, '+tcp', 'first.hedge.test');
    assert.deepEqual(r.answers.map((a) => a.data), [LIVE_ADDRESS], r.raw);
    assert.ok(queryTimeMs(r) < TIMEOUT_MS, `answered after ${queryTimeMs(r)} ms`);
    assert.equal(blackHole.received.filter((q) => q.transport === 'tcp').length, 1, 'the black hole was asked first, over TCP');
  });

  it('answers a burst of 200 distinct names from one client, each hedged query counted once in its share', async () => {
    // The client's share is exactly the burst: a hedged query counted twice would be refused.
    const { blackHole, port } = await setUp('  maxInflightPerClient: 200\n  clientQueriesPerSecond: 0\n');
    const names = Array.from({ length: 200 }, (_, i) => `n${i}.hedge.test`);
    assertAllAnswered(await askAll('127.0.0.1', port, names, { waitMs: 2 * TIMEOUT_MS }), 200);
    // Outrun by the second server, the black hole is now asked after it. Counted by name: the
    // burst's own queries to the black hole may still be on their way when the burst is answered.
    assertAllAnswered(await askAll('127.0.0.1', port, ['after.hedge.test'], { waitMs: 2 * TIMEOUT_MS }), 1);
    assert.equal(blackHole.countFor('after.hedge.test'), 0, 'the black hole was not asked first again');
  });

  it('loses nothing at the default per-client share when queries keep coming', async () => {
    // One query every 5 ms: waiting out the timeout on each, 64 would be in flight after 320 ms
    // (paced that slowly so that a stalled daemon does not read 64 at once either).
    const { port } = await setUp();
    const names = Array.from({ length: 300 }, (_, i) => `n${i}.hedge.test`);
    assertAllAnswered(await askAll('127.0.0.1', port, names, { everyMs: 5, waitMs: 2 * TIMEOUT_MS }), 300);
  });
});
