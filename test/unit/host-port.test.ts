// ADDRESS:PORT has one parser and one printer (src/host-port.ts); each caller picks its rules
// (a default port, port 0, zone ids) and keeps its own message. The table is the grammar.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatHostPort, parseAddress, parseHostPort, type HostPortRules } from '../../src/host-port.js';
import { parseUpstream } from '../../src/resolver/upstream-address.js';
import { parseListenSpec } from '../../src/daemon/listen-spec.js';
import { isUpstreamAddress } from '../../src/registry/document.js';
import { validate } from '../../src/daemon/config.js';
import { formatResult, resultJson, type QueryRequest, type QueryResult } from '../../src/cli/query-client.js';

const DEFAULT_53: HostPortRules = { defaultPort: 53 };
const SERVER: HostPortRules = { defaultPort: 53, allowZero: false, allowZone: true };

describe('parseHostPort', () => {
  it('takes literal addresses with a port, in canonical form', () => {
    const good: [string, HostPortRules, string, number, 4 | 6][] = [
      ['10.0.0.1:53', {}, '10.0.0.1', 53, 4],
      ['0.0.0.0:0', {}, '0.0.0.0', 0, 4],
      ['255.255.255.255:65535', {}, '255.255.255.255', 65535, 4],
      ['10.0.0.1:053', {}, '10.0.0.1', 53, 4], // a decimal port: its leading zero is no octal
      ['[::1]:53', {}, '::1', 53, 6],
      ['[FD00:0:0::0002]:5353', {}, 'fd00::2', 5353, 6],
      ['[0:0:0:0:0:0:0:1]:53', {}, '::1', 53, 6],
      ['[::ffff:10.0.0.1]:53', {}, '10.0.0.1', 53, 4], // IPv4-mapped is the IPv4 address
      ['[fe80::1%eth0]:53', { allowZone: true }, 'fe80::1%eth0', 53, 6],
      ['[FE80::1%br-0.a_b]:53', { allowZone: true }, 'fe80::1%br-0.a_b', 53, 6],
      ['10.0.0.1', DEFAULT_53, '10.0.0.1', 53, 4],
      ['fd00::2', DEFAULT_53, 'fd00::2', 53, 6],
      ['[fd00::2]', DEFAULT_53, 'fd00::2', 53, 6],
      ['fd00::2:53', DEFAULT_53, 'fd00::2:53', 53, 6], // unbracketed IPv6 takes no port: the address ends in :53
      ['fe80::1%eth0', SERVER, 'fe80::1%eth0', 53, 6],
      ['10.0.0.1:5353', SERVER, '10.0.0.1', 5353, 4],
    ];
    for (const [text, rules, host, port, family] of good) {
      assert.deepEqual(parseHostPort(text, rules), { host, port, family }, text);
    }
  });

  it('refuses everything else', () => {
    const bad: [string, HostPortRules][] = [
      ['', {}], ['', DEFAULT_53], [':53', {}], ['10.0.0.1:', {}], ['10.0.0.1', {}], ['fd00::2', {}], ['[fd00::2]', {}],
      ['10.0.0.1:65536', {}], ['10.0.0.1:99999', {}], ['10.0.0.1:-1', {}], ['10.0.0.1:5e3', {}], ['10.0.0.1:000053', {}],
      ['10.0.0.1:0', { allowZero: false }], ['fd00::2', { defaultPort: 0, allowZero: false }],
      [' 10.0.0.1:53', {}], ['10.0.0.1:53 ', {}], ['10.0.0.1 :53', {}], ['[ ::1]:53', {}], ['10.0.0.1:53\n', {}],
      ['010.0.0.1:53', {}], ['10.0.0.01', DEFAULT_53], ['10.1:53', {}], ['10.1', DEFAULT_53], ['0x0a.0.0.1', DEFAULT_53], ['1', DEFAULT_53],
      ['10.0.0.256:53', {}], ['1.2.3.4.5:53', {}],
      ['localhost:53', {}], ['localhost', DEFAULT_53], ['example.com:53', {}], ['nameserver', DEFAULT_53],
      ['[10.0.0.1]:53', {}], ['::1:53', {}], ['[::1', DEFAULT_53], ['::1]', DEFAULT_53], ['[[::1]]:53', {}], ['[::1]53', {}], ['[::1]:', {}],
      ['[fe80::1%eth0]:53', {}], ['fe80::1%eth0', DEFAULT_53], ['[fe80::1%]:53', { allowZone: true }],
      ['[fe80::1%eth0 x]:53', { allowZone: true }], ['[fe80::1%a-very-long-interface]:53', { allowZone: true }], ['[fe80::1%eth0%1]:53', { allowZone: true }],
      ['[::ffff:10.0.0.1%eth0]:53', { allowZone: true }], ['fd00::/8', DEFAULT_53], ['10.0.0.0/8', DEFAULT_53],
      [`[${'0:'.repeat(40)}1]:53`, {}], ['10.0.0.1:53'.padStart(100, '0'), {}],
    ];
    for (const [text, rules] of bad) assert.equal(parseHostPort(text, rules), undefined, `${JSON.stringify(text)} ${JSON.stringify(rules)}`);
    assert.equal(parseHostPort(undefined as unknown as string), undefined);
    assert.equal(parseHostPort(53 as unknown as string), undefined);
  });

  it('parseAddress takes a bare address only', () => {
    assert.deepEqual(parseAddress('10.0.0.1'), { host: '10.0.0.1', family: 4 });
    assert.deepEqual(parseAddress('FD00::0002'), { host: 'fd00::2', family: 6 });
    assert.deepEqual(parseAddress('fe80::1%eth0', { allowZone: true }), { host: 'fe80::1%eth0', family: 6 });
    for (const text of ['10.0.0.1:53', '[fd00::2]', '[fd00::2]:53', 'fe80::1%eth0', '010.0.0.1', 'localhost', '', ' 10.0.0.1']) {
      assert.equal(parseAddress(text), undefined, text);
    }
  });

  it('prints IPv6 in brackets, so the port stays apart from the address', () => {
    assert.equal(formatHostPort('10.0.0.1', 53), '10.0.0.1:53');
    assert.equal(formatHostPort('fd00::2', 53), '[fd00::2]:53');
    assert.equal(formatHostPort('fe80::1%eth0', 0), '[fe80::1%eth0]:0');
    for (const text of ['10.0.0.1:53', '[fd00::2]:5353', '[fe80::1%eth0]:53']) {
      const at = parseHostPort(text, { allowZone: true })!;
      assert.equal(formatHostPort(at.host, at.port), text);
    }
  });
});

