// A namespace deleted and added again under the same name (`ip netns del X; ip netns add X`) is a
// new namespace: the old one's endpoint leaves DNS and its sockets are let go (within the reaper's
// period, and at the next connect into that name), and a new connect serves the new namespace.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { Lab, needsRoot, sh } from '../helpers/netns.js';
import { tempDir } from '../helpers/tmp.js';

/** `ip netns del NAME; ip netns add NAME` with lo up: the same path, another namespace. */
async function replace(ns: string): Promise<void> {
  await sh('ip', 'netns', 'del', ns);
  await sh('ip', 'netns', 'add', ns);
  await sh('ip', '-n', ns, 'link', 'set', 'lo', 'up');
}

async function until<T>(what: string, get: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`${what}: still ${JSON.stringify(v)} after ${timeoutMs} ms`);
    await sleep(100);
  }
}

interface Status { namespaces: { attached: number; served: number; unserved: string[] } }

/** `nsdns status --json` (it exits 1 when the daemon is not ready: the JSON is there either way). */
async function status(lab: Lab): Promise<Status> {
  return JSON.parse((await lab.nsdns('status', '--json')).stdout) as Status;
}

describe('a namespace replaced under the same name', { skip: needsRoot }, () => {
  describe('noticed by the reaper', () => {
    const lab = new Lab();
    const dir = tempDir('nsdns-replaced-');
    const registry = tempDir('nsdns-replaced-reg-');
    let x: string, peer: string, filed: string;

    before(async () => {
      [x, peer, filed] = [await lab.namespace('x'), await lab.namespace('peer'), await lab.namespace('filed')];
      const config = dir.write('nsdns.yaml', 'plumbing:\n  reapIntervalMs: 300\n');
      registry.write('filed.yaml', `name: filed\nsubnets: [{subnet: 10.170.1.0/24}]\nendpoints:\n  - {name: f1, ipv4: 10.170.1.5, netns: /run/netns/${filed}}\n`);
      await lab.start(['--config', config, '--registry', registry.dir]);
      await lab.ok('network', 'create', 'rep', '--subnet', '10.170.0.0/24');
      await lab.ok('network', 'connect', 'rep', x, '--name', 'x');
      await lab.ok('network', 'connect', 'rep', peer, '--name', 'peer');
    });
    after(async () => {
      await lab.cleanup();
      dir.cleanup();
      registry.cleanup();
    });

    it('removes the old endpoint, then a new connect serves the new namespace', async () => {
      const old = await lab.dig(peer, 'x.rep');
      assert.equal(old.length, 1);
      await replace(x);
      // "is gone" when the reaper looks between the del and the add (the identity's part is
      // certain in the test below, where the reaper is off).
      const removed = `endpoint "x" of network "rep" removed: its namespace /run/netns/${x}`;
      await lab.daemon!.waitForLog((l) => l.msg === `${removed} was replaced by a new namespace of the same name` || l.msg === `${removed} is gone`, 15_000);
      assert.equal(await lab.digStatus(peer, 'x.rep'), 'NXDOMAIN');
      const inspect = JSON.parse(await lab.ok('network', 'inspect', 'rep')) as Array<{ Containers?: Record<string, unknown> }>;
      assert.equal(Object.keys(inspect[0].Containers ?? {}).length, 1, 'only peer is attached');
      assert.deepEqual((await status(lab)).namespaces.unserved, []);
      await lab.ok('network', 'connect', 'rep', x, '--name', 'x');
      assert.deepEqual(await lab.dig(x, 'peer.rep'), await lab.dig(peer, 'peer.rep'), '127.0.0.11 answers in the new namespace');
      assert.equal((await lab.dig(peer, 'x.rep')).length, 1);
    });

    it('answers in a new namespace whose lo was still down when the daemon bound there', async () => {
      assert.deepEqual(await lab.dig(filed, 'f1.filed'), ['10.170.1.5']);
      const served = lab.daemon!.logs.length;
      await sh('ip', 'netns', 'del', filed);
      await sh('ip', 'netns', 'add', filed);
      // The reaper binds in the new namespace before anyone brings its lo up: a socket bound to
      // 127.0.0.11 then would answer from 127.0.0.1, and dig drops replies from another address.
      await lab.daemon!.waitForLog((l) => l.msg === 'serving DNS at 127.0.0.11:53 in namespace' && l.netns === `/run/netns/${filed}` && lab.daemon!.logs.indexOf(l) >= served, 15_000);
      await sh('ip', '-n', filed, 'link', 'set', 'lo', 'up');
      assert.deepEqual(await lab.dig(filed, 'f1.filed'), ['10.170.1.5']);
    });

    it('serves a registry file\'s namespace again in the new namespace', async () => {
      assert.deepEqual(await lab.dig(filed, 'f1.filed'), ['10.170.1.5']);
      await replace(filed);
      // "is gone" when the reaper looks between the del and the add: the old sockets close either way.
      await lab.daemon!.waitForLog((l) => /^namespace (was replaced by a new one of the same name|is gone); .*resolver sockets are closed$/.test(l.msg) && l.netns === `/run/netns/${filed}`, 15_000);
      const answers = await until('f1 answers in the new namespace', () => lab.dig(filed, 'f1.filed'), (a) => a.length > 0).catch(async (err: Error) => {
        // Seen once in CI (not reproduced since): what the daemon said about the namespace, and dig's own words.
        const said = lab.daemon!.logs.filter((l) => JSON.stringify(l).includes(filed)).slice(-12).map((l) => JSON.stringify(l));
        const dig = await execa('ip', ['netns', 'exec', filed, 'dig', '@127.0.0.11', '+tries=1', '+time=3', 'f1.filed'], { reject: false });
        throw new Error(`${err.message}\ndaemon:\n${said.join('\n')}\ndig (exit ${dig.exitCode}):\n${dig.stdout}\n${dig.stderr}`);
      });
      assert.deepEqual(answers, ['10.170.1.5']);
    });
  });

  describe('replaced again and again while the reaper looks', () => {
    const lab = new Lab();
    const dir = tempDir('nsdns-replaced-');
    const registry = tempDir('nsdns-replaced-reg-');
    let churn: string;

    before(async () => {
      churn = await lab.namespace('churn');
      // A short period, so passes often fall between a del and an add, or between an add's file and its mount.
      const config = dir.write('nsdns.yaml', 'plumbing:\n  reapIntervalMs: 50\n');
      registry.write('churn.yaml', `name: churn\nsubnets: [{subnet: 10.170.3.0/24}]\nendpoints:\n  - {name: c1, ipv4: 10.170.3.5, netns: /run/netns/${churn}}\n`);
      await lab.start(['--config', config, '--registry', registry.dir]);
    });
    after(async () => {
      await lab.cleanup();
      dir.cleanup();
      registry.cleanup();
    });

    it('answers in every new namespace', async () => {
      // A bind that read the path while no namespace was there, and whose helper then opened the
      // next one, once left the listener unable to notice the replacement after that (answered
      // by nobody: connection refused). Not certain to hit in one run; about every 25th replacement did.
      for (let round = 0; round < 40; round++) {
        await sh('ip', 'netns', 'del', churn);
        await sleep(Math.random() * 60);
        await sh('ip', 'netns', 'add', churn);
        await sleep(Math.random() * 60);
        await sh('ip', '-n', churn, 'link', 'set', 'lo', 'up');
        await until(`round ${round}: c1 answers in the new namespace`, () => lab.dig(churn, '+time=1', 'c1.churn'), (a) => a.length > 0, 5_000).catch(async (err: Error) => {
          const said = lab.daemon!.logs.filter((l) => JSON.stringify(l).includes(churn)).slice(-6).map((l) => JSON.stringify(l));
          const bound = await execa('ip', ['netns', 'exec', churn, 'ss', '-uanp'], { reject: false });
          throw new Error(`${err.message}\ndaemon:\n${said.join('\n')}\nUDP sockets in the namespace:\n${bound.stdout}`);
        });
      }
    });
  });

  describe('noticed at the next connect (reaper off)', () => {
    const lab = new Lab();
    const dir = tempDir('nsdns-replaced-');
    let x: string, peer: string;

    before(async () => {
      [x, peer] = [await lab.namespace('x'), await lab.namespace('peer')];
      const config = dir.write('nsdns.yaml', 'plumbing:\n  reapIntervalMs: 0\n');
      await lab.start(['--config', config]);
      await lab.ok('network', 'create', 'rep2', '--subnet', '10.170.2.0/24');
      await lab.ok('network', 'connect', 'rep2', x, '--name', 'x');
      await lab.ok('network', 'connect', 'rep2', peer, '--name', 'peer');
    });
    after(async () => {
      await lab.cleanup();
      dir.cleanup();
    });

    it('shows the replaced namespace as not served, and a connect into the name serves the new one', async () => {
      await replace(x);
      assert.deepEqual((await status(lab)).namespaces.unserved, [`/run/netns/${x}`], 'status does not call the new namespace served');
      await lab.ok('network', 'connect', 'rep2', x, '--name', 'x');
      assert.ok(lab.daemon!.logs.some((l) => l.msg === `endpoint "x" of network "rep2" removed: its namespace /run/netns/${x} was replaced by a new namespace of the same name`));
      assert.deepEqual(await lab.dig(x, 'peer.rep2'), await lab.dig(peer, 'peer.rep2'), '127.0.0.11 answers in the new namespace');
      const inspect = JSON.parse(await lab.ok('network', 'inspect', 'rep2')) as Array<{ Containers?: Record<string, unknown> }>;
      assert.equal(Object.keys(inspect[0].Containers ?? {}).length, 2, 'the old endpoint is gone, the new one attached');
      assert.deepEqual((await status(lab)).namespaces.unserved, []);
    });
  });
});
