// What a shared registry's keys become: the key layout, each value checked at the boundary (size,
// JSON, remote fields), endpoints waiting for their network, names several nodes hold, and the
// deletes held back after an outage.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { EtcdContents, keyKind } from '../../src/etcd/etcd-contents.js';
import { HeldDeletes } from '../../src/etcd/held-deletes.js';
import { waitFor } from '../helpers/wait.js';

const P = '/nsdns';
const bytes = (value: unknown) => new TextEncoder().encode(typeof value === 'string' ? value : JSON.stringify(value));

function contents(ownNode?: string, limits: { maxHeldKeys?: number; maxHeldBytes?: number } = {}) {
  const problems: Array<[string, string]> = [];
  const c = new EtcdContents({ prefix: P, maxValueBytes: 1024, ownNode, ...limits, onProblem: (key, problem) => problems.push([key, problem]) });
  let revision = 1;
  const put = (key: string, value: unknown, lease = '0') => c.put({ key, value: bytes(value), lease, modRevision: String(++revision) });
  return { c, put, problems };
}

it('reads the key layout and ignores every other key', () => {
  assert.deepEqual(keyKind(P, '/nsdns/networks/lab'), { kind: 'network', network: 'lab' });
  assert.deepEqual(keyKind(P, '/nsdns/endpoints/lab/host-a.example/web1'), { kind: 'endpoint', network: 'lab', node: 'host-a.example', endpoint: 'web1' });
  for (const key of ['/nsdns', '/nsdns/', '/nsdnsx/networks/lab', '/other/networks/lab', '/nsdns/networks/', '/nsdns/networks/a/b', '/nsdns/networks/bad name',
    '/nsdns/endpoints/lab/a', '/nsdns/endpoints/lab/a/b/c', '/nsdns/endpoints/lab/a/..', '/nsdns/endpoints/lab/a\n/b', '/nsdns/endpoints/lab//b', '/nsdns/misc/x']) {
    assert.deepEqual(keyKind(P, key), { kind: 'ignored' }, key);
  }
});

it('serves a network with its endpoints, the id taken from the key', () => {
  const { c, put, problems } = contents();
  assert.equal(put('/nsdns/endpoints/lab/a/web1', { name: 'web', ipv4: '10.123.1.10' }), 'lab');
  assert.equal(c.network('lab'), undefined, 'an endpoint waits for its network');
  put('/nsdns/networks/lab', { name: 'lab', subnets: [{ subnet: '10.123.1.0/24' }] });
  const served = c.network('lab')!;
  assert.deepEqual(served.record.endpoints.map((e) => [e.id, e.name, e.ipv4]), [['web1', 'web', ['10.123.1.10']]]);
  assert.deepEqual(problems, []);
});

