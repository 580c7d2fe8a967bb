// A shared registry when etcd goes away: the daemon keeps answering from its last snapshot and says
// it is stale; what changed meanwhile arrives when etcd is back (a delete too); a watch that fell
// behind a compaction lists again and ends with exactly etcd's content; after an outage, deletes of
// leased keys wait a grace period so that a live host's re-announcement replaces them without a gap.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { Etcd3 } from 'etcd3';
import { MAIN, ROOT, startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { dig, digShort } from '../helpers/dig.js';
import { TestEtcd } from '../helpers/etcd.js';
import { CuttableProxy } from '../helpers/tcp-proxy.js';
import { tempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const PREFIX = '/nsdns-outage';
const net = (name: string) => `${PREFIX}/networks/${name}`;
const ep = (network: string, node: string, id: string) => `${PREFIX}/endpoints/${network}/${node}/${id}`;
/** The cut-off: one daemon away from etcd this long. */
const CUT_OFF_MS = 30_000;
const GRACE_MS = 4000;

function status(daemon: RunningDaemon) {
  return execa(process.execPath, [MAIN, 'status', '--json', '--socket', path.join(daemon.stateDir, 'nsdns.sock')], { reject: false, cwd: ROOT })
    .then((r) => JSON.parse(r.stdout) as { endpoints: number; warnings: string[]; sharedRegistries: Array<{ stale: boolean; staleSince: string | null; heldDeletes: number }> });
}

async function serve(url: string, dir: ReturnType<typeof tempDir>, name: string, extra: string[] = []): Promise<RunningDaemon> {
  // Small checks and backoff, and a short grace: the behaviour, not the defaults, is under test.
  const config = path.join(dir.dir, `${name}.yaml`);
  writeFileSync(config, `resolvConf: false\netcd:\n  checkIntervalMs: 300\n  maxBackoffMs: 500\n  deleteGraceMs: ${GRACE_MS}\n`);
  return startDaemon(['--config', config, '--registry', url, '--listen', '127.0.0.1:0', ...extra]);
}

describe('etcd registry: a daemon cut off, a watch behind a compaction', { concurrency: 2 }, () => {
  const dir = tempDir('nsdns-etcd-outage-');
  let etcd: TestEtcd;
  let client: Etcd3;
  let proxy: CuttableProxy;
  let cutDaemon: RunningDaemon;
  let stoppedDaemon: RunningDaemon;

  before(async () => {
    etcd = await TestEtcd.start({ portBase: 17200 });
    client = new Etcd3({ hosts: etcd.endpoint });
    proxy = await CuttableProxy.start(etcd.hostPort, 17200);
    for (const name of ['cut', 'compact']) await client.put(net(name)).value(JSON.stringify({ name }));
    cutDaemon = await serve(`etcd://${proxy.hostPort}${PREFIX}`, dir, 'cut');
    stoppedDaemon = await serve(`etcd://${etcd.hostPort}${PREFIX}`, dir, 'compact');
  });
  after(async () => {
    stoppedDaemon?.signal('SIGCONT');
    await cutDaemon?.stop();
    await stoppedDaemon?.stop();
    await proxy?.close();
    client?.close();
    await etcd?.stop();
    dir.cleanup();
  });

  it('keeps answering while cut off for 30 s, says it is stale, and takes the puts and deletes made meanwhile when it returns', async () => {
    const leased = client.lease(600, { autoKeepAlive: false });
    const reannounced = client.lease(600, { autoKeepAlive: false });
    await client.put(ep('cut', 'a', 'stay')).value(JSON.stringify({ name: 'stay', ipv4: '10.123.10.1' }));
    await client.put(ep('cut', 'a', 'gone')).value(JSON.stringify({ name: 'gone', ipv4: '10.123.10.2' }));
    await client.put(ep('cut', 'b', 'dead')).value(JSON.stringify({ name: 'dead', ipv4: '10.123.10.3' })).lease(await leased.grant());
    await client.put(ep('cut', 'c', 'live')).value(JSON.stringify({ name: 'live', ipv4: '10.123.10.4' })).lease(await reannounced.grant());
    await waitFor(async () => (await digShort(cutDaemon.server, 'live.cut'))[0] === '10.123.10.4', { what: 'the leased name answered' });

    const cutAt = Date.now();
    proxy.cut();
    await waitFor(async () => (await status(cutDaemon)).sharedRegistries[0]?.stale, { what: 'the registry said stale' });
    const stale = await status(cutDaemon);
    assert.ok(stale.warnings.some((w) => /is stale since \d{4}-\d\d-\d\dT/.test(w)), JSON.stringify(stale.warnings));
    // Meanwhile: a new name, a plain delete, and two leases gone (as when etcd let them expire).
    await client.put(ep('cut', 'a', 'new')).value(JSON.stringify({ name: 'new', ipv4: '10.123.10.5' }));
    await client.delete().key(ep('cut', 'a', 'gone'));
    await leased.revoke();
    await reannounced.revoke();
    // The snapshot answers throughout the cut.
    while (Date.now() - cutAt < CUT_OFF_MS) {
      assert.deepEqual(await digShort(cutDaemon.server, 'stay.cut'), ['10.123.10.1']);
      assert.deepEqual(await digShort(cutDaemon.server, 'gone.cut'), ['10.123.10.2']);
      await sleep(1000);
    }

    proxy.restore();
    await cutDaemon.waitForLog((l) => l.msg === 'etcd reached again; synchronised', 20_000);
    assert.deepEqual(await digShort(cutDaemon.server, 'new.cut'), ['10.123.10.5']);
    assert.equal((await dig(cutDaemon.server, 'gone.cut')).status, 'NXDOMAIN', 'a delete made meanwhile is not lost');
    // Leased keys deleted meanwhile are held back: a live host puts its names again without a gap.
    assert.deepEqual(await digShort(cutDaemon.server, 'live.cut'), ['10.123.10.4']);
    assert.deepEqual(await digShort(cutDaemon.server, 'dead.cut'), ['10.123.10.3']);
    assert.equal((await status(cutDaemon)).sharedRegistries[0].heldDeletes, 2);
    const again = await client.lease(600, { autoKeepAlive: false }).grant();
    await client.put(ep('cut', 'c', 'live')).value(JSON.stringify({ name: 'live', ipv4: '10.123.10.4' })).lease(again);
    // A key not put again goes when the grace ends; the re-announced one stays.
    await waitFor(async () => (await dig(cutDaemon.server, 'dead.cut')).status === 'NXDOMAIN', { what: 'the dead host\'s name gone after the grace', timeoutMs: GRACE_MS + 10_000 });
    assert.deepEqual(await digShort(cutDaemon.server, 'live.cut'), ['10.123.10.4']);
    assert.equal((await status(cutDaemon)).sharedRegistries[0].stale, false);
  });

  it('ends with exactly etcd\'s content after its watch fell behind a compaction', async () => {
    await client.put(ep('compact', 'a', 'old')).value(JSON.stringify({ name: 'old', ipv4: '10.123.20.1' }));
    await client.put(ep('compact', 'a', 'kept')).value(JSON.stringify({ name: 'kept', ipv4: '10.123.20.2' }));
    await waitFor(async () => (await digShort(stoppedDaemon.server, 'old.compact'))[0] === '10.123.20.1', { what: 'old answered' });
    stoppedDaemon.signal('SIGSTOP');
    try {
      // More than the watch stream can hold for a stopped reader: etcd drops the watch to catching
      // up from its store, which the compaction below then cuts off.
      const pad = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`p${i}`, 'p'.repeat(240)]));
      for (let i = 0; i < 400; i++) {
        await client.put(ep('compact', 'bulk', `n${i}`)).value(JSON.stringify({ name: `n${i}`, ipv4: `10.123.${21 + (i >> 8)}.${i & 255}`, labels: pad }));
      }
      await client.put(ep('compact', 'a', 'fresh')).value(JSON.stringify({ name: 'fresh', ipv4: '10.123.20.3' }));
      await client.delete().key(ep('compact', 'a', 'old'));
      await client.delete().key(ep('compact', 'bulk', 'n7'));
      const { header } = await client.kv.range({ key: Buffer.from(net('compact')) });
      await etcd.ctl(['compact', header.revision]);
    } finally {
      stoppedDaemon.signal('SIGCONT');
    }
    await stoppedDaemon.waitForLog((l) => l.msg === 'etcd: the watch was cancelled (it fell behind a compaction); listing again', 20_000);
    await waitFor(async () => (await dig(stoppedDaemon.server, 'old.compact')).status === 'NXDOMAIN', { what: 'the delete applied' });
    assert.deepEqual(await digShort(stoppedDaemon.server, 'fresh.compact'), ['10.123.20.3']);
    assert.deepEqual(await digShort(stoppedDaemon.server, 'kept.compact'), ['10.123.20.2']);
    assert.deepEqual(await digShort(stoppedDaemon.server, 'n399.compact'), ['10.123.22.143']);
    assert.equal((await dig(stoppedDaemon.server, 'n7.compact')).status, 'NXDOMAIN');
    // Exactly etcd's endpoints: every id etcd holds, and no other.
    const inEtcd = [...(await etcd.list(`${PREFIX}/endpoints/compact/`)).keys()].map((k) => k.split('/').pop()).sort();
    const inspect = await execa(process.execPath, [MAIN, 'network', 'inspect', 'compact', '--socket', path.join(stoppedDaemon.stateDir, 'nsdns.sock')], { cwd: ROOT });
    const served = Object.keys((JSON.parse(inspect.stdout) as Array<{ Containers: Record<string, unknown> }>)[0].Containers).sort();
    assert.deepEqual(served, inEtcd);
  });
});

