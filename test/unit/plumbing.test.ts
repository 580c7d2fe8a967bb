import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { allocate, DEFAULT_POOLS, macFor, overlaps, parseCidr, pickSubnet } from '../../src/plumbing/ipam.js';
import { parsePublish } from '../../src/plumbing/requests.js';

describe('ipam', () => {
  it('parses CIDRs, clears host bits, and finds overlaps', () => {
    assert.equal(parseCidr('10.1.2.3/16').text, '10.1.0.0/16');
    assert.ok(overlaps(parseCidr('10.1.0.0/16'), parseCidr('10.1.200.0/24')));
    assert.ok(!overlaps(parseCidr('10.1.0.0/16'), parseCidr('10.2.0.0/16')));
    assert.ok(!overlaps(parseCidr('10.1.0.0/16'), parseCidr('fd00::/64')));
  });

  it('allocates the lowest free address, skipping network, gateway, broadcast and the taken ones', () => {
    const net = parseCidr('10.9.0.0/30');
    assert.equal(allocate(net, new Set(['10.9.0.1'])), '10.9.0.2');
    assert.equal(allocate(net, new Set(['10.9.0.1', '10.9.0.2'])), undefined, '10.9.0.3 is the broadcast');
    assert.equal(allocate(parseCidr('10.9.0.0/24'), new Set(), parseCidr('10.9.0.128/25')), '10.9.0.128');
    assert.equal(allocate(parseCidr('fd00:1::/64'), new Set(['fd00:1::1'])), 'fd00:1::2');
  });

  it('picks the first free pool block, like Docker', () => {
    assert.equal(pickSubnet(DEFAULT_POOLS, []), '172.17.0.0/16');
    assert.equal(pickSubnet(DEFAULT_POOLS, [parseCidr('172.17.0.0/16'), parseCidr('172.18.5.0/24')]), '172.19.0.0/16');
    const allOf172 = Array.from({ length: 15 }, (_, i) => parseCidr(`172.${17 + i}.0.0/16`));
    assert.equal(pickSubnet(DEFAULT_POOLS, allOf172), '192.168.0.0/20');
  });

  it('derives MACs from IPv4 addresses', () => {
    assert.equal(macFor('172.17.0.2'), '02:42:ac:11:00:02');
  });

  it('parses --publish like docker run', () => {
    assert.deepEqual(parsePublish('8080:80'), { hostPort: 8080, containerPort: 80, protocol: 'tcp' });
    assert.deepEqual(parsePublish('127.0.0.1:5353:53/udp'), { hostIp: '127.0.0.1', hostPort: 5353, containerPort: 53, protocol: 'udp' });
    assert.throws(() => parsePublish('80'), /expected \[HOSTIP:\]HOSTPORT:PORT/);
  });
});
