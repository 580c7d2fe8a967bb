// The cache as an operator and its tenants see it: large forwarded answers (over TCP, as a tenant
// asking for many big records would get them) never take it over its byte bound or one tenant's
// share of it (read from /metrics), and with `cache.scope: network` a tenant on other networks is
// never served from another's entry (counted at the upstream).
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import path from 'node:path';
import { ROOT, startDaemon } from '../helpers/daemon.js';
import { FakeUpstream } from '../helpers/fake-upstream.js';
import { dig } from '../helpers/dig.js';
import { tempDir } from '../helpers/tmp.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** One gauge's value from /metrics, read as a scraper would. */
async function gauge(metrics: string, name: string): Promise<number> {
  const text = await (await fetch(`http://${metrics}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  assert.ok(line, `${name} is not in /metrics`);
  return Number(line.split(' ')[1]);
}

describe('cache bounded in bytes', () => {
  it('one client asking for large answers holds at most its share of cache.maxBytes', async () => {
    // 1500 A records: a ~24 KB answer, which only TCP carries.
    const addresses = Array.from({ length: 1500 }, (_, i) => `10.171.${i >> 8}.${i & 255}`);
    const zone: Record<string, string[]> = {};
    for (let i = 0; i < 40; i++) zone[`big${i}.test`] = addresses;
    const up = await FakeUpstream.start({ zone });
    cleanups.push(() => up.stop());
    const dir = tempDir();
    cleanups.push(dir.cleanup);
    const config = dir.write('c.yaml', 'cache:\n  maxBytes: 1048576\n  tenantShare: 0.25\n');
    const daemon = await startDaemon(['--listen', '127.0.0.1:0', '--metrics', '127.0.0.1:0', '--config', config, '--no-resolv-conf', '--upstream', up.spec]);
    cleanups.push(() => daemon.stop());
    const metrics = String((await daemon.waitForLog((l) => l.msg === 'ready')).metrics);

    let most = 0;
    for (let i = 0; i < 40; i++) {
      const r = await dig(daemon.server, '+tcp', `big${i}.test`);
      assert.equal(r.answers.length, 1500, `big${i}.test answered whole`);
      most = Math.max(most, await gauge(metrics, 'nsdns_cache_bytes'));
    }
    assert.ok(most <= 1048576 / 4, `one client held ${most} bytes, over its share (262144)`);
    assert.ok(most > 1048576 / 8, `the cache kept too little (${most} bytes): large answers are still cached`);
    // The newest answer is served from the cache, the oldest was pushed out for it.
    const asked = up.received.length;
    await dig(daemon.server, '+tcp', 'big39.test');
    assert.equal(up.received.length, asked, 'big39.test came from the cache');
    await dig(daemon.server, '+tcp', 'big0.test');
    assert.equal(up.received.length, asked + 1, 'big0.test was asked again');
  });
});

describe('cache scope', () => {
  /** How many times the upstream is asked for one name by clients of two listeners, each seeing one network. */
  async function askedAcrossNetworks(config: string | undefined): Promise<number> {
    const up = await FakeUpstream.start({ zone: { 'out.test': ['192.0.2.5'] } });
    cleanups.push(() => up.stop());
    const args = ['--registry', path.join(ROOT, 'fixtures/lab'), '--listen', '127.0.0.1:0=lab', '--listen', '127.0.0.1:0=ops', '--no-resolv-conf', '--upstream', up.spec];
    if (config) {
      const dir = tempDir();
      cleanups.push(dir.cleanup);
      args.push('--config', dir.write('c.yaml', config));
    }
    const daemon = await startDaemon(args);
    cleanups.push(() => daemon.stop());
    const [lab, ops] = daemon.ports.map((port) => `127.0.0.1:${port}`);
    for (const server of [lab, ops, lab, ops]) assert.deepEqual((await dig(server, 'out.test')).answers.map((a) => a.data), ['192.0.2.5']);
    return up.countFor('out.test');
  }

  it('is shared by default: a tenant on another network is served from the first one\'s entry', async () => {
    assert.equal(await askedAcrossNetworks(undefined), 1);
  });

  it('with scope network, keeps entries apart per network: each tenant\'s first query goes upstream', async () => {
    assert.equal(await askedAcrossNetworks('cache:\n  scope: network\n'), 2);
  });
});
