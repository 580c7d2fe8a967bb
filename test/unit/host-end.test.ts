// Finding a registry file's endpoint's host end (src/egress/host-end.ts) from what `ip -j -d`
// prints: the veth that holds the endpoint's address, and its peer among the host's veths by the
// host's id for the namespace and both indexes; every other case gives a reason instead.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { findHostEnds, hostEndsOf, HostEnds, hostVethsInto, nsidOf, readHostView, type EndpointAddresses, type HostEnd } from '../../src/egress/host-end.js';

// As `nsenter --net=... ip -j -d addr show` prints them (fields not read left out).
const lo = { ifindex: 1, ifname: 'lo', addr_info: [{ family: 'inet', local: '127.0.0.1' }] };
const eth0 = { ifindex: 2, link_index: 40, ifname: 'eth0', link_netnsid: 0, linkinfo: { info_kind: 'veth' }, addr_info: [{ family: 'inet', local: '10.74.1.2' }, { family: 'inet6', local: 'fd00:74:1::2' }] };
const mv0 = { ifindex: 3, link_index: 7, ifname: 'mv0', link_netnsid: 0, linkinfo: { info_kind: 'macvlan' }, addr_info: [{ family: 'inet', local: '10.74.2.2' }] };
// The host's veths: the right peer, one with the same indexes whose peer is in another namespace (id 5).
const hostEnd = { ifindex: 40, link_index: 2, ifname: 'regveth0', link_netnsid: 3, linkinfo: { info_kind: 'veth' } };
const lookalike = { ifindex: 40, link_index: 2, ifname: 'other0', link_netnsid: 5, linkinfo: { info_kind: 'veth' } };

const v4 = (a: string): EndpointAddresses => ({ ipv4: [a], ipv6: [] });

