// Egress by name end to end (issue 22): a namespace connected with --egress-allow is default-deny
// when the connect returns; a name it may resolve opens the answered address before the reply
// reaches the client (glibc's getent, then a TCP connect); a listed CIDR opens its port only; a
// stopped daemon opens nothing, and a restarted one enforces and learns again. The "outside" is a
// namespace routed through the host with TCP servers on several addresses; the upstream is a fake
// on loopback.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa, type ResultPromise } from 'execa';
import { FakeUpstream } from '../helpers/fake-upstream.js';
import { Lab, needsRoot, sh } from '../helpers/netns.js';
import { waitFor } from '../helpers/wait.js';

// TCP servers on every address of the namespace: each connection is told "hello".
const SERVER = `const net = require('net'); let n = 0; for (const p of process.argv.slice(1)) net.createServer((s) => s.end('hello\\n')).listen(+p, '0.0.0.0', () => { if (++n === process.argv.length - 1) console.log('up'); });`;
// One connect: "hello", an error code, or "timeout".
const CLIENT = `const s = require('net').connect(+process.argv[2], process.argv[1]); const done = (t) => { console.log(t); process.exit(0); };
setTimeout(() => done('timeout'), 1500); s.on('data', (d) => done(String(d).trim())); s.on('error', (e) => done(e.code));`;

describe('egress by name, enforced', { skip: needsRoot }, () => {
  const lab = new Lab();
  const net = `en${lab.tag}`;
  let upstream: FakeUpstream;
  let app = '', outside = '';
  let server: ResultPromise | undefined;

  const connect = async (host: string, port: number) => (await execa('ip', ['netns', 'exec', app, process.execPath, '-e', CLIENT, host, String(port)], { timeout: 10_000 })).stdout.trim();
  const getent = async (name: string) => {
    const r = await execa('ip', ['netns', 'exec', app, 'getent', 'ahostsv4', name], { reject: false });
    return r.exitCode === 0 ? r.stdout.split('\n')[0].split(/\s+/)[0] : `exit ${r.exitCode}`;
  };

  before(async () => {
    upstream = await FakeUpstream.start({ ttl: 2, zone: { 'allowed.test': ['10.136.10.3'], 'denied.test': ['10.136.10.4'] } });
    app = await lab.namespace('app');
    outside = await lab.outsideHost('out', '10.136.9.1', '10.136.9.2');
    await sh('ip', '-n', outside, 'route', 'add', 'default', 'via', '10.136.9.1');
    for (const a of ['10.136.10.3/32', '10.136.10.4/32', '10.136.10.5/32']) await sh('ip', '-n', outside, 'addr', 'add', a, 'dev', 'lo');
    await sh('ip', 'route', 'add', '10.136.10.0/24', 'via', '10.136.9.2');
    server = execa('ip', ['netns', 'exec', outside, process.execPath, '-e', SERVER, '16701', '16702']);
    server.catch(() => {});
    await new Promise<void>((resolve, reject) => { server!.stdout!.once('data', () => resolve()); server!.once('exit', () => reject(new Error('the outside servers did not start'))); });
    await lab.start(['--upstream', upstream.spec]);
    await lab.ok('network', 'create', net, '--subnet', '10.136.1.0/24');
  });
  after(async () => {
    server?.kill();
    await lab.cleanup();
    await execa('ip', ['route', 'del', '10.136.10.0/24'], { reject: false });
    await upstream?.stop();
  });

  it('is default-deny when the connect returns; a listed CIDR opens its port only', async () => {
    // Reachable before any policy (so each "timeout" below is the egress rules).
    const probe = await lab.namespace('probe');
    await lab.ok('network', 'connect', net, probe, '--name', 'probe');
    assert.equal((await execa('ip', ['netns', 'exec', probe, process.execPath, '-e', CLIENT, '10.136.10.3', '16701'])).stdout.trim(), 'hello', 'an endpoint without a policy reaches outside');

    await lab.ok('network', 'connect', net, app, '--name', 'job', '--egress-allow', 'allowed.test', '--egress-allow', '10.136.10.5/32:16702/tcp');
    assert.equal(await connect('10.136.10.3', 16701), 'timeout', 'an address not answered yet');
    assert.equal(await connect('10.136.10.5', 16702), 'hello', 'the listed CIDR and port');
    assert.equal(await connect('10.136.10.5', 16701), 'timeout', 'another port of the listed CIDR');
  });

  it('an allowed name opens its answered address before glibc gets the answer; a denied one opens nothing', async () => {
    assert.equal(await getent('allowed.test'), '10.136.10.3');
    assert.equal(await connect('10.136.10.3', 16701), 'hello');
    assert.equal(await getent('denied.test'), 'exit 2', 'NXDOMAIN: getent finds nothing');
    assert.equal(await connect('10.136.10.4', 16701), 'timeout', 'the denied name\'s address (never answered)');
  });

  it('a stopped daemon opens nothing; restarted, it enforces and learns again', async () => {
    await lab.daemon!.stop();
    assert.equal(await connect('10.136.10.4', 16701), 'timeout', 'still closed with the daemon gone');
    assert.equal(await connect('10.136.10.5', 16701), 'timeout');
    await lab.start(['--upstream', upstream.spec]);
    assert.equal(await connect('10.136.10.4', 16701), 'timeout', 'closed after the restart');
    assert.equal(await getent('allowed.test'), '10.136.10.3');
    assert.equal(await connect('10.136.10.3', 16701), 'hello');
  });

  it('logs drops in the kernel log only with egress.logDrops', async () => {
    const logRules = async () => ((await execa('nft', ['list', 'table', 'inet', `${lab.nftTable}_egress`], { reject: false })).stdout.match(/log prefix "nsdns-egress-drop: "/g) ?? []).length;
    assert.equal(await logRules(), 0, 'no log rule by default');
    await lab.daemon!.stop();
    const config = path.join(lab.state, 'log-drops.yaml');
    writeFileSync(config, 'egress:\n  logDrops: true\n');
    await lab.start(['--config', config, '--no-resolv-conf', '--upstream', upstream.spec]);
    assert.equal(await logRules(), 1);
    // The denied name's address on a port no other test here asks it for: the line found is this connect's.
    assert.equal(await connect('10.136.10.4', 16702), 'timeout');
    await waitFor(async () => /nsdns-egress-drop: .*DST=10\.136\.10\.4 .*DPT=16702/.test((await execa('dmesg')).stdout), { what: 'the drop in the kernel log' });
  });

  it('a disconnect lets the namespace go: its rules leave the kernel', async () => {
    const chains = async () => (await execa('nft', ['list', 'table', 'inet', `${lab.nftTable}_egress`], { reject: false })).stdout.match(/chain eg_[0-9a-f]{16}/g) ?? [];
    assert.equal((await chains()).length, 1);
    await lab.ok('network', 'disconnect', net, 'job');
    assert.deepEqual(await chains(), []);
  });
});
