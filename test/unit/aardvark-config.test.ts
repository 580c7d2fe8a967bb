// The aardvark configuration files netavark writes: real ones (netavark 1.4, fixtures/aardvark)
// parse into what the registry takes (their parsed forms are goldens: golden.test.ts), and hostile
// ones are refused with one line that names the file and the place, never the content.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { AARDVARK_LIMITS, parseAardvarkFile, type AardvarkNetwork, type FileOutcome } from '../../src/podman/aardvark-config.js';
import { Registry } from '../../src/registry/registry.js';
import { ROOT } from '../helpers/daemon.js';

const FIXTURES = path.join(ROOT, 'fixtures/aardvark');
const bytes = (text: string) => new TextEncoder().encode(text);

function fixture(dir: string, file: string): AardvarkNetwork {
  const outcome = parseAardvarkFile(file, readFileSync(path.join(FIXTURES, dir, file)));
  assert.equal(outcome.kind, 'network', JSON.stringify(outcome));
  return (outcome as Extract<FileOutcome, { kind: 'network' }>).network;
}

function refusal(file: string, text: string | Uint8Array, limits = AARDVARK_LIMITS): string {
  const outcome = parseAardvarkFile(file, typeof text === 'string' ? bytes(text) : text, limits);
  assert.equal(outcome.kind, 'refused', `${file} was not refused`);
  return (outcome as Extract<FileOutcome, { kind: 'refused' }>).problem;
}

const ID = 'ab'.repeat(32);
const line1 = '10.176.0.1\n';

