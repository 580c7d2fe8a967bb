// Restart without losing a query inside real namespaces: a client in a namespace asks steadily
// (100 queries a second, its own process, as any program there would) while SIGUSR2 hands the
// daemon over. Nothing is lost, a new PID serves, the sockets in the namespaces were never
// re-bound, names resolve everywhere and connect/disconnect go on working.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { FakeUpstream } from '../helpers/fake-upstream.js';
import { Lab, needsRoot, sh } from '../helpers/netns.js';
import { ROOT } from '../helpers/daemon.js';
import { isAlive, pidFile, pingPid, stopPid, waitForSuccessor } from '../helpers/successor.js';
import { waitFor } from '../helpers/wait.js';

const CLIENT = path.join(ROOT, 'dist/test/helpers/ns-client.js');

/** The inode of the UDP socket bound to 127.0.0.11:53 in `ns`: the same socket, or a new bind. */
async function socketInode(ns: string): Promise<string> {
  const out = await sh('ip', 'netns', 'exec', ns, 'ss', '-Hlnue', 'src', '127.0.0.11:53');
  return /ino:(\d+)/.exec(out)?.[1] ?? 'none';
}

describe('handover inside namespaces', { skip: needsRoot }, () => {
  const lab = new Lab();
  let upstream: FakeUpstream;
  let successor: number | undefined;
  let web: string, db: string;

  before(async () => {
    upstream = await FakeUpstream.start({ zone: { 'outside.test': ['192.0.2.77'] } });
    await lab.start(['--upstream', upstream.spec]);
    [web, db] = await Promise.all(['web', 'db'].map((n) => lab.namespace(n)));
    await lab.ok('network', 'create', 'front', '--subnet', '10.206.0.0/24');
    await lab.ok('network', 'connect', 'front', web, '--name', 'web');
    await lab.ok('network', 'connect', 'front', db, '--name', 'db');
  });
  after(async () => {
    // The successor is not the test's child: stopped by its PID before the lab goes.
    await stopPid(successor);
    await lab.cleanup();
    await upstream?.stop();
  });

  it('SIGUSR2 under a steady client: zero lost, a new PID, the same sockets, the old process gone', async () => {
    const daemon = lab.daemon!;
    const oldPid = daemon.proc.pid!;
    const inodes = [await socketInode(web), await socketInode(db)];
    // 100 queries a second for 6 s, each asked once (and waited for 5 s): a datagram dropped in the
    // handover is lost, a late answer is not. The handover starts once the client is answered.
    const client = execa('ip', ['netns', 'exec', db, process.execPath, CLIENT, 'steady', '127.0.0.11:53', 'web', '6', '10', '1'], { reject: false });
    let said = '';
    client.stderr!.on('data', (chunk: Buffer) => { said += chunk.toString(); });
    await waitFor(() => said.includes('asking') || client.exitCode !== null, { timeoutMs: 30_000, what: 'the client is answered before the handover' });
    daemon.signal('SIGUSR2');
    successor = await waitForSuccessor(lab.state, lab.socket, oldPid);
    assert.equal(await daemon.waitForExit(10_000), 0, 'the old daemon exits 0');
    const r = await client;
    const seen = JSON.parse(r.stdout);
    assert.equal(seen.lost, 0, r.stdout);
    assert.ok(seen.answered > 100, r.stdout);
    assert.notEqual(successor, oldPid);
    assert.equal(pidFile(lab.state), successor);
    assert.equal(JSON.parse(await lab.ok('status', '--json')).pid, successor);
    assert.equal(isAlive(oldPid), false);
    assert.deepEqual([await socketInode(web), await socketInode(db)], inodes, 'the namespaces keep the very sockets (adopted, not re-bound)');
    assert.ok(daemon.logs.some((l) => l.pid === successor && l.msg === 'serving DNS at 127.0.0.11:53 in namespace (sockets taken over)'));
  });

  it('after the handover names resolve in every namespace, over UDP and TCP, and connect/disconnect work', async () => {
    assert.deepEqual(await lab.dig(db, 'web'), ['10.206.0.2']);
    assert.deepEqual(await lab.dig(web, 'db'), ['10.206.0.3']);
    assert.deepEqual(await lab.dig(web, 'outside.test'), ['192.0.2.77']);
    const tcp = await execa('ip', ['netns', 'exec', db, 'kdig', '@127.0.0.11', '+tcp', '+short', 'web']);
    assert.equal(tcp.stdout.trim(), '10.206.0.2');
    const late = await lab.namespace('late');
    await lab.ok('network', 'connect', 'front', late, '--name', 'late');
    assert.deepEqual(await lab.dig(late, 'web'), ['10.206.0.2']);
    assert.deepEqual(await lab.dig(db, 'late'), ['10.206.0.4']);
    await lab.ok('network', 'disconnect', 'front', late);
    assert.deepEqual(await lab.dig(db, 'late'), []);
    assert.equal(await pingPid(lab.socket), successor);
  });
});

