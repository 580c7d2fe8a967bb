import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import dnsPacket from 'dns-packet';
import { parseQuery, type Query } from '../../src/wire/query.js';
import { addressReply, headerOnlyReply, recordsReply, encodeRecords, udpLimit } from '../../src/wire/reply.js';
import { FrameReader, frame } from '../../src/wire/tcp-framing.js';
import { addressFromReverseName, reverseName, isInZone, isValidName } from '../../src/wire/names.js';
import { inspectReply } from '../../src/wire/records.js';
import { QTYPE, RCODE } from '../../src/wire/constants.js';
import { dataOf, decode, queryPacket } from '../helpers/packets.js';

const opts = (limit = 512) => ({ rcode: 0, authoritative: true, recursionAvailable: true, limit, maxUdpSize: 1232 });

function parsed(buf: Buffer): Query {
  const q = parseQuery(buf);
  assert.equal(q.kind, 'query');
  return q as Query;
}

describe('parseQuery', () => {
  it('reads the question, keeping the case as sent and giving a lower-case key', () => {
    const q = parsed(queryPacket('WeB.LaB', 'AAAA', { id: 7 }));
    assert.equal(q.id, 7);
    assert.equal(q.qname, 'WeB.LaB');
    assert.equal(q.name, 'web.lab');
    assert.equal(q.qtype, QTYPE.AAAA);
    assert.equal(q.edns, undefined);
  });

  it('reads EDNS size, version and the DO bit', () => {
    const q = parsed(queryPacket('x', 'A', { edns: { udpSize: 4000, do: true } }));
    assert.deepEqual(q.edns, { udpSize: 4000, version: 0, dnssecOk: true });
  });

  it('drops what is not a query: too short, or QR set', () => {
    assert.equal(parseQuery(Buffer.alloc(5)).kind, 'drop');
    const response = queryPacket('x');
    response.writeUInt16BE(response.readUInt16BE(2) | 0x8000, 2);
    assert.equal(parseQuery(response).kind, 'drop');
  });

  it('rejects other opcodes with NOTIMP, bad counts and broken questions with FORMERR', () => {
    const notify = queryPacket('x');
    notify.writeUInt16BE(notify.readUInt16BE(2) | (4 << 11), 2);
    assert.deepEqual(pick(parseQuery(notify)), { kind: 'reject', rcode: RCODE.NOTIMP });
    const two = queryPacket('x');
    two.writeUInt16BE(2, 4);
    assert.deepEqual(pick(parseQuery(two)), { kind: 'reject', rcode: RCODE.FORMERR });
    const cut = queryPacket('example.com').subarray(0, 18);
    assert.deepEqual(pick(parseQuery(cut)), { kind: 'reject', rcode: RCODE.FORMERR });
  });

  it('answers EDNS versions above 0 with BADVERS', () => {
    const buf = queryPacket('x', 'A', { edns: {} });
    buf[buf.length - 11 + 6] = 1; // OPT TTL byte 2: version
    assert.deepEqual(pick(parseQuery(buf)), { kind: 'reject', rcode: RCODE.BADVERS });
    const reply = decode(headerOnlyReply(buf, RCODE.BADVERS, true, 1232));
    const opt = reply.additionals?.[0] as { extendedRcode?: number } | undefined;
    assert.equal(opt?.extendedRcode, 1, 'upper bits of BADVERS (16) go into the OPT record');
  });
});

function pick(p: ReturnType<typeof parseQuery>) {
  return p.kind === 'reject' ? { kind: p.kind, rcode: p.rcode } : { kind: p.kind };
}