describe('etcd registry: etcd itself stopped', () => {
  const dir = tempDir('nsdns-etcd-stopped-');
  let etcd: TestEtcd;
  let daemon: RunningDaemon;

  before(async () => {
    etcd = await TestEtcd.start({ portBase: 17200 });
    await etcd.put(net('paused'), JSON.stringify({ name: 'paused' }));
    await etcd.put(ep('paused', 'a', 'one'), JSON.stringify({ name: 'one', ipv4: '10.123.30.1' }));
    daemon = await serve(`etcd://${etcd.hostPort}${PREFIX}`, dir, 'paused', ['--metrics', '127.0.0.1:0']);
  });
  after(async () => {
    await daemon?.stop();
    await etcd?.stop();
    dir.cleanup();
  });

  it('answers from its snapshot and says stale since when while etcd is stopped, and follows etcd again when it continues', async () => {
    etcd.pause();
    try {
      await waitFor(async () => (await status(daemon)).sharedRegistries[0]?.stale, { what: 'stale said' });
      assert.deepEqual(await digShort(daemon.server, 'one.paused'), ['10.123.30.1']);
      const text = await execa(process.execPath, [MAIN, 'status', '--socket', path.join(daemon.stateDir, 'nsdns.sock')], { reject: false, cwd: ROOT });
      assert.match(text.stdout, /registry: +etcd:\/\/.*: STALE since \d{4}-/);
      assert.equal(text.exitCode, 0, 'a stale registry does not make the daemon unready');
      const metrics = `http://${String((await daemon.waitForLog((l) => typeof l.metrics === 'string')).metrics)}`;
      const ready = await fetch(`${metrics}/readyz`);
      assert.equal(ready.status, 200);
      assert.match(await ready.text(), /^ready\n- stale since \d{4}-\d\d-\d\dT[^:]+:\d\d:\d\d\.\d+Z: etcd:\/\/127\.0\.0\.1:\d+\/nsdns-outage\n$/);
      assert.match(await (await fetch(`${metrics}/metrics`)).text(), /^nsdns_shared_registry_stale\{registry="etcd:\/\/127\.0\.0\.1:\d+\/nsdns-outage"\} 1$/m);
    } finally {
      etcd.resume();
    }
    await waitFor(async () => !(await status(daemon)).sharedRegistries[0].stale, { what: 'in sync again' });
    await etcd.put(ep('paused', 'a', 'two'), JSON.stringify({ name: 'two', ipv4: '10.123.30.2' }));
    await waitFor(async () => (await digShort(daemon.server, 'two.paused'))[0] === '10.123.30.2', { what: 'a put after the pause answered' });
  });
});
