// The merging of a turn's learned addresses, per namespace (learn-batch.ts): one write per
// namespace with every address once, its longest timeout, and its first asking's "replace".
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LearnedElement } from '../../src/egress/egress-rules.js';
import { LearnBatch } from '../../src/egress/learn-batch.js';

describe('LearnBatch', () => {
  it('writes a turn once per namespace: each address once, with its longest timeout', async () => {
    const writes: Array<[string, LearnedElement[], LearnedElement[]]> = [];
    const batch = new LearnBatch(async (key, v4, v6) => void writes.push([key, v4, v6]));
    await Promise.all([
      batch.add('a', [{ address: '10.0.0.1', ttl: 30 }], []),
      batch.add('a', [{ address: '10.0.0.1', ttl: 90 }, { address: '10.0.0.2', ttl: 10 }], [{ address: '2001:db8::1', ttl: 5 }]),
      batch.add('b', [{ address: '10.0.0.1', ttl: 20 }], []),
    ]);
    assert.deepEqual(writes, [
      ['a', [{ address: '10.0.0.1', ttl: 90 }, { address: '10.0.0.2', ttl: 10 }], [{ address: '2001:db8::1', ttl: 5 }]],
      ['b', [{ address: '10.0.0.1', ttl: 20 }], []],
    ]);
  });

  it('replaces an address only if its first asking in the turn did: a later one may mean this batch\'s own add', async () => {
    const writes: LearnedElement[][] = [];
    const batch = new LearnBatch(async (_key, v4) => void writes.push(v4));
    await Promise.all([
      batch.add('a', [{ address: '10.0.0.1', ttl: 30 }, { address: '10.0.0.2', ttl: 30, replace: true }], []),
      batch.add('a', [{ address: '10.0.0.1', ttl: 60, replace: true }, { address: '10.0.0.2', ttl: 60 }], []),
    ]);
    assert.deepEqual(writes, [[{ address: '10.0.0.1', ttl: 60 }, { address: '10.0.0.2', ttl: 60, replace: true }]]);
  });

  it('fails every caller of a namespace whose write failed, and only those', async () => {
    const batch = new LearnBatch(async (key) => {
      if (key === 'gone') throw new Error('no such set');
    });
    const [gone, kept] = await Promise.allSettled([batch.add('gone', [{ address: '10.0.0.1', ttl: 1 }], []), batch.add('kept', [{ address: '10.0.0.1', ttl: 1 }], [])]);
    assert.equal(gone.status, 'rejected');
    assert.equal(kept.status, 'fulfilled');
  });
});
