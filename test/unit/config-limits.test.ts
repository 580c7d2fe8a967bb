// The configuration keys of the cache's, the probes' and egress's limits (cache.maxBytes,
// cache.tenantShare, cache.scope, registryFiles.probeAllow, egress.maxLearned) are a boundary too:
// garbage is refused with the key named, and nothing of the garbage is taken.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validate } from '../../src/daemon/config.js';
import { startOnlyChanges } from '../../src/daemon/start-only.js';

const refused = (data: unknown, key: RegExp) =>
  assert.throws(() => validate(data, 'test.yaml'), (err: Error & { code?: string }) => err.code === 'ERR_CONFIG' && key.test(err.message), JSON.stringify(data));

describe('configuration limits of the cache, the probes and egress', () => {
  it('takes the defaults and good values', () => {
    const d = validate({}, 'test.yaml');
    assert.equal(d.cache.maxBytes, 32 * 1024 * 1024);
    assert.equal(d.cache.tenantShare, 0.25);
    assert.equal(d.cache.scope, 'shared');
    assert.deepEqual(d.registryFiles.probeAllow, []);
    assert.equal(d.egress.maxLearned, 32768);
    for (const maxLearned of [16, 1_048_576]) assert.equal(validate({ egress: { maxLearned } }, 'test.yaml').egress.maxLearned, maxLearned);
    const g = validate({ cache: { maxBytes: 1 << 20, tenantShare: 1, scope: 'network' }, registryFiles: { probeAllow: ['127.0.0.0/8', 'fd00::/8'] } }, 'test.yaml');
    assert.equal(g.cache.scope, 'network');
    assert.equal(g.registryFiles.probeAllow.length, 2);
  });

  it('refuses garbage, naming the key', () => {
    for (const maxBytes of [-1, 0, 1.5, 'big', 1024, null]) refused({ cache: { maxBytes } }, /cache\.maxBytes/);
    for (const tenantShare of [0, -0.5, 1.01, 'half', Infinity]) refused({ cache: { tenantShare } }, /cache\.tenantShare/);
    for (const scope of ['everything', '', 1, ['network']]) refused({ cache: { scope } }, /cache\.scope/);
    for (const maxLearned of [15, 0, -1, 1_048_577, 1.5, '100', null]) refused({ egress: { maxLearned } }, /egress\.maxLearned/);
    for (const probeAllow of ['127.0.0.0/8', ['not a cidr'], ['127.0.0.1/33'], ['10.0.0.0/8; rm -rf /'], Array(257).fill('10.0.0.0/8')]) {
      refused({ registryFiles: { probeAllow } }, /registryFiles\.probeAllow/);
    }
  });

  it('egress.maxLearned (and egress.logDrops) apply at start only: a SIGHUP that changes them says so', () => {
    assert.deepEqual(startOnlyChanges(validate({}, 'test.yaml'), validate({ egress: { maxLearned: 64, logDrops: true, grace: 5 } }, 'test.yaml')), ['egress.logDrops', 'egress.maxLearned']);
  });
});
