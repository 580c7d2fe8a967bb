// Cluster-wide addresses of overlay networks in a real etcd: nodes claiming at once never share an
// address, `ip` is claimed cluster-wide (or names its holder), what a stopped node held comes free
// after its lease, garbage in etcd is a taken address, and a node whose lease was lost claims its
// addresses again or reports the one another node took meanwhile.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { pino } from 'pino';
import { ClusterAddresses } from '../../src/etcd/cluster-addresses.js';
import { parseEtcdUrl } from '../../src/etcd/etcd-url.js';
import type { NsdnsError } from '../../src/errors.js';
import { TestEtcd } from '../helpers/etcd.js';
import { CuttableProxy } from '../helpers/tcp-proxy.js';
import { waitFor } from '../helpers/wait.js';

const PREFIX = '/nsdns-ipam';
const TTL = 2;
const addressKey = (network: string, address: string) => `${PREFIX}/addresses/${network}/${address}`;

const hex = (lease: string) => BigInt(lease).toString(16);

type LogLine = Record<string, unknown> & { msg: string };

/** The overlay data plane's view of the allocator (plumbing/address-claims.ts): ClusterAddresses must fit it, checked when this file compiles. */
interface AddressClaims {
  claim(network: string, subnet: string, options: { ip?: string; reserved?: readonly string[] }): Promise<string>;
  release(network: string, ip: string): Promise<void>;
}

/** An allocator for `node` against `hostPort`, its log lines collected. */
async function allocator(hostPort: string, node: string, ttlSeconds: number): Promise<{ addresses: ClusterAddresses; lines: LogLine[] }> {
  const lines: LogLine[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line) as LogLine); } });
  const addresses = await ClusterAddresses.start({ location: parseEtcdUrl(`etcd://${hostPort}${PREFIX}`), node, ttlSeconds, log, retryMs: 100, maxRetryMs: 500 });
  return { addresses, lines };
}

const code = (expected: string, message: RegExp) => (err: NsdnsError) => {
  assert.equal(err.code, expected, err.message);
  assert.match(err.message, message);
  return true;
};

