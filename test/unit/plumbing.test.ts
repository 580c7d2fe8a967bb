import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { allocate, DEFAULT_POOLS, hasHostBits, macFor, overlaps, parseCidr, pickSubnet } from '../../src/plumbing/ipam.js';
import { parsePublish } from '../../src/plumbing/requests.js';
import { parseParams } from '../../src/daemon/control-schemas.js';
import { namespaceTarget } from '../../src/plumbing/target.js';
import { createEndpointLink, deleteLink } from '../../src/plumbing/links.js';
import dnsPacket from 'dns-packet';
import { presentData } from '../../src/wire/presentation.js';

describe('ipam', () => {
  it('parses CIDRs, clears host bits, and finds overlaps', () => {
    assert.equal(parseCidr('10.1.2.3/16').text, '10.1.0.0/16');
    assert.ok(hasHostBits('10.240.3.5/24') && hasHostBits('fd00::1/64'));
    assert.ok(!hasHostBits('10.240.3.0/24') && !hasHostBits('fd00::/64') && !hasHostBits('10.0.0.1/32'));
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

  it("picks the first free pool block, like Docker, leaving docker0's 172.17.0.0/16 alone", () => {
    assert.equal(pickSubnet(DEFAULT_POOLS, []), '172.18.0.0/16', 'not 172.17.0.0/16 even when nothing uses it');
    assert.equal(pickSubnet(DEFAULT_POOLS, [parseCidr('172.18.5.0/24')]), '172.19.0.0/16');
    const allOf172 = Array.from({ length: 14 }, (_, i) => parseCidr(`172.${18 + i}.0.0/16`));
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

describe('control requests: hostile strings', () => {
  const noRaw = (fn: () => unknown, re: RegExp) => assert.throws(fn, (err: Error) => re.test(err.message) && !/[\n\0]/.test(err.message));

  // The request schemas are the one check of these fields (control-schemas.ts, request-schemas.ts).
  const connect = (fields: object) => parseParams('network.connect', { network: 'n', target: 'a', ...fields });
  const create = (fields: object) => parseParams('network.create', { name: 'n', ...fields });

  it('interface names: 1-15 of [A-Za-z0-9_.-], not . or ..', () => {
    for (const v of ['eth0\ndelete table inet filter', '"; flush ruleset', '../x', 'a\0b', 'abcdefghijklmnop', '.', '..', '', 'a b', '@x', 'eth*']) {
      noRaw(() => connect({ ifname: v }), /ifname: not a valid interface name/);
      noRaw(() => create({ bridge: v }), /bridge: not a valid interface name/);
    }
    assert.equal(connect({ ifname: 'abcdefghijklmno' }).ifname, 'abcdefghijklmno');
  });

  it('MACs, addresses and published ports', () => {
    noRaw(() => connect({ mac: '02:42:ac:11:00:02\nx' }), /mac: not a unicast MAC address/);
    noRaw(() => connect({ mac: '03:00:00:00:00:01' }), /mac: not a unicast MAC address/);
    assert.equal(connect({ mac: '02:42:AC:11:00:02' }).mac, '02:42:ac:11:00:02', 'kept in lower case');
    noRaw(() => connect({ ip: '10.0.0.1\ndelete table inet filter' }), /ip: not an IPv4 address/);
    noRaw(() => connect({ ip: '0x0a.1' }), /ip: not an IPv4 address/);
    noRaw(() => connect({ ip6: 'fe80::1%eth0' }), /ip6: not an IPv6 address/);
    noRaw(() => create({ gateway: '10.0.0.1\nx' }), /gateway: not an IP address/);
    noRaw(() => parsePublish('127.0.0.1\n:80:80'), /expected \[HOSTIP:\]HOSTPORT:PORT/);
    noRaw(() => parsePublish('999.0.0.1:80:80'), /expected/);
    noRaw(() => parsePublish('0:80'), /expected/);
  });

  it('options: bounded keys and printable values', () => {
    assert.deepEqual(create({ options: { 'com.docker.network.bridge.name': 'x' } }).options, { 'com.docker.network.bridge.name': 'x' });
    noRaw(() => create({ options: { 'k\n': 'v' } }), /options\.k\\u000a: Invalid key/);
    noRaw(() => create({ options: { k: 'v\nx' } }), /options\.k: not a valid option value/);
    noRaw(() => create({ options: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'])) }), /at most 64 options/);
  });

  it('namespaces: only /run/netns/NAME and /proc/PID[/task/TID]/ns/net', () => {
    assert.deepEqual(namespaceTarget('web'), { path: '/run/netns/web', name: 'web', shown: 'namespace "web"' });
    assert.deepEqual(namespaceTarget('/run/netns/web'), { path: '/run/netns/web', name: 'web', shown: 'namespace "web"' });
    assert.deepEqual(namespaceTarget('123'), { path: '/proc/123/ns/net', shown: 'the namespace of PID 123' });
    assert.deepEqual(namespaceTarget('/proc/123/ns/net'), { path: '/proc/123/ns/net', shown: 'the namespace of PID 123' });
    assert.deepEqual(namespaceTarget('/proc/123/task/124/ns/net'), { path: '/proc/123/task/124/ns/net', shown: 'namespace /proc/123/task/124/ns/net' });
    for (const v of ['/etc/shadow', '/run/netns/../../etc/shadow', '/run/netns/a/../b', '../x', '..', '.', 'a\0b', '/proc/self/ns/net', '/proc/1/ns/mnt', 'x\ny', '/tmp/ns', '0']) {
      noRaw(() => namespaceTarget(v), /is not allowed/);
    }
    noRaw(() => namespaceTarget('/run/netns/x/../../../etc/shadow'), /is not allowed/);
  });
});

describe('links: the last check before ip -batch', () => {
  it('refuses a name, address or namespace that could start another ip command, before running anything', async () => {
    await assert.rejects(deleteLink('x\nlink del lo'), /refusing to run ip/);
    const spec = { hostIf: 'nsv1', bridge: 'nsbr1', netns: '/run/netns/a', ifname: 'eth0', mac: '02:42:ac:11:00:02', addresses: ['10.0.0.2/24'] };
    for (const bad of [{ ifname: 'eth0\nlink del lo' }, { netns: '/etc/passwd' }, { addresses: ['10.0.0.2/24 dev lo\nlink del lo'] }, { mac: '02:42:ac:11:00:02 x' }, { gateway4: '10.0.0.1\nx' }]) {
      await assert.rejects(createEndpointLink({ ...spec, ...bad }), /refusing to run ip/, JSON.stringify(bad));
    }
  });
});

describe('debug --resolve: record data in presentation form, as dig prints it', () => {
  it('SRV, MX, TXT, SOA, CAA, names and addresses, through a real encode and decode; nothing as [object Object]', () => {
    const answers = [
      { type: 'SRV', name: '_http._tcp.web', data: { priority: 0, weight: 10, port: 8080, target: 'web.lab' } },
      { type: 'MX', name: 'lab', data: { preference: 10, exchange: 'mail.example' } },
      { type: 'TXT', name: 't', data: ['v=spf1 -all', 'say "hi"\\', Buffer.from([0x0a, 0x41, 0xff])] },
      { type: 'SOA', name: 'lab', data: { mname: 'ns.example', rname: 'hostmaster.example', serial: 7, refresh: 60, retry: 30, expire: 600, minimum: 5 } },
      { type: 'CAA', name: 'lab', data: { flags: 0, tag: 'issue', value: 'letsencrypt.org' } },
      { type: 'CNAME', name: 'docs', data: 'web.lab' },
      { type: 'PTR', name: '2.0.0.10.in-addr.arpa', data: 'web.lab' },
      { type: 'A', name: 'web', data: '10.0.0.2' },
      { type: 'AAAA', name: 'web', data: 'fd00::2' },
      { type: 'NULL', name: 'x', data: Buffer.from([1, 2, 255]) },
    ] as dnsPacket.Answer[];
    const decoded = dnsPacket.decode(dnsPacket.encode({ type: 'response', id: 1, answers }));
    assert.deepEqual(decoded.answers!.map((a) => `${a.type} ${presentData(a.type, (a as { data?: unknown }).data)}`), [
      'SRV 0 10 8080 web.lab.',
      'MX 10 mail.example.',
      'TXT "v=spf1 -all" "say \\"hi\\"\\\\" "\\010A\\255"',
      'SOA ns.example. hostmaster.example. 7 60 30 600 5',
      'CAA 0 issue "letsencrypt.org"',
      'CNAME web.lab.',
      'PTR web.lab.',
      'A 10.0.0.2',
      'AAAA fd00::2',
      'NULL \\# 3 0102ff',
    ]);
  });
});