it('refuses oversized, non-JSON, plumbing and invalid values by key, never by content, keeping the rest', () => {
  const { c, put, problems } = contents();
  put('/nsdns/networks/lab', { name: 'lab', subnets: [{ subnet: '10.123.1.0/24' }] });
  put('/nsdns/endpoints/lab/a/ok', { name: 'ok', ipv4: '10.123.1.1' });
  put('/nsdns/endpoints/lab/a/big', { name: 'big', labels: { pad: 'secret'.repeat(300) } });
  put('/nsdns/endpoints/lab/a/json', '{"name": "secret-text');
  put('/nsdns/endpoints/lab/a/netns', { name: 'n', netns: '/proc/1/ns/net' });
  put('/nsdns/endpoints/lab/a/up', { name: 'u', upstreams: ['192.0.2.53'] });
  put('/nsdns/endpoints/lab/a/outside', { name: 'o', ipv4: '192.0.2.1' });
  put('/nsdns/endpoints/lab/a/other-id', { name: 'x', id: 'not-mine', ipv4: '10.123.1.3' });
  put('/nsdns/endpoints/lab/a/array', [1, 2]);
  assert.deepEqual(c.network('lab')!.record.endpoints.map((e) => e.name), ['ok']);
  const byKey = Object.fromEntries(problems);
  assert.match(byKey['/nsdns/endpoints/lab/a/big'], /more than the 1024 a value may have/);
  assert.match(byKey['/nsdns/endpoints/lab/a/json'], /^not valid JSON/);
  assert.match(byKey['/nsdns/endpoints/lab/a/netns'], /netns: not accepted from a shared registry/);
  assert.match(byKey['/nsdns/endpoints/lab/a/up'], /upstreams: not accepted from a shared registry/);
  assert.match(byKey['/nsdns/endpoints/lab/a/outside'], /outside the network's subnets/);
  assert.match(byKey['/nsdns/endpoints/lab/a/other-id'], /id: not the endpoint its key names/);
  assert.ok(byKey['/nsdns/endpoints/lab/a/array']);
  assert.ok(!JSON.stringify(problems).includes('secret'), 'no value is quoted');
  // Asked again, nothing is reported twice: each value is checked once per definition.
  const before = problems.length;
  c.network('lab');
  assert.equal(problems.length, before);
});

it('checks endpoints again when their network changes, and refuses a network named unlike its key', () => {
  const { c, put, problems } = contents();
  put('/nsdns/networks/lab', { name: 'lab', subnets: [{ subnet: '10.123.1.0/24' }] });
  put('/nsdns/endpoints/lab/a/w', { name: 'w', ipv4: '10.123.2.1' });
  assert.equal(c.network('lab')!.record.endpoints.length, 0);
  put('/nsdns/networks/lab', { name: 'lab', subnets: [{ subnet: '10.123.0.0/16' }] });
  assert.equal(c.network('lab')!.record.endpoints.length, 1);
  put('/nsdns/networks/lab', { name: 'other' });
  assert.equal(c.network('lab'), undefined);
  assert.match(problems.at(-1)![1], /is not the network its key names/);
  put('/nsdns/networks/lab', { name: 'lab', bridge: 'br0' });
  assert.match(problems.at(-1)![1], /bridge: not accepted from a shared registry/);
});

it('skips its own node, and reports names several nodes hold as their own', () => {
  const { c, put } = contents('me');
  put('/nsdns/networks/lab', { name: 'lab' });
  assert.equal(put('/nsdns/endpoints/lab/me/mine', { name: 'api', ipv4: '10.123.1.1' }), undefined);
  put('/nsdns/endpoints/lab/a/api-a', { name: 'api', ipv4: '10.123.1.2' });
  assert.deepEqual(c.network('lab')!.sharedNames, []);
  put('/nsdns/endpoints/lab/b/api-b', { name: 'API', ipv4: '10.123.1.3' });
  assert.deepEqual(c.network('lab')!.sharedNames, ['api']);
  assert.equal(c.keys.has('/nsdns/endpoints/lab/me/mine'), false);
});

it('holds at most so many keys and bytes: a flood is refused, said once, and room made takes keys again', () => {
  const { c, put, problems } = contents(undefined, { maxHeldKeys: 4, maxHeldBytes: 1000 });
  put('/nsdns/networks/lab', { name: 'lab', subnets: [{ subnet: '10.127.1.0/24' }] });
  for (let i = 1; i <= 50; i++) put(`/nsdns/endpoints/lab/a/web${i}`, { name: `web${i}`, ipv4: `10.127.1.${i}` });
  assert.equal(c.keys.size, 4);
  assert.deepEqual(c.network('lab')!.record.endpoints.map((e) => e.name), ['web1', 'web2', 'web3']);
  assert.equal(problems.length, 1, 'said once, not once per key');
  assert.match(problems[0][1], /^refused, and every further key until some are deleted: this daemon holds at most 4 keys and 1000 bytes of one shared registry \(it holds 4 keys, \d+ bytes\)$/);
  assert.equal(problems[0][0], '/nsdns/endpoints/lab/a/web4');
  // A key held may still change; a delete makes room for a new one.
  put('/nsdns/endpoints/lab/a/web1', { name: 'web1', ipv4: '10.127.1.99' });
  assert.deepEqual(c.network('lab')!.record.endpoints[0].ipv4, ['10.127.1.99']);
  c.delete('/nsdns/endpoints/lab/a/web2');
  put('/nsdns/endpoints/lab/a/web60', { name: 'web60', ipv4: '10.127.1.60' });
  assert.deepEqual(c.network('lab')!.record.endpoints.map((e) => e.name).sort(), ['web1', 'web3', 'web60']);
  // Bytes: a value that would pass the total is refused, and said again (a delete made room since).
  const big = { name: 'big', ipv4: '10.127.1.70', labels: { note: 'x'.repeat(240) } };
  put('/nsdns/endpoints/lab/a/web3', { ...big, name: 'web3', labels: { a: 'x'.repeat(240), b: 'y'.repeat(240), c: 'z'.repeat(240) } });
  assert.equal(problems.length, 2);
  assert.equal(problems[1][0], '/nsdns/endpoints/lab/a/web3');
  assert.deepEqual(c.network('lab')!.record.endpoints.map((e) => e.name).sort(), ['web1', 'web60'], 'what the key held goes, as with any refused value');
});

it('takes a value it holds already (listed again) as no change', () => {
  const { c } = contents();
  const kv = { key: '/nsdns/networks/lab', value: bytes({ name: 'lab' }), lease: '0', modRevision: '5' };
  assert.equal(c.put(kv), 'lab');
  assert.equal(c.put(kv), undefined);
  assert.equal(c.put({ ...kv, modRevision: '6' }), 'lab');
});

it('forgets deleted keys, the network with its last key', () => {
  const { c, put } = contents();
  put('/nsdns/networks/lab', { name: 'lab' }, '77');
  put('/nsdns/endpoints/lab/a/w', { name: 'w', ipv4: '10.123.1.1' });
  assert.equal(c.keys.get('/nsdns/networks/lab')?.lease, '77');
  assert.equal(c.delete('/nsdns/endpoints/lab/a/w'), 'lab');
  assert.equal(c.network('lab')!.record.endpoints.length, 0);
  assert.equal(c.delete('/nsdns/endpoints/lab/a/w'), undefined, 'a second delete touches nothing');
  assert.equal(c.delete('/nsdns/networks/lab'), 'lab');
  assert.deepEqual([...c.networkNames], []);
  assert.equal(c.keys.size, 0);
});

it('holds back deletes of leased keys for the grace after an outage, and only those', async () => {
  const applied: string[][] = [];
  const held = new HeldDeletes(100, (keys) => applied.push(keys));
  assert.equal(held.hold('/k/leased', '7'), false, 'no outage ended: nothing waits');
  held.outageEnded();
  assert.equal(held.hold('/k/plain', '0'), false, 'a key without a lease never waits');
  assert.equal(held.hold('/k/dead', '7'), true);
  assert.equal(held.hold('/k/live', '8'), true);
  held.release('/k/live');
  assert.equal(held.size, 1);
  await waitFor(() => applied.length === 1, { what: 'the grace ended' });
  assert.deepEqual(applied, [['/k/dead']]);
  assert.equal(held.hold('/k/later', '9'), false, 'after the grace, deletes apply at once');
  held.close();
});
