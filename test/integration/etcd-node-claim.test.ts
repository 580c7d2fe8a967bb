// One node name, one daemon: a second daemon started with another's --node-name announces nothing
// and says why (log, `nsdns status`), then takes the name once the first one is gone; a daemon
// that restarts after SIGKILL takes its own name back at once, without waiting out its old lease.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { MAIN, ROOT, startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { TestEtcd } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';

const prefix = `/nsdns-claim-${randomBytes(3).toString('hex')}`;
const key = `${prefix}/nodes/twin`;

interface Status { warnings: string[]; announce: { nodeTaken: string | null; leaseSince: string | null } }

async function status(daemon: RunningDaemon): Promise<Status> {
  const r = await execa(process.execPath, [MAIN, 'status', '--json', '--socket', path.join(daemon.stateDir, 'nsdns.sock')], { reject: false, cwd: ROOT });
  return JSON.parse(r.stdout) as Status;
}

describe('etcd: one daemon per node name', () => {
  let etcd: TestEtcd;
  const daemons: RunningDaemon[] = [];
  const dirs: string[] = [];
  const stateDir = () => { const d = mkdtempSync(path.join(tmpdir(), 'nsdns-claim-')); dirs.push(d); return d; };
  const announcing = async (dir: string, ttl: number) => {
    const d = await startDaemon(['--state-dir', dir, '--listen', '127.0.0.1:0', '--announce', `etcd://${etcd.hostPort}${prefix}`, '--node-name', 'twin', '--announce-ttl', String(ttl)]);
    daemons.push(d);
    return d;
  };
  /** The node key's value and the lease it is on. */
  const claim = async () => {
    const out = (await etcd.ctl(['get', key, '-w', 'json'])).stdout;
    const kvs = JSON.parse(out).kvs as Array<{ value: string }> | undefined;
    // A lease id is 64 bits: read as text, JSON.parse would round two ids into one.
    const lease = /"lease":(\d+)/.exec(out)?.[1] ?? '0';
    return kvs?.[0] ? { value: JSON.parse(Buffer.from(kvs[0].value, 'base64').toString()) as { owner: string; host: string }, lease } : undefined;
  };

  before(async () => {
    etcd = await TestEtcd.start({ portBase: 16600 });
  });
  after(async () => {
    for (const d of daemons) await d.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    await etcd?.stop();
  });

  it('a second daemon with the same --node-name is refused the name, says so, and takes it when the first stops', async () => {
    const first = await announcing(stateDir(), 2);
    const held = await waitFor(claim, { what: 'the first daemon claimed the node name' });
    assert.notEqual(held.lease, '0', 'the claim is on a lease');

    const second = await announcing(stateDir(), 2);
    const refused = await second.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('node name "twin" is held in etcd by a daemon on host'));
    assert.match(refused.msg, /give each daemon its own --node-name/);
    const seen = await waitFor(async () => { const s = await status(second); return s.warnings.some((w) => w.includes('is held in etcd')) ? s : undefined; }, { what: 'status warns' });
    assert.equal(seen.announce.leaseSince, null, 'the second daemon holds no lease');
    assert.deepEqual((await claim())?.value, held.value, 'the first daemon keeps the name');
    assert.deepEqual((await status(first)).warnings, []);

    await first.stop();
    await second.waitForLog((l) => l.msg === 'node name free again; announcing', 20_000);
    const taken = await claim();
    assert.notEqual(taken?.value.owner, held.value.owner, 'the second daemon holds it now');
    assert.deepEqual((await status(second)).warnings, []);
    await second.stop();
  });

  it('a daemon restarted after SIGKILL takes its own name back without waiting out the old lease', async () => {
    const dir = stateDir();
    // A long lease: were the restart to wait for it to expire, the wait below would run out first.
    const before = await announcing(dir, 120);
    const old = await waitFor(claim, { what: 'claimed' });
    before.signal('SIGKILL');
    await before.waitForExit();
    const again = await announcing(dir, 120);
    const back = await waitFor(async () => { const c = await claim(); return c && c.lease !== old.lease ? c : undefined; }, { what: 'the claim moved onto the new lease', timeoutMs: 20_000 });
    assert.equal(back.value.owner, old.value.owner, 'the same daemon (host and state directory)');
    assert.deepEqual((await status(again)).warnings, []);
    assert.ok(!again.logs.some((l) => typeof l.msg === 'string' && l.msg.includes('is held in etcd')), 'never refused');
  });
});