describe('cluster-wide addresses in etcd', () => {
  let etcd: TestEtcd;
  let client: Etcd3;
  const open: ClusterAddresses[] = [];
  let a: ClusterAddresses;
  let b: ClusterAddresses;

  async function start(node: string, hostPort = etcd.hostPort, ttlSeconds = TTL) {
    const made = await allocator(hostPort, node, ttlSeconds);
    open.push(made.addresses);
    return made;
  }

  /** The keys under PREFIX/addresses/<network>/ with their values and leases. */
  async function held(network: string): Promise<Map<string, { value: string; lease: string }>> {
    const res = await client.getAll().prefix(`${PREFIX}/addresses/${network}/`).exec();
    return new Map(res.kvs.map((kv) => [kv.key.toString().slice(`${PREFIX}/addresses/${network}/`.length), { value: kv.value.toString(), lease: String(kv.lease) }]));
  }

  before(async () => {
    // etcd takes 16300-16379; the cut-off test's proxy picks a free port in 16300-16399 after it.
    etcd = await TestEtcd.start({ portBase: 16300, portCount: 80 });
    client = new Etcd3({ hosts: etcd.endpoint });
    a = (await start('a')).addresses;
    b = (await start('b')).addresses;
    const fits: AddressClaims = a;
    assert.ok(fits);
  });
  after(async () => {
    etcd?.resume();
    for (const addresses of open) await addresses.close().catch(() => undefined);
    client?.close();
    await etcd?.stop();
  });

  it('gives 100 distinct addresses to 50 claims on each of two nodes at once', async (t) => {
    const reserved = ['10.131.0.1'];
    const before = [a, b].map((x) => (x.status() as { transactions: number }).transactions);
    const got = await Promise.all([a, b].flatMap((node) => Array.from({ length: 50 }, () => node.claim('busy', '10.131.0.0/24', { reserved }))));
    const transactions = [a, b].reduce((sum, x, i) => sum + (x.status() as { transactions: number }).transactions - before[i], 0);
    t.diagnostic(`100 claims took ${transactions} transactions`);
    assert.equal(new Set(got).size, 100, 'distinct');
    for (const address of got) assert.match(address, /^10\.131\.0\.([2-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-4])$/, 'a host address of the subnet, not the reserved one');
    const keys = await held('busy');
    assert.equal(keys.size, 100);
    assert.ok(got.slice(0, 50).every((address) => keys.get(address)?.value === 'a'), 'a\'s 50 are a\'s in etcd');
    assert.ok(got.slice(50).every((address) => keys.get(address)?.value === 'b'), 'b\'s 50 are b\'s in etcd');
    // Each lost race brings the keys taken then: far fewer than one retry per claim per rival claim.
    assert.ok(transactions < 400, `${transactions} transactions for 100 claims`);
  });

  it('claims a given address cluster-wide: its holder named to others, the same node again gets it, released it is free', async () => {
    const subnet = '10.131.1.0/24';
    assert.equal(await b.claim('fixed', subnet, { ip: '10.131.1.10' }), '10.131.1.10');
    await assert.rejects(a.claim('fixed', subnet, { ip: '10.131.1.10' }), code('ERR_CONFLICT', /^address 10\.131\.1\.10 is taken in the cluster by node "b" on network "fixed"$/));
    assert.equal(await b.claim('fixed', subnet, { ip: '10.131.1.10' }), '10.131.1.10', 'the same node again: the same address');
    // A claim without ip on the other node goes around it.
    assert.equal(await a.claim('fixed', subnet, { reserved: ['10.131.1.1'] }), '10.131.1.2');
    await b.release('fixed', '10.131.1.10');
    assert.equal((await held('fixed')).has('10.131.1.10'), false);
    assert.equal(await a.claim('fixed', subnet, { ip: '10.131.1.10' }), '10.131.1.10');
    // A release by a node that does not hold it changes nothing, and a second one neither.
    await b.release('fixed', '10.131.1.10');
    await b.release('fixed', '10.131.1.10');
    assert.equal((await held('fixed')).get('10.131.1.10')?.value, 'a');
  });

  it('refuses an address outside the subnet, its network or broadcast address, a reserved one, and bad names, writing nothing', async () => {
    const subnet = '10.131.1.0/24';
    const before = await held('fixed');
    const cases: Array<[Promise<string>, RegExp]> = [
      [a.claim('fixed', subnet, { ip: '10.131.2.1' }), /^address 10\.131\.2\.1 is not in subnet 10\.131\.1\.0\/24$/],
      [a.claim('fixed', subnet, { ip: '10.131.1.0' }), /network address/],
      [a.claim('fixed', subnet, { ip: '10.131.1.255' }), /broadcast address/],
      [a.claim('fixed', subnet, { ip: '10.131.1.1', reserved: ['10.131.1.1'] }), /reserved/],
      [a.claim('fixed', subnet, { ip: 'ten' }), /"ten" is not an IPv4 address/],
      [a.claim('fixed', 'fd00::/64', {}), /not an IPv4 CIDR/],
      [a.claim('fixed', '10.131.1.0/31', {}), /no room for endpoints/],
      [a.claim('../x', subnet, {}), /network name "..\/x" is not a valid name/],
      [a.claim('fixed', subnet, { reserved: ['gateway'] }), /reserved address "gateway" is not an IPv4 address/],
    ];
    for (const [claim, message] of cases) await assert.rejects(claim, code('ERR_BAD_REQUEST', message));
    assert.deepEqual(await held('fixed'), before);
  });

  it('says a full subnet is full', async () => {
    const subnet = '10.131.2.0/29';
    const got = await Promise.all(Array.from({ length: 5 }, (_, i) => (i % 2 ? a : b).claim('small', subnet, { reserved: ['10.131.2.1'] })));
    assert.deepEqual([...got].sort(), ['10.131.2.2', '10.131.2.3', '10.131.2.4', '10.131.2.5', '10.131.2.6']);
    await assert.rejects(a.claim('small', subnet, { reserved: ['10.131.2.1'] }), code('ERR_IPAM_EXHAUSTED', /^no free address left in 10\.131\.2\.0\/29 on network "small" in the cluster$/));
  });

  it('treats any value it cannot read as a taken address, and never echoes it', async () => {
    const { addresses: reader, lines } = await start('reader');
    const raw = '\u001b[31mEVIL\u0000\u00ff';
    await etcd.put(addressKey('junk', '10.131.3.1'), raw);
    await etcd.put(addressKey('junk', '10.131.3.2'), '{"node":"a"}');
    await etcd.put(addressKey('junk', '10.131.3.3'), 'x'.repeat(5000));
    await etcd.put(addressKey('junk', '10.131.3.4'), 'zz');
    await etcd.put(`${PREFIX}/addresses/junk/not-an-address`, 'a');
    await etcd.put(`${PREFIX}/addresses/junk/10.131.3.5/deeper`, 'a');
    assert.equal(await reader.claim('junk', '10.131.3.0/24', {}), '10.131.3.5');
    for (const address of ['10.131.3.1', '10.131.3.2', '10.131.3.3']) {
      await assert.rejects(reader.claim('junk', '10.131.3.0/24', { ip: address }), (err: NsdnsError) => {
        assert.equal(err.code, 'ERR_CONFLICT');
        assert.equal(err.message, `address ${address} is taken in the cluster (its key in etcd holds no node name) on network "junk"`);
        return true;
      });
    }
    await assert.rejects(reader.claim('junk', '10.131.3.0/24', { ip: '10.131.3.4' }), code('ERR_CONFLICT', /by node "zz"/));
    // A release of a garbage-held address deletes nothing: the value is not this node's.
    await reader.release('junk', '10.131.3.1');
    assert.equal((await held('junk')).get('10.131.3.1')?.value, raw);
    assert.ok(!JSON.stringify(lines).includes('EVIL'), 'no raw value in the log');
  });

  it('frees what a node held when its allocator stops without releasing, after the lease TTL; a restart within it keeps what it claims again', async () => {
    const { addresses: gone } = await start('gone');
    const subnet = '10.131.4.0/24';
    const got = [await gone.claim('expire', subnet, {}), await gone.claim('expire', subnet, {}), await gone.claim('expire', subnet, {})];
    assert.deepEqual(got, ['10.131.4.1', '10.131.4.2', '10.131.4.3']);
    const oldLease = (await held('expire')).get('10.131.4.1')!.lease;
    await gone.close();
    assert.equal((await held('expire')).size, 3, 'close does not revoke: the endpoints keep their addresses while the daemon is down');
    // The same node back within the TTL claims one of them again: it is put under the new lease.
    const { addresses: back } = await start('gone');
    assert.equal(await back.claim('expire', subnet, { ip: '10.131.4.2' }), '10.131.4.2');
    const moved = (await held('expire')).get('10.131.4.2')!;
    assert.equal(moved.value, 'gone');
    assert.notEqual(moved.lease, oldLease);
    // The others go with the old lease; the one claimed again stays.
    await waitFor(async () => (await held('expire')).size === 1, { what: 'the stopped allocator\'s addresses gone after its TTL', timeoutMs: TTL * 1000 + 10_000 });
    assert.deepEqual([...(await held('expire')).keys()], ['10.131.4.2']);
    assert.equal(await b.claim('expire', subnet, {}), '10.131.4.1');
  });

  it('claims its addresses again after etcd was stopped for longer than the lease TTL', async () => {
    const { addresses: p, lines } = await start('paused');
    const subnet = '10.131.5.0/24';
    for (let i = 0; i < 5; i++) await p.claim('paused', subnet, {});
    const before = await held('paused');
    const oldLease = before.get('10.131.5.1')!.lease;
    etcd.pause();
    try {
      await waitFor(() => lines.some((l) => l.msg.startsWith('etcd lease of the claimed addresses lost')), { what: 'the lease lost', timeoutMs: 30_000 });
    } finally {
      etcd.resume();
    }
    await waitFor(() => lines.some((l) => l.msg === 'addresses claimed again under a new etcd lease'), { what: 'the addresses claimed again', timeoutMs: 30_000 });
    const after = await held('paused');
    assert.deepEqual([...after.keys()].sort(), [...before.keys()].sort());
    const leases = new Set([...after.values()].map((v) => v.lease));
    assert.equal(leases.size, 1);
    assert.ok(!leases.has(oldLease), 'under a new lease');
    assert.ok([...after.values()].every((v) => v.value === 'paused'));
    // The new lease is kept alive.
    const ttl = await etcd.ctl(['lease', 'timetolive', hex([...leases][0])]);
    assert.match(ttl.stdout, /granted with TTL\(2s\), remaining\(\d+s\)/, 'not expired');
    assert.deepEqual(p.conflicts(), []);
  });

  it('reports an address another node took while its lease was lost, and claims the others again', async () => {
    const proxy = await CuttableProxy.start(etcd.hostPort, 16300);
    try {
      const { addresses: c, lines } = await start('c', proxy.hostPort);
      const subnet = '10.131.6.0/24';
      for (let i = 0; i < 3; i++) await c.claim('cut', subnet, {});
      proxy.cut();
      // etcd lets the lease expire; another node takes one of the addresses before c is back.
      await waitFor(async () => (await held('cut')).size === 0, { what: 'c\'s keys expired in etcd', timeoutMs: TTL * 1000 + 10_000 });
      await etcd.put(addressKey('cut', '10.131.6.2'), 'b');
      await waitFor(() => lines.some((l) => l.msg.startsWith('etcd lease of the claimed addresses lost')), { what: 'c saw its lease lost', timeoutMs: 30_000 });
      proxy.restore();
      await waitFor(() => lines.some((l) => l.msg === 'addresses claimed again under a new etcd lease'), { what: 'c claimed again', timeoutMs: 30_000 });
      const [conflict, ...more] = c.conflicts();
      assert.deepEqual(more, []);
      assert.deepEqual({ ...conflict, since: typeof conflict.since }, { network: 'cut', address: '10.131.6.2', holder: 'b', since: 'string' });
      const keys = await held('cut');
      assert.deepEqual(Object.fromEntries([...keys].map(([k, v]) => [k, v.value])), { '10.131.6.1': 'c', '10.131.6.2': 'b', '10.131.6.3': 'c' });
      const warned = lines.find((l) => l.msg.startsWith('an address this node held was taken'));
      assert.deepEqual({ network: warned?.network, address: warned?.address, holder: warned?.holder }, { network: 'cut', address: '10.131.6.2', holder: 'b' });
      // Released, the conflict is gone and b's key stays b's.
      await c.release('cut', '10.131.6.2');
      assert.deepEqual(c.conflicts(), []);
      assert.equal((await held('cut')).get('10.131.6.2')?.value, 'b');
    } finally {
      await proxy.close();
    }
  });

  it('releases an address while etcd is unreachable, and the delete reaches etcd when it is back', async () => {
    const proxy = await CuttableProxy.start(etcd.hostPort, 16300);
    try {
      // A long lease: the key can only go by the delete, not by expiring.
      const { addresses: r } = await start('r', proxy.hostPort, 30);
      assert.equal(await r.claim('away', '10.131.7.0/24', {}), '10.131.7.1');
      const lease = (await held('away')).get('10.131.7.1')!.lease;
      proxy.cut();
      await r.release('away', '10.131.7.1');
      assert.equal((await held('away')).size, 1, 'etcd has not seen the release yet');
      proxy.restore();
      await waitFor(async () => (await held('away')).size === 0, { what: 'the release reached etcd', timeoutMs: 20_000 });
      assert.match((await etcd.ctl(['lease', 'timetolive', hex(lease)])).stdout, /granted with TTL\(30s\)/, 'deleted, its lease alive');
    } finally {
      await proxy.close();
    }
  });
});
