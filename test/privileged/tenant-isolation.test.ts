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
import { waitFor } from '../helpers/wait.js';

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
    await lab.ok('network', 'create', 'iso', '--subnet', '10.61.0.0/24');
    for (const ns of [attacker, victim, peer]) await lab.ok('network', 'connect', 'iso', ns, '--name', ns.split('-').pop()!);
  });
  after(async () => {
    await lab.cleanup();
    await upstream?.stop();
  });

  /**
   * Runs an attack in the attacker's namespace while the victim asks for its peer (4 s, each query
   * asked up to 3 times); returns what the victim saw. The victim starts once `until` holds (the
   * attack is doing what the test is about: on a busy machine that may take a while), and the
   * attack goes on until the victim is done.
   */
  async function during(attack: string[], until: { check: () => boolean | Promise<boolean>; what: string }, seconds = 4): Promise<{ victim: SteadyResult; grownMb: number }> {
    const pid = lab.daemon!.proc.pid!;
    const baseline = await rssMb(pid);
    let peak = baseline;
    const sampler = setInterval(() => void rssMb(pid).then((mb) => { peak = Math.max(peak, mb); }, () => {}), 100);
    const attackProcess = inNamespace(attacker, attack[0], '127.0.0.11:53', attack[1], '120');
    try {
      await waitFor(until.check, { timeoutMs: 30_000, everyMs: 50, what: until.what });
      const seen = await inNamespace(victim, 'steady', '127.0.0.11:53', 'peer', String(seconds));
      assert.equal(seen.exitCode, 0, seen.stderr);
      return { victim: JSON.parse(seen.stdout) as SteadyResult, grownMb: peak - baseline };
    } finally {
      clearInterval(sampler);
      attackProcess.kill('SIGKILL');
      await attackProcess;
    }
  }

  it('a namespace that pipelines over TCP and never reads costs its neighbours nothing', async (t) => {
    await lab.dig(attacker, 'fat.test'); // cached: the attacker gets 4 KB answers as fast as it asks
    // Under way once the daemon holds more replies than the attacker reads (its connections are
    // full: the kernel's table shows bytes queued towards it).
    const backlogged = async () => (await execa('ip', ['netns', 'exec', attacker, 'ss', '-Htn', 'state', 'established', 'dport', '= :53'])).stdout
      .split('\n').some((line) => Number(line.trim().split(/\s+/)[0]) > 0);
    const { victim: seen, grownMb } = await during(['pipeline', 'fat.test'], { check: backlogged, what: 'the attacker leaves replies unread' });
    t.diagnostic(`victim ${JSON.stringify(seen)}, daemon RSS +${grownMb.toFixed(1)} MB`);
    assert.equal(seen.lost, 0, `victim lost ${seen.lost} of ${seen.sent} (each asked up to 3 times)`);
    assert.ok(grownMb < 50, `daemon RSS grew by ${grownMb.toFixed(1)} MB`);
    assert.equal(lab.daemon!.exitCode, null);
  });

  it('a namespace flooding distinct forwarded names gets its fair share, and its neighbours keep their answers', async (t) => {
    // The attacker's socket is read less while it floods (the kernel drops the excess): it floods
    // until the flood gate pauses it, however long a busy machine takes to get there.
    const paused = () => lab.daemon!.logs.find((l) => /not reading its UDP socket/.test(String(l.msg)));
    const { victim: seen } = await during(['flood', 'flood.test'], { check: () => paused() !== undefined, what: 'the flood gate pauses the attacking namespace' });
    t.diagnostic(`victim ${JSON.stringify(seen)}`);
    assert.equal(seen.lost, 0, `victim lost ${seen.lost} of ${seen.sent} (each asked up to 3 times)`);
    assert.equal((await lab.dig(victim, 'fat.test')).length, FAT.length, 'forwarding still works for the victim');
    assert.equal(paused()!.netns, `/run/netns/${attacker}`);
    // Stopped: its socket is read again (a pause lasts at most 250 ms).
    await waitFor(async () => (await lab.dig(attacker, 'peer')).length > 0, { timeoutMs: 15_000, what: 'the attacker is answered again once it stops' });
    assert.deepEqual(await lab.dig(attacker, 'peer'), await lab.dig(victim, 'peer'));
  });
});
