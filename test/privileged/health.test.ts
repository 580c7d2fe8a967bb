// Health checks in real namespaces: two endpoints share an alias and are probed from the host
// (`connect --health tcp:8080`), a listener runs in one namespace only, and a third namespace's
// dig and glibc see only the healthy one within interval × retries; the other comes back when it
// listens; --health-hide-own, `nsdns endpoint health` against the running daemon, and Health in
// inspect and debug.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import { ROOT } from '../helpers/daemon.js';
import { Lab, needsRoot } from '../helpers/netns.js';
import { until } from '../helpers/wait.js';

const wired = readFileSync(path.join(ROOT, 'dist/src/daemon/daemon.js'), 'utf8').includes('HealthProber');
const skip = needsRoot || (!wired && 'daemon.ts does not start the HealthProber yet');

/** A TCP listener on port 8080 inside `ns`, started and ended by this test (by its PID). */
function listenIn(ns: string): ResultPromise {
  const script = "require('net').createServer((s) => s.on('error', () => {}).end()).listen(8080, () => console.log('listening'))";
  return execa('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { reject: false, buffer: false });
}


describe('health checks in namespaces', { skip }, () => {
  const lab = new Lab();
  const net = `hc${lab.tag}`;
  const listeners: ResultPromise[] = [];
  let a: string;
  let b: string;
  let client: string;
  const health = ['--health', 'tcp:8080', '--health-interval', '500ms', '--health-timeout', '300ms', '--health-retries', '2'];

  before(async () => {
    await lab.start(['--no-resolv-conf']);
    await lab.ok('network', 'create', net, '--subnet', '10.238.0.0/24');
    [a, b, client] = [await lab.namespace('web1'), await lab.namespace('web2'), await lab.namespace('client')];
    const up = listenIn(a);
    listeners.push(up);
    await new Promise<void>((resolve) => up.stdout!.once('data', () => resolve()));
  });
  after(async () => {
    for (const l of listeners) l.kill();
    await Promise.all(listeners.map((l) => l.catch(() => undefined)));
    await lab.cleanup();
  });

  it('leaves the endpoint without a listener out of the shared alias, for dig and glibc', async () => {
    await lab.ok('network', 'connect', net, a, '--name', 'web1', '--alias', 'pool', ...health);
    await lab.ok('network', 'connect', net, b, '--name', 'web2', '--alias', 'pool', ...health, '--health-hide-own');
    await lab.ok('network', 'connect', net, client, '--name', 'client');
    const only = await until('pool from the client', () => lab.dig(client, 'pool'), (x) => x.length === 1 && x[0] === '10.238.0.2');
    assert.deepEqual(only, ['10.238.0.2']);
    const getent = await execa('ip', ['netns', 'exec', client, 'getent', 'ahosts', 'pool'], { reject: false });
    assert.deepEqual([...new Set(getent.stdout.split('\n').map((l) => l.split(/\s+/)[0]).filter(Boolean))], ['10.238.0.2']);
    assert.deepEqual(await lab.dig(client, 'web1'), ['10.238.0.2']);
    assert.deepEqual(await lab.dig(client, 'web2'), [], '--health-hide-own: its own name is left out too');
    const line = await lab.daemon!.waitForLog((l) => l.endpoint === 'web2' && l.status === 'unhealthy');
    assert.match(line.msg, /endpoint "web2" on network "hc\w+" is now unhealthy \(was starting; 2 failure\(s\) in a row, last: connection refused\)/);
  });

  it('shows the state and the last probes in network inspect and nsdns debug', async () => {
    const [inspect] = JSON.parse(await lab.ok('network', 'inspect', net));
    type H = { Status: string; FailingStreak: number; Log: Array<{ ExitCode: number; Output: string }>; Check: Record<string, unknown> };
    const byName = (n: string) => (Object.values(inspect.Containers) as Array<{ Name: string; Health: H }>).find((c) => c.Name === n)!.Health;
    assert.equal(byName('web2').Status, 'unhealthy');
    assert.ok(byName('web2').FailingStreak >= 2);
    assert.deepEqual([byName('web2').Log.at(-1)!.ExitCode, byName('web2').Log.at(-1)!.Output], [1, 'connection refused']);
    assert.deepEqual(byName('web2').Check, { Test: 'tcp:8080', Interval: '500ms', Timeout: '300ms', Retries: 2, StartPeriod: '0ms', Address: '10.238.0.3' });
    assert.equal(byName('web1').Status, 'healthy');
    assert.equal(byName('web1').Log.at(-1)!.Output, 'connected');
    assert.deepEqual(byName('client'), { Status: 'healthy', FailingStreak: 0, Log: [] });
    const debug = JSON.parse(await lab.ok('debug', b, '--json'));
    assert.equal(debug.daemon.endpoints[0].health.Status, 'unhealthy');
    assert.match(await lab.ok('debug', b), /health unhealthy \(\d+ failing\), check tcp:8080 every 500ms, last probe .*: failed \(connection refused\)/);
  });

  it('takes the endpoint back once it listens', async () => {
    const up = listenIn(b);
    listeners.push(up);
    await new Promise<void>((resolve) => up.stdout!.once('data', () => resolve()));
    const both = await until('pool with both', () => lab.dig(client, 'pool'), (x) => x.length === 2);
    assert.deepEqual(both.sort(), ['10.238.0.2', '10.238.0.3']);
    assert.deepEqual(await lab.dig(client, 'web2'), ['10.238.0.3']);
  });

  it('lets an outside system set a state with nsdns endpoint health', async () => {
    const c = await lab.namespace('web3');
    await lab.ok('network', 'connect', net, c, '--name', 'web3', '--alias', 'pool');
    assert.equal((await lab.dig(client, 'pool')).length, 3);
    assert.equal(await lab.ok('endpoint', 'health', net, 'web3', 'unhealthy'), 'web3 on ' + net + ': unhealthy');
    await sleep(1200);
    assert.deepEqual((await lab.dig(client, 'pool')).sort(), ['10.238.0.2', '10.238.0.3'], 'a state set by hand holds on an endpoint without a check');
    const r = await lab.nsdns('endpoint', 'health', net, 'web3', 'dead');
    assert.equal(r.exitCode, 1, 'refused by the daemon');
    assert.match(r.stderr, /expected one of "healthy"\|"unhealthy"\|"starting"/);
  });

  it('refuses garbage checks before anything is connected', async () => {
    const d = await lab.namespace('web4');
    for (const [args, code, message] of [
      [['--health', 'udp:53'], 1, /--health "udp:53": expected tcp:PORT or http:PORT/],
      [['--health', 'tcp:8080', '--health-interval', '5'], 2, /--health-interval: expected a duration/],
      [['--health', 'tcp:8080', '--health-interval', '10ms'], 1, /--health-interval: must be at least 100 ms/],
      [['--health-retries', '2'], 1, /--health-retries needs --health/],
      [['--health', 'http:80/a\u0001'], 1, /expected tcp:PORT or http:PORT/],
    ] as const) {
      const r = await lab.nsdns('network', 'connect', net, d, ...args);
      assert.equal(r.exitCode, code, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
    const [inspect] = JSON.parse(await lab.ok('network', 'inspect', net));
    assert.ok(!(Object.values(inspect.Containers) as Array<{ Name: string }>).some((x) => x.Name === `ns${lab.tag}-web4`));
  });
});
