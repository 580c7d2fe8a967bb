// Egress policies (issue 22): the one rule schema with its short forms (registry/egress-rules.ts),
// policy files, and the compiled name matcher (egress/policy.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { egressRulesSchema, egressRuleText, parseEgressRule } from '../../src/registry/egress-rules.js';
import { checkRules, compilePolicy, namespacePolicy, parsePolicyText } from '../../src/egress/policy.js';
import type { Endpoint, Network } from '../../src/registry/types.js';

describe('short forms', () => {
  const table: Array<[string, unknown]> = [
    ['pypi.org', { name: 'pypi.org' }],
    ['PyPI.org.', { name: 'pypi.org' }],
    ['*.pythonhosted.org', { name: '*.pythonhosted.org' }],
    ['10.0.5.0/24', { cidr: '10.0.5.0/24' }],
    ['10.0.5.7/24:443/tcp', { cidr: '10.0.5.0/24', port: 443, protocol: 'tcp' }],
    ['10.0.5.0/24:53', { cidr: '10.0.5.0/24', port: 53 }],
    ['[2001:db8::/32]:443', { cidr: '2001:db8::/32', port: 443 }],
    ['[2001:DB8::1/32]:53/udp', { cidr: '2001:db8::/32', port: 53, protocol: 'udp' }],
    ['2001:db8::/32', { cidr: '2001:db8::/32' }],
    ['[fd00:134::/48]', { cidr: 'fd00:134::/48' }],
  ];
  for (const [text, rule] of table) it(`${text} → ${JSON.stringify(rule)}`, () => assert.deepEqual(parseEgressRule(text), rule));

  const bad = ['', '*', '*.', 'a..b', '-a.org', 'x'.repeat(64) + '.org', `${'a.'.repeat(127)}a`, 'pypi.org:443', '10.0.5.0/33', '10.0.5.0/24:0',
    '10.0.5.0/24:70000', '10.0.5.0/24/tcp', '10.0.5.0/24:443/icmp', '[2001:db8::/32]:x', '2001:db8::/32:443', 'fe80::1%eth0/64', '*.*.org', 'a b.org'];
  for (const text of bad) it(`refuses ${JSON.stringify(text.slice(0, 30))}`, () => assert.equal(typeof parseEgressRule(text), 'string'));

  it('prints rules back in their short form', () => {
    for (const text of ['pypi.org', '*.pythonhosted.org', '10.0.5.0/24', '10.0.5.0/24:443/tcp', '[2001:db8::/32]:443']) {
      const rule = parseEgressRule(text);
      assert.notEqual(typeof rule, 'string');
      assert.equal(egressRuleText(rule as Exclude<typeof rule, string>), text);
    }
  });
});

describe('the rule schema', () => {
  it('takes objects and short forms alike, canonical', () => {
    const parsed = egressRulesSchema.parse(['pypi.org', { name: '*.Example.COM.' }, { cidr: '10.0.5.9/24', port: 443, protocol: 'tcp' }, { cidr: '2001:db8::/32' }]);
    assert.deepEqual(parsed, [{ name: 'pypi.org' }, { name: '*.example.com' }, { cidr: '10.0.5.0/24', port: 443, protocol: 'tcp' }, { cidr: '2001:db8::/32' }]);
  });

  it('names the bad entry, escaped and cut, and never echoes control characters', () => {
    const err = assert.throws(() => checkRules(['pypi.org', `evil\n"${'x'.repeat(500)}`], 'policy.yaml'), /policy\.yaml: entry 1: "evil\\u000a\\u0022x+…": not a name/);
    void err;
    assert.throws(() => checkRules([{ name: 'ok.org', extra: 1 }], 'p'), /entry 0: unknown key "extra"/);
    assert.throws(() => checkRules([{ cidr: '10.0.0.0/8', port: 0 }], 'p'), /entry 0: port/);
    assert.throws(() => checkRules([{ name: '*.*' }], 'p'), /entry 0: name "\*\.\*": not a DNS name/);
    assert.throws(() => checkRules([42], 'p'), /entry 0: not a name/);
    assert.throws(() => checkRules({ name: 'x' }, 'p'), /p: /);
  });

  it('holds a policy to 1024 entries', () => {
    assert.equal(checkRules(Array.from({ length: 1024 }, (_, i) => `h${i}.org`), 'p').length, 1024);
    assert.throws(() => checkRules(Array.from({ length: 1025 }, (_, i) => `h${i}.org`), 'p'), /at most 1024/);
  });
});

describe('policy files', () => {
  it('reads YAML and JSON lists', () => {
    assert.deepEqual(parsePolicyText('- pypi.org\n- name: "*.pythonhosted.org"\n- cidr: 10.0.5.0/24\n  port: 443\n  protocol: tcp\n', 'p.yaml'),
      [{ name: 'pypi.org' }, { name: '*.pythonhosted.org' }, { cidr: '10.0.5.0/24', port: 443, protocol: 'tcp' }]);
    assert.deepEqual(parsePolicyText('["github.com", {"cidr": "2001:db8::/32"}]', 'p.json'), [{ name: 'github.com' }, { cidr: '2001:db8::/32' }]);
  });

  it('refuses broken syntax without quoting the file, and files over the size limit', () => {
    assert.throws(() => parsePolicyText('- secret: [unclosed', 'p.yaml'), (err: Error) => /p\.yaml: not valid YAML/.test(err.message) && !err.message.includes('secret'));
    assert.throws(() => parsePolicyText(`- ${'a'.repeat(300 * 1024)}.org`, 'p.yaml'), /larger than 262144 bytes/);
  });
});

describe('the name matcher', () => {
  const policy = compilePolicy([{ name: 'pypi.org' }, { name: '*.pythonhosted.org' }, { cidr: '10.0.5.0/24' }]);
  const table: Array<[string, boolean]> = [
    ['pypi.org', true], ['PYPI.ORG', true], ['pypi.org.', true], ['www.pypi.org', false], ['org', false],
    ['files.pythonhosted.org', true], ['a.b.pythonhosted.org', true], ['pythonhosted.org', false], ['xpythonhosted.org', false],
    ['evil.org', false], ['', false], ['pypi.org.evil.org', false],
  ];
  for (const [name, allowed] of table) it(`${name || '(root)'}: ${allowed ? 'allowed' : 'denied'}`, () => assert.equal(policy.allows(name), allowed));

  it('a namespace is under the union of its endpoints\' policies; the network gives the default', () => {
    const net = (name: string, egress?: Network['egress']): Network => ({ name, id: name, subnets: [], internal: false, upstreams: [], ...(egress && { egress }) });
    const ep = (name: string, network: string, egress?: Endpoint['egress']): Endpoint => ({ id: name, network, name, aliases: [], ipv4: [], ipv6: [], upstreams: [], ...(egress && { egress }) });
    const networks = new Map([['a', net('a', [{ name: 'from-network.org' }])], ['b', net('b')]]);
    const of = (n: string) => networks.get(n);
    assert.equal(namespacePolicy([ep('x', 'b')], of), undefined);
    const inherited = namespacePolicy([ep('x', 'a'), ep('y', 'b')], of)!;
    assert.ok(inherited.allows('from-network.org'));
    const own = namespacePolicy([ep('x', 'a', [{ name: 'own.org' }]), ep('y', 'b', [{ name: '*.other.org' }])], of)!;
    assert.ok(own.allows('own.org') && own.allows('x.other.org'));
    assert.ok(!own.allows('from-network.org'), 'an endpoint\'s own policy replaces its network\'s');
  });
});