/** The inodes of the UDP sockets bound to `address:53` on the host (a listener's whole group), sorted. */
async function hostSocketInodes(address: string): Promise<string[]> {
  const out = await sh('ss', '-Hlnue', 'src', `${address}:53`);
  return [...out.matchAll(/ino:(\d+)/g)].map((m) => m[1]).sort();
}

describe('handover of the gateway listeners (--host-dns)', { skip: needsRoot }, () => {
  const lab = new Lab();
  let successor: number | undefined;
  let client: string;

  before(async () => {
    await lab.start(['--host-dns']);
    const [cl, svc] = await Promise.all(['gwcl', 'gwsvc'].map((n) => lab.namespace(n)));
    client = cl;
    await lab.ok('network', 'create', 'gwnet', '--subnet', '10.185.0.0/24');
    await lab.ok('network', 'connect', 'gwnet', svc, '--name', 'svc');
    await lab.ok('network', 'connect', 'gwnet', cl, '--name', 'cl');
    // The gateway listener follows the registry: wait until the network's gateway answers.
    await waitFor(async () => (await execa('ip', ['netns', 'exec', client, 'dig', '@10.185.0.1', '+short', '+time=1', '+tries=1', 'svc'], { reject: false })).stdout.trim() === '10.185.0.2', { what: 'the gateway answers' });
  });
  after(async () => {
    await stopPid(successor);
    await lab.cleanup();
  });

  it('nsdns restart under a steady client of the gateway: zero lost, the very same sockets', async () => {
    const daemon = lab.daemon!;
    const oldPid = daemon.proc.pid!;
    const inodes = await hostSocketInodes('10.185.0.1');
    assert.ok(inodes.length > 0, 'the gateway listener is bound on the host');
    const steady = execa('ip', ['netns', 'exec', client, process.execPath, CLIENT, 'steady', '10.185.0.1:53', 'svc', '6', '10', '1'], { reject: false });
    let said = '';
    steady.stderr!.on('data', (chunk: Buffer) => { said += chunk.toString(); });
    await waitFor(() => said.includes('asking') || steady.exitCode !== null, { timeoutMs: 30_000, what: 'the client is answered before the restart' });
    await lab.ok('restart');
    successor = await waitForSuccessor(lab.state, lab.socket, oldPid);
    assert.equal(await daemon.waitForExit(10_000), 0, 'the old daemon exits 0');
    const r = await steady;
    const seen = JSON.parse(r.stdout);
    assert.equal(seen.lost, 0, r.stdout);
    assert.equal(seen.refused, 0, `every answer is the name, none REFUSED while the successor sets up: ${r.stdout}`);
    assert.ok(seen.answered > 100, r.stdout);
    assert.deepEqual(await hostSocketInodes('10.185.0.1'), inodes, 'the successor serves the sockets it was handed (not a new bind)');
    assert.ok(daemon.logs.some((l) => l.pid === successor && l.msg === 'gateway listener: answering the network\'s names for the host' && l.takenOver === true), 'the successor says it took the gateway over');
    assert.equal((await execa('ip', ['netns', 'exec', client, 'dig', '@10.185.0.1', '+short', 'svc'])).stdout.trim(), '10.185.0.2');
  });
});
