// One daemon serves every namespace: a hostile client in one namespace must not cost a client in
// another one its answers. Each attack runs inside a real namespace against its own 127.0.0.11,
// while a steady client in a neighbouring namespace asks one query every 2 ms.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { ROOT } from '../helpers/daemon.js';
import { FakeUpstream } from '../helpers/fake-upstream.js';
import { Lab, needsRoot } from '../helpers/netns.js';
import { rssMb, type SteadyResult } from '../helpers/steady-client.js';

const NS_CLIENT = path.join(ROOT, 'dist/test/helpers/ns-client.js');
const FAT = Array.from({ length: 250 }, (_, i) => `192.0.2.${i + 1}`);

function inNamespace(ns: string, ...args: string[]) {
  return execa('ip', ['netns', 'exec', ns, process.execPath, NS_CLIENT, ...args], { reject: false });
}

describe('tenant isolation', { skip: needsRoot }, () => {
  const lab = new Lab();
  let upstream: FakeUpstream;
  let attacker: string, victim: string, peer: string;

  before(async () => {
    upstream = await FakeUpstream.start({ zone: { 'fat.test': FAT } });
    await lab.start(['--upstream', upstream.spec]);
    [attacker, victim, peer] = await Promise.all(['attacker', 'victim', 'peer'].map((n) => lab.namespace(n)));
    await lab.ok('network', 'create', 'iso', '--subnet', '10.203.0.0/24');
    for (const ns of [attacker, victim, peer]) await lab.ok('network', 'connect', 'iso', ns, '--name', ns.split('-').pop()!);
  });
  after(async () => {
    await lab.cleanup();
    await upstream?.stop();
  });

  /** Runs an attack in the attacker's namespace while the victim asks for its peer; returns what the victim saw. */
  async function during(attack: string[], seconds = 4): Promise<{ victim: SteadyResult; grownMb: number }> {
    const pid = lab.daemon!.proc.pid!;
    const baseline = await rssMb(pid);
    let peak = baseline;
    const sampler = setInterval(() => void rssMb(pid).then((mb) => { peak = Math.max(peak, mb); }, () => {}), 100);
    const [, seen] = await Promise.all([
      inNamespace(attacker, attack[0], '127.0.0.11:53', attack[1], String(seconds + 1)),
      new Promise((r) => setTimeout(r, 500)).then(() => inNamespace(victim, 'steady', '127.0.0.11:53', 'peer', String(seconds))),
    ]);
    clearInterval(sampler);
    assert.equal(seen.exitCode, 0, seen.stderr);
    return { victim: JSON.parse(seen.stdout) as SteadyResult, grownMb: peak - baseline };
  }

  it('a namespace that pipelines over TCP and never reads costs its neighbours nothing', async (t) => {
    await lab.dig(attacker, 'fat.test'); // cached: the attacker gets 4 KB answers as fast as it asks
    const { victim: seen, grownMb } = await during(['pipeline', 'fat.test']);
    t.diagnostic(`victim ${JSON.stringify(seen)}, daemon RSS +${grownMb.toFixed(1)} MB`);
    assert.equal(seen.lost, 0, `victim lost ${seen.lost} of ${seen.sent}`);
    assert.ok(seen.p99 < 50, `victim p99 ${seen.p99.toFixed(2)} ms`);
    assert.ok(grownMb < 50, `daemon RSS grew by ${grownMb.toFixed(1)} MB`);
    assert.equal(lab.daemon!.exitCode, null);
  });

  it('a namespace flooding distinct forwarded names gets its fair share, and its neighbours keep their answers', async (t) => {
    const { victim: seen } = await during(['flood', 'flood.test']);
    t.diagnostic(`victim ${JSON.stringify(seen)}`);
    assert.equal(seen.lost, 0, `victim lost ${seen.lost} of ${seen.sent}`);
    assert.ok(seen.p99 < 50, `victim p99 ${seen.p99.toFixed(2)} ms`);
    assert.equal((await lab.dig(victim, 'fat.test')).length, FAT.length, 'forwarding still works for the victim');
    // The attacker's socket was read less while it flooded (the kernel dropped the excess)...
    const paused = lab.daemon!.logs.find((l) => /not reading its UDP socket/.test(String(l.msg)));
    assert.ok(paused, 'the flood gate paused the attacking namespace');
    assert.equal(paused.netns, `/run/netns/${attacker}`);
    for (let i = 0; i < 10; i++) { const t0 = Date.now(); const r = await lab.dig(attacker, 'peer'); t.diagnostic(`try ${i} ${Date.now() - t0} ms ${JSON.stringify(r)}`); if (r.length) break; }
    t.diagnostic(JSON.stringify(lab.daemon!.logs.filter((l) => l.level >= 40).slice(-8)));
    assert.deepEqual(await lab.dig(attacker, 'peer'), await lab.dig(victim, 'peer'));
  });
});
