// A host listener is shared by all its clients: while one source address floods it with malformed
// queries (each answered FORMERR), its neighbours keep their answers. With the native helper the
// listener is a group of sockets steered by source address, and the flooder's socket is paused
// while the flood lasts (its own good queries get TCP, and UDP again once it stops:
// host-socket-fairness.test.ts has the rest); a single socket (the portable path) is never paused,
// so there the flooder's good query is answered during the flood too.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDaemon, ROOT, type RunningDaemon } from '../helpers/daemon.js';
import { dig } from '../helpers/dig.js';
import { waitFor } from '../helpers/wait.js';
import { nativeHelperPath, nativeHelperUsable } from '../../src/native/helpers.js';

/** Sends malformed queries (header says one question, none follows: FORMERR) from `from` until stopped. */
function junkFlood(from: string, port: number): { sent: () => number; stop: () => Promise<number> } {
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
  return { sent: () => sent, stop: async () => { running = false; await done; socket.close(); return sent; } };
}

describe('host listener under a junk flood from one address', () => {
  let daemon: RunningDaemon;

  before(async () => {
    daemon = await startDaemon(['--registry', path.join(ROOT, 'fixtures/lab'), '--listen', '127.0.0.1:0']);
  });
  after(() => daemon?.stop());

  it('answers the neighbours of an address that floods it with junk, and that address\'s good queries over TCP during it and over UDP after it', async (t) => {
    const grouped = nativeHelperUsable(nativeHelperPath('nsdns-bind'));
    const flood = junkFlood('127.0.0.5', daemon.port);
    try {
      // Under way: with a group of sockets, until the gate pauses the flooder's (whatever the machine's pace).
      if (grouped) await daemon.waitForLog((l) => /not reading that socket/.test(l.msg), 30_000);
      else await waitFor(() => flood.sent() >= 2000, { what: 'the flood under way' });
      for (let i = 0; i < 5; i++) assert.equal((await dig(daemon.server, '-b', '127.0.0.6', '+time=1', '+tries=1', 'web.lab')).answers[0]?.data, '10.77.0.10');
      // The flooder itself is never shut out of TCP.
      assert.equal((await dig(daemon.server, '-b', '127.0.0.5', '+tcp', '+time=2', '+tries=1', 'web.lab')).answers[0]?.data, '10.77.0.10');
      // One shared socket is never paused: on 127.0.0.1 that would be every local process's DNS.
      if (!grouped) assert.equal((await dig(daemon.server, '-b', '127.0.0.5', '+time=1', '+tries=2', 'web.lab')).answers[0]?.data, '10.77.0.10');
    } finally {
      t.diagnostic(`flood: ${await flood.stop()} datagrams`);
    }
    // Answered over UDP again once the flood ends (a pause lasts at most 250 ms).
    assert.equal((await dig(daemon.server, '-b', '127.0.0.5', '+time=1', '+tries=2', 'web.lab')).answers[0]?.data, '10.77.0.10');
    assert.equal(daemon.exitCode, null);
  });
});
