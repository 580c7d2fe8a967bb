// `--cluster` and `--advertise-address`: one switch makes a cluster member (read and announce one prefix).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/daemon/config.js';
import { startOnlyChanges } from '../../src/daemon/start-only.js';

const url = 'etcd://127.0.0.1:2379/nsdns';

describe('cluster settings', () => {
  it('--cluster reads and announces its prefix, with the advertise address', () => {
    const config = loadConfig({ cluster: url, advertiseAddress: '10.128.250.1', registry: ['/srv/nets'] });
    assert.equal(config.announce, url);
    assert.deepEqual(config.registries, ['/srv/nets', url]);
    assert.equal(config.advertiseAddress, '10.128.250.1');
    assert.deepEqual(loadConfig({ cluster: url, registry: [url] }).registries, [url], 'not read twice');
    assert.equal(loadConfig({ cluster: url, announce: url }).announce, url);
  });

  it('refuses what a cluster member cannot be', () => {
    assert.throws(() => loadConfig({ cluster: 'http://127.0.0.1:2379/nsdns' }), /cluster: not an etcd:\/\/ URL/);
    assert.throws(() => loadConfig({ cluster: url, advertiseAddress: 'host-a' }), /advertiseAddress: not an IP address/);
    assert.throws(() => loadConfig({ advertiseAddress: '10.128.250.1' }), /advertiseAddress: needs cluster/);
    assert.throws(() => loadConfig({ cluster: url, announce: 'etcd://127.0.0.1:2379/other' }), /announce: a cluster member announces to its cluster/);
  });

  it('is read at start only', () => {
    assert.deepEqual(startOnlyChanges(loadConfig({}), loadConfig({ cluster: url, advertiseAddress: '10.128.250.1' })),
      ['announce', 'cluster', 'advertiseAddress', 'registries (etcd://)']);
  });
});
