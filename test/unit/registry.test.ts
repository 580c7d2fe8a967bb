import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { derivedId, parseDocumentText } from '../../src/registry/document.js';
import { Registry } from '../../src/registry/registry.js';
import type { NsdnsError } from '../../src/errors.js';
import { ROOT } from '../helpers/daemon.js';

const lab = () => parseDocumentText(readFileSync(path.join(ROOT, 'fixtures/lab/lab.yaml'), 'utf8'), 'lab.yaml');
const ops = () => parseDocumentText(readFileSync(path.join(ROOT, 'fixtures/lab/ops.yaml'), 'utf8'), 'ops.yaml');
const text = (found: ReturnType<ReturnType<Registry['current']>['view']>['lookup'] extends (n: string) => infer R ? R : never) =>
  found.kind === 'found' ? { a: found.a.map((b) => [...b].join('.')), aaaa: found.aaaa.length } : found;

describe('registry documents', () => {
  it('parse the fixture lab with derived ids and normalized names', () => {
    const record = lab();
    assert.equal(record.network.name, 'lab');
    assert.equal(record.network.id.length, 64);
    const web = record.endpoints.find((e) => e.name === 'web')!;
    assert.deepEqual(web.aliases, ['www', 'pool']);
    assert.deepEqual(web.services, [{ name: 'http', port: 8080, protocol: 'tcp', priority: 0, weight: 10 }]);
    assert.equal(record.endpoints.find((e) => e.name === 'db')!.health, 'unhealthy');
    assert.deepEqual(record.network.records?.map((r) => r.name), ['printer', 'docs']);
    assert.deepEqual(web.ipv4, ['10.77.0.10']);
  });

  it('reject bad input with the place of every problem', () => {
    assert.throws(() => parseDocumentText('name: "bad name"\n', 'x.yaml'), /x\.yaml: name: not a valid name/);
    assert.throws(() => parseDocumentText('name: _lead\n', 'x.yaml'), /x\.yaml: name: not a valid name/);
    assert.throws(() => parseDocumentText('name: n\nendpoints:\n  - {name: a, aliases: [.x]}\n', 'x.yaml'), /endpoints\.0\.aliases\.0: not a valid name/);
    assert.throws(() => parseDocumentText('name: n\nendpoints:\n  - {name: a, aliases: [x..y]}\n', 'x.yaml'), /endpoints\.0\.aliases\.0: not a valid name/);
    assert.throws(() => parseDocumentText('name: n\nendpoints:\n  - name: a\n    ipv4: 10.0.0.300\n', 'x.yaml'), /endpoints\.0\.ipv4/);
    assert.throws(() => parseDocumentText('name: n\nendpoints:\n  - {name: a}\n  - {name: b, aliases: [a]}\n', 'x.yaml'), /alias "a" of "b" is the name of endpoint "a"/);
    // An id answers as a name (full, and its first 12 characters): it may not be another endpoint's name, nor differ from another id by case only.
    assert.throws(() => parseDocumentText('name: n\nendpoints:\n  - {name: abcdefabcdef}\n  - {name: b, id: abcdefabcdef0000}\n', 'x.yaml'), /"abcdefabcdef" of "abcdefabcdef" is the id of endpoint "b"/);
    assert.throws(() => parseDocumentText('name: n\nendpoints:\n  - {name: a, id: ABCDEFABCDEF00}\n  - {name: b, id: abcdefabcdef00}\n', 'x.yaml'), /endpoint id abcdefabcdef00 appears twice/);
    // Long ids (64 hex digits) are indexed by their short id only: twice is still found, and so is one equal to a derived id.
    const long = 'ab12'.repeat(16);
    assert.throws(() => parseDocumentText(`name: n\nendpoints:\n  - {name: a, id: ${long}}\n  - {name: b}\n  - {name: c, id: ${long.toUpperCase()}}\n`, 'x.yaml'), new RegExp(`endpoint id ${long} appears twice`));
    assert.throws(() => parseDocumentText(`name: n\nendpoints:\n  - {name: a}\n  - {name: b, id: ${derivedId('endpoint', 'n', 'a')}}\n`, 'x.yaml'), /appears twice/);
    assert.doesNotThrow(() => parseDocumentText(`name: n\nendpoints:\n  - {name: a, id: ${long}}\n  - {name: b, id: ${long.slice(0, 12)}${'f'.repeat(52)}}\n`, 'x.yaml'));
    assert.throws(() => parseDocumentText('name: n\nendpoints:\n  - {name: a, id: web-1}\n  - {name: web-1}\n', 'x.yaml'), /"web-1" of "web-1" is the id of endpoint "a"/);
    assert.throws(() => parseDocumentText('name: n\nendpoints:\n  - {name: a, id: web-1}\n  - {name: b, id: WEB-1}\n', 'x.yaml'), /endpoint id WEB-1 appears twice/);
    assert.throws(() => parseDocumentText('name: n\nendpoints:\n  - {name: a, id: Xy}\n  - {name: b, id: xy}\n', 'x.yaml'), /endpoint id xy appears twice/);
    assert.throws(() => parseDocumentText('name: n\nendpoints:\n  - {name: a, id: Web}\n  - {name: web}\n', 'x.yaml'), /"web" of "web" is the id of endpoint "a"/);
    assert.throws(() => parseDocumentText('name: n\nendpoints:\n  - {name: a}\n  - {name: a}\n', 'x.yaml'), /name "a" is used by two endpoints/);
    assert.throws(() => parseDocumentText('name: n\nsubnets: [{subnet: 10.0.0.0/24}]\nendpoints:\n  - {name: a, ipv4: 10.1.0.1}\n', 'x.yaml'), /outside the network's subnets/);
    assert.throws(() => parseDocumentText('name: n\nsubnets: [{subnet: 10.0.0.0/24, gateway: 10.9.0.1}]\n', 'x.yaml'), /gateway 10\.9\.0\.1 is outside/);
    assert.throws(() => parseDocumentText('name: [', 'x.yaml'), /not valid YAML/);
    assert.throws(() => parseDocumentText('name: n\nsurprise: 1\n', 'x.yaml'), /Unrecognized key/);
  });
});

/** The message parseDocumentText throws for `text`. */
function problem(text: string, file = 'x.yaml'): string {
  try {
    parseDocumentText(text, file);
  } catch (err) {
    return (err as Error).message;
  }
  assert.fail(`accepted: ${JSON.stringify(text)}`);
}

describe('registry documents: hostile input', () => {
  const endpoint = (fields: string) => `name: n\nendpoints:\n  - {name: a, ${fields}}\n`;

  it('refuse netns paths outside /run/netns/NAME and /proc/PID[/task/TID]/ns/net', () => {
    for (const netns of ['/etc/shadow', '/run/netns/../../etc/shadow', '/run/netns/a/b', '/run/netns/', '/run/netns/.', '/run/netns/..',
      '/proc/self/ns/net', '/proc/1/ns/../ns/net', '/proc/1/ns/mnt', 'web', '/run/netns/a\\0b', '/var/run/netns/web', '/run/netns/web/']) {
      assert.match(problem(endpoint(`netns: "${netns}"`)), /endpoints\.0\.netns: not an allowed namespace path/, netns);
    }
    for (const netns of ['/run/netns/web', '/run/netns/a.b_c-1']) {
      assert.equal(parseDocumentText(endpoint(`netns: "${netns}"`), 'x.yaml').endpoints[0].netns, netns);
    }
    // A hand-written file may not point the root daemon at a process's namespace (PID 1's is the host's).
    for (const netns of ['/proc/1/ns/net', '/proc/123/ns/net', '/proc/1/task/2/ns/net']) {
      assert.match(problem(endpoint(`netns: "${netns}"`)), /endpoints\.0\.netns: a registry file may name only \/run\/netns\/NAME namespaces/, netns);
    }
  });

  it('refuse interface names, MACs, host IPs and ports that are not exactly that', () => {
    for (const bridge of ['x\\"; flush ruleset; \\"', 'br\\ndelete table inet filter', 'abcdefghijklmnop', '.', '..', 'a b', 'a/b', '@set', 'eth*', '']) {
      assert.match(problem(`name: n\nbridge: "${bridge}"\n`), /bridge: not a valid interface name/, bridge);
    }
    assert.equal(parseDocumentText('name: n\nbridge: abcdefghijklmno\n', 'x.yaml').network.bridge, 'abcdefghijklmno', '15 characters fit');
    assert.match(problem(endpoint('ifname: "eth0\\n"')), /ifname: not a valid interface name/);
    assert.match(problem(endpoint('hostIf: "../x"')), /hostIf: not a valid interface name/);
    assert.match(problem(endpoint('mac: "02:42:ac:11:00:02 netns 1"')), /mac: not a MAC address/);
    for (const hostIp of ['127.0.0.1\\ndelete table inet filter', '127.0.0.1 tcp dport 1 accept', '0x7f.1', '127.1', '::1']) {
      assert.match(problem(endpoint(`ports: [{hostIp: "${hostIp}", hostPort: 1, containerPort: 2}]`)), /ports\.0\.hostIp: not an IPv4 address/, hostIp);
    }
    assert.match(problem(endpoint('ports: [{hostPort: 0, containerPort: 65536}]')), /hostPort: not a port.*containerPort: not a port/);
    assert.match(problem('name: n\nupstreams: ["10.0.0.1:99999"]\n'), /upstreams\.0: not an upstream address/);
    assert.match(problem(`name: n\noptions: {k: "${'v'.repeat(2000)}"}\n`), /options\.k: not a valid option value/);
  });

  it('never echo file content: syntax errors give line and column, schema errors the key path', () => {
    const shadow = 'root:$6$SECRETHASH:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n';
    for (const file of ['x.yaml', 'x.json']) assert.doesNotMatch(problem(shadow, file), /SECRET|root|daemon/, file);
    assert.equal(problem('name: [SECRET', 'x.yaml'), 'x.yaml: not valid YAML (line 1, column 14: BAD_INDENT)');
    assert.match(problem('{"name": "n",\n "x": SECRET}', 'x.json'), /^x\.json: not valid JSON/);
    assert.doesNotMatch(problem('{"name": "n",\n "x": SECRET}', 'x.json'), /SECRET/);
    const values = problem('name: n\nbridge: SECRET1 x\nendpoints: [{name: a, netns: /etc/SECRET2, ipv4: SECRET3, mac: SECRET4}]\n');
    assert.doesNotMatch(values, /SECRET/);
    assert.match(values, /bridge: .*endpoints\.0\.ipv4: .*endpoints\.0\.netns: .*endpoints\.0\.mac: /);
  });

  it('escape and cut unknown keys, and cap the number of problems and the length', () => {
    assert.match(problem(`name: n\n"${'K'.repeat(500)}": 1\n`), /Unrecognized key "<a key of 500 characters>"/);
    assert.match(problem('name: n\nsurprize: 1\n'), /Unrecognized key "surprize"/, 'a typo is named');
    const control = problem('name: n\n"a\\nb\\u001b[31m": 1\noptions: {"k\\n": v}\n');
    assert.ok(!/[\u0000-\u001f]/.test(control), 'control characters never reach the message');
    assert.match(control, /options\.<a key of 2 characters>: /);
    const many = problem(`name: n\nendpoints:\n${Array.from({ length: 50 }, (_, i) => `  - {name: e${i}, ipv4: bad, ipv6: bad, mac: bad}`).join('\n')}\n`);
    assert.equal(many.split('; ').length, 11);
    assert.match(many, /and 140 more$/);
    assert.ok(many.length <= 1001);
  });
});

describe('registry views', () => {
  const registry = new Registry();
  registry.setNetwork(lab(), 'test');
  registry.setNetwork(ops(), 'test');

  it('find names, aliases, name.network and name.domain; all case-folded by the caller', () => {
    const view = registry.current().view();
    assert.deepEqual(text(view.lookup('web')), { a: ['10.77.0.10'], aaaa: 0 });
    assert.deepEqual(text(view.lookup('www')), { a: ['10.77.0.10'], aaaa: 0 });
    assert.deepEqual(text(view.lookup('db.lab')), { a: ['10.77.0.11'], aaaa: 1 });
    assert.deepEqual(text(view.lookup('mon.ops.example')), { a: ['10.78.0.5'], aaaa: 0 });
    assert.equal(view.lookup('nope.lab').kind, 'nxdomain');
    assert.equal(view.lookup('lab').kind, 'apex');
    assert.equal(view.lookup('example.com').kind, 'unknown');
  });

  it('see only the networks they are scoped to', () => {
    const onlyOps = registry.current().view(['ops']);
    assert.equal(onlyOps.lookup('web').kind, 'unknown');
    assert.equal(onlyOps.lookup('web.lab').kind, 'unknown', 'another network\'s zone is not ours in this view');
    assert.equal(onlyOps.lookup('mon').kind, 'found');
  });

  it('merge a name on several networks without duplicates, and answer PTR with a forward-resolvable name', () => {
    const r = new Registry();
    r.setNetwork(parseDocumentText('name: a\nendpoints: [{name: svc, ipv4: [10.1.0.5, 10.9.9.9]}]\n', 'a'), 't');
    r.setNetwork(parseDocumentText('name: b\nendpoints: [{name: svc, ipv4: [10.2.0.5, 10.9.9.9]}]\n', 'b'), 't');
    const view = r.current().view();
    assert.deepEqual(text(view.lookup('svc')), { a: ['10.1.0.5', '10.9.9.9', '10.2.0.5'], aaaa: 0 });
    assert.deepEqual(view.reverse('10.2.0.5'), ['svc.b']);
    assert.deepEqual(text(view.lookup('svc.b')), { a: ['10.2.0.5', '10.9.9.9'], aaaa: 0 });
  });

  it('swap snapshots whole: an old snapshot keeps answering as it was', () => {
    const r = new Registry();
    r.setNetwork(lab(), 'files');
    const before = r.current();
    r.setNetwork(parseDocumentText('name: lab\nendpoints: [{name: web, ipv4: 10.77.0.99}]\n', 'lab'), 'files');
    assert.deepEqual(text(before.view().lookup('web')), { a: ['10.77.0.10'], aaaa: 0 });
    assert.deepEqual(text(r.current().view().lookup('web')), { a: ['10.77.0.99'], aaaa: 0 });
    assert.equal(r.current().view().lookup('www').kind, 'unknown');
  });

  it('refuse a network that another source already defines', () => {
    const r = new Registry();
    r.setNetwork(lab(), 'file:a.yaml');
    assert.throws(() => r.setNetwork(lab(), 'file:b.yaml'), /already defined by file:a\.yaml/);
  });

  it('refuse a subnet that overlaps another source\'s network, either way round; the same source may', () => {
    const r = new Registry();
    const withSubnet = (name: string, subnet: string) => parseDocumentText(`name: ${name}\nsubnets: [{subnet: "${subnet}"}]\n`, `${name}.yaml`);
    r.setNetwork(withSubnet('own', '10.184.0.0/24'), 'state');
    r.setNetwork(withSubnet('own6', 'fd84::/64'), 'state');
    for (const subnet of ['10.184.0.0/16', '10.184.0.128/25', 'fd84::/48', 'fd84:0:0:0:8000::/65']) {
      assert.throws(() => r.setNetwork(withSubnet('evil', subnet), 'file:/r/evil.yaml'), /overlaps .* of network "own6?" from nsdns's own connects/, subnet);
    }
    r.setNetwork(withSubnet('evil', '10.185.0.0/24'), 'file:/r/evil.yaml');
    r.setNetwork(withSubnet('more', '10.184.0.0/25'), 'state');
  });

  it('refuse a network id that begins like another network\'s (its short id), and free it with the network', () => {
    const r = new Registry();
    const withId = (name: string, id: string) => parseDocumentText(`name: ${name}\nid: ${id}\n`, `${name}.yaml`);
    r.setNetwork(withId('own', '0123456789abcdef'), 'state');
    assert.throws(() => r.setNetwork(withId('copy', '0123456789ABffff'), 'file:/r/copy.yaml'), /begins like the id of network "own" from nsdns's own connects/);
    r.setNetwork(withId('own', 'fedcba9876543210'), 'state');
    r.setNetwork(withId('copy', '0123456789ABffff'), 'file:/r/copy.yaml');
    assert.equal(r.current().find('0123456789ab')?.network.name, 'copy');
  });

  it('view upstreams: the endpoint\'s own first, else its network\'s', () => {
    const r = new Registry();
    r.setNetwork(parseDocumentText('name: n\nupstreams: [10.0.0.53]\nendpoints:\n  - {name: a, ipv4: 10.0.0.2, upstreams: ["10.0.0.54:5353"]}\n  - {name: b, ipv4: 10.0.0.3}\n', 'n'), 't');
    const view = r.current().view();
    assert.deepEqual(view.upstreamsFor(view.endpointsAt('10.0.0.2')), ['10.0.0.54:5353']);
    assert.deepEqual(view.upstreamsFor(view.endpointsAt('10.0.0.3')), ['10.0.0.53']);
    assert.deepEqual(view.endpointsAt('10.0.0.4'), []);
  });
});

describe('finding a network as a person names it', () => {
  const record = (name: string, id: string) => ({ network: { name, id, subnets: [], internal: false, upstreams: [] }, endpoints: [] });
  const registry = new Registry();
  registry.setNetwork(record('MixedNet', 'ab12cd34ef56'.padEnd(64, '0')), 'a.yaml');
  registry.setNetwork(record('other', 'ab99'.padEnd(64, '1')), 'b.yaml');

  it('by name in any case, full id, short id and unique prefix; an ambiguous prefix is refused', () => {
    const find = (q: string) => registry.current().find(q)?.network.name;
    assert.equal(find('MixedNet'), 'MixedNet');
    assert.equal(find('mixednet'), 'MixedNet');
    assert.equal(find('ab12cd34ef56'.padEnd(64, '0')), 'MixedNet');
    assert.equal(find('ab12cd34ef56'), 'MixedNet');
    assert.equal(find('ab1'), 'MixedNet');
    assert.equal(find('nope'), undefined);
    assert.throws(() => find('ab'), /"ab" matches more than one network \("MixedNet", "other"\)/);
  });

  it('answers names under the network zone typed in any case', () => {
    assert.deepEqual(registry.current().networks.get('MixedNet')!.zones, ['mixednet']);
  });
});

describe("names with '_', as Docker and Compose make them", () => {
  it('a registry file with proj_web_1, an alias my_db and the network proj_default is answered', () => {
    const record = parseDocumentText([
      'name: proj_default', 'subnets: [{subnet: 10.9.0.0/24}]', 'endpoints:',
      '  - {name: proj_web_1, ipv4: 10.9.0.2, aliases: [my_db, web.proj_x]}', '',
    ].join('\n'), 'compose.yaml');
    const registry = new Registry();
    registry.setNetwork(record, 'compose.yaml');
    const view = registry.current().view();
    assert.deepEqual(text(view.lookup('proj_web_1')), { a: ['10.9.0.2'], aaaa: 0 });
    assert.deepEqual(text(view.lookup('my_db')), { a: ['10.9.0.2'], aaaa: 0 });
    assert.deepEqual(text(view.lookup('proj_web_1.proj_default')), { a: ['10.9.0.2'], aaaa: 0 });
  });
});

describe('service discovery in the registry', () => {
  const doc = `name: sd
domain: sd.example
subnets: [{subnet: 10.50.0.0/24, gateway: 10.50.0.1}, {subnet: fd50::/64, gateway: "fd50::1"}]
records:
  - {name: printer, type: A, value: 10.50.0.200}
  - {name: docs, type: CNAME, value: web1}
  - {name: out, type: CNAME, value: www.example.com}
  - {name: notes, type: TXT, value: "hello world"}
  - {name: _ldap._tcp, type: SRV, port: 389, target: web1}
endpoints:
  - name: web1
    aliases: [pool]
    ipv4: 10.50.0.11
    services: [{name: http, port: 8080}]
    labels: {tier: front, "com.example/owner": ops}
  - name: web2
    aliases: [pool]
    ipv4: 10.50.0.12
    services: [{name: http, port: 8081, priority: 1, weight: 5}]
  - name: web3
    aliases: [pool]
    ipv4: 10.50.0.13
    healthHideOwn: true
`;
  const setup = () => {
    const registry = new Registry();
    registry.setNetwork(parseDocumentText(doc, 'sd.yaml'), 'test');
    const ids = Object.fromEntries(registry.current().networks.get('sd')!.endpoints.map((e) => [e.name, e.id]));
    return { registry, ids };
  };
  const found = (r: ReturnType<Registry['current']>['view'] extends (...a: never[]) => infer V ? V : never, name: string) => {
    const result = (r as { lookup(n: string): ReturnType<ReturnType<ReturnType<Registry['current']>['view']>['lookup']> }).lookup(name);
    assert.equal(result.kind, 'found', name);
    return result as Extract<typeof result, { kind: 'found' }>;
  };
  const ips = (bufs: readonly Buffer[]) => bufs.map((b) => [...b].join('.')).sort();

  it('answer a shared alias with every holder, and its services as SRV under every name form', () => {
    const view = setup().registry.current().view();
    assert.deepEqual(ips(found(view, 'pool').a), ['10.50.0.11', '10.50.0.12', '10.50.0.13']);
    for (const name of ['_http._tcp.pool', '_http._tcp.pool.sd', '_http._tcp.pool.sd.example']) {
      assert.deepEqual(found(view, name).srv.map((s) => `${s.priority} ${s.weight} ${s.port} ${s.target}`).sort(), ['0 0 8080 web1.sd.example', '1 5 8081 web2.sd.example'], name);
    }
    const own = found(view, '_http._tcp.web1.sd');
    assert.deepEqual(own.srv.map((s) => [s.port, ips(s.a)]), [[8080, ['10.50.0.11']]]);
    assert.equal(view.lookup('_nope._tcp.web1').kind, 'nxdomain');
    assert.equal(view.lookup('_http._udp.pool').kind, 'nxdomain');
    assert.equal(view.lookup('_http._tcp.elsewhere.example').kind, 'unknown');
  });

  it('give labels as TXT and static records (A with PTR, CNAME, TXT, SRV)', () => {
    const view = setup().registry.current().view();
    assert.deepEqual([...found(view, 'web1').txt].sort(), ['com.example/owner=ops', 'tier=front']);
    assert.deepEqual(ips(found(view, 'printer.sd').a), ['10.50.0.200']);
    assert.deepEqual(view.reverse('10.50.0.200'), ['printer.sd.example']);
    const docs = found(view, 'docs');
    assert.equal(docs.cname?.target, 'web1.sd.example');
    assert.deepEqual(ips(docs.cname!.local!.a), ['10.50.0.11']);
    assert.deepEqual(found(view, 'out').cname, { target: 'www.example.com', local: undefined });
    assert.deepEqual(found(view, 'notes').txt, ['hello world']);
    assert.deepEqual(found(view, '_ldap._tcp.sd').srv.map((s) => [s.port, s.target, ips(s.a)]), [[389, 'web1.sd.example', ['10.50.0.11']]]);
  });

  it('leave unhealthy holders out of shared names, fail open when none is healthy, and see a change at the next lookup', () => {
    const { registry, ids } = setup();
    const opened: string[] = [];
    registry.on('failOpen', (name) => opened.push(name));
    const view = registry.current().view();
    assert.equal(found(view, 'pool').a.length, 3, 'memoized before the change');
    registry.health.set('sd', ids.web1, 'unhealthy');
    registry.health.set('sd', ids.web3, 'starting');
    assert.deepEqual(ips(found(view, 'pool').a), ['10.50.0.12'], 'the same view sees the change');
    assert.deepEqual(found(view, '_http._tcp.pool').srv.map((s) => s.target), ['web2.sd.example']);
    assert.deepEqual(ips(found(view, 'web1').a), ['10.50.0.11'], 'an own name keeps answering');
    assert.deepEqual(found(view, 'web3').a, [], 'unless healthHideOwn is set');
    assert.deepEqual(found(view, '_http._tcp.web1').srv.length, 1);
    registry.health.set('sd', ids.web2, 'unhealthy');
    const all = found(view, 'pool');
    assert.equal(all.a.length, 3, 'fail open: all are answered');
    assert.equal(all.failOpen, true);
    assert.ok(opened.includes('pool'), 'the registry says so');
    registry.health.set('sd', ids.web2, 'healthy');
    assert.equal(found(view, 'pool').failOpen, false);
  });

  it('take health from a file', () => {
    const registry = new Registry();
    registry.setNetwork(parseDocumentText('name: h\nendpoints:\n  - {name: a, aliases: [p], ipv4: 10.0.0.1, health: unhealthy}\n  - {name: b, aliases: [p], ipv4: 10.0.0.2}\n', 'h.yaml'), 'test');
    assert.deepEqual(ips(found(registry.current().view(), 'p').a), ['10.0.0.2']);
  });

  it('answer host.nsdns.internal data from the first non-internal network', () => {
    const registry = new Registry();
    registry.setNetwork(parseDocumentText('name: inner\ninternal: true\nsubnets: [{subnet: 10.60.0.0/24, gateway: 10.60.0.1}]\n', 'i.yaml'), 'test');
    registry.setNetwork(parseDocumentText(doc, 'sd.yaml'), 'test');
    const host = registry.current().view(['inner', 'sd']).hostGateway('host.nsdns.internal')!;
    assert.deepEqual(ips(host.a), ['10.50.0.1']);
    assert.equal(host.aaaa.length, 1);
    assert.equal(registry.current().view(['inner']).hostGateway('host.nsdns.internal'), null);
  });

  it('keep network names as typed and compare zones in lower case', () => {
    const registry = new Registry();
    registry.setNetwork(parseDocumentText('name: MixedNet\nendpoints: [{name: a, ipv4: 10.0.0.1}]\n', 'm.yaml'), 'test');
    const net = registry.current().networks.get('MixedNet')!;
    assert.deepEqual([net.zones, net.canonicalZone], [['mixednet'], 'mixednet']);
    assert.deepEqual(registry.current().view().reverse('10.0.0.1'), ['a.mixednet']);
  });

  it('refuse clashing names and garbage in services, labels, records and health', () => {
    const ep = (fields: string) => `name: n\nendpoints:\n  - {name: a, ${fields}}\n  - {name: b}\n`;
    assert.match(problem(ep('aliases: [b]')), /alias "b" of "a" is the name of endpoint "b"/);
    assert.match(problem(`name: n\nrecords: [{name: a, type: A, value: 10.0.0.1}]\nendpoints: [{name: a}]\n`), /record "a" has the name of an endpoint or alias/);
    assert.match(problem(ep('aliases: [_x]')), /aliases\.0: not a valid name/);
    assert.match(problem(ep('services: [{name: "_http", port: 80}]')), /services\.0\.name: not a service name/);
    assert.match(problem(ep('services: [{name: http, port: 0}]')), /services\.0\.port: not a port/);
    assert.match(problem(ep('services: [{name: http, port: 80, protocol: sctp}]')), /services\.0\.protocol/);
    assert.match(problem(ep('services: [{name: http, port: 80}, {name: http, port: 81}]')), /declared twice/);
    assert.match(problem(ep(`services: [${Array.from({ length: 33 }, (_, i) => `{name: s${i}, port: 80}`).join(', ')}]`)), /at most 32 services/);
    assert.match(problem(ep(`labels: {k: "${'v'.repeat(300)}"}`)), /longer than 255 bytes/);
    assert.match(problem(ep('labels: {"a=b": c}')), /endpoints\.0\.labels\.<a key of 3 characters>: Invalid key/);
    assert.match(problem(ep('labels: {k: "line\\nbreak"}')), /not a valid label value/);
    assert.match(problem(ep(`labels: {${Array.from({ length: 65 }, (_, i) => `k${i}: v`).join(', ')}}`)), /at most 64 labels/);
    assert.match(problem(ep('health: sick')), /health/);
    assert.match(problem('name: n\nrecords: [{name: p, type: A, value: "fd00::1"}]\n'), /records\.0\.value: not an IPv4 address/);
    assert.match(problem('name: n\nrecords: [{name: p, type: MX, value: x}]\n'), /records\.0\.type/);
    assert.match(problem('name: n\nrecords: [{name: "a..b", type: A, value: 10.0.0.1}]\n'), /records\.0\.name: not a valid record name/);
    assert.match(problem('name: n\nrecords: [{name: s, type: SRV, port: 1, target: "x y"}]\n'), /records\.0\.target: not a valid target name/);
    assert.match(problem('name: n\nrecords: [{name: c, type: CNAME, value: x}, {name: c, type: A, value: 10.0.0.1}]\n'), /is a CNAME and cannot have other records/);
    assert.match(problem(`name: n\nrecords: [${Array.from({ length: 257 }, (_, i) => `{name: r${i}, type: A, value: 10.0.0.1}`).join(', ')}]\n`), /at most 256 records/);
    assert.match(problem('name: n\nlabels: {__proto__: x}\n'), /labels/);
  });
});

describe('namespaces and their source', () => {
  const net = (name: string, endpoints: Array<{ name: string; ip: string; netns?: string }>) => parseDocumentText(
    `name: ${name}\nendpoints:\n${endpoints.map((e) => `  - {name: ${e.name}, ipv4: ${e.ip}${e.netns ? `, netns: ${e.netns}` : ''}}`).join('\n')}\n`, `${name}.yaml`);

  it('refuses a network that puts endpoints in a namespace another source serves, in either order', () => {
    const registry = new Registry();
    registry.setNetwork(net('own', [{ name: 'a', ip: '10.0.0.2', netns: '/run/netns/x' }]), 'state');
    registry.setNetwork(net('own2', [{ name: 'b', ip: '10.0.1.2', netns: '/run/netns/x' }]), 'state');
    assert.throws(() => registry.setNetwork(net('evil', [{ name: 'e', ip: '10.1.0.2', netns: '/run/netns/x' }]), 'file:/r/evil.yaml'),
      (err: NsdnsError) => err.code === 'ERR_REGISTRY_CONFLICT' && /namespace \/run\/netns\/x is served by network "own" from nsdns's own connects; .* registry file \/r\/evil\.yaml may not add to it/.test(err.message));
    assert.equal(registry.current().networks.has('evil'), false);
    assert.deepEqual(registry.otherOwner('/run/netns/x', 'state'), undefined);
    // The namespace freed (its endpoints gone), a file may serve it; then the state may not.
    registry.setNetwork(net('own', [{ name: 'a', ip: '10.0.0.2' }]), 'state');
    registry.removeNetwork('own2', 'state');
    registry.setNetwork(net('evil', [{ name: 'e', ip: '10.1.0.2', netns: '/run/netns/x' }]), 'file:/r/evil.yaml');
    assert.deepEqual(registry.otherOwner('/run/netns/x', 'state'), { network: 'evil', source: 'file:/r/evil.yaml' });
    assert.throws(() => registry.setNetwork(net('own', [{ name: 'a', ip: '10.0.0.2', netns: '/run/netns/x' }]), 'state'), /served by network "evil" from registry file/);
    // Its own network replaced by the same source is no conflict.
    registry.setNetwork(net('evil', [{ name: 'e', ip: '10.1.0.3', netns: '/run/netns/x' }]), 'file:/r/evil.yaml');
    assert.throws(() => registry.setNetwork(net('copy', [{ name: 'c', ip: '10.2.0.3', netns: '/run/netns/x' }]), 'file:/r/copy.yaml'), /served by network "evil"/);
  });

  it('knows one namespace under two paths by its identity, and looks again before refusing', () => {
    const identities = new Map([['/run/netns/x', '4:100'], ['/run/netns/x2', '4:100'], ['/proc/42/ns/net', '4:100'], ['/run/netns/y', '4:200']]);
    const registry = new Registry({ identify: (p) => identities.get(p) });
    registry.setNetwork(net('own', [{ name: 'a', ip: '10.0.0.2', netns: '/run/netns/x' }]), 'state');
    assert.throws(() => registry.setNetwork(net('evil', [{ name: 'e', ip: '10.1.0.2', netns: '/run/netns/x2' }]), 'file:/r/evil.yaml'),
      /namespace \/run\/netns\/x2 is served by network "own" from nsdns's own connects/);
    registry.setNetwork(net('filed', [{ name: 'f', ip: '10.2.0.2', netns: '/run/netns/y' }]), 'file:/r/filed.yaml');
    identities.set('/proc/43/ns/net', '4:200');
    assert.deepEqual(registry.otherOwner('/proc/43/ns/net', 'state'), { network: 'filed', source: 'file:/r/filed.yaml' });
    assert.deepEqual(registry.otherOwner('/proc/43/ns/net', 'state', undefined, '4:200'), { network: 'filed', source: 'file:/r/filed.yaml' });
    // y replaced: the new namespace at /proc/43 is no longer the one the file serves.
    identities.set('/run/netns/y', '4:300');
    assert.equal(registry.otherOwner('/proc/43/ns/net', 'state'), undefined);
  });
});
