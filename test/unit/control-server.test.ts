// The control socket's line deadline counts only while the daemon reads: a client whose pipelined
// requests made the daemon stop reading (16 in flight) must not be cut off for a line it could not
// finish meanwhile.
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { ControlServer } from '../../src/daemon/control.js';
import { createLogger } from '../../src/log.js';
import { tempDir } from '../helpers/tmp.js';

describe('control socket line deadline', () => {
  const tmp = tempDir('nsdns-ctl-');
  const socketPath = path.join(tmp.dir, 'run', 'nsdns.sock');
  let server: ControlServer;

  before(async () => {
    const quiet = new Writable({ write: (_c, _e, done) => done() });
    // A slow method: each request holds one of the connection's 16 slots for 600 ms.
    const slow = () => new Promise((resolve) => setTimeout(() => resolve('done'), 600));
    server = new ControlServer(socketPath, { slow }, createLogger('silent', quiet), { lineTimeoutMs: 300 });
    await server.start();
  });
  after(async () => {
    await server?.close();
    tmp.cleanup();
  });

  it('is not counted while backpressure keeps the daemon from reading', async () => {
    const socket = net.connect(socketPath);
    let buffered = '';
    const replies: Array<{ id: number; ok: boolean; error?: { message: string } }> = [];
    const all = new Promise<void>((resolve, reject) => {
      socket.on('data', (chunk) => {
        buffered += chunk.toString();
        for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
          replies.push(JSON.parse(buffered.slice(0, nl)));
          buffered = buffered.slice(nl + 1);
        }
        if (replies.length === 18) resolve();
      });
      socket.on('close', () => reject(new Error(`closed after ${replies.length} replies: ${JSON.stringify(replies.at(-1))}`)));
    });
    await new Promise<void>((resolve) => socket.on('connect', () => resolve()));
    // 17 requests (one more than the 16 in flight) and half of an 18th line, the rest 100 ms later.
    const lines = Array.from({ length: 18 }, (_, i) => `${JSON.stringify({ id: i + 1, method: 'slow' })}\n`).join('');
    const cut = lines.length - 10;
    socket.write(lines.slice(0, cut));
    await new Promise((r) => setTimeout(r, 100));
    socket.write(lines.slice(cut));
    await all;
    socket.destroy();
    assert.deepEqual(replies.map((r) => r.id).sort((a, b) => a - b), Array.from({ length: 18 }, (_, i) => i + 1));
    assert.ok(replies.every((r) => r.ok), JSON.stringify(replies.find((r) => !r.ok)));
  });

  it('still closes a line that stays incomplete while the daemon reads', async () => {
    const socket = net.connect(socketPath);
    let received = '';
    socket.on('data', (chunk) => { received += chunk.toString(); });
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.on('connect', () => socket.write('{"id":1,'));
    await closed;
    assert.match(received, /request line not complete within 0.3 s/);
  });
});
