import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { allocate, DEFAULT_POOLS, macFor, overlaps, parseCidr, pickSubnet } from '../../src/plumbing/ipam.js';
import { buildRuleset } from '../../src/plumbing/nft-rules.js';
import { parsePublish } from '../../src/plumbing/requests.js';
import { toRecord } from '../../src/registry/document.js';
import { ROOT } from '../helpers/daemon.js';

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

describe('nftables ruleset', () => {
  // Golden file: UPDATE_GOLDEN=1 npm test rewrites it after an intended change.
  it('matches the golden file for isolation, masquerade, internal networks and published ports', () => {
    const records = [
      toRecord({ name: 'web', bridge: 'nsbr-web', subnets: [{ subnet: '172.18.0.0/16', gateway: '172.18.0.1' }, { subnet: 'fd18::/64' }],
        endpoints: [{ name: 'app', ipv4: '172.18.0.2', ports: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }, { hostIp: '127.0.0.1', hostPort: 5353, containerPort: 53, protocol: 'udp' }] }] }, 'web'),
      toRecord({ name: 'db', bridge: 'nsbr-db', subnets: [{ subnet: '172.19.0.0/16' }], endpoints: [{ name: 'pg', ipv4: '172.19.0.2' }] }, 'db'),
      toRecord({ name: 'vault', bridge: 'nsbr-vault', internal: true, subnets: [{ subnet: '172.20.0.0/16' }] }, 'vault'),
      toRecord({ name: 'lab', subnets: [{ subnet: '10.77.0.0/24' }] }, 'lab'),
    ];
    const golden = path.join(ROOT, 'fixtures/nft/three-networks.nft');
    const actual = buildRuleset('nsdns', records);
    if (process.env.UPDATE_GOLDEN) writeFileSync(golden, actual);
    assert.equal(actual, readFileSync(golden, 'utf8'));
  });
});