describe('host ends', () => {
  it('find the host veth whose peer holds the address, by the namespace id and both indexes', () => {
    assert.deepEqual(hostEndsOf([lo, eth0], [lookalike, hostEnd], 3, [v4('10.74.1.2')]), [{ hostIf: 'regveth0', routed: true }]);
    // By an IPv6 address written another way, too.
    assert.deepEqual(hostEndsOf([lo, eth0], [hostEnd], 3, [{ ipv4: [], ipv6: ['fd00:74:1:0:0:0:0:2'] }]), [{ hostIf: 'regveth0', routed: true }]);
    // A port of a Linux bridge is not routed; a port of anything else is no host end to enforce on.
    const port = { ...hostEnd, master: 'br-lab', linkinfo: { info_kind: 'veth', info_slave_kind: 'bridge' } };
    assert.deepEqual(hostEndsOf([lo, eth0], [port], 3, [v4('10.74.1.2')]), [{ hostIf: 'regveth0', routed: false }]);
    const ovs = { ...hostEnd, master: 'ovs-system', linkinfo: { info_kind: 'veth', info_slave_kind: 'openvswitch' } };
    assert.match((hostEndsOf([lo, eth0], [ovs], 3, [v4('10.74.1.2')])[0] as { reason: string }).reason, /other than a Linux bridge/);
    // The namespace's own address also on lo (or any link but a veth), listed first: still the veth.
    const loToo = { ...lo, addr_info: [...lo.addr_info, { family: 'inet', local: '10.74.1.2' }] };
    assert.deepEqual(hostEndsOf([loToo, eth0], [hostEnd], 3, [v4('10.74.1.2')]), [{ hostIf: 'regveth0', routed: true }]);
    // On a veth pair of the namespace's own (its peer inside it too), listed first: still the veth to the host.
    const decoy = { ifindex: 5, link_index: 6, ifname: 'd0', linkinfo: { info_kind: 'veth' }, addr_info: [{ family: 'inet', local: '10.74.1.2' }] };
    assert.deepEqual(hostEndsOf([decoy, eth0], [hostEnd], 3, [v4('10.74.1.2')]), [{ hostIf: 'regveth0', routed: true }]);
    // None of them to the host: the first one's reason (the host's veths into it guard it all the same: hostVethsInto).
    assert.deepEqual(hostEndsOf([decoy], [hostEnd], 3, [v4('10.74.1.2')]), [{ reason: "its veth's peer is in the namespace itself" }]);
    // Another namespace's veth with the same index pair is not it.
    assert.deepEqual(hostEndsOf([lo, eth0], [lookalike], 3, [v4('10.74.1.2')]), [{ reason: "its veth's peer is not in the host's namespace" }]);
  });

  it('give a reason when there is no host end to enforce on', () => {
    const [macvlan, missing, noId, sameNs, noAddress] = [
      hostEndsOf([mv0], [hostEnd], 3, [v4('10.74.2.2')]),
      hostEndsOf([lo, eth0], [hostEnd], 3, [v4('10.74.9.9')]),
      hostEndsOf([lo, eth0], [hostEnd], undefined, [v4('10.74.1.2')]),
      hostEndsOf([{ ...eth0, link_netnsid: undefined }], [hostEnd], 3, [v4('10.74.1.2')]),
      hostEndsOf([lo, eth0], [hostEnd], 3, [{ ipv4: [], ipv6: [] }]),
    ];
    assert.match((macvlan[0] as { reason: string }).reason, /macvlan link, not a veth/);
    assert.deepEqual(missing, [{ reason: 'no interface in the namespace holds its address' }]);
    assert.deepEqual(noId, [{ reason: "its veth's peer is not in the host's namespace" }]);
    assert.deepEqual(sameNs, [{ reason: "its veth's peer is in the namespace itself" }]);
    assert.deepEqual(noAddress, [{ reason: 'the endpoint has no address to find its link by' }]);
  });

  it('list the host\'s veths into a namespace from the host\'s side alone, whatever the namespace did to its own links', () => {
    const port = { ...hostEnd, ifindex: 41, ifname: 'regveth1', master: 'br-lab', linkinfo: { info_kind: 'veth', info_slave_kind: 'bridge' } };
    const ovs = { ...hostEnd, ifindex: 42, ifname: 'ovsveth', master: 'ovs-system', linkinfo: { info_kind: 'veth', info_slave_kind: 'openvswitch' } };
    const badName = { ...hostEnd, ifindex: 43, ifname: 'a"b; flush ruleset' };
    const notVeth = { ...hostEnd, ifindex: 44, ifname: 'mv1', linkinfo: { info_kind: 'macvlan' } };
    assert.deepEqual(hostVethsInto([lookalike, hostEnd, port, ovs, badName, notVeth], 3), [{ hostIf: 'regveth0', routed: true }, { hostIf: 'regveth1', routed: false }]);
    assert.deepEqual(hostVethsInto([hostEnd], 5), []);
    assert.deepEqual(hostVethsInto([hostEnd], undefined), []);
    assert.deepEqual(hostVethsInto('garbage', 3), []);
  });

  it('read the host\'s veths with every lookup (whatever it found), and again when the host\'s links changed or the read failed', async () => {
    let reads = 0;
    let fail = false;
    // A lookup that fails before it reads the host (the namespace's links could not be read).
    const ends = new HostEnds(async (_netns, endpoints) => endpoints.map(() => ({ reason: 'its links could not be read' })), async () => {
      reads++;
      if (fail) throw new Error('ip failed');
      return { veths: [], ids: [] };
    });
    const self = '/proc/self/ns/net';
    const links = (...names: string[]) => new Map(names.map((name, index) => [name, { index }]));
    const t0 = 1_000_000;
    await ends.refresh(new Map([[self, [v4('10.74.1.2')]]]), t0);
    assert.equal(reads, 1, 'looked up: read, though the lookup failed before asking');
    assert.equal(ends.watching(), true);
    assert.equal(ends.noteLinks(links('lo', 'regveth0')), true, 'the first note counts as a change');
    assert.equal(ends.noteLinks(links('lo', 'regveth0')), false);
    await ends.refresh(new Map([[self, [v4('10.74.1.2')]]]), t0 + 1000);
    assert.equal(reads, 2, 'the links changed');
    await ends.refresh(new Map([[self, [v4('10.74.1.2')]]]), t0 + 2000);
    assert.equal(reads, 2, 'nothing changed, and its retry not due: not read again');
    assert.equal(ends.noteLinks(links('lo', 'regveth0', 'regveth1')), true, 'a veth made');
    assert.equal(ends.noteLinks(new Map([...links('lo', 'regveth0', 'regveth1')].map(([n, l]) => [n, { ...l, netnsid: n === 'regveth1' ? 4 : undefined }]))), true, 'its peer moved into a namespace');
    fail = true;
    await ends.refresh(new Map([[self, [v4('10.74.1.2')]]]), t0 + 3000);
    assert.equal(reads, 3);
    assert.equal(ends.due(t0 + 3000), true, 'the read failed: due again at the next round');
    fail = false;
    await ends.refresh(new Map([[self, [v4('10.74.1.2')]]]), t0 + 4000);
    assert.equal(reads, 4);
    assert.equal(ends.due(t0 + 4000), false);
    assert.deepEqual(ends.into(self), [], 'a path outside /run/netns has no id on the host');
  });

  it('trust nothing in the output: odd kinds, bad names and garbage give reasons, not values', () => {
    const oddKind = hostEndsOf([{ ...mv0, linkinfo: { info_kind: 'x"; drop' } }], [], 3, [v4('10.74.2.2')]);
    assert.match((oddKind[0] as { reason: string }).reason, /unknown link/);
    const badName = hostEndsOf([eth0], [{ ...hostEnd, ifname: 'a"b; flush ruleset' }], 3, [v4('10.74.1.2')]);
    assert.deepEqual(badName, [{ reason: "its veth's host end has a name nsdns does not accept" }]);
    assert.deepEqual(hostEndsOf({ not: 'a list' }, null, 3, [v4('10.74.1.2')]), [{ reason: 'no interface in the namespace holds its address' }]);
    assert.equal(nsidOf([{ name: 'a', id: 1 }, { name: 'b' }], 'a'), 1);
    assert.equal(nsidOf([{ name: 'b' }], 'b'), undefined);
    assert.equal(nsidOf('garbage', 'b'), undefined);
  });

  it('run no command for a path outside /run/netns, and say so; a failing command is a reason too', async () => {
    const ran: string[] = [];
    const exec = async (file: string) => {
      ran.push(file);
      throw new Error('secret output');
    };
    const host = () => readHostView(exec);
    assert.deepEqual(await findHostEnds('/proc/1/ns/net', [v4('10.74.1.2')], host, exec), [{ reason: 'only namespaces under /run/netns are looked up' }]);
    assert.deepEqual(ran, []);
    assert.deepEqual(await findHostEnds('/run/netns/x', [v4('10.74.1.2')], host, exec), [{ reason: 'its links could not be read' }]);
  });

  it('look a namespace up again only when its endpoints change, its path names another namespace, its host end is gone, or nothing was found and its wait is over', async () => {
    const looked: string[] = [];
    let answer: HostEnd = { reason: 'not yet' };
    const ends = new HostEnds(async (netns, endpoints) => {
      looked.push(netns);
      return endpoints.map(() => answer);
    }, async () => ({ veths: [], ids: [] }));
    // The current namespace: /proc/self/ns/net always exists and keeps its identity.
    const self = '/proc/self/ns/net';
    const t0 = 1_000_000;
    await ends.refresh(new Map([[self, [v4('10.74.1.2')]]]), t0);
    assert.deepEqual(ends.of(self, v4('10.74.1.2')), { reason: 'not yet' });
    answer = { hostIf: 'regveth0', routed: true };
    await ends.refresh(new Map([[self, [v4('10.74.1.2')]]]), t0 + 1000);
    assert.equal(looked.length, 1, 'not found, and its wait not over: not looked up at every change');
    assert.equal(ends.due(t0 + 1000), false);
    assert.equal(ends.due(t0 + 5000), true);
    await ends.refresh(new Map([[self, [v4('10.74.1.2')]]]), t0 + 5000);
    assert.deepEqual(ends.of(self, v4('10.74.1.2')), { hostIf: 'regveth0', routed: true }, 'its wait over: looked up again');
    await ends.refresh(new Map([[self, [v4('10.74.1.2')]]]), t0 + 6000);
    assert.equal(looked.length, 2, 'found and unchanged: not looked up again');
    await ends.refresh(new Map([[self, [v4('10.74.1.3')]]]), t0 + 7000);
    assert.equal(looked.length, 3, 'another address: looked up again');
    assert.equal(ends.replaced(), false);
    assert.equal(ends.forgetGone(new Set(['regveth0'])), false, 'its host end is still there');
    assert.equal(ends.forgetGone(new Set()), true, 'its host end is gone');
    // Made again, but its veth not yet (or the read failed): the host end found before is kept.
    answer = { reason: 'no interface in the namespace holds its address' };
    await ends.refresh(new Map([[self, [v4('10.74.1.3')]]]), t0 + 8000);
    assert.equal(looked.length, 4, 'a host end gone: looked up again');
    assert.deepEqual(ends.of(self, v4('10.74.1.3')), { hostIf: 'regveth0', routed: true }, 'a governed namespace is not let go by a lookup that found nothing');
    assert.equal(ends.due(t0 + 12_000), false);
    assert.equal(ends.due(t0 + 13_000), true, 'and it is looked up again');
    await ends.refresh(new Map([[self, [v4('10.74.1.3')]]]), t0 + 13_000);
    assert.equal(looked.length, 5);
    assert.equal(ends.due(t0 + 22_000), false, 'the wait doubles while nothing is found');
    assert.equal(ends.due(t0 + 23_000), true);
    await ends.refresh(new Map([['/run/netns/nsdns-test-no-such-namespace', [v4('10.74.1.2')]]]), t0 + 24_000);
    assert.deepEqual(ends.of('/run/netns/nsdns-test-no-such-namespace', v4('10.74.1.2')), { reason: 'the namespace does not exist' });
    assert.equal(looked.length, 5, 'no namespace: nothing to run');
    assert.equal(ends.of(self, v4('10.74.1.3')), undefined, 'a namespace no longer wanted is forgotten');
  });
});
