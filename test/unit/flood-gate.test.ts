// FloodGate on its own, with the clock mocked: a socket is paused only past WASTE_LIMIT unanswered
// datagrams in one window, read again after the pause, paused longer while the flood goes on
// (50 → 100 → 200 → 250 ms), back to the shortest pause once it stopped, and never read again
// once closed. The gate in a running server is covered by test/unit/dns-server.test.ts.
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { FloodGate } from '../../src/server/flood-gate.js';

const WASTE_LIMIT = 256;

function gated(t: TestContext, canStop = true) {
  t.mock.timers.enable({ apis: ['Date', 'setTimeout'], now: 1_000_000 });
  const socket = { reading: true, pauses: [] as number[] };
  const gate = new FloodGate({
    stopReading: () => { if (canStop) socket.reading = false; return canStop; },
    startReading: () => { socket.reading = true; },
    paused: (ms) => { socket.pauses.push(ms); },
  });
  const waste = (n: number) => { for (let i = 0; i < n; i++) gate.waste(); };
  return { socket, gate, waste, tick: (ms: number) => t.mock.timers.tick(ms) };
}

describe('flood gate', () => {
  it('reads on below the limit, pauses at it, and reads again after the pause', (t) => {
    const { socket, waste, tick } = gated(t);
    waste(WASTE_LIMIT - 1);
    assert.equal(socket.reading, true, 'below the limit: still read');
    waste(1);
    assert.equal(socket.reading, false, 'at the limit: paused');
    assert.deepEqual(socket.pauses, [50]);
    tick(49);
    assert.equal(socket.reading, false);
    tick(1);
    assert.equal(socket.reading, true, 'read again after the pause');
  });

  it('counts per window: unanswered datagrams spread over windows never pause', (t) => {
    const { socket, waste, tick } = gated(t);
    for (let i = 0; i < 10; i++) {
      waste(WASTE_LIMIT - 1);
      tick(101);
    }
    assert.equal(socket.reading, true);
    assert.deepEqual(socket.pauses, []);
  });

  it('pauses longer while the flood goes on, up to 250 ms, and shortest again once it stopped', (t) => {
    const { socket, waste, tick } = gated(t);
    for (const expected of [50, 100, 200, 250, 250]) {
      waste(WASTE_LIMIT);
      assert.equal(socket.pauses.at(-1), expected);
      tick(expected);
      assert.equal(socket.reading, true);
    }
    tick(1000); // the flood stopped for a while
    waste(WASTE_LIMIT);
    assert.equal(socket.pauses.at(-1), 50);
  });

  it('a closed gate never starts reading again', (t) => {
    const { socket, gate, waste, tick } = gated(t);
    waste(WASTE_LIMIT);
    gate.close();
    tick(1000);
    assert.equal(socket.reading, false);
    waste(WASTE_LIMIT * 2);
    assert.deepEqual(socket.pauses, [50], 'and never pauses again');
  });

  it('does nothing where the socket cannot be paused', (t) => {
    const { socket, waste } = gated(t, false);
    waste(WASTE_LIMIT * 4);
    assert.deepEqual(socket.pauses, []);
  });
});
