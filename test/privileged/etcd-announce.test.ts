// `--announce`: what a daemon provisions appears in a real etcd under its node name, and goes when
// the daemon goes: at once on a clean stop, within the lease TTL when it is killed; when etcd is
// away longer than the lease it is published again as soon as etcd returns. Read back with etcdctl.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { randomBytes } from 'node:crypto';
import { TestEtcd } from '../helpers/etcd.js';
import { Lab, needsRoot } from '../helpers/netns.js';
import { until } from '../helpers/wait.js';
import { stopPid, waitForSuccessor } from '../helpers/successor.js';

/** Small, so that expiry is quick to see; etcd's own minimum lease is about 2 s. */
const TTL = 2;

describe('etcd announce', { skip: needsRoot }, () => {
  let etcd: TestEtcd;
  const prefix = `/nsdns-${randomBytes(3).toString('hex')}`;
  const labs: Lab[] = [];
  let successor: number | undefined;
  const announcing = async (node: string): Promise<Lab> => {
    const lab = new Lab();
    labs.push(lab);
    await lab.start(['--announce', `etcd://${etcd.hostPort}${prefix}`, '--node-name', node, '--announce-ttl', String(TTL)]);
    return lab;
  };
  /** Endpoint keys of `network` by `node`, as endpoint name → the value's JSON. */
  const endpoints = async (network: string, node: string): Promise<Map<string, { name: string; ipv4: string[] }>> => {
    const kvs = await etcd.list(`${prefix}/endpoints/${network}/${node}/`);
    return new Map([...kvs.values()].map((v) => JSON.parse(v) as { name: string; ipv4: string[] }).map((v) => [v.name, v]));
  };
  const names = async (network: string, node: string) => [...(await endpoints(network, node)).keys()].sort().join(',');

  before(async () => {
    etcd = await TestEtcd.start({ portBase: 15800 });
  });
  after(async () => {
    await stopPid(successor);
    for (const lab of labs) await lab.cleanup();
    await etcd?.stop();
  });

  it('publishes the network once and each endpoint on the lease; a disconnect deletes its key', async () => {
    const lab = await announcing('node-a');
    await lab.ok('network', 'create', 'anet', '--subnet', '10.124.1.0/24');
    const [web, db] = [await lab.namespace('web'), await lab.namespace('db')];
    await lab.ok('network', 'connect', 'anet', web, '--name', 'web', '--alias', 'www');
    await lab.ok('network', 'connect', 'anet', db, '--name', 'db');
    await until('both endpoints in etcd', () => names('anet', 'node-a'), (n) => n === 'db,web');
    const published = await endpoints('anet', 'node-a');
    assert.deepEqual(published.get('web'), { ...published.get('web'), name: 'web', aliases: ['www'] });
    assert.match(published.get('web')!.ipv4[0], /^10\.124\.1\.\d+$/);
    // DNS fields only: nothing of this host's plumbing leaves it.
    for (const value of (await etcd.list(`${prefix}/endpoints/`)).values()) assert.doesNotMatch(value, /netns|hostIf|mac|ifname/);
    const network = JSON.parse((await etcd.list(`${prefix}/networks/anet`)).get(`${prefix}/networks/anet`)!);
    assert.equal(network.name, 'anet');
    assert.deepEqual(network.subnets.map((s: { subnet: string }) => s.subnet), ['10.124.1.0/24']);
    assert.equal(network.bridge, undefined);
    // The endpoints and the node's claim are on a lease, the network is not.
    const leases = JSON.parse((await etcd.ctl(['get', '--prefix', prefix, '-w', 'json'])).stdout).kvs.map((kv: { key: string; lease?: number }) => [Buffer.from(kv.key, 'base64').toString(), kv.lease ?? 0]);
    for (const [key, lease] of leases) assert.equal(lease !== 0, key.includes('/endpoints/') || key === `${prefix}/nodes/node-a`, key);

    await lab.ok('network', 'disconnect', 'anet', db);
    await until('db gone from etcd', () => names('anet', 'node-a'), (n) => n === 'web');

    // The state answers go by here travels with the endpoint: another host hides it on shared names too.
    const health = async () => ((await endpoints('anet', 'node-a')).get('web') as { health?: string } | undefined)?.health;
    await lab.ok('endpoint', 'health', 'anet', 'web', 'unhealthy');
    await until('web published unhealthy', health, (h) => h === 'unhealthy');
    await lab.ok('endpoint', 'health', 'anet', 'web', 'healthy');
    await until('web published healthy again', health, (h) => h === 'healthy');
  });

  it('refuses a network whose definition in etcd differs, and joins one that agrees', async () => {
    const lab = labs[0];
    await etcd.put(`${prefix}/networks/other`, JSON.stringify({ name: 'other', subnets: [{ subnet: '10.124.9.0/24' }] }));
    await etcd.put(`${prefix}/networks/same`, JSON.stringify({ name: 'same', subnets: [{ subnet: '10.124.7.0/24' }] }));
    await lab.ok('network', 'create', 'other', '--subnet', '10.124.8.0/24');
    await lab.ok('network', 'create', 'same', '--subnet', '10.124.7.0/24');
    const [x, y] = [await lab.namespace('x'), await lab.namespace('y')];
    await lab.ok('network', 'connect', 'other', x, '--name', 'x');
    await lab.ok('network', 'connect', 'same', y, '--name', 'y');
    const refused = await lab.daemon!.waitForLog((l) => l.msg === 'not announcing network: etcd holds another definition of it' && l.network === 'other');
    assert.match(String(refused.problem), /subnets 10\.124\.9\.0\/24 in etcd, 10\.124\.8\.0\/24 here/);
    await until('y in etcd', () => names('same', 'node-a'), (n) => n === 'y');
    assert.equal(await names('other', 'node-a'), '');
    assert.match((await etcd.list(`${prefix}/networks/other`)).get(`${prefix}/networks/other`)!, /10\.124\.9\.0/);
    assert.match(await lab.ok('status'), /^announce: {4}node node-a to etcd:\/\/\S+; lease since \S+, 2 endpoints; not announced \(etcd defines them otherwise\): other$/m);
    const status = JSON.parse(await lab.ok('status', '--json')).announce;
    assert.deepEqual({ ...status, leaseSince: typeof status.leaseSince }, { url: `etcd://${etcd.hostPort}${prefix}`, node: 'node-a', ttlSeconds: TTL, leaseSince: 'string', endpoints: 2, pending: 0, refused: ['other'], nodeTaken: null, lastError: null });
    // A network removed here: its endpoints go, its key stays for the hosts still on it.
    await lab.ok('network', 'rm', 'same', '--disconnect');
    await until('y gone from etcd', () => names('same', 'node-a'), (n) => n === '');
    assert.equal((await etcd.list(`${prefix}/networks/same`)).size, 1);
  });

  it('publishes again at once when etcd returns from a pause longer than the lease', async (t) => {
    const lab = labs[0];
    await until('web in etcd', () => names('anet', 'node-a'), (n) => n === 'web');
    etcd.pause();
    try {
      await new Promise((resolve) => setTimeout(resolve, 2 * TTL * 1000)); // the outage itself, not a wait for a condition
    } finally {
      etcd.resume();
    }
    const resumed = Date.now();
    // Back within the lease TTL (plus etcd's expiry tick), and still there once any lease from
    // before the pause has certainly expired: the keys are on a live lease.
    await until('web back in etcd', () => names('anet', 'node-a'), (n) => n === 'web', (TTL + 1) * 1000);
    const back = Date.now() - resumed;
    await until('two leases later', () => Date.now() - resumed > 2 * TTL * 1000 + 500, (v) => v, 10_000);
    assert.equal(await names('anet', 'node-a'), 'web');
    const lost = lab.daemon!.logs.some((l) => l.msg === 'etcd lease lost; announcing again under a new one');
    t.diagnostic(`endpoints back in etcd ${back} ms after it resumed; lease lost and granted again: ${lost}`);
  });

  it('etcd killed and started again: published again under a new lease before the old one expires', async (t) => {
    const lab = labs[0];
    await until('web in etcd', () => names('anet', 'node-a'), (n) => n === 'web');
    await etcd.kill();
    const logs = lab.daemon!.logs.length;
    // Down until the announcer has given its lease up (2 × TTL without a keepalive); restarted,
    // etcd brings that lease back with its full TTL, so the keys are there until it expires.
    await lab.daemon!.waitForLog((l) => l.msg === 'etcd lease lost; announcing again under a new one' && lab.daemon!.logs.indexOf(l) >= logs, 30_000);
    await etcd.restart();
    const back = Date.now();
    const seen: string[] = [];
    while (Date.now() - back < 2 * TTL * 1000 + 500) seen.push(await names('anet', 'node-a'));
    t.diagnostic(`looked ${seen.length} times in the ${2 * TTL} s after etcd was back`);
    assert.deepEqual([...new Set(seen)], ['web'], 'web was in etcd at every look after etcd came back');
  });

  it('a clean stop revokes the lease: the endpoints are gone at once, the network stays', async () => {
    const lab = labs[0];
    await lab.daemon!.stop();
    assert.equal(await names('anet', 'node-a'), '');
    assert.ok((await etcd.list(`${prefix}/networks/anet`)).size === 1);
  });

  it('a restart hands over without a gap; kill -9: the endpoints are gone within the lease TTL + 1 s, the network stays', async (t) => {
    const lab = await announcing('node-b');
    await lab.ok('network', 'create', 'bnet', '--subnet', '10.124.2.0/24');
    await lab.ok('network', 'connect', 'bnet', await lab.namespace('b1'), '--name', 'b1');
    await until('b1 in etcd', () => names('bnet', 'node-b'), (n) => n === 'b1');

    // The successor announces the same node; the keys never leave etcd, and outlive the old lease.
    const seen: string[] = [];
    let watching = true;
    const watcher = (async () => { while (watching) seen.push(await names('bnet', 'node-b')); })();
    await lab.ok('restart');
    successor = await waitForSuccessor(lab.state, lab.socket, lab.daemon!.proc.pid!);
    const restarted = Date.now();
    await until('two leases after the restart', () => Date.now() - restarted > 2 * TTL * 1000 + 500, (v) => v, 10_000);
    watching = false;
    await watcher;
    assert.deepEqual([...new Set(seen)], ['b1'], 'b1 was in etcd at every look during the restart');

    process.kill(successor, 'SIGKILL');
    const killed = Date.now();
    await until('b1 gone from etcd', () => names('bnet', 'node-b'), (n) => n === '', (TTL + 1) * 1000);
    t.diagnostic(`endpoints gone from etcd ${Date.now() - killed} ms after kill -9 (TTL ${TTL} s)`);
    assert.ok((await etcd.list(`${prefix}/networks/bnet`)).size === 1);
  });
});
