// The network manager's and planner's decisions, in process, on fakes for link work and host
// inspection (test/helpers/fake-plumbing.ts): what a user sees (errors, allocated subnets and
// addresses, interface names, default routes) and what is left after a step fails. The kernel's
// side of the same operations is tested against the kernel in test/privileged/plumbing.test.ts.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { NsdnsError } from '../../src/errors.js';
import { IntentStore } from '../../src/plumbing/state.js';
import { fakePlumbing, type FakePlumbing } from '../helpers/fake-plumbing.js';

const rejectsWith = (p: Promise<unknown>, code: string, message: RegExp) =>
  assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof NsdnsError, `not an NsdnsError: ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.match(err.message, message);
    return true;
  });

let f: FakePlumbing;
beforeEach(() => { f = fakePlumbing(); });
afterEach(() => f.cleanup());

/** The saved state file of a network, or undefined. */
function saved(name: string): { endpoints: Array<{ name: string; ipv4: string[] }> } | undefined {
  const file = path.join(f.state.dir, 'networks', `${name}.json`);
  return existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : undefined;
}
const registered = (network: string) => f.registry.current().find(network)?.endpoints.map((e) => e.name);

describe('subnets: conflicts and pools', () => {
  it('refuses a subnet that overlaps another network, or a prefix in use on the host, naming which', async () => {
    await f.manager.createNetwork({ name: 'a', subnets: ['10.1.0.0/16'] });
    await rejectsWith(f.manager.createNetwork({ name: 'b', subnets: ['10.1.7.0/24'] }), 'ERR_CONFLICT', /^subnet 10\.1\.7\.0\/24 overlaps 10\.1\.0\.0\/16 \(network a\)$/);
    f.host.hostPrefixes.push('192.168.50.0/24');
    await rejectsWith(f.manager.createNetwork({ name: 'c', subnets: ['192.168.0.0/16'] }), 'ERR_CONFLICT', /overlaps 192\.168\.50\.0\/24 \(in use on the host\)/);
    await rejectsWith(f.manager.createNetwork({ name: 'd', subnets: ['10.9.0.0/24', '10.9.0.128/25'] }), 'ERR_CONFLICT', /subnets 10\.9\.0\.0\/24 and 10\.9\.0\.128\/25 overlap/);
    assert.deepEqual(f.registry.current().records.map((r) => r.network.name), ['a'], 'nothing refused was created');
    assert.deepEqual(f.journal.filter((l) => l.startsWith('createBridge')).length, 1, 'no bridge was made for a refused network');
  });

  it('picks the first pool block that neither a network nor the host uses, and says when the pools are exhausted', async () => {
    const g = fakePlumbing({ pools: [{ base: '10.99.0.0/22', size: 24 }] });
    try {
      g.host.hostPrefixes.push('10.99.0.0/24'); // the host uses the first block
      const a = await g.manager.createNetwork({ name: 'a' });
      assert.deepEqual(a.subnets, [{ subnet: '10.99.1.0/24', gateway: '10.99.1.1' }]);
      await g.manager.createNetwork({ name: 'given', subnets: ['10.99.2.0/24'] }); // taken by hand
      const b = await g.manager.createNetwork({ name: 'b' });
      assert.equal(b.subnets[0].subnet, '10.99.3.0/24', 'skips both the host\'s and the given block');
      await rejectsWith(g.manager.createNetwork({ name: 'c' }), 'ERR_IPAM_EXHAUSTED', /no free subnet left in the address pools; give one with --subnet/);
      await g.manager.removeNetworks(['a']);
      assert.equal((await g.manager.createNetwork({ name: 'c' })).subnets[0].subnet, '10.99.1.0/24', 'a removed network\'s block is free again');
    } finally {
      g.cleanup();
    }
  });

  it('an IPv6-only request still gets an IPv4 subnet from the pools; the bridge gets both gateways', async () => {
    const n = await f.manager.createNetwork({ name: 'dual', subnets: ['fd00:5::/64'] });
    assert.deepEqual(n.subnets.map((s) => `${s.subnet} gw ${s.gateway}`), ['10.200.0.0/24 gw 10.200.0.1', 'fd00:5::/64 gw fd00:5::1']);
    assert.ok(f.journal.includes(`createBridge ${n.bridge} 10.200.0.1/24,fd00:5::1/64`), f.journal.join('\n'));
  });
});

describe('addresses', () => {
  it('allocates the lowest free address after the gateway, reuses a released one, and refuses taken or outside ones', async () => {
    await f.manager.createNetwork({ name: 'n', subnets: ['10.5.0.0/24'] });
    for (const ns of ['a', 'b', 'c', 'd']) f.host.addNamespace(ns);
    assert.deepEqual((await f.manager.connect({ network: 'n', target: 'a' })).ipv4, ['10.5.0.2']);
    assert.deepEqual((await f.manager.connect({ network: 'n', target: 'b' })).ipv4, ['10.5.0.3']);
    await f.manager.disconnect('n', 'a');
    assert.deepEqual((await f.manager.connect({ network: 'n', target: 'c' })).ipv4, ['10.5.0.2'], 'the released address first');
    await rejectsWith(f.manager.connect({ network: 'n', target: 'd', ip: '10.5.0.3' }), 'ERR_CONFLICT', /^10\.5\.0\.3 is already in use on network "n"$/);
    await rejectsWith(f.manager.connect({ network: 'n', target: 'd', ip: '10.5.0.1' }), 'ERR_CONFLICT', /is the gateway of network "n"/);
    await rejectsWith(f.manager.connect({ network: 'n', target: 'd', ip: '10.6.0.9' }), 'ERR_BAD_REQUEST', /outside the subnet 10\.5\.0\.0\/24/);
    assert.deepEqual((await f.manager.connect({ network: 'n', target: 'd', ip: '10.5.0.200' })).ipv4, ['10.5.0.200']);
  });

  it('--ip-range bounds the allocation, and a full range is ERR_IPAM_EXHAUSTED with the range named', async () => {
    await f.manager.createNetwork({ name: 'r', subnets: ['10.7.0.0/24'], ipRange: '10.7.0.8/31' });
    for (const ns of ['a', 'b', 'c']) f.host.addNamespace(ns);
    assert.deepEqual((await f.manager.connect({ network: 'r', target: 'a' })).ipv4, ['10.7.0.8']);
    assert.deepEqual((await f.manager.connect({ network: 'r', target: 'b' })).ipv4, ['10.7.0.9']);
    await rejectsWith(f.manager.connect({ network: 'r', target: 'c' }), 'ERR_IPAM_EXHAUSTED', /no free address left in 10\.7\.0\.8\/31 of network "r"/);
    assert.deepEqual(registered('r'), ['a', 'b']);
    assert.ok(!f.journal.some((l) => l.includes('@/run/netns/c')), 'no link was made for the refused connect');
  });

  it('two connects at once never get the same address (reservations)', async () => {
    await f.manager.createNetwork({ name: 'p', subnets: ['10.8.0.0/24'] });
    const names = ['a', 'b', 'c', 'd', 'e'];
    for (const ns of names) f.host.addNamespace(ns);
    const endpoints = await Promise.all(names.map((ns) => f.manager.connect({ network: 'p', target: ns })));
    assert.deepEqual(endpoints.map((e) => e.ipv4[0]).sort(), ['10.8.0.2', '10.8.0.3', '10.8.0.4', '10.8.0.5', '10.8.0.6']);
  });
});

describe('names', () => {
  it('interfaces inside a namespace are eth0, eth1, ... in connect order; a taken --ifname is refused', async () => {
    await f.manager.createNetwork({ name: 'one', subnets: ['10.11.0.0/24'] });
    await f.manager.createNetwork({ name: 'two', subnets: ['10.12.0.0/24'] });
    await f.manager.createNetwork({ name: 'three', subnets: ['10.13.0.0/24'] });
    f.host.addNamespace('web');
    assert.equal((await f.manager.connect({ network: 'one', target: 'web' })).ifname, 'eth0');
    assert.equal((await f.manager.connect({ network: 'two', target: 'web' })).ifname, 'eth1');
    await rejectsWith(f.manager.connect({ network: 'three', target: 'web', ifname: 'eth1' }), 'ERR_CONFLICT', /^interface eth1 already exists in namespace "web"$/);
    await f.manager.disconnect('one', 'web');
    assert.equal((await f.manager.connect({ network: 'three', target: 'web' })).ifname, 'eth0', 'a freed name is used again');
    await rejectsWith(f.manager.connect({ network: 'two', target: 'web' }), 'ERR_CONFLICT', /namespace "web" is already connected to network "two"/);
  });

  it('host ends and bridges carry the link prefix and the id; a bridge name taken on the host is refused', async () => {
    const n = await f.manager.createNetwork({ name: 'pre', subnets: ['10.14.0.0/24'] });
    assert.equal(n.bridge, `tfbr-${n.id.slice(0, 8)}`);
    f.host.addNamespace('a');
    const e = await f.manager.connect({ network: 'pre', target: 'a' });
    assert.equal(e.hostIf, `tfv${e.id.slice(0, 8)}`);
    assert.ok(f.links.links.has(e.hostIf!));
    f.host.otherLinks.add('docker0');
    await rejectsWith(f.manager.createNetwork({ name: 'clash', bridge: 'docker0', subnets: ['10.15.0.0/24'] }), 'ERR_CONFLICT', /a link named docker0 already exists on the host/);
    await rejectsWith(f.manager.createNetwork({ name: 'clash', bridge: n.bridge, subnets: ['10.15.0.0/24'] }), 'ERR_CONFLICT', /a link named tfbr-\w+ already exists on the host/);
  });

  it('endpoint names and aliases: own names are unique on a network, aliases may be shared', async () => {
    await f.manager.createNetwork({ name: 'svc', subnets: ['10.16.0.0/24'] });
    for (const ns of ['a', 'b', 'c']) f.host.addNamespace(ns);
    await f.manager.connect({ network: 'svc', target: 'a', name: 'web1', aliases: ['web'] });
    await f.manager.connect({ network: 'svc', target: 'b', name: 'web2', aliases: ['web'] });
    await rejectsWith(f.manager.connect({ network: 'svc', target: 'c', name: 'web1' }), 'ERR_CONFLICT', /the name "web1" is already used on network "svc" by endpoint "web1"/);
    await rejectsWith(f.manager.connect({ network: 'svc', target: 'c', name: 'web' }), 'ERR_CONFLICT', /by endpoint "web\d" as an alias/);
    await rejectsWith(f.manager.connect({ network: 'svc', target: 'c', name: 'api', aliases: ['web', 'WEB2'] }), 'ERR_CONFLICT', /^the name "web2" is already used on network "svc" by endpoint "web2" \(an alias may be shared, but not be another endpoint's name\)$/);
    assert.equal((await f.manager.connect({ network: 'svc', target: 'c', name: 'web3', aliases: ['web'] })).name, 'web3', 'a third holder of a shared alias');
  });

  it('a name or alias that is another endpoint\'s id (its first 12 characters answer as a name) is refused, and nothing is connected', async () => {
    await f.manager.createNetwork({ name: 'ids', subnets: ['10.18.0.0/24'] });
    for (const ns of ['a', 'b']) f.host.addNamespace(ns);
    const web = await f.manager.connect({ network: 'ids', target: 'a', name: 'web' });
    const shortId = web.id.slice(0, 12);
    const taken = new RegExp(`^the name "${shortId}" is already used on network "ids" by endpoint "web" as its id \\(an id, and its first 12 characters, answer as names too\\)$`);
    await rejectsWith(f.manager.connect({ network: 'ids', target: 'b', name: shortId }), 'ERR_CONFLICT', taken);
    await rejectsWith(f.manager.connect({ network: 'ids', target: 'b', name: 'api', aliases: [shortId.toUpperCase()] }), 'ERR_CONFLICT', taken);
    assert.deepEqual(registered('ids'), ['web'], 'nothing refused was registered');
    assert.deepEqual(saved('ids')?.endpoints.map((e) => e.name), ['web'], 'nor saved: a state file breaking the rules would not load at the next start');
    assert.equal(f.journal.filter((l) => l.startsWith('createEndpointLink')).length, 1, 'no link was made for a refused endpoint');
  });

  it('a namespace that does not exist is ERR_NETNS, before anything is planned', async () => {
    await f.manager.createNetwork({ name: 'x', subnets: ['10.17.0.0/24'] });
    await rejectsWith(f.manager.connect({ network: 'x', target: 'ghost' }), 'ERR_NETNS', /namespace "ghost" not found/);
    assert.ok(!f.journal.some((l) => l.startsWith('createEndpointLink')));
  });
});

describe('default routes', () => {
  it('the first non-internal network of a namespace gets its default route; a second network does not take it', async () => {
    await f.manager.createNetwork({ name: 'front', subnets: ['10.21.0.0/24'] });
    await f.manager.createNetwork({ name: 'back', subnets: ['10.22.0.0/24'] });
    const ns = f.host.addNamespace('app');
    await f.manager.connect({ network: 'front', target: 'app' });
    await f.manager.connect({ network: 'back', target: 'app' });
    assert.deepEqual(f.links.routesIn(ns), ['ipv4 via 10.21.0.1 dev eth0']);
  });

  it('an internal network gives no route, so the next non-internal one does', async () => {
    await f.manager.createNetwork({ name: 'int', subnets: ['10.23.0.0/24'], internal: true });
    await f.manager.createNetwork({ name: 'ext', subnets: ['10.24.0.0/24', 'fd00:24::/64'] });
    const ns = f.host.addNamespace('app');
    await f.manager.connect({ network: 'int', target: 'app' });
    assert.deepEqual(f.links.routesIn(ns), []);
    await f.manager.connect({ network: 'ext', target: 'app' });
    assert.deepEqual(f.links.routesIn(ns), ['ipv4 via 10.24.0.1 dev eth1', 'ipv6 via fd00:24::1 dev eth1']);
  });

  it('disconnecting the network with the route moves it to the other non-internal network, as docker does', async () => {
    await f.manager.createNetwork({ name: 'front', subnets: ['10.25.0.0/24'] });
    await f.manager.createNetwork({ name: 'int', subnets: ['10.26.0.0/24'], internal: true });
    await f.manager.createNetwork({ name: 'back', subnets: ['10.27.0.0/24'] });
    const ns = f.host.addNamespace('app');
    await f.manager.connect({ network: 'front', target: 'app' });
    await f.manager.connect({ network: 'int', target: 'app' });
    await f.manager.connect({ network: 'back', target: 'app' });
    await f.manager.disconnect('front', 'app');
    assert.deepEqual(f.links.routesIn(ns), ['ipv4 via 10.27.0.1 dev eth2'], 'via back, never via the internal network');
    await f.manager.disconnect('back', 'app');
    assert.deepEqual(f.links.routesIn(ns), [], 'only an internal network left: no default route');
  });
});

describe('rollback: a step that fails undoes the earlier ones, in reverse', () => {
  it('network create: the firewall fails, so the saved network is removed, then the bridge', async () => {
    f.firewall.failOn(/^firewall/);
    f.registry.on('change', () => f.journal.push(`registry: ${f.registry.current().records.map((r) => r.network.name).join(',') || '(none)'}`));
    await rejectsWith(f.manager.createNetwork({ name: 'fw', subnets: ['10.31.0.0/24'] }), 'ERR_LINK', /^apply firewall rules failed: injected failure/);
    const bridge = f.journal[0].split(' ')[1];
    assert.deepEqual(f.journal, [
      `createBridge ${bridge} 10.31.0.1/24`,
      'registry: fw',
      'firewall (no ports) FAILED',
      'registry: (none)', // undo of "save the network"
      `deleteLink ${bridge}`, // then undo of the bridge
    ]);
    assert.equal(f.registry.current().find('fw'), undefined);
    assert.equal(saved('fw'), undefined);
    assert.ok(!f.links.links.has(bridge));
  });

  it('connect: 127.0.0.11 cannot be served, so the endpoint is unregistered first, then its link deleted; addresses are free again', async () => {
    await f.manager.createNetwork({ name: 'n', subnets: ['10.32.0.0/24'] });
    f.host.addNamespace('ok');
    await f.manager.connect({ network: 'n', target: 'ok' });
    const ns = f.host.addNamespace('bad');
    f.unservable.add(ns);
    f.registry.on('change', () => f.journal.push(`registry: ${registered('n')!.join(',')}`));
    const mark = f.journal.length;
    await rejectsWith(f.manager.connect({ network: 'n', target: 'bad' }), 'ERR_NETNS_BIND', /^serve DNS in the namespace failed: injected: cannot bind/);
    const steps = f.journal.slice(mark);
    const hostIf = steps[0].split(' ')[1];
    assert.deepEqual(steps, [
      `createEndpointLink ${hostIf} eth0@${ns} 10.32.0.3/24 via 10.32.0.1`,
      'registry: ok,bad',
      `namespaceReady ${ns}`,
      'registry: ok', // undo of "register the endpoint"
      `deleteLink ${hostIf}`, // then undo of the link
    ]);
    assert.deepEqual(registered('n'), ['ok']);
    assert.deepEqual(saved('n')!.endpoints.map((e) => e.name), ['ok']);
    assert.deepEqual([...f.links.links].filter((l) => l.startsWith('tfv')).length, 1);
    f.unservable.clear();
    assert.deepEqual((await f.manager.connect({ network: 'n', target: 'bad' })).ipv4, ['10.32.0.3'], 'the reservation was released');
  });

  it('connect: the link fails (the Nth call), so nothing is registered and nothing is left reserved', async () => {
    await f.manager.createNetwork({ name: 'n', subnets: ['10.33.0.0/24'] });
    f.host.addNamespace('a');
    f.links.failAt(1);
    await rejectsWith(f.manager.connect({ network: 'n', target: 'a' }), 'ERR_LINK', /^create eth0 in namespace "a" failed: injected failure: createEndpointLink/);
    assert.deepEqual(registered('n'), []);
    assert.deepEqual(saved('n')!.endpoints, []);
    assert.deepEqual((await f.manager.connect({ network: 'n', target: 'a' })).ipv4, ['10.33.0.2']);
  });

  it('connect with --publish: when the firewall refuses, the endpoint is not left registered without its link', async () => {
    await f.manager.createNetwork({ name: 'pub', subnets: ['10.34.0.0/24'] });
    f.host.addNamespace('web');
    f.firewall.failOn(/8080->web/);
    await rejectsWith(f.manager.connect({ network: 'pub', target: 'web', publish: ['8080:80'] }), 'ERR_LINK', /^register the endpoint failed: injected failure: firewall 8080->web/);
    assert.deepEqual(registered('pub'), [], 'not in DNS');
    assert.deepEqual(saved('pub')!.endpoints, [], 'not in the state file');
    assert.ok(![...f.links.links].some((l) => l.startsWith('tfv')), 'its link is gone');
    assert.deepEqual(f.firewall.applied.at(-1), [], 'the rules were written again without its port');
  });
});

describe('a connect the daemon was killed in (its note is left)', () => {
  it('is rolled back at the next start even when it was saved: link, state and name go, and the same connect then succeeds', async () => {
    await f.manager.createNetwork({ name: 'n', subnets: ['10.35.0.0/24'] });
    const ns = f.host.addNamespace('cut');
    const endpoint = await f.manager.connect({ network: 'n', target: 'cut' });
    // As a daemon killed before it answered leaves it: the endpoint saved, its note still there.
    await new IntentStore(f.state.dir).write({ endpointId: endpoint.id, network: 'n', hostIf: endpoint.hostIf!, netns: ns });
    const report = await f.manager.recover();
    assert.ok(report.includes('rolled back the connect of "cut" to network "n": the daemon stopped before it finished; connect it again'), report.join('\n'));
    assert.deepEqual(registered('n'), []);
    assert.deepEqual(saved('n')!.endpoints, []);
    assert.ok(!f.links.links.has(endpoint.hostIf!));
    assert.deepEqual(await new IntentStore(f.state.dir).list(), []);
    assert.deepEqual((await f.manager.connect({ network: 'n', target: 'cut' })).ipv4, ['10.35.0.2']);
  });
});

describe('the connect note', () => {
  it('a connect whose note cannot be removed fails and is undone: a note left behind would roll back a connect the client was told succeeded', async () => {
    /** A note store whose removal fails once (a disk error), as after every step of a connect succeeded. */
    class StuckNotes extends IntentStore {
      failures = 1;
      override async remove(id: string): Promise<void> {
        if (this.failures-- > 0) throw new Error('injected: EIO');
        await super.remove(id);
      }
    }
    const g = fakePlumbing({ intents: (dir) => new StuckNotes(dir) });
    try {
      await g.manager.createNetwork({ name: 'n', subnets: ['10.194.1.0/24'] });
      const ns = g.host.addNamespace('noted');
      await assert.rejects(g.manager.connect({ network: 'n', target: 'noted' }), /injected: EIO/);
      assert.deepEqual(g.registry.current().find('n')!.endpoints.map((e) => e.name), []);
      assert.deepEqual(await g.manager.recover(), []);
      // The same connect then succeeds and survives the next start.
      const endpoint = await g.manager.connect({ network: 'n', target: 'noted' });
      await g.manager.recover();
      assert.deepEqual(g.registry.current().find('n')!.endpoints.map((e) => e.id), [endpoint.id]);
      assert.equal(ns, endpoint.netns);
    } finally {
      g.cleanup();
    }
  });
});

describe('--publish', () => {
  it('is refused on an internal network, and nothing is connected', async () => {
    await f.manager.createNetwork({ name: 'sealed', subnets: ['10.36.0.0/24'], internal: true });
    f.host.addNamespace('a');
    await rejectsWith(f.manager.connect({ network: 'sealed', target: 'a', publish: ['8080:80'] }), 'ERR_BAD_REQUEST', /^--publish: network "sealed" is internal/);
    assert.deepEqual(registered('sealed'), []);
  });
});

describe('teardown goes on past a failing step and reports every error', () => {
  it('disconnect: the link cannot be deleted, yet the name leaves DNS and the state file, and the error says which step failed', async () => {
    await f.manager.createNetwork({ name: 'n', subnets: ['10.41.0.0/24'] });
    f.host.addNamespace('a');
    const e = await f.manager.connect({ network: 'n', target: 'a' });
    f.links.failOn(new RegExp(`^deleteLink ${e.hostIf}$`));
    await rejectsWith(f.manager.disconnect('n', 'a'), 'ERR_LINK', new RegExp(`^disconnect of "a" from "n" finished with 1 error\\(s\\): delete ${e.hostIf} of endpoint "a" failed: injected failure`));
    assert.deepEqual(registered('n'), []);
    assert.deepEqual(saved('n')!.endpoints, []);
  });

  it('network rm --disconnect: two failing deletions are both reported, and the network is gone from DNS and the state', async () => {
    const n = await f.manager.createNetwork({ name: 'n', subnets: ['10.42.0.0/24'] });
    await f.manager.createNetwork({ name: 'keep', subnets: ['10.43.0.0/24'] });
    f.host.addNamespace('a');
    const e = await f.manager.connect({ network: 'n', target: 'a' });
    f.links.failOn(/^deleteLink/);
    const report = await f.manager.removeNetworks(['n', 'keep'], { disconnect: true });
    assert.deepEqual(report.removed, []);
    assert.deepEqual(report.failed.map((x) => x.name), ['n', 'keep']);
    const [err] = report.failed;
    assert.match(err.error.message, /^network rm "n" finished with 2 error\(s\): /);
    assert.match(err.error.message, new RegExp(`delete ${e.hostIf} of endpoint "a" failed: .*; delete bridge ${n.bridge} failed: `));
    assert.equal(f.registry.current().find('n'), undefined);
    assert.equal(saved('n'), undefined);
    assert.ok(f.journal.indexOf(`deleteLink ${n.bridge} FAILED`) > f.journal.indexOf(`deleteLink ${e.hostIf} FAILED`));
  });
});

describe('timings: where each operation\'s milliseconds went', () => {
  it('keeps the stages of the last 16 connects and disconnects, failed ones too', async () => {
    await f.manager.createNetwork({ name: 't', subnets: ['10.50.0.0/24'] });
    const ns = f.host.addNamespace('a');
    for (let i = 0; i < 9; i++) {
      await f.manager.connect({ network: 't', target: 'a', publish: i === 0 ? ['8081:80'] : [] });
      await f.manager.disconnect('t', 'a');
    }
    f.unservable.add(ns);
    await assert.rejects(f.manager.connect({ network: 't', target: 'a' }));
    const timings = f.manager.recentTimings();
    assert.equal(timings.length, 16, 'the oldest are dropped');
    assert.deepEqual(timings.slice(0, 2).map((t) => t.operation), ['disconnect', 'connect'], 'the first connect (with its firewall stage) and one more are gone');
    const connect = timings.at(-3)!;
    assert.equal(connect.operation, 'connect');
    assert.deepEqual(connect.stages.map((s) => s.stage), [
      'plan', 'connect note', 'veth pair', 'addresses+routes in namespace', 'state file + registry', 'resolv.conf', 'bind 127.0.0.11', 'connect note removed',
    ]);
    assert.deepEqual(connect.paths, { links: 'fake', bind: 'fake' });
    assert.deepEqual(timings.at(-2)!.stages.map((s) => s.stage), ['plan', 'delete veth', 'state file', 'registry', 'resolv.conf', 'default route']);
    const failed = timings.at(-1)!;
    assert.equal(failed.ok, false);
    assert.equal(failed.code, 'ERR_NETNS_BIND');
    assert.deepEqual(failed.stages.map((s) => s.stage).slice(-3), ['resolv.conf', 'rollback', 'connect note removed']);
    for (const t of timings) {
      const sum = t.stages.reduce((a, s) => a + s.ms, 0);
      assert.ok(Math.abs(sum - t.totalMs) < 0.2, `${t.operation}: stages ${sum} ms, total ${t.totalMs} ms`);
    }
  });

  it('a connect with published ports times its firewall stage', async () => {
    await f.manager.createNetwork({ name: 'fw', subnets: ['10.51.0.0/24'] });
    f.host.addNamespace('a');
    await f.manager.connect({ network: 'fw', target: 'a', publish: ['8082:80'] });
    const stages = f.manager.recentTimings().at(-1)!.stages.map((s) => s.stage);
    assert.deepEqual([stages[1], ...stages.slice(5, 7)], ['host ports', 'state file + registry', 'firewall']);
  });
});
