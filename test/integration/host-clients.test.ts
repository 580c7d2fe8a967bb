// Host listeners answer only the clients they should (--allow; by default loopback and the host's
// own subnets), so a listener on a public address is never an open resolver by accident.
import assert from 'node:assert/strict';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDaemon, ROOT, type RunningDaemon } from '../helpers/daemon.js';
import { dig } from '../helpers/dig.js';
import { clientFilter, localSubnets } from '../../src/server/client-filter.js';

describe('host listener clients', () => {
  let daemon: RunningDaemon;

  before(async () => {
    daemon = await startDaemon(['--registry', path.join(ROOT, 'fixtures/lab'), '--listen', '127.0.0.1:0', '--allow', '127.0.0.2/32']);
  });
  after(() => daemon?.stop());

  it('answers an allowed client over UDP and TCP, and nothing to others', async () => {
    assert.equal((await dig(daemon.server, '-b', '127.0.0.2', 'web.lab')).answers[0]?.data, '10.77.0.10');
    assert.equal((await dig(daemon.server, '+tcp', '-b', '127.0.0.2', 'web.lab')).answers[0]?.data, '10.77.0.10');
    const udp = await dig(daemon.server, '-b', '127.0.0.3', '+time=1', 'web.lab');
    assert.equal(udp.status, 'NONE', 'no reply at all: not even REFUSED, which would make us a reflector');
    const closed = await new Promise<boolean>((resolve) => {
      const s = net.connect({ port: daemon.port, host: '127.0.0.1', localAddress: '127.0.0.3' });
      s.on('error', () => {});
      s.on('close', () => resolve(true));
      setTimeout(() => { s.destroy(); resolve(false); }, 1000);
    });
    assert.ok(closed, 'a TCP connection from a client not allowed is closed at once');
  });

  it('by default allows loopback and the subnets of the host\'s own interfaces, nothing else', () => {
    const allowed = clientFilter(localSubnets());
    assert.ok(allowed('127.0.0.1') && allowed('::1') && allowed('::ffff:127.0.0.1'));
    const own = Object.values(os.networkInterfaces()).flat().find((a) => a && !a.internal && a.family === 'IPv4');
    if (own) assert.ok(allowed(own.address), `${own.address} is on a connected subnet`);
    assert.equal(allowed('198.51.100.7'), false, 'TEST-NET-2 is nobody\'s connected subnet here');
    assert.equal(allowed('not an address'), false);
  });
});
