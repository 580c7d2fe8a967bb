// Which namespaces the egress firewall governs, from the registry: a namespace under a policy is
// governed by its endpoints' addresses even where its host end is not known (anti-spoofing, which
// needs the interface, is what it lacks), and an address two namespaces claim is nobody's bare source.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { governed } from '../../src/egress/enforcement.js';
import { HostEnds } from '../../src/egress/host-end.js';
import { compileNetwork } from '../../src/registry/compiled.js';
import { Snapshot } from '../../src/registry/snapshot.js';
import type { Endpoint, Network } from '../../src/registry/types.js';

const network: Network = { name: 'lab', id: 'lab', subnets: [{ subnet: '10.90.1.0/24', gateway: '10.90.1.1' }], internal: false, upstreams: [], egress: [{ name: 'pypi.org' }] };
const endpoint = (name: string, netns: string, ipv4: string, more: Partial<Endpoint> = {}): Endpoint =>
  ({ id: name, network: 'lab', name, aliases: [], ipv4: [ipv4], ipv6: [], upstreams: [], netns, ...more });
const snapshot = (endpoints: Endpoint[]) => new Snapshot(1, new Map([['lab', compileNetwork({ network, endpoints })]]));

/** Host ends whose host's veths into each namespace are `into` (as a read of the host would give them). */
const withVethsInto = (into: ReadonlyMap<string, Array<{ hostIf: string; routed: boolean }>>) => new (class extends HostEnds {
  override into(netns: string) {
    return into.get(netns) ?? [];
  }
})();

describe('governed namespaces', () => {
  it('a namespace whose host end is not known is governed by its addresses, and said not enforced', () => {
    const { wanted, unenforced } = governed(snapshot([endpoint('a', '/run/netns/a', '10.90.1.2')]), new HostEnds());
    assert.deepEqual(wanted.get('/run/netns/a')?.sources, [{ ipv4: ['10.90.1.2'], ipv6: [] }]);
    assert.equal(unenforced.get('a'), 'its link was not looked up yet');
  });

  it('an address two namespaces claim is left out of their bare sources; one with a host end keeps it', () => {
    const { wanted } = governed(snapshot([
      endpoint('a', '/run/netns/a', '10.90.1.2'), endpoint('b', '/run/netns/b', '10.90.1.2'),
      endpoint('c', '/run/netns/c', '10.90.1.3', { hostIf: 'vethc' }), endpoint('c2', '/run/netns/c', '10.90.1.3'),
    ]), new HostEnds());
    assert.equal(wanted.has('/run/netns/a'), false, 'nothing left to tell its traffic by');
    assert.equal(wanted.has('/run/netns/b'), false);
    // The same address bare and with a host end in one namespace: one source, the one with the interface.
    assert.deepEqual(wanted.get('/run/netns/c')?.sources, [{ hostIf: 'vethc', ipv4: ['10.90.1.3'], ipv6: [] }]);
  });

  it('every host veth into a governed namespace guards it with the addresses that choose its chain, wherever the namespace put them', () => {
    const into = new Map([['/run/netns/a', [{ hostIf: 'veth-a', routed: true }]], ['/run/netns/c', [{ hostIf: 'vethc', routed: false }, { hostIf: 'vethc2', routed: false }]]]);
    const hostEnds = withVethsInto(into);
    const { wanted, unenforced } = governed(snapshot([
      endpoint('a', '/run/netns/a', '10.90.1.2'), endpoint('a6', '/run/netns/a', '10.90.1.4', { ipv6: ['fd00:90::4'] }),
      endpoint('c', '/run/netns/c', '10.90.1.3', { hostIf: 'vethc' }),
    ]), hostEnds);
    // Not found by its address (taken off its veth, or on a link of its own): its veth guards it all the same.
    assert.deepEqual(wanted.get('/run/netns/a')?.sources, [
      { ipv4: ['10.90.1.2', '10.90.1.4'], ipv6: ['fd00:90::4'] },
      { hostIf: 'veth-a', ipv4: ['10.90.1.2', '10.90.1.4'], ipv6: ['fd00:90::4'], routed: true },
    ]);
    assert.equal(unenforced.get('a'), 'its link was not looked up yet', 'its endpoint is still said not found');
    // A host end known already is not repeated; another veth into it guards it with its addresses.
    assert.deepEqual(wanted.get('/run/netns/c')?.sources, [{ hostIf: 'vethc', ipv4: ['10.90.1.3'], ipv6: [] }, { hostIf: 'vethc2', ipv4: ['10.90.1.3'], ipv6: [] }]);
  });

  it('a veth another namespace has as its source, or into two namespaces (one under two paths), guards none', () => {
    const into = new Map([['/run/netns/x', [{ hostIf: 'vethx', routed: false }, { hostIf: 'veth-both', routed: false }]], ['/run/netns/y', [{ hostIf: 'vethx', routed: false }, { hostIf: 'veth-both', routed: false }]]]);
    const hostEnds = withVethsInto(into);
    const { wanted } = governed(snapshot([
      endpoint('x', '/run/netns/x', '10.90.1.5', { hostIf: 'vethx' }), endpoint('y', '/run/netns/y', '10.90.1.6'),
    ]), hostEnds);
    assert.deepEqual(wanted.get('/run/netns/x')?.sources, [{ hostIf: 'vethx', ipv4: ['10.90.1.5'], ipv6: [] }]);
    assert.deepEqual(wanted.get('/run/netns/y')?.sources, [{ ipv4: ['10.90.1.6'], ipv6: [] }]);
  });
});
