// A host listener's socket is shared by all its clients: while one source address floods it with
// malformed queries (each answered FORMERR), its neighbours keep their answers, and so does the
// flooder's own good query. (A namespace's own socket is paused instead: tenant-isolation.test.ts.)
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
        for (let i = 0; i < 100; i++) socket.send(junk, port, '127.0.0.1');
        sent += 100;
        setTimeout(burst, 5);
      };
      burst();
    });
  });
  return { stop: async () => { running = false; await done; socket.close(); return sent; } };
}

describe('host listener under a junk flood from one address', () => {
  let daemon: RunningDaemon;

  before(async () => {
    daemon = await startDaemon(['--registry', path.join(ROOT, 'fixtures/lab'), '--listen', '127.0.0.1:0']);
  });
  after(() => daemon?.stop());

  it('answers the neighbours of an address that floods it with junk, and that address\'s good queries', async (t) => {
    const flood = junkFlood('127.0.0.5', daemon.port);
    try {
      await new Promise((r) => setTimeout(r, 300));
      for (let i = 0; i < 5; i++) assert.equal((await dig(daemon.server, '-b', '127.0.0.6', '+time=1', '+tries=1', 'web.lab')).answers[0]?.data, '10.77.0.10');
      // Not shut out either: on a shared address (127.0.0.1 for every local process) that would be
      // everyone's DNS, and a forged source could do it to anyone.
      assert.equal((await dig(daemon.server, '-b', '127.0.0.5', '+time=1', '+tries=2', 'web.lab')).answers[0]?.data, '10.77.0.10');
    } finally {
      t.diagnostic(`flood: ${await flood.stop()} datagrams`);
    }
    assert.equal(daemon.exitCode, null);
  });
});
