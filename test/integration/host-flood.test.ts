// A host listener's socket is shared by all its clients: one source address that floods it with
// junk is dropped unread for a while (the penalty box), its neighbours keep their answers, and it
// is answered again soon after it stops.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDaemon, ROOT, type RunningDaemon } from '../helpers/daemon.js';
import { dig } from '../helpers/dig.js';

/** Sends malformed queries (header says one question, none follows: FORMERR) from `from` until stopped. */
function junkFlood(from: string, port: number): { stop: () => Promise<number> } {
  const socket = dgram.createSocket('udp4');
  let sent = 0;
  let running = true;
  const junk = Buffer.from([0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);
  const done = new Promise<void>((resolve) => {
    socket.bind(0, from, () => {
      const burst = () => {
        if (!running) return resolve();
        for (let i = 0; i < 400; i++) socket.send(junk, port, '127.0.0.1');
        sent += 400;
        setTimeout(burst, 5);
      };
      burst();
    });
  });
  return { stop: async () => { running = false; await done; socket.close(); return sent; } };
}

describe('host listener under a flood from one address', () => {
  let daemon: RunningDaemon;

  before(async () => {
    daemon = await startDaemon(['--registry', path.join(ROOT, 'fixtures/lab'), '--listen', '127.0.0.1:0']);
  });
  after(() => daemon?.stop());

  it('drops the flooding address for a while, answers its neighbour, and takes it back once it stops', async (t) => {
    assert.equal((await dig(daemon.server, '-b', '127.0.0.5', 'web.lab')).answers[0]?.data, '10.77.0.10', 'answered before the flood');
    const flood = junkFlood('127.0.0.5', daemon.port);
    try {
      await new Promise((r) => setTimeout(r, 300));
      // Its own good queries go unanswered while it floods: they are not even read...
      const own = await dig(daemon.server, '-b', '127.0.0.5', '+time=1', '+tries=1', 'web.lab');
      assert.equal(own.status, 'NONE', 'the flooding address is dropped unread');
      // ...while every other client of the same socket is answered.
      for (let i = 0; i < 5; i++) assert.equal((await dig(daemon.server, '-b', '127.0.0.6', '+time=1', '+tries=1', 'web.lab')).answers[0]?.data, '10.77.0.10');
    } finally {
      t.diagnostic(`flood: ${await flood.stop()} datagrams`);
    }
    const stopped = Date.now();
    assert.equal((await dig(daemon.server, '-b', '127.0.0.5', '+time=1', '+tries=3', 'web.lab')).answers[0]?.data, '10.77.0.10', 'answered again after the flood');
    assert.ok(Date.now() - stopped < 3000, `answered again ${Date.now() - stopped} ms after the flood stopped`);
    assert.equal(daemon.exitCode, null);
  });
});