describe('replies', () => {
  const a = (s: string) => Buffer.from(s.split('.').map(Number));

  it('address replies decode with dns-packet, echo the question case, and rotate', () => {
    const q = parsed(queryPacket('WwW.Lab', 'A', { id: 99 }));
    const first = decode(addressReply(q, QTYPE.A, 5, [a('10.0.0.1'), a('10.0.0.2')], 0, opts()));
    const second = decode(addressReply(q, QTYPE.A, 5, [a('10.0.0.1'), a('10.0.0.2')], 1, opts()));
    assert.equal(first.id, 99);
    assert.equal(first.questions![0].name, 'WwW.Lab');
    assert.deepEqual(first.answers!.map(dataOf), ['10.0.0.1', '10.0.0.2']);
    assert.deepEqual(second.answers!.map(dataOf), ['10.0.0.2', '10.0.0.1']);
    assert.equal(first.answers![0].name, 'WwW.Lab');
    assert.ok(first.flags! & dnsPacket.AUTHORITATIVE_ANSWER);
    assert.ok(first.flags! & dnsPacket.RECURSION_DESIRED, 'RD copied');
  });

  it('truncates to whole records within the limit and sets TC', () => {
    const q = parsed(queryPacket('big', 'A'));
    const many = Array.from({ length: 60 }, (_, i) => a(`10.0.${i}.1`));
    const buf = addressReply(q, QTYPE.A, 5, many, 0, opts(512));
    assert.ok(buf.length <= 512);
    const reply = decode(buf);
    assert.ok(reply.flags! & dnsPacket.TRUNCATED_RESPONSE);
    assert.equal(reply.answers!.length, Math.floor((512 - 12 - 9) / 16));
  });

  it('general replies drop authority before answers and keep EDNS', () => {
    const q = parsed(queryPacket('x.lab', 'PTR', { edns: { udpSize: 1400 } }));
    const records = encodeRecords([{ type: 'PTR', name: 'x.lab', ttl: 5, data: 'web.lab' }]);
    const reply = decode(recordsReply(q, records, [], opts(udpLimit(q, 1232))));
    assert.equal(dataOf(reply.answers![0]), 'web.lab');
    assert.equal(reply.additionals![0].type, 'OPT');
    assert.equal(udpLimit(q, 1232), 1232, 'advertised size is capped');
  });
});

describe('records', () => {
  it('finds TTL offsets, the smallest answer TTL and the RFC 2308 negative TTL', () => {
    const reply = dnsPacket.encode({
      type: 'response', id: 1, flags: 0x8180, questions: [{ name: 'a.test', type: 'A', class: 'IN' }],
      answers: [{ type: 'A', name: 'a.test', ttl: 300, data: '1.2.3.4' }, { type: 'A', name: 'a.test', ttl: 30, data: '1.2.3.5' }],
      authorities: [{ type: 'SOA', name: 'test', ttl: 100, data: { mname: 'ns', rname: 'h', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 20 } }],
    });
    const q = parsed(queryPacket('a.test'));
    const info = inspectReply(reply, q.questionEnd)!;
    assert.equal(info.minAnswerTtl, 30);
    assert.equal(info.negativeTtl, 20);
    assert.equal(info.ttlOffsets.length, 3);
    assert.deepEqual(info.ttlOffsets.map((o) => reply.readUInt32BE(o)), [300, 30, 100]);
  });
});

describe('tcp framing', () => {
  it('reassembles messages split anywhere and several per chunk', () => {
    const m1 = Buffer.from('hello');
    const m2 = Buffer.from('world!');
    const stream = Buffer.concat([frame(m1), frame(m2)]);
    const reader = new FrameReader();
    const out: string[] = [];
    for (let i = 0; i < stream.length; i += 3) out.push(...reader.push(stream.subarray(i, i + 3)).map(String));
    assert.deepEqual(out, ['hello', 'world!']);
    assert.equal(reader.buffered, 0);
    assert.deepEqual(reader.push(Buffer.from([0, 9, 1])), []);
    assert.equal(reader.buffered, 3);
  });
});

describe('names', () => {
  it('maps reverse names both ways, IPv4 and IPv6', () => {
    assert.equal(reverseName('10.77.0.11'), '11.0.77.10.in-addr.arpa');
    assert.equal(addressFromReverseName('11.0.77.10.in-addr.arpa'), '10.77.0.11');
    assert.equal(addressFromReverseName(reverseName('fd77::11')), 'fd77::11');
    assert.equal(addressFromReverseName('0.77.10.in-addr.arpa'), undefined);
  });

  it('zones and name validity', () => {
    assert.ok(isInZone('a.lab', 'lab'));
    assert.ok(!isInZone('alab', 'lab'));
    // An escaped dot is inside a label, not a boundary (the wire label "web.lab" is one label).
    assert.ok(!isInZone('web\\.lab', 'lab'));
    assert.ok(isInZone('web\\\\.lab', 'lab'), 'an escaped backslash, then a real dot');
    assert.ok(isValidName('web.lab.'));
    assert.ok(!isValidName('-web'));
    assert.ok(!isValidName('a b'));
  });
});

