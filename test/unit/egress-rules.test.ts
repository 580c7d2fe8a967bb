// The egress rules as nft text (src/egress/egress-rules.ts): hostile values never reach nft, values
// come out in canonical form, and the rules of one namespace are a golden file
// (test/golden/egress/<case>.nft), so a diff shows what a change did to the firewall. Regenerate
// after an intended change: npm run build && UPDATE_GOLDEN=1 node --test dist/test/unit/egress-rules.test.js
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import {
  baseCommands, canonicalAddress, checkRules, isCanonicalIpv4, deleteKeyCommands, idOf, keyCommands, keyNames, learnCommands, mapCommands, type EgressRules,
} from '../../src/egress/egress-rules.js';
import { ROOT } from '../helpers/daemon.js';

const rules: EgressRules = {
  // A bridge port, and a routed host end (a registry file's veth, found: host-end.ts).
  sources: [{ hostIf: 'veth-app0', ipv4: ['10.132.1.2'], ipv6: ['fd00:132:1::2'] }, { hostIf: 'veth-app1', ipv4: ['10.132.2.2'], ipv6: [], routed: true }],
  cidrs: [
    { cidr: '10.0.5.0/24', port: 443, protocol: 'tcp' },
    { cidr: '2001:db8::/32', port: 443 },
    { cidr: '10.0.6.7', protocol: 'udp' },
    { cidr: '10.0.7.0/24' },
  ],
  ownSubnets: ['10.132.1.0/24', '10.132.2.0/24', 'fd00:132:1::/64'],
  gateways: ['10.132.1.1', '10.132.2.1', 'fd00:132:1::1'],
};