describe('aardvark config files', () => {
  it("parse netavark 1.4's own files: gateways only or with DNS servers, four or five columns, empty IPv6 column", () => {
    const plain = fixture('netavark-1.4', 'plain');
    assert.deepEqual(plain.listen, ['10.174.0.1']);
    assert.equal(plain.record.network.internal, false);
    assert.deepEqual(plain.record.network.upstreams, []);
    assert.deepEqual(plain.record.endpoints.map((e) => [e.name, e.aliases, e.ipv4, e.ipv6]), [
      ['web', ['api'], ['10.174.0.2'], []],
      ['db', ['cache'], ['10.174.0.3'], []],
    ]);
    const dns = fixture('netavark-1.4', 'dns');
    assert.deepEqual(dns.listen, ['10.173.3.1', 'fd10:173:a::1']);
    assert.deepEqual(dns.record.network.upstreams, ['10.173.9.54']);
    const [somename, other] = dns.record.endpoints;
    assert.deepEqual([somename.name, somename.aliases, somename.upstreams], ['somename', ['web', 'alias2'], ['10.173.9.53']]);
    assert.deepEqual([other.name, other.aliases, other.upstreams], ['other', ['alias2'], []]);
  });

  it('answer names, aliases and the short id once in the registry, under dns.podman too (queries arrive lower-cased from the wire)', () => {
    const registry = new Registry();
    const dns = fixture('netavark-1.4', 'dns');
    registry.setNetwork(dns.record, 'aardvark:test');
    const view = registry.current().view();
    const a = (name: string) => {
      const found = view.lookup(name);
      return found.kind === 'found' ? found.a.map((b) => [...b].join('.')).sort() : found.kind;
    };
    assert.deepEqual(a('somename'), ['10.173.3.2']);
    assert.deepEqual(a('other'), ['10.173.3.3']); // "Other" in the file
    assert.deepEqual(a('web.dns.podman'), ['10.173.3.2']);
    assert.deepEqual(a('alias2'), ['10.173.3.2', '10.173.3.3']);
    assert.deepEqual(a('f031bf33eecb'), ['10.173.3.2']);
    assert.deepEqual(a('a031bf33eecb.dns.podman'), ['10.173.3.3']);
  });

  it('take a name that is also another container\'s name or alias, as aardvark does: it answers every holder; `<name>.<network>` is not ours', () => {
    const outcome = parseAardvarkFile('com', bytes(`${line1}${ID} 10.176.0.2  web\n${'cd'.repeat(32)} 10.176.0.3  Web\n${'ef'.repeat(32)} 10.176.0.4  db,web\n`));
    assert.equal(outcome.kind, 'network', JSON.stringify(outcome));
    const registry = new Registry();
    registry.setNetwork((outcome as Extract<FileOutcome, { kind: 'network' }>).network.record, 'aardvark:test');
    const view = registry.current().view();
    const found = view.lookup('web');
    assert.deepEqual(found.kind === 'found' ? found.a.map((b) => [...b].join('.')).sort() : found.kind, ['10.176.0.2', '10.176.0.3', '10.176.0.4']);
    assert.equal(view.lookup('web.com').kind, 'unknown');
    assert.equal(view.lookup('example.com').kind, 'unknown');
  });

  it('an internal network (%int) forwards nowhere: its DNS servers and its containers\' are dropped', () => {
    const back = fixture('current', 'back%int');
    assert.equal(back.record.network.name, 'back');
    assert.equal(back.record.network.internal, true);
    assert.deepEqual(back.record.network.upstreams, []);
    assert.deepEqual(back.record.endpoints.map((e) => e.upstreams), [[], []]);
  });

  it('merge the lines of one container id (in any case) and canonicalize IPv6', () => {
    const six = fixture('current', 'v6only');
    assert.deepEqual(six.listen, ['fd10:177::1']);
    assert.equal(six.record.endpoints.length, 1);
    const [e] = six.record.endpoints;
    assert.deepEqual([e.id, e.name, e.aliases, e.ipv4, e.ipv6], [
      '6f1c0f4e2d0c9a7f6e5d4c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a2918073', 'six', ['six.example'], [], ['fd10:177::2', 'fd10:177::3'],
    ]);
  });

  it('ignore the pid file and columns a newer netavark may add', () => {
    assert.deepEqual(parseAardvarkFile('aardvark.pid', bytes('123')), { kind: 'ignored' });
    const outcome = parseAardvarkFile('n', bytes(`10.176.0.1 10.176.9.53 future\n${ID} 10.176.0.2  web 10.176.9.54 future\n`));
    assert.equal(outcome.kind, 'network');
  });

  const hostile: [what: string, file: string, text: string | Uint8Array, problem: RegExp][] = [
    ['an empty file', 'n', '', /^n: empty/],
    ['no listen address', 'n', ` 10.176.9.53\n`, /^n: line 1: listen address: no listen address/],
    ['a bad listen address', 'n', '10.176.0.300\n', /^n: line 1: listen address 1: not an IP address/],
    ['a scoped DNS server', 'n', '10.176.0.1 fe80::1%eth0\n', /^n: line 1: DNS server 1: not an IP address/],
    ['too few columns', 'n', `${line1}${ID} 10.176.0.2\n`, /^n: line 2: 2 columns where at least 4/],
    ['no name', 'n', `${line1}${ID} 10.176.0.2  \n`, /^n: line 2: name: no name/],
    ['an IPv6 address in the IPv4 column', 'n', `${line1}${ID} fd10::2  web\n`, /^n: line 2: IPv4 address 1: not an IPv4 address/],
    ['an empty item in a list', 'n', `${line1}${ID} 10.176.0.2,,10.176.0.3  web\n`, /^n: line 2: IPv4 address 2: not an IPv4 address/],
    ['a name with a control character', 'n', `${line1}${ID} 10.176.0.2  we\u001bb\n`, /^n: line 2: name 1: not a valid name/],
    ['a name that is a path', 'n', `${line1}${ID} 10.176.0.2  ../../etc\n`, /^n: line 2: name 1: not a valid name/],
    ['a bad container id', 'n', `${line1}a/b 10.176.0.2  web\n`, /^n: line 2: id: not a container id/],
    ['a file name that is no network name', '.hidden', line1, /^\.hidden: not a network name/],
    ['a file name with a control character', 'a\u0007b', line1, /^a\\u0007b: not a network name/],
    ['not UTF-8', 'n', new Uint8Array([0x31, 0x30, 0xff, 0x0a]), /^n: not UTF-8 text/],
    ['a line of /etc/shadow', 'n', 'root:$y$j9T$secret:19000:0:99999:7:::\n', /^n: line 1: listen address 1: not an IP address$/],
    ['a CRLF line end', 'n', '10.176.0.1\r\n', /^n: line 1: listen address 1: not an IP address/],
  ];
  for (const [what, file, text, problem] of hostile) {
    it(`refuse ${what} with one line naming the file and the place, not the content`, () => {
      const message = refusal(file, text);
      assert.match(message, problem);
      assert.doesNotMatch(message, /secret|\u001b|\.\.\/|\n/);
    });
  }

  it('refuse what is over the limits: size, line length, containers, names, addresses', () => {
    const small = { ...AARDVARK_LIMITS, maxBytes: 64, maxLineLength: 200, maxContainers: 2, maxNames: 2, maxAddresses: 2, maxServers: 1 };
    assert.match(refusal('n', `${line1}${'x'.repeat(100)}`, small), /^n: larger than 64 bytes/);
    const roomy = { ...small, maxBytes: 1 << 20 };
    assert.match(refusal('n', `${line1}${ID} ${'1'.repeat(300)}  web\n`, roomy), /^n: line 2: longer than 200 characters/);
    const three = [2, 3, 4].map((n) => `${n.toString(16).repeat(64)} 10.176.0.${n}  c${n}\n`).join('');
    assert.match(refusal('n', `${line1}${three}`, roomy), /^n: more than 2 containers/);
    assert.match(refusal('n', `${line1}${ID} 10.176.0.2  a,b,c\n`, roomy), /^n: line 2: name: more than 2 names/);
    assert.match(refusal('n', `${line1}${ID} 10.176.0.2,10.176.0.3,10.176.0.4  a\n`, roomy), /^n: line 2: IPv4 address: more than 2 IPv4 addresses/);
    assert.match(refusal('n', '10.176.0.1 10.176.9.1,10.176.9.2\n', roomy), /^n: line 1: DNS server: more than 1 DNS servers/);
  });

  it('refuse a file with many problems in one capped line', () => {
    const bad = Array.from({ length: 20 }, (_, n) => `${ID.slice(0, 60)}${n.toString().padStart(4, '0')} 10.176.0.x  web\n`).join('');
    const message = refusal('n', `${line1}${bad}`);
    assert.match(message, /and 15 more$/);
  });
});