import { encodeName, queryMessage, soaRecord, srvRecords, txtRecords } from '../../src/wire/records-write.js';

describe('records written from registry data', () => {
  const v4 = (s: string) => Buffer.from(s.split('.').map(Number));

  it('SRV answers point at the question (0x20 case kept) and carry the targets\' addresses as additional records', () => {
    const q = parsed(queryPacket('_HTTP._tcp.Pool', 'SRV', { edns: { udpSize: 1232 } }));
    const { answers, additional } = srvRecords(5, [
      { priority: 1, weight: 2, port: 8080, target: 'web1.lab', a: [v4('10.0.0.1')], aaaa: [] },
      { priority: 0, weight: 0, port: 8081, target: 'web2.lab', a: [v4('10.0.0.2')], aaaa: [Buffer.alloc(16, 1)] },
    ]);
    const reply = decode(recordsReply(q, answers, [], opts(1232), additional));
    assert.deepEqual(reply.answers!.map((a) => [a.name, a.type, dataOf(a)]), [
      ['_HTTP._tcp.Pool', 'SRV', { priority: 1, weight: 2, port: 8080, target: 'web1.lab' }],
      ['_HTTP._tcp.Pool', 'SRV', { priority: 0, weight: 0, port: 8081, target: 'web2.lab' }],
    ]);
    assert.deepEqual(reply.additionals!.filter((a) => a.type !== 'OPT').map((a) => [a.name, a.type, dataOf(a)]), [
      ['web1.lab', 'A', '10.0.0.1'], ['web2.lab', 'A', '10.0.0.2'], ['web2.lab', 'AAAA', '101:101:101:101:101:101:101:101'],
    ]);
  });

  it('a large SRV set keeps whole answers with TC over UDP; additional records are dropped first, without TC', () => {
    const targets = Array.from({ length: 100 }, (_, i) => ({ priority: 0, weight: 0, port: 8000 + i, target: `member${i}.big`, a: [v4(`10.81.0.${i}`)], aaaa: [] }));
    const { answers, additional } = srvRecords(5, targets);
    const q = parsed(queryPacket('_http._tcp.crowd', 'SRV'));
    const udp = recordsReply(q, answers, [], opts(512), additional);
    assert.ok(udp.length <= 512);
    const decoded = decode(udp);
    assert.ok(decoded.flags! & dnsPacket.TRUNCATED_RESPONSE);
    assert.equal(decoded.additionals!.length, 0);
    const tcp = decode(recordsReply(q, answers, [], opts(65535), additional));
    assert.equal(tcp.answers!.length, 100);
    assert.equal(tcp.additionals!.length, 100);
    const some = decode(recordsReply(q, answers.slice(0, 3), [], opts(170), additional.slice(0, 3)));
    assert.equal(some.answers!.length, 3);
    assert.ok(!(some.flags! & dnsPacket.TRUNCATED_RESPONSE), 'answers complete: no TC even though additional records were left out');
  });

  it('TXT gives one string per label; names, SOA and a forwarded query are well formed', () => {
    const q = parsed(queryPacket('web', 'TXT'));
    const reply = decode(recordsReply(q, txtRecords(5, ['tier=front', 'team=ops']), [soaRecord('lab', 5)], opts()));
    assert.deepEqual(reply.answers!.map((a) => (dataOf(a) as Buffer[]).map(String)), [['tier=front'], ['team=ops']]);
    assert.equal(reply.authorities![0].type, 'SOA');
    assert.deepEqual([...encodeName('a.bc')], [1, 97, 2, 98, 99, 0]);
    assert.deepEqual([...encodeName('')], [0]);
    const target = parsed(queryMessage(9, 'www.example.test', QTYPE.AAAA));
    assert.deepEqual([target.id, target.name, target.qtype, target.flags & 0x0100], [9, 'www.example.test', QTYPE.AAAA, 0x0100]);
  });
});
