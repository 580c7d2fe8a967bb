// The host addresses of an overlay subnet, as the cluster-wide allocator sees them: which may be
// claimed (and why not), and the first free one.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addressSpace, canonicalIpv4, firstFree, hostAddress } from '../../src/etcd/address-space.js';

describe('overlay address space', () => {
  it('keeps the network and broadcast addresses out, host bits cleared', () => {
    assert.deepEqual(addressSpace('10.131.0.0/29'), { subnet: '10.131.0.0/29', first: 0x0a830001, last: 0x0a830006 });
    assert.equal(addressSpace('10.131.7.9/16').subnet, '10.131.0.0/16');
    assert.equal(addressSpace('255.255.255.252/30').last, 0xfffffffe);
  });

  it('refuses what is not an IPv4 subnet with room for endpoints', () => {
    for (const bad of ['10.131.0.0/31', '10.131.0.1/32', 'fd00::/64', '10.131.0.0', 'x/8', '', '10.131.0.0/33']) {
      assert.throws(() => addressSpace(bad), (err: Error & { code?: string }) => err.code === 'ERR_BAD_REQUEST' && /subnet/.test(err.message), bad);
    }
  });

  it('takes a host address, and says why it refuses one', () => {
    const space = addressSpace('10.131.0.0/29');
    assert.equal(hostAddress(space, '10.131.0.6'), '10.131.0.6');
    const cases: Array<[string, RegExp]> = [
      ['10.131.0.0', /network address of 10\.131\.0\.0\/29/],
      ['10.131.0.7', /broadcast address of 10\.131\.0\.0\/29/],
      ['10.131.0.8', /not in subnet 10\.131\.0\.0\/29/],
      ['10.130.255.255', /not in subnet/],
      ['10.131.0.1', /reserved on this network/],
      ['10.131.0.05', /not an IPv4 address/],
      ['10.131.1', /not an IPv4 address/],
      ['fd00::1', /not an IPv4 address/],
      ['10.131.0.2\n', /not an IPv4 address/],
    ];
    for (const [text, message] of cases) {
      assert.throws(() => hostAddress(space, text, new Set(['10.131.0.1'])), (err: Error & { code?: string }) => err.code === 'ERR_BAD_REQUEST' && message.test(err.message), text);
    }
  });

  it('never echoes a long or odd input whole', () => {
    const hostile = `\u001b[31m${'9'.repeat(500)}`;
    assert.throws(() => hostAddress(addressSpace('10.131.0.0/24'), hostile), (err: Error) => err.message.length < 120 && !err.message.includes('\u001b'));
  });

  it('picks the lowest free host address, or none when all are taken', () => {
    const space = addressSpace('10.131.0.0/29');
    assert.equal(firstFree(space, () => false), '10.131.0.1');
    const taken = new Set(['10.131.0.1', '10.131.0.2', '10.131.0.4']);
    assert.equal(firstFree(space, (a) => taken.has(a)), '10.131.0.3');
    assert.equal(firstFree(space, () => true), undefined);
  });

  it('reads only canonical dotted IPv4', () => {
    assert.equal(canonicalIpv4('10.131.0.1'), '10.131.0.1');
    for (const bad of ['010.131.0.1', '10.131.0.1 ', '0x0a.1.1.1', '1.2.3.4.5', '']) assert.equal(canonicalIpv4(bad), undefined, bad);
  });
});