describe('egress rules', () => {
  it('match the golden file for a namespace on two networks', () => {
    const text = [...baseCommands('nsdns_egress'), ...keyCommands('nsdns_egress', 'app', rules), ...mapCommands('nsdns_egress', new Map([['app', rules]]))].join('\n') + '\n';
    const file = path.join(ROOT, 'test/golden/egress/two-networks.nft');
    if (process.env.UPDATE_GOLDEN === '1') {
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileSync(file, text);
    }
    assert.equal(text, readFileSync(file, 'utf8'));
  });

  it('close the gateways\' DNS before opening the own subnets that contain them', () => {
    const lines = keyCommands('t', 'app', rules);
    const gatewayDns = lines.findIndex((l) => l.includes('10.132.1.1') && l.includes('dport { 53, 853 }'));
    const ownSubnets = lines.findIndex((l) => l.includes('10.132.1.0/24') && l.endsWith('accept'));
    assert.ok(gatewayDns >= 0 && gatewayDns < ownSubnets, `${gatewayDns} < ${ownSubnets}`);
  });

  it('log dropped packets only when asked, rate-limited, just before the counted drop', () => {
    assert.ok(!keyCommands('t', 'app', rules).some((l) => l.includes(' log ')));
    const lines = keyCommands('t', 'app', rules, { logDrops: true });
    const log = lines.findIndex((l) => l.includes('limit rate 5/second burst 10 packets log prefix "nsdns-egress-drop: "'));
    assert.ok(log >= 0 && lines[log + 1].endsWith(`counter name ${keyNames('app').dropped} drop`));
  });

  it('size both learned sets by maxLearned (32768 by default), and refuse a size out of its bounds', () => {
    const sizes = (lines: string[]) => lines.filter((l) => l.startsWith('add set ')).map((l) => /size (\d+);/.exec(l)?.[1]);
    assert.deepEqual(sizes(keyCommands('t', 'app', rules)), ['32768', '32768']);
    assert.deepEqual(sizes(keyCommands('t', 'app', rules, { maxLearned: 16 })), ['16', '16']);
    for (const maxLearned of [0, 15, 1.5, 1_048_577, Number.NaN, Infinity]) {
      assert.throws(() => keyCommands('t', 'app', rules, { maxLearned }), { code: 'ERR_FIREWALL', message: /learned set size/ }, String(maxLearned));
    }
  });

  it('write values in canonical form', () => {
    const lines = keyCommands('t', 'k', { ...rules, cidrs: [{ cidr: '10.1.2.3/8' }, { cidr: '2001:DB8:0:0::1/32' }], gateways: ['2001:0db8::0001'] });
    assert.ok(lines.some((l) => l.includes('ip daddr 10.0.0.0/8 accept')));
    assert.ok(lines.some((l) => l.includes('ip6 daddr 2001:db8::/32 accept')));
    assert.ok(lines.some((l) => l.includes('ip6 daddr { 2001:db8::1 } accept')));
    assert.deepEqual(canonicalAddress('2001:0DB8::0001'), { family: 6, text: '2001:db8::1' });
    assert.equal(canonicalAddress('example.com'), undefined);
    assert.equal(canonicalAddress('127.1'), undefined);
    assert.deepEqual(canonicalAddress('10.0.0.1'), { family: 4, text: '10.0.0.1' });
    assert.equal(canonicalAddress('010.0.0.1'), undefined, 'leading zeros (octal to some parsers) stay refused');
    assert.equal(canonicalAddress('256.0.0.1'), undefined);
    assert.equal(canonicalAddress('10.0.0.1 '), undefined);
    assert.deepEqual(learnCommands('t', 'k', [{ address: '10.133.0.1', ttl: 33 }, { address: '10.133.0.2', ttl: 5 }], [{ address: '2001:db8::1', ttl: 33 }]), [
      `add element inet t l4_${keyNames('k').id} { 10.133.0.1 timeout 33s expires 33s, 10.133.0.2 timeout 5s expires 5s }`,
      `add element inet t l6_${keyNames('k').id} { 2001:db8::1 timeout 33s expires 33s }`,
    ]);
  });

  it('replace an element by a delete before the add, in the same line (one transaction)', () => {
    const id = keyNames('k').id;
    assert.deepEqual(learnCommands('t', 'k', [{ address: '10.133.0.1', ttl: 33, replace: true }, { address: '10.133.0.2', ttl: 5 }], [{ address: '2001:db8::1', ttl: 9, replace: true }]), [
      `delete element inet t l4_${id} { 10.133.0.1 }`,
      `add element inet t l4_${id} { 10.133.0.1 timeout 33s expires 33s, 10.133.0.2 timeout 5s expires 5s }`,
      `delete element inet t l6_${id} { 2001:db8::1 }`,
      `add element inet t l6_${id} { 2001:db8::1 timeout 9s expires 9s }`,
    ]);
  });

  it('tell a canonical dotted quad exactly as the grammar does (no leading zeros, octets to 255)', () => {
    const grammar = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
    const cases = ['0.0.0.0', '255.255.255.255', '1.2.3.4', '10.0.0.1', '256.1.1.1', '1.1.1.256', '01.1.1.1', '1.1.1.00', '1.1.1', '1.1.1.1.1',
      '1..1.1', '.1.1.1', '1.1.1.', '1.1.1.1 ', '', '1234.1.1.1', '199.249.200.100', '100.0.10.0', '1.1.1.a', '2001:db8::1'];
    // And many strings of digits and dots, the alphabet where a scan could go wrong.
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const digits = (max: number) => Array.from({ length: 1 + Math.floor(random() * max) }, () => String(Math.floor(random() * 10))).join('');
    for (let i = 0; i < 50_000; i++) {
      // Half of them four groups of one to three digits (leading zeros and octets past 255 among them).
      if (i % 2 === 0) cases.push([3, 3, 3, 3].map(digits).join('.'));
      else cases.push(Array.from({ length: 1 + Math.floor(random() * 16) }, () => (random() < 0.25 ? '.' : digits(1))).join(''));
    }
    for (const s of cases) assert.equal(isCanonicalIpv4(s), grammar.test(s), JSON.stringify(s));
  });

  it('govern a source whose interface is not known by its addresses alone: its chain, no anti-spoofing', () => {
    const bare: EgressRules = { ...rules, sources: [{ ipv4: ['10.132.1.9'], ipv6: ['fd00:132:1::9'] }] };
    const lines = [...keyCommands('t', 'k', bare), ...mapCommands('t', new Map([['k', bare]]))];
    const chain = `eg_${keyNames('k').id}`;
    assert.ok(lines.includes(`add element inet t src4 { 10.132.1.9 : jump ${chain} }`), lines.join('\n'));
    assert.ok(lines.includes(`add element inet t src6 { fd00:132:1::9 : jump ${chain} }`));
    assert.deepEqual(lines.filter((l) => l.includes('iifname') || /\b(ports|ifs) \{/.test(l)), [], 'no rule or map entry names an interface');
    assert.throws(() => checkRules({ ...rules, sources: [{ ipv4: ['10.132.1.9'], ipv6: [], routed: true }] }), /a routed source needs its interface/);
  });

  it('refuse hostile or malformed values before they reach nft', () => {
    const bad: Array<[string, EgressRules]> = [
      ['interface with a quote', { ...rules, sources: [{ hostIf: 'eth0" accept', ipv4: [], ipv6: [] }] }],
      ['interface too long', { ...rules, sources: [{ hostIf: 'a'.repeat(16), ipv4: [], ipv6: [] }] }],
      ['hostname as a source', { ...rules, sources: [{ hostIf: 'eth0', ipv4: ['evil.example'], ipv6: [] }] }],
      ['command in an address', { ...rules, sources: [{ hostIf: 'eth0', ipv4: ['10.0.0.1; flush ruleset'], ipv6: [] }] }],
      ['IPv6 in the IPv4 list', { ...rules, sources: [{ hostIf: 'eth0', ipv4: ['fd00::1'], ipv6: [] }] }],
      ['prefix too long', { ...rules, cidrs: [{ cidr: '10.0.0.0/33' }] }],
      ['two slashes', { ...rules, cidrs: [{ cidr: '10.0.0.0/8/1' }] }],
      ['name as a CIDR', { ...rules, cidrs: [{ cidr: 'pypi.org/32' }] }],
      ['port 0', { ...rules, cidrs: [{ cidr: '10.0.0.0/8', port: 0 }] }],
      ['port 65536', { ...rules, cidrs: [{ cidr: '10.0.0.0/8', port: 65536 }] }],
      ['protocol icmp', { ...rules, cidrs: [{ cidr: '10.0.0.0/8', protocol: 'icmp' as 'tcp' }] }],
      ['gateway with a zone', { ...rules, gateways: ['fe80::1%eth0'] }],
      ['own subnet with a newline', { ...rules, ownSubnets: ['10.0.0.0/8\nflush ruleset'] }],
    ];
    for (const [what, r] of bad) assert.throws(() => checkRules(r), { code: 'ERR_FIREWALL' }, what);
    assert.throws(() => baseCommands('t; flush ruleset'), { code: 'ERR_FIREWALL' });
    assert.throws(() => deleteKeyCommands('t', '../x'), { code: 'ERR_FIREWALL' });
  });

  it('refuse an address or interface claimed by two namespaces; one namespace\'s address in two of its sources is one entry', () => {
    assert.throws(() => mapCommands('t', new Map([['a', rules], ['b', rules]])), { code: 'ERR_FIREWALL' });
    const guarded: EgressRules = { ...rules, sources: [{ ipv4: ['10.132.1.2'], ipv6: [] }, { hostIf: 'veth-g', ipv4: ['10.132.1.2'], ipv6: [], routed: true }] };
    const id = keyNames('a').id;
    assert.deepEqual(mapCommands('t', new Map([['a', guarded]])).filter((c) => c.startsWith('add element')), [
      `add element inet t src4 { 10.132.1.2 : jump eg_${id} }`,
      `add element inet t ifs { "veth-g" : jump sp_${id} }`,
      `add element bridge t ports { "veth-g" : jump sp_${id} }`,
    ]);
    assert.throws(() => mapCommands('t', new Map([['a', guarded], ['b', { ...rules, sources: [{ ipv4: ['10.132.1.2'], ipv6: [] }] }]])), { code: 'ERR_FIREWALL' });
  });

  it('name nft objects from a hash of the key, whatever the key holds', () => {
    const n = keyNames('/run/netns/a b"; flush ruleset');
    for (const name of [n.chain, n.learned4, n.learned6, n.dropped, n.spoof]) {
      assert.match(name, /^[a-z0-9]+_[0-9a-f]{16}$/);
      assert.equal(idOf(name), n.id);
    }
    assert.notEqual(keyNames('a').id, keyNames('b').id);
    assert.equal(idOf('forward'), undefined);
    assert.equal(idOf('eg_0123'), undefined);
  });
});
