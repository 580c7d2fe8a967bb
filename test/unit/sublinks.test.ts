// The decisions of macvlan/ipvlan networks (src/plumbing/sublinks.ts) and of aux addresses
// (aux-addresses.ts), pure: which options a network keeps, which driver a stored network has, and
// why a parent cannot carry a new network. The kernel side is test/privileged/macvlan.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { auxAddresses, auxOptions } from '../../src/plumbing/aux-addresses.js';
import { driverOf, parentProblem, subLinkOf, subLinkOptions } from '../../src/plumbing/sublinks.js';
import type { Network } from '../../src/registry/types.js';

const network = (name: string, options: Record<string, string>, bridge?: string): Network =>
  ({ name, id: name, subnets: [{ subnet: '10.126.0.0/24' }], internal: false, upstreams: [], options, ...(bridge && { bridge }) });

describe('macvlan and ipvlan options', () => {
  it('keep the mode in force (bridge, l2 by default) and refuse what the driver does not know', () => {
    assert.deepEqual(subLinkOptions('macvlan', { parent: 'eth0' }), { parent: 'eth0', macvlan_mode: 'bridge' });
    assert.deepEqual(subLinkOptions('ipvlan', { parent: 'eth0', ipvlan_mode: 'l3' }), { parent: 'eth0', ipvlan_mode: 'l3' });
    for (const [driver, options, message] of [
      ['macvlan', {}, /needs its parent interface: -o parent=IFACE/],
      ['macvlan', { parent: 'eth0 up' }, /-o parent="eth0 up" is not an interface name/],
      ['macvlan', { parent: 'eth0', macvlan_mode: 'loud' }, /not a macvlan mode \(bridge, private, vepa, passthru\)/],
      ['macvlan', { parent: 'eth0', ipvlan_mode: 'l2' }, /-o ipvlan_mode is an option of the ipvlan driver, not of macvlan/],
      ['ipvlan', { parent: 'eth0', ipvlan_mode: 'l3s' }, /not an ipvlan mode \(l2, l3\)/],
    ] as const) assert.throws(() => subLinkOptions(driver, options), message);
  });

  it('the driver of a stored network is read from its bridge or its mode key', () => {
    assert.equal(driverOf(network('b', { parent: 'eth0', macvlan_mode: 'bridge' }, 'nsbr-1')), 'bridge');
    assert.equal(driverOf(network('m', { parent: 'eth0', macvlan_mode: 'vepa' })), 'macvlan');
    assert.equal(driverOf(network('i', { parent: 'eth0', ipvlan_mode: 'l2' })), 'ipvlan');
    assert.equal(driverOf(network('f', {})), 'static');
    assert.deepEqual(subLinkOf(network('m', { parent: 'eth0', macvlan_mode: 'vepa' })), { driver: 'macvlan', parent: 'eth0', mode: 'vepa' });
  });
});

describe('a parent for a new network', () => {
  const states = new Map([['eth0', { up: true }], ['eth1', { up: false }], ['eth2', { up: true, master: 'br0' }], ['eth3', { up: true }]]);
  const others = [network('lan', { parent: 'eth0', macvlan_mode: 'bridge' }), network('pt', { parent: 'eth3', macvlan_mode: 'passthru' })];
  const problem = (parent: string, mode = 'bridge', driver: 'macvlan' | 'ipvlan' = 'macvlan') => parentProblem({ driver, parent, mode }, states, others);

  it('must exist, be up and be no bridge port', () => {
    assert.match(problem('eth9')!, /parent interface eth9 does not exist on the host/);
    assert.match(problem('eth1')!, /parent interface eth1 is down/);
    assert.match(problem('eth2')!, /parent interface eth2 is a port of br0/);
  });

  it('is shared only in the same mode of the same driver, and never in passthru', () => {
    assert.equal(problem('eth0'), undefined);
    assert.match(problem('eth0', 'private')!, /already carries macvlan network "lan" in mode bridge; a macvlan network in mode private cannot share it/);
    assert.match(problem('eth0', 'l2', 'ipvlan')!, /already carries macvlan network "lan"/);
    assert.match(problem('eth3', 'passthru')!, /already carries macvlan network "pt" in mode passthru/);
  });
});

describe('aux addresses', () => {
  it('are kept by name inside the subnets, and refused outside them, twice, or malformed', () => {
    const subnets = [{ subnet: '10.126.0.0/24' }];
    const options = auxOptions({ router: '10.126.0.254' }, subnets);
    assert.deepEqual(options, { 'aux-address.router': '10.126.0.254' });
    assert.deepEqual(auxAddresses(network('n', options)), { router: '10.126.0.254' });
    assert.throws(() => auxOptions({ far: '10.127.0.1' }, subnets), /--aux-address far=10\.127\.0\.1 is outside the subnets 10\.126\.0\.0\/24/);
    assert.throws(() => auxOptions({ a: '10.126.0.9', b: '10.126.0.9' }, subnets), /--aux-address 10\.126\.0\.9 is given twice/);
    assert.throws(() => auxOptions({ 'x y': '10.126.0.9' }, subnets), /the name must be letters/);
    assert.throws(() => auxOptions({ x: 'nope' }, subnets), /--aux-address x="nope" is not an IP address/);
  });
});
