// Egress policies (issue 22): the one rule schema with its short forms (registry/egress-rules.ts),
// policy files, and the compiled name matcher (egress/policy.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { egressRulesSchema, egressRuleText, parseEgressRule } from '../../src/registry/egress-rules.js';
import { checkRules, compilePolicy, namespacePolicy, parsePolicyText } from '../../src/egress/policy.js';
import type { Endpoint, Network } from '../../src/registry/types.js';
import { remoteEndpoint, remoteNetwork } from '../../src/registry/document.js';
import { DecisionLog, DECISIONS_PER_NAMESPACE } from '../../src/egress/decision-log.js';
import { EgressGate } from '../../src/egress/egress-dns.js';
import { parseQuery, type Query } from '../../src/wire/query.js';
import { pino } from 'pino';
import { queryPacket } from '../helpers/packets.js';

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
    // One label "evil.pythonhosted" under org (presentation form escapes its dot): not below the zone.
    ['evil\\.pythonhosted.org', false], ['a.evil\\.pythonhosted.org', false], ['pypi\\.org', false],
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

describe('shared registries', () => {
  it('refuse egress on a remote endpoint or network: a policy is this host\'s decision', () => {
    const network = remoteNetwork({ name: 'shared', subnets: [{ subnet: '10.134.5.0/24' }] }, 'etcd:/n/shared');
    assert.throws(() => remoteEndpoint({ name: 'x', ipv4: '10.134.5.2', egress: ['pypi.org'] }, network, 'etcd:/e/x'), /egress: not accepted from a shared registry/);
    assert.throws(() => remoteNetwork({ name: 'n', egress: [] }, 'etcd:/n/n'), /egress: not accepted from a shared registry/);
  });
});

describe('the decision log', () => {
  it('keeps the last decisions of each namespace, oldest first', () => {
    const log = new DecisionLog();
    for (let i = 0; i < DECISIONS_PER_NAMESPACE + 10; i++) log.record('/run/netns/a', `n${i}.org`, i % 2 === 0);
    log.record('/run/netns/b', 'b.org', false);
    const a = log.of('/run/netns/a');
    assert.equal(a.length, DECISIONS_PER_NAMESPACE);
    assert.deepEqual([a[0].name, a.at(-1)!.name, a.at(-1)!.allowed], ['n10.org', `n${DECISIONS_PER_NAMESPACE + 9}.org`, false]);
    assert.deepEqual(log.of('/run/netns/b').map((d) => d.name), ['b.org']);
    log.retain((netns) => netns === '/run/netns/b');
    assert.deepEqual(log.of('/run/netns/a'), []);
  });

  it('writes one log line per decision only when asked, the name as a JSON string', () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'info' }, { write: (s: string) => { lines.push(JSON.parse(s)); } });
    const gate = new EgressGate({ graceSeconds: 30, logDecisions: false }, logger);
    const ns = { key: '/run/netns/a', policy: compilePolicy([{ name: 'ok.org' }]), networks: ['n'] };
    const query = (name: string) => parseQuery(queryPacket(name)) as Query;
    gate.allows(ns, query('ok.org'));
    assert.equal(lines.length, 0);
    gate.configure({ graceSeconds: 30, logDecisions: true });
    // A label with a newline byte: kept escaped as the wire reads it (wire/query.ts), then JSON-quoted by pino.
    gate.allows(ns, query('evil\n.org'));
    assert.deepEqual(lines.map((l) => [l.msg, l.netns, l.allowed]), [['egress decision', '/run/netns/a', false]]);
    assert.match(String(lines[0].name), /^evil\\010/, 'the newline byte is escaped');
    assert.deepEqual(gate.counts.get('n'), { allowed: 1, denied: 1 });
  });

  it('counts a name that left the policy while its answer was on its way as denied, and one still allowed not again', () => {
    const gate = new EgressGate({ graceSeconds: 30, logDecisions: false }, pino({ level: 'silent' }));
    const before = { key: '/run/netns/a', policy: compilePolicy([{ name: 'ok.org' }, { name: 'gone.org' }]), networks: ['n'] };
    const now = { ...before, policy: compilePolicy([{ name: 'ok.org' }]) };
    const query = (name: string) => parseQuery(queryPacket(name)) as Query;
    assert.ok(gate.allows(before, query('ok.org')) && gate.allows(before, query('gone.org')));
    assert.equal(gate.stillAllows(now, query('ok.org')), true);
    assert.equal(gate.stillAllows(now, query('gone.org')), false);
    assert.deepEqual(gate.counts.get('n'), { allowed: 2, denied: 1 });
    assert.deepEqual(gate.decisions.of('/run/netns/a').map((d) => [d.name, d.allowed]), [['ok.org', true], ['gone.org', true], ['gone.org', false]]);
  });
});
