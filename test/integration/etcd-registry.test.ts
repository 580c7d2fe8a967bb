// A shared registry in a real etcd (`--registry etcd://…/PREFIX`): what is put is answered, what
// is deleted is NXDOMAIN in a zone that stays, values that fail validation are refused by their
// key while the rest of their network answers, and one name from two nodes answers both.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import path from 'node:path';
import { execa } from 'execa';
import { Etcd3 } from 'etcd3';
import { MAIN, ROOT, startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { dig, digShort } from '../helpers/dig.js';
import { TestEtcd } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';

const PREFIX = '/nsdns-reader';
const net = (name: string) => `${PREFIX}/networks/${name}`;
const ep = (network: string, node: string, id: string) => `${PREFIX}/endpoints/${network}/${node}/${id}`;

describe('etcd registry: puts, deletes and refused values', () => {
  let etcd: TestEtcd;
  let daemon: RunningDaemon;

  before(async () => {
    // Room for the 10 MB value (etcd refuses requests over 1.5 MB by default).
    etcd = await TestEtcd.start({ portBase: 15600, args: ['--max-request-bytes', String(12 * 1024 * 1024)] });
    await etcd.put(net('lab'), JSON.stringify({ name: 'lab', subnets: [{ subnet: '10.123.1.0/24' }] }));
    await etcd.put(ep('lab', 'host-a', 'web1'), JSON.stringify({ name: 'web', ipv4: '10.123.1.10' }));
    daemon = await startDaemon(['--registry', `etcd://${etcd.hostPort}${PREFIX}`, '--listen', '127.0.0.1:0']);
  });
  after(async () => {
    await daemon?.stop();
    await etcd?.stop();
  });

  it('answers what etcd held at start, and a put made while it runs', async () => {
    assert.deepEqual(await digShort(daemon.server, 'web.lab'), ['10.123.1.10']);
    await etcd.put(ep('lab', 'host-b', 'db1'), JSON.stringify({ name: 'db', ipv4: '10.123.1.20', aliases: ['store'] }));
    await waitFor(async () => (await digShort(daemon.server, 'db.lab'))[0] === '10.123.1.20', { what: 'the put answered' });
    assert.deepEqual(await digShort(daemon.server, 'store.lab'), ['10.123.1.20']);
  });

  it('answers NXDOMAIN for a deleted endpoint, and the network\'s zone stays', async () => {
    await etcd.put(ep('lab', 'host-b', 'tmp1'), JSON.stringify({ name: 'tmp', ipv4: '10.123.1.30' }));
    await waitFor(async () => (await digShort(daemon.server, 'tmp.lab'))[0] === '10.123.1.30', { what: 'tmp answered' });
    await etcd.del(ep('lab', 'host-b', 'tmp1'));
    await waitFor(async () => (await dig(daemon.server, 'tmp.lab')).status === 'NXDOMAIN', { what: 'the deleted name NXDOMAIN' });
    assert.deepEqual(await digShort(daemon.server, 'web.lab'), ['10.123.1.10']);
  });

  it('waits for a network\'s definition before serving its endpoints, and withdraws the network with it', async () => {
    await etcd.put(ep('later', 'host-a', 'x1'), JSON.stringify({ name: 'x', ipv4: '10.123.2.5' }));
    await etcd.put(net('later'), JSON.stringify({ name: 'later' }));
    await waitFor(async () => (await digShort(daemon.server, 'x.later'))[0] === '10.123.2.5', { what: 'the waiting endpoint answered' });
    await etcd.del(net('later'));
    await waitFor(async () => (await dig(daemon.server, 'x.later')).status === 'REFUSED', { what: 'the network withdrawn' });
  });

  it('refuses bad JSON, plumbing fields and a 10 MB value by key, and the rest of the network answers', async () => {
    const cases: Array<[string, string, RegExp]> = [
      [ep('lab', 'host-c', 'badjson'), '{"name": "broken", "ipv4": ', /not valid JSON/],
      [ep('lab', 'host-c', 'plumbing'), JSON.stringify({ name: 'sneaky', ipv4: '10.123.1.40', netns: '/proc/1/ns/net' }), /netns: not accepted from a shared registry/],
      [ep('lab', 'host-c', 'huge'), JSON.stringify({ name: 'huge', ipv4: '10.123.1.41', labels: { pad: 'x'.repeat(10_000_000) } }), /has 10000056 bytes, more than the 65536 a value may have/],
      [ep('lab', 'host-c', 'outside'), JSON.stringify({ name: 'outside', ipv4: '192.0.2.1' }), /outside the network's subnets/],
    ];
    const client = new Etcd3({ hosts: etcd.endpoint });
    for (const [key, value, problem] of cases) {
      // etcd3 rather than etcdctl, whose client sends at most 2 MB.
      await client.put(key).value(value);
      const line = await daemon.waitForLog((l) => l.key === key);
      assert.match(String((line.err as { message: string }).message), problem, key);
      assert.ok(!JSON.stringify(line).includes('/proc/1/ns/net') && !JSON.stringify(line).includes('xxxxxxxx'), 'the value is never logged');
    }
    client.close();
    for (const name of ['broken', 'sneaky', 'huge', 'outside']) assert.equal((await dig(daemon.server, `${name}.lab`)).status, 'NXDOMAIN', name);
    assert.deepEqual(await digShort(daemon.server, 'web.lab'), ['10.123.1.10']);
    assert.deepEqual(await digShort(daemon.server, 'db.lab'), ['10.123.1.20']);
  });

  it('answers both addresses of a name two nodes hold, and reports it', async () => {
    await etcd.put(ep('lab', 'host-a', 'api-a'), JSON.stringify({ name: 'api', ipv4: '10.123.1.51' }));
    await etcd.put(ep('lab', 'host-b', 'api-b'), JSON.stringify({ name: 'api', ipv4: '10.123.1.52' }));
    await waitFor(async () => (await digShort(daemon.server, 'api.lab', 'A')).length === 2, { what: 'both addresses answered' });
    assert.deepEqual((await digShort(daemon.server, 'api.lab', 'A')).sort(), ['10.123.1.51', '10.123.1.52']);
    const line = await daemon.waitForLog((l) => String(l.msg).includes('held by endpoints of several nodes'));
    assert.deepEqual(line.names, ['api']);
    const inspect = await execa(process.execPath, [MAIN, 'network', 'inspect', 'lab', '--socket', path.join(daemon.stateDir, 'nsdns.sock')], { cwd: ROOT });
    assert.deepEqual((JSON.parse(inspect.stdout) as Array<{ DNS: { SharedNames?: string[] } }>)[0].DNS.SharedNames, ['api']);
    const status = JSON.parse((await execa(process.execPath, [MAIN, 'status', '--json', '--socket', path.join(daemon.stateDir, 'nsdns.sock')], { cwd: ROOT })).stdout);
    assert.equal(status.sharedRegistries[0].sharedNames, 1);
  });
});
