// Where a connect's milliseconds go: after a real connect and disconnect, `nsdns debug --json`
// lists both with their stages as numbers, naming the paths that did the namespace work (the
// same ones `nsdns status` reports); the daemon logs each breakdown at debug level; the human
// form shows them too.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Lab, needsRoot } from '../helpers/netns.js';

interface Timing {
  operation: string; network: string; endpoint: string; netns: string; ok: boolean; totalMs: number;
  stages: Array<{ stage: string; ms: number }>; paths: { links: string; bind?: string };
}

describe('connect timing in nsdns debug', { skip: needsRoot }, () => {
  const lab = new Lab();
  before(async () => { await lab.start(['--log-level', 'debug']); });
  after(() => lab.cleanup());

  it('a connect and a disconnect show up with every stage in ms, and the paths in use', async () => {
    await lab.ok('network', 'create', 'timed', '--subnet', '10.65.0.0/24');
    const ns = await lab.namespace('timed');
    await lab.ok('network', 'connect', 'timed', ns, '--name', 'clock');
    const status = JSON.parse(await lab.ok('status', '--json')) as { helpers: { bind: string; links: string } };

    const report = JSON.parse(await lab.ok('debug', ns, '--json')) as { daemon: { timings: Timing[] } };
    const connects = report.daemon.timings.filter((t) => t.operation === 'connect' && t.endpoint === 'clock');
    assert.equal(connects.length, 1, JSON.stringify(report.daemon.timings));
    const [c] = connects;
    assert.equal(c.ok, true);
    assert.equal(c.network, 'timed');
    assert.equal(c.netns, `/run/netns/${ns}`);
    assert.deepEqual(c.stages.map((s) => s.stage), [
      'plan', 'connect note', 'veth pair', 'addresses+routes in namespace', 'state file + registry', 'resolv.conf', 'bind 127.0.0.11', 'connect note removed',
    ]);
    for (const s of c.stages) assert.ok(Number.isFinite(s.ms) && s.ms >= 0, `${s.stage}: ${s.ms}`);
    const sum = c.stages.reduce((a, s) => a + s.ms, 0);
    assert.ok(c.totalMs > 0 && Math.abs(sum - c.totalMs) < 0.5, `stages add up to ${sum}, total ${c.totalMs}`);
    assert.deepEqual(c.paths, { links: status.helpers.links, bind: status.helpers.bind });

    const logged = await lab.daemon!.waitForLog((l) => l.msg === 'connect timing' && l.endpoint === 'clock');
    assert.equal(logged.level, 20, 'debug level');
    assert.deepEqual(Object.keys(logged.stages as object), c.stages.map((s) => s.stage));

    const human = await lab.ok('debug', ns);
    assert.match(human, new RegExp(`connect clock to timed: [\\d.]+ ms\\n    plan [\\d.]+, .*addresses\\+routes in namespace \\(${status.helpers.links}\\) [\\d.]+, .*bind 127\\.0\\.0\\.11 \\(${status.helpers.bind}\\) [\\d.]+`));

    await lab.ok('network', 'disconnect', 'timed', ns);
    const again = JSON.parse(await lab.ok('debug', ns, '--json')) as { daemon: { timings: Timing[] } };
    const d = again.daemon.timings.at(-1)!;
    assert.equal(d.operation, 'disconnect');
    assert.equal(d.endpoint, 'clock');
    assert.deepEqual(d.stages.map((s) => s.stage), ['plan', 'delete veth', 'state file', 'registry', 'resolv.conf', 'default route']);
    for (const s of d.stages) assert.ok(Number.isFinite(s.ms) && s.ms >= 0);
  });
});
