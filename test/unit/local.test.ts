// localAnswer (src/resolver/local.ts) on its own: what is ours is answered here, what is not is left
// to the forwarder (undefined), a CNAME to an outside name is handed back as a Chase, and a reply
// over the client's limit is cut to whole records with TC. The table of rows as a whole is
// test/unit/answer-table.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { answerLocally, isChase, localAnswer, type LocalOptions } from '../../src/resolver/local.js';
import { parseDocumentText } from '../../src/registry/document.js';
import { Registry } from '../../src/registry/registry.js';
import { parseQuery, type Query } from '../../src/wire/query.js';
import { decode, queryPacket } from '../helpers/packets.js';
import type dnsPacket from 'dns-packet';

const registry = new Registry();
registry.setNetwork(parseDocumentText(`name: lab
subnets: [{subnet: 10.190.0.0/24, gateway: 10.190.0.1}]
records:
  - {name: ext, type: CNAME, value: www.example.com}
endpoints:
  - {name: web, ipv4: 10.190.0.10}
  - {name: many, ipv4: [${Array.from({ length: 60 }, (_, i) => `10.190.0.${100 + i}`).join(', ')}]}
`, 'lab.yaml'), 'test');
const view = registry.current().view();
const options: LocalOptions = { ttl: 5, maxUdpSize: 1232, hostName: 'host.nsdns.internal' };

function query(name: string, type: string = 'A', qclass?: number): Query {
  const raw = queryPacket(name, type as dnsPacket.RecordType);
  if (qclass !== undefined) raw.writeUInt16BE(qclass, raw.length - 2);
  const parsed = parseQuery(raw);
  assert.equal(parsed.kind, 'query');
  return parsed as Query;
}

const local = (q: Query, limit = 512) => localAnswer(q, view, options, limit, true, true);

describe('local answers', () => {
  it('answers a registered name with its address, authoritative, TTL 5', () => {
    const reply = local(query('web'));
    assert.ok(Buffer.isBuffer(reply));
    const p = decode(reply);
    assert.equal(p.rcode, 'NOERROR');
    assert.equal((p as { flag_aa?: boolean }).flag_aa, true);
    assert.deepEqual(p.answers!.map((a) => [a.type, (a as { data: string }).data, (a as { ttl: number }).ttl]), [['A', '10.190.0.10', 5]]);
  });

  it('leaves a name that is not ours, and an address it does not know, to the forwarder', () => {
    assert.equal(local(query('www.example.com')), undefined);
    assert.equal(local(query('99.0.190.10.in-addr.arpa', 'PTR')), undefined);
  });

  it('answers class IN and ANY; another class (CHAOS) is not ours', () => {
    assert.ok(Buffer.isBuffer(local(query('web', 'A', 255))));
    assert.equal(local(query('web', 'A', 3)), undefined);
  });

  it('hands a CNAME to an outside name back as a Chase; a caller that cannot forward gets the CNAME alone', () => {
    const chase = local(query('ext'));
    assert.ok(isChase(chase));
    assert.equal(chase.target, 'www.example.com');
    const alone = answerLocally(query('ext'), view, options, 512, false, true);
    assert.ok(alone);
    assert.deepEqual(decode(alone).answers!.map((a) => `${a.type} ${(a as { data: string }).data}`), ['CNAME www.example.com']);
  });

  it('host.nsdns.internal is the gateway for a namespace, NXDOMAIN for a host client', () => {
    assert.deepEqual(decode(localAnswer(query('host.nsdns.internal'), view, options, 512, true, true) as Buffer).answers!.map((a) => (a as { data: string }).data), ['10.190.0.1']);
    assert.equal(decode(localAnswer(query('host.nsdns.internal'), view, options, 512, true, false) as Buffer).rcode, 'NXDOMAIN');
    assert.equal(localAnswer(query('host.nsdns.internal'), view, { ...options, hostName: '' }, 512, true, true), undefined, 'turned off: not ours');
  });

  it('cuts a reply over the limit to whole records and sets TC', () => {
    const whole = decode(local(query('many'), 65535) as Buffer);
    assert.equal(whole.answers!.length, 60);
    const raw = local(query('many'), 512) as Buffer;
    assert.ok(raw.length <= 512, `${raw.length} bytes`);
    const cut = decode(raw);
    assert.equal((cut as { flag_tc?: boolean }).flag_tc, true);
    assert.ok(cut.answers!.length < 60);
  });
});
