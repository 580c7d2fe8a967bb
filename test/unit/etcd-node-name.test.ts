// The node an announcing daemon publishes under, and the flags that set it up.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hostname } from 'node:os';
import { nodeName } from '../../src/etcd/node-name.js';
import { loadConfig } from '../../src/daemon/config.js';
import { startOnlyChanges } from '../../src/daemon/start-only.js';
import { tempDir } from '../helpers/tmp.js';

describe('node name', () => {
  it('defaults to the host name and an id kept in the state directory: the same after a restart, another for another daemon', async () => {
    const a = tempDir();
    const b = tempDir();
    try {
      const first = await nodeName(undefined, a.dir);
      assert.match(first, /^[A-Za-z0-9._-]+-[0-9a-f]{8}$/);
      assert.ok(first.startsWith(hostname().replace(/[^A-Za-z0-9._-]/g, '-')));
      assert.equal(await nodeName(undefined, a.dir), first);
      assert.notEqual(await nodeName(undefined, b.dir), first);
    } finally {
      a.cleanup();
      b.cleanup();
    }
  });

  it('takes a given name only if it is one key part', async () => {
    assert.equal(await nodeName('rack1.host_2-a', '/nonexistent'), 'rack1.host_2-a');
    for (const bad of ['', '.', '..', 'a/b', 'a b', 'x'.repeat(129), 'é']) {
      await assert.rejects(nodeName(bad, '/nonexistent'), /is not a key part/, bad);
      assert.throws(() => loadConfig({ nodeName: bad }), /nodeName: 1-128 letters/, bad);
    }
  });

  it('checks --announce and --announce-ttl at start', () => {
    assert.equal(loadConfig({}).announceTtl, 10);
    assert.equal(loadConfig({ announce: 'etcd://127.0.0.1:2379/nsdns', announceTtl: 3 }).announce, 'etcd://127.0.0.1:2379/nsdns');
    assert.throws(() => loadConfig({ announce: 'http://127.0.0.1:2379/nsdns' }), /announce: not an etcd:\/\/ URL/);
    assert.throws(() => loadConfig({ announce: 'etcd://127.0.0.1:2379' }), /announce: not an etcd:\/\/ URL/);
    assert.throws(() => loadConfig({ announceTtl: 1 }), /announceTtl/);
    // Read at start only: a SIGHUP that changes them says they wait for a restart.
    assert.deepEqual(startOnlyChanges(loadConfig({}), loadConfig({ announce: 'etcd://127.0.0.1:2379/nsdns', announceTtl: 3, nodeName: 'n' })), ['announce', 'announceTtl', 'nodeName']);
  });
});
