// The registry parser process (src/daemon/registry-loader.ts, RegistryParser): a failure of the
// parser is never held against a file's content, and it leaves nothing behind.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { describe, it } from 'node:test';
import { RegistryParser, parserLimitsFor } from '../../src/daemon/registry-loader.js';

/** A valid network file of `n` endpoints (JSON). */
function file(n: number): Uint8Array {
  const endpoints = Array.from({ length: n }, (_, i) => ({ name: `e${i}`, ipv4: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` }));
  return new Uint8Array(Buffer.from(JSON.stringify({ name: 'big', endpoints })));
}

const ours = (dir: string) => readdirSync(dir).filter((d) => d.startsWith(`nsdns-parser-${process.pid}-`));

describe('registry parser process', () => {
  it('stopped during a job answers at once, unjudged, and parses the same content afterwards', async () => {
    const parser = new RegistryParser(parserLimitsFor(4 << 20));
    const started = Date.now();
    const job = parser.parse('big.json', file(60_000), undefined, () => {});
    setTimeout(() => void parser.stop(), 200);
    const outcome = await job;
    assert.equal(outcome.kind, 'refused');
    assert.ok(Date.now() - started < 3_000, `settled after ${Date.now() - started} ms`);
    assert.equal(outcome.kind === 'refused' ? outcome.hash : 'x', undefined, 'a stop says nothing about the content');
    let tables = 0;
    const again = await parser.parse('big.json', file(60_000), undefined, () => { tables++; });
    assert.equal(again.kind, 'parsed');
    assert.equal(tables, 1);
    await parser.stop();
    assert.deepEqual(ours(tmpdir()), [], 'its private directory goes with it');
  });

  it('works when TMPDIR cannot be used', async () => {
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = '/nonexistent-nsdns-test';
    const parser = new RegistryParser(parserLimitsFor(4 << 20));
    try {
      const outcome = await parser.parse('small.json', file(3), undefined, () => {});
      assert.equal(outcome.kind, 'parsed');
    } finally {
      await parser.stop();
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    }
    assert.deepEqual([...ours('/run'), ...ours('/dev/shm')], []);
  });
});
