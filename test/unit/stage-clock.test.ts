// The stages of an operation add up to its total, also when the total is read a while after the
// last stage (a loaded machine between the last lap and the timing note).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StageClock } from '../../src/plumbing/timing.js';

describe('StageClock', () => {
  it('totals what its stages add up to, whenever the total is read', () => {
    const clock = new StageClock();
    clock.lap('plan');
    for (const start = performance.now(); performance.now() - start < 3;) { /* a stage's work */ }
    clock.lap('work');
    for (const start = performance.now(); performance.now() - start < 5;) { /* after the last stage */ }
    const sum = clock.stages.reduce((a, s) => a + s.ms, 0);
    assert.ok(Math.abs(clock.total() - sum) < 0.05, `stages ${sum} ms, total ${clock.total()} ms`);
  });
});