describe('the callers keep their rules and messages', () => {
  it('an upstream with a leading-zero octet is refused, not read as octal (010.0.0.1 is not 8.0.0.1)', () => {
    for (const text of ['010.0.0.1', '10.1', '0x0a.0.0.1', '[10.0.0.1]:53']) {
      assert.throws(() => parseUpstream(text), (err: Error & { code?: string }) => err.code === 'ERR_CONFIG' && /is not an upstream address/.test(err.message), text);
    }
    assert.deepEqual(parseUpstream('fe80::1%eth0'), { host: 'fe80::1%eth0', port: 53, family: 6, key: '[fe80::1%eth0]:53' });
    assert.deepEqual(parseUpstream('[FD00::2]:5353'), { host: 'fd00::2', port: 5353, family: 6, key: '[fd00::2]:5353' });
    assert.throws(() => parseUpstream('10.0.0.1:0'), /is not an upstream address/);
    assert.throws(() => parseUpstream('bad\u001b[31m'), (err: Error) => !err.message.includes('\u001b'));
  });

  it('a registry upstream names no interface of the host', () => {
    for (const ok of ['10.0.0.1', '10.0.0.1:5353', 'fd00::2', '[fd00::2]:53']) assert.ok(isUpstreamAddress(ok), ok);
    for (const no of ['fe80::1%eth0', '10.0.0.1:0', '010.0.0.1', 'localhost', '[fd00::2]:65536']) assert.ok(!isUpstreamAddress(no), no);
  });

  it('--listen takes a default port, port 0 and zone ids; anything else names the flag', () => {
    assert.deepEqual(parseListenSpec('127.0.0.1'), { address: '127.0.0.1', port: 53 });
    assert.deepEqual(parseListenSpec('[::1]:0=a,b'), { address: '::1', port: 0, networks: ['a', 'b'] });
    assert.deepEqual(parseListenSpec('fe80::1%lo'), { address: 'fe80::1%lo', port: 53 });
    // Canonical, so the loop check (an upstream whose key is a listener's own) sees the same listener however it is written.
    const own = parseListenSpec('[0:0:0:0:0:0:0:1]:5353');
    assert.equal(formatHostPort(own.address, own.port), parseUpstream('[::1]:5353').key);
    assert.equal(parseListenSpec('[FD00::1]').address, 'fd00::1');
    assert.throws(() => parseListenSpec('\u001b]0;owned\u0007:53'), (err: Error) => err.message.startsWith('--listen "\\u001b]0;owned\\u0007:53": expected'));
    for (const spec of ['[::1', '::1]', 'localhost:53', '127.0.0.1:65536', '']) {
      assert.throws(() => parseListenSpec(spec), (err: Error & { code?: string }) => err.code === 'ERR_CONFIG' && err.message.startsWith(`--listen "${spec}": expected ADDR:PORT`), spec);
    }
  });

  it('a listen object in the configuration takes an address only, made canonical', () => {
    assert.deepEqual(validate({ listen: [{ address: '0:0:0:0:0:0:0:1', port: 5353 }] }, 't.yaml').listen, [{ address: '::1', port: 5353 }]);
    for (const address of ['localhost', '127.0.0.1:53', '', '010.0.0.1']) {
      assert.throws(() => validate({ listen: [{ address }] }, 't.yaml'), /listen\.0\.address: not an IP address/, address);
    }
  });

  it('metrics.listen needs a port and a literal address', () => {
    assert.equal(validate({ metrics: { listen: '[::1]:0' } }, 't.yaml').metrics?.listen, '[::1]:0');
    for (const listen of ['127.0.0.1', 'localhost:9100', '[fe80::1%eth0]:9100', '127.0.0.1:65536']) {
      assert.throws(() => validate({ metrics: { listen } }, 't.yaml'), /metrics\.listen: not ADDRESS:PORT/, listen);
    }
  });

  it('nsdns query prints an IPv6 server in brackets', () => {
    const req: QueryRequest = { name: 'a.test', type: 'A', host: 'fd00::2', port: 5353, tcp: false, timeoutMs: 1000 };
    const result = { packet: { type: 'response', id: 1, flags: 0, questions: [], answers: [] }, raw: Buffer.alloc(0), elapsedMs: 1 } as unknown as QueryResult;
    assert.match(formatResult(result, req), /;; from \[fd00::2\]:5353 over udp/);
    assert.equal((resultJson(result, req) as { server: string }).server, '[fd00::2]:5353');
  });
});
