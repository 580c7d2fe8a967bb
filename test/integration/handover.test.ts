// Restart without losing a query, as an operator sees it on the host: SIGUSR2 (or `nsdns restart`)
// hands the listeners, the control socket and the metrics listener to a new daemon, a client
// asking all the while gets every answer, and a new daemon that cannot start leaves the old one
// serving.
import assert from 'node:assert/strict';
import path from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { ROOT, startDaemon } from '../helpers/daemon.js';
import { digShort } from '../helpers/dig.js';
import { steadyClient } from '../helpers/steady-client.js';
import { tempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { isAlive, nsdns, pidFile, pingPid, stopPid, waitForSuccessor } from '../helpers/successor.js';

/** 100 queries a second, each asked once and waited for 5 s: a handover must drop none. */
const ONE_ATTEMPT = { everyMs: 10, attempts: 1, retryMs: 5000 };
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

describe('handover on the host', () => {
  it('SIGUSR2: a client asking all the while loses nothing; the listener, control socket and metrics stay where they were', async () => {
    const daemon = await startDaemon(['--listen', '127.0.0.1:0', '--registry', path.join(ROOT, 'fixtures/lab'), '--metrics', '127.0.0.1:0']);
    const socket = path.join(daemon.stateDir, 'nsdns.sock');
    let successor: number | undefined;
    cleanups.push(() => daemon.stop(), () => stopPid(successor));
    const metrics = (await daemon.waitForLog((l) => l.msg === 'ready')).metrics as string;
    const oldPid = daemon.proc.pid!;
    // One attempt per query, waited for long: a datagram dropped in the handover is lost, a late answer is not.
    const client = steadyClient(daemon.port, 'web.lab', ONE_ATTEMPT);
    await waitFor(() => client.progress().answered >= 50, { what: 'the old daemon answers the client' });
    daemon.signal('SIGUSR2');
    successor = await waitForSuccessor(daemon.stateDir, socket, oldPid);
    assert.equal(await daemon.waitForExit(10_000), 0, 'the old daemon exits 0');
    const handedOver = client.progress().answered;
    await waitFor(() => client.progress().answered >= handedOver + 50, { what: 'the successor answers the client' });
    const seen = await client.stop();
    assert.equal(seen.lost, 0, JSON.stringify(seen));
    assert.notEqual(successor, oldPid);
    assert.deepEqual(await digShort(daemon.server, 'web.lab'), ['10.77.0.10']);
    const status = JSON.parse((await nsdns(socket, 'status', '--json')).stdout);
    assert.equal(status.pid, successor);
    assert.deepEqual(status.listeners, [`127.0.0.1:${daemon.port}`]);
    const health = await fetch(`http://${metrics}/healthz`);
    assert.equal(health.status, 200, 'the metrics listener was handed over');
    assert.ok(daemon.logs.some((l) => l.msg === 'handover: took over from the old daemon' && l.pid === successor));
  });

  it('a new daemon that cannot start (broken config on disk): the old one logs why and goes on serving; `nsdns restart` then works', async () => {
    const dir = tempDir();
    cleanups.push(() => dir.cleanup());
    const config = dir.write('nsdns.yaml', `listen: ["127.0.0.1:0"]\nregistries: ["${path.join(ROOT, 'fixtures/lab')}"]\n`);
    const daemon = await startDaemon(['--config', config, '--no-resolv-conf']);
    const socket = path.join(daemon.stateDir, 'nsdns.sock');
    let successor: number | undefined;
    cleanups.push(() => daemon.stop(), () => stopPid(successor));
    const oldPid = daemon.proc.pid!;
    dir.write('nsdns.yaml', 'listen: [this is: not yaml\n');
    const client = steadyClient(daemon.port, 'web.lab', ONE_ATTEMPT);
    daemon.signal('SIGUSR2');
    const failed = await daemon.waitForLog((l) => l.msg.startsWith('handover failed'), 15_000);
    assert.match(String(failed.reason), /exited \(code 1\) before it was ready/);
    const seen = await client.stop();
    assert.equal(seen.lost, 0, JSON.stringify(seen));
    assert.equal(daemon.exitCode, null, 'the old daemon still runs');
    assert.equal(pidFile(daemon.stateDir), oldPid);
    assert.equal(await pingPid(socket), oldPid, 'its control socket answers again');
    assert.deepEqual(await digShort(daemon.server, 'web.lab'), ['10.77.0.10']);
    const status = JSON.parse((await nsdns(socket, 'status', '--json')).stdout);
    assert.equal(status.handover.failures, 1);

    // Fixed on disk: `nsdns restart` hands over and says to whom.
    dir.write('nsdns.yaml', `listen: ["127.0.0.1:0"]\nregistries: ["${path.join(ROOT, 'fixtures/lab')}"]\n`);
    const r = await nsdns(socket, 'restart');
    assert.equal(r.exitCode, 0, r.stderr);
    successor = await waitForSuccessor(daemon.stateDir, socket, oldPid);
    assert.match(r.stdout, new RegExp(`pid ${oldPid} .*pid ${successor}`));
    assert.equal(await daemon.waitForExit(10_000), 0);
    assert.ok(isAlive(successor));
    assert.deepEqual(await digShort(daemon.server, 'web.lab'), ['10.77.0.10']);
  });
});
