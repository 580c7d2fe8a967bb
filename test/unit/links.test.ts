// The parts of the link work that need no kernel: what goes into netlink attributes, how the
// kernel's refusals are worded, and the last check refusing bad input before anything is sent.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createBridge, createEndpointLink, addDefaultRoutes } from '../../src/plumbing/links.js';
import { ipBytes, macBytes, netlinkCode, netlinkReason } from '../../src/plumbing/netlink-links.js';

describe('netlink link attributes', () => {
  it('encodes addresses and MACs as the kernel reads them', () => {
    assert.deepEqual([...ipBytes('10.219.7.2')], [10, 219, 7, 2]);
    assert.equal(ipBytes('fd19:7::2').toString('hex'), 'fd190007000000000000000000000002');
    assert.equal(ipBytes('::ffff:10.0.0.1').toString('hex'), '00000000000000000000ffff0a000001');
    assert.equal(macBytes('02:42:0A:db:07:02').toString('hex'), '02420adb0702');
  });

  it('words the kernel refusals, and a system error without its path', () => {
    assert.equal(netlinkReason(new Error('Request rejected: EEXIST')), 'file already exists (EEXIST)');
    assert.equal(netlinkCode(new Error('Request rejected: ENODEV')), 'ENODEV');
    const enoent = Object.assign(new Error("ENOENT: no such file or directory, open '/run/netns/web'"), { code: 'ENOENT' });
    assert.equal(netlinkReason(enoent), 'no such file or directory (ENOENT)');
    assert.equal(netlinkReason(new Error('something else')), 'something else');
  });
});

describe('links: the last check before netlink, a helper or ip', () => {
  it('refuses out-of-range prefixes and MTUs before touching the kernel', async () => {
    await assert.rejects(createBridge({ name: 'nsbr1', addresses: ['10.0.0.1/33'] }), /refusing to run ip or a netlink request/);
    await assert.rejects(createBridge({ name: 'nsbr1', addresses: ['fd00::1/129'] }), /refusing/);
    await assert.rejects(createBridge({ name: 'nsbr1', addresses: [], mtu: 70000 }), /refusing/);
    const spec = { hostIf: 'nsv1', bridge: 'nsbr1', netns: '/run/netns/a', ifname: 'eth0', mac: '02:42:ac:11:00:02', addresses: ['10.0.0.2/24'] };
    await assert.rejects(createEndpointLink({ ...spec, mtu: 10 }), /refusing/);
    await assert.rejects(createEndpointLink({ ...spec, bridge: 'br\nx' }), /refusing/);
    await assert.rejects(addDefaultRoutes('/run/netns/a', [{ gateway: '10.0.0.1 dev lo', ifname: 'eth0' }]), /refusing/);
    await assert.rejects(addDefaultRoutes('/etc/passwd', [{ gateway: '10.0.0.1', ifname: 'eth0' }]), /refusing/);
  });
});
