// The scrubber and the upstream query, on replies built with dns-packet: what survives, what is
// dropped, and which replies are refused as inconsistent.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import dnsPacket from 'dns-packet';
import { parseQuery, type Query } from '../../src/wire/query.js';
import { inspectReply } from '../../src/wire/records.js';
import { readdressScrubbed, scrubReply as scrubWithInfo } from '../../src/wire/scrub.js';
import { buildUpstreamQuery, Match, matchReply, withRandomCase } from '../../src/wire/upstream-query.js';
import { decode, queryPacket } from '../helpers/packets.js';

/**
 * The scrubbed reply, or why not; and what scrubbing noted for the cache must be what
 * inspectReply() reads from the result.
 */
function scrubReply(reply: Buffer, sent: Buffer, questionEnd: number, maxUdpSize: number): Buffer | string {
  const out = scrubWithInfo(reply, sent, questionEnd, maxUdpSize);
  if (typeof out === 'string') return out;
  assert.deepEqual(out.info, inspectReply(out.reply, questionEnd));
  return out.reply;
}

const query = (name: string, type: dnsPacket.RecordType = 'A', edns?: { udpSize?: number; do?: boolean }) =>
  parseQuery(queryPacket(name, type, { id: 99, ...(edns ? { edns } : {}) })) as Query;

function scrub(q: Query, reply: Partial<dnsPacket.Packet>): Buffer | string {
  const sent = buildUpstreamQuery(q, 1232);
  const packet = dnsPacket.encode({ type: 'response', id: 0, flags: 0x8180, questions: [{ name: q.qname, type: dnsPacket.decode(q.raw).questions![0].type, class: 'IN' }], ...reply });
  return scrubReply(packet, sent, q.questionEnd, 1232);
}

const a = (name: string, data: string): dnsPacket.Answer => ({ type: 'A', name, ttl: 60, data });
const lines = (buf: Buffer | string) => {
  assert.ok(Buffer.isBuffer(buf), String(buf));
  const p = decode(buf);
  const text = (r: dnsPacket.Answer) => `${r.name} ${r.type} ${JSON.stringify((r as { data?: unknown }).data)}`;
  return { answers: p.answers!.map(text), authorities: p.authorities!.map(text), additionals: p.additionals!.filter((r) => r.type !== 'OPT').map(text), packet: p };
};

describe('upstream query', () => {
  it('is our own: lower-cased question, our EDNS size, RD/CD/DO as the client asked, nothing else', () => {
    const q = parseQuery(queryPacket('WwW.Example.TEST', 'AAAA', { id: 7, edns: { udpSize: 4096, do: true }, flags: dnsPacket.RECURSION_DESIRED | dnsPacket.CHECKING_DISABLED | dnsPacket.AUTHENTIC_DATA })) as Query;
    const sent = decode(buildUpstreamQuery(q, 1232));
    assert.equal(sent.questions![0].name, 'www.example.test');
    assert.equal(sent.questions![0].type, 'AAAA');
    assert.equal(sent.flags, dnsPacket.RECURSION_DESIRED | dnsPacket.CHECKING_DISABLED);
    const opt = sent.additionals![0] as { type: string; udpPayloadSize: number; flags: number };
    assert.equal(opt.udpPayloadSize, 1232);
    assert.equal(opt.flags, dnsPacket.DNSSEC_OK);
    assert.equal(sent.additionals!.length, 1);
  });

  it('matches replies case-exactly and tells a change of case apart', () => {
    const q = query('abcdefghijklmnop.test');
    const sent = withRandomCase(buildUpstreamQuery(q, 1232), q.questionEnd);
    assert.notEqual(decode(sent).questions![0].name, 'abcdefghijklmnop.test');
    const reply = Buffer.from(sent);
    reply[2] |= 0x80;
    assert.equal(matchReply(reply, sent, q.questionEnd), Match.Exact);
    const lower = buildUpstreamQuery(q, 1232);
    lower[2] |= 0x80;
    assert.equal(matchReply(lower, sent, q.questionEnd), Match.OtherCase);
    reply[q.questionEnd - 1] = 28; // another qtype
    assert.equal(matchReply(reply, sent, q.questionEnd), Match.No);
  });
});

describe('scrubbing', () => {
  it('keeps the question\'s RRsets and its CNAME chain, drops unrelated names everywhere', () => {
    const q = query('www.test');
    const out = lines(scrub(q, {
      answers: [{ type: 'CNAME', name: 'www.test', ttl: 60, data: 'web.test' }, a('web.test', '192.0.2.1'), a('evil.test', '198.51.100.1')],
      authorities: [{ type: 'NS', name: 'test', ttl: 60, data: 'ns.evil.test' }],
      additionals: [a('evil.test', '198.51.100.2'), a('ns.evil.test', '198.51.100.3')],
    }));
    assert.deepEqual(out.answers, ['www.test CNAME "web.test"', 'web.test A "192.0.2.1"']);
    assert.deepEqual(out.authorities, []);
    assert.deepEqual(out.additionals, []);
  });

  it('keeps RRSIGs of kept RRsets, the SOA of a negative answer, and glue for SRV targets', () => {
    const sig = (name: string, typeCovered: string): dnsPacket.Answer => ({ type: 'RRSIG', name, ttl: 60, data: { typeCovered, algorithm: 13, labels: 2, originalTTL: 60, expiration: 2, inception: 1, keyTag: 1, signersName: 'test', signature: Buffer.alloc(8) } } as dnsPacket.Answer);
    const signed = lines(scrub(query('x.test'), { answers: [a('x.test', '192.0.2.1'), sig('x.test', 'A'), sig('x.test', 'AAAA'), sig('y.test', 'A')] }));
    assert.equal(signed.answers.length, 2);
    const sigs = lines(scrub(query('x.test', 'RRSIG'), { answers: [sig('x.test', 'A'), sig('y.test', 'A')] }));
    assert.equal(sigs.answers.length, 1, 'a question for RRSIG keeps the ones of its name');

    const soa = { type: 'SOA', name: 'test', ttl: 60, data: { mname: 'ns.test', rname: 'h.test', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 30 } } as dnsPacket.Answer;
    const otherSoa = { ...soa, name: 'evil' } as dnsPacket.Answer;
    const nx = lines(scrub(query('nope.test'), { flags: 0x8183, authorities: [otherSoa, soa] }));
    assert.deepEqual(nx.authorities.map((l) => l.split(' ').slice(0, 2).join(' ')), ['test SOA']);
    const positive = lines(scrub(query('x.test'), { answers: [a('x.test', '192.0.2.1')], authorities: [soa] }));
    assert.deepEqual(positive.authorities, [], 'no authority with a positive answer');

    const srv = lines(scrub(query('_s._tcp.test', 'SRV'), {
      answers: [{ type: 'SRV', name: '_s._tcp.test', ttl: 60, data: { priority: 1, weight: 1, port: 80, target: 'host.test' } }],
      additionals: [a('host.test', '192.0.2.5'), a('other.test', '192.0.2.6')],
    }));
    assert.deepEqual(srv.additionals, ['host.test A "192.0.2.5"']);
  });

  it('refuses an answer for another name, a CNAME loop, and two CNAMEs for one name', () => {
    assert.equal(typeof scrub(query('x.test'), { answers: [a('evil.test', '198.51.100.1')] }), 'string');
    assert.equal(typeof scrub(query('x.test'), { answers: [{ type: 'CNAME', name: 'x.test', ttl: 1, data: 'y.test' }, { type: 'CNAME', name: 'y.test', ttl: 1, data: 'x.test' }] }), 'string');
    assert.equal(typeof scrub(query('x.test'), { answers: [{ type: 'CNAME', name: 'x.test', ttl: 1, data: 'y.test' }, { type: 'CNAME', name: 'x.test', ttl: 1, data: 'z.test' }] }), 'string');
  });

  it('keeps a TC reply to its header and question', () => {
    const out = lines(scrub(query('x.test'), { flags: 0x8380, answers: [a('x.test', '192.0.2.1')] }));
    assert.ok(out.packet.flags! & dnsPacket.TRUNCATED_RESPONSE);
    assert.deepEqual(out.answers, []);
  });

  it('reads compressed names and writes them back whole; a client gets its id, case and EDNS', () => {
    const q = query('MiXeD.test');
    const stored = scrub(q, { answers: [{ type: 'CNAME', name: 'mixed.test', ttl: 60, data: 'a.mixed.test' }, a('a.mixed.test', '192.0.2.1')] });
    assert.ok(Buffer.isBuffer(stored));
    const plain = decode(readdressScrubbed(stored, q));
    assert.equal(plain.id, 99);
    assert.equal(plain.questions![0].name, 'MiXeD.test');
    assert.equal(plain.additionals!.length, 0, 'no OPT for a client without EDNS');
    const withEdns = decode(readdressScrubbed(stored, query('mixed.test', 'A', { udpSize: 4096 })));
    assert.equal((withEdns.additionals![0] as { udpPayloadSize: number }).udpPayloadSize, 1232);
    assert.equal((withEdns.answers![1] as { name: string }).name, 'a.mixed.test');
  });
});

/** A reply to `q` built by hand, as servers compress it: `records` follow the question (at 12). */
function wire(q: Query, answers: number, records: Buffer[]): Buffer {
  const head = Buffer.from(q.raw.subarray(0, q.questionEnd));
  head.writeUInt16BE(0x8180, 2);
  head.writeUInt16BE(answers, 6);
  head.writeUInt16BE(0, 10);
  return Buffer.concat([head, ...records]);
}

/** One record: owner (wire bytes), type, class IN, TTL 60, rdata. */
function rr(owner: Buffer, type: number, rdata: Buffer): Buffer {
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(type, 0);
  fixed.writeUInt16BE(1, 2);
  fixed.writeUInt32BE(60, 4);
  fixed.writeUInt16BE(rdata.length, 8);
  return Buffer.concat([owner, fixed, rdata]);
}

const pointer = (to: number) => Buffer.from([0xc0 | (to >> 8), to & 0xff]);
const QUESTION = pointer(12);

describe('large replies', () => {
  it('keeps every record of a large answer whose owners all point at the question', () => {
    const q = query('big.test');
    const records = Array.from({ length: 3500 }, (_, i) => rr(QUESTION, 1, Buffer.from([198, 18, i >> 8, i & 0xff])));
    const stored = scrubReply(wire(q, 3500, records), buildUpstreamQuery(q, 1232), q.questionEnd, 1232);
    assert.ok(Buffer.isBuffer(stored), String(stored));
    const answers = decode(readdressScrubbed(stored, q)).answers!;
    assert.equal(answers.length, 3500);
    assert.ok(answers.every((r, i) => r.name === 'big.test' && (r as { data: string }).data === `198.18.${i >> 8}.${i & 0xff}`));
    assert.equal(stored.length, q.questionEnd + 3500 * 16 + 11, 'owners compressed to the question, our OPT at the end');
  });

  it('refuses a reply that grows past a TCP message once its names are written whole, and scrubs the next one', () => {
    const q = query('srv.test', 'SRV');
    // A 200-byte name written once, then 2 000 SRV targets pointing at it: SRV targets are not compressed (RFC 3597 §4).
    const long = Buffer.concat([...Array.from({ length: 4 }, () => Buffer.concat([Buffer.from([48]), Buffer.alloc(48, 0x61)])), Buffer.from([0])]);
    const at = q.questionEnd;
    const unrelated = rr(long, 1, Buffer.from([192, 0, 2, 1]));
    const srv = (i: number) => rr(QUESTION, 33, Buffer.concat([Buffer.from([0, 1, 0, 1, i >> 8, i & 0xff]), pointer(at)]));
    const reply = wire(q, 2001, [unrelated, ...Array.from({ length: 2000 }, (_, i) => srv(i))]);
    assert.equal(scrubReply(reply, buildUpstreamQuery(q, 1232), q.questionEnd, 1232), 'too large once decompressed');
    const small = wire(q, 3, [unrelated, srv(1), srv(2)]);
    const answers = lines(scrubReply(small, buildUpstreamQuery(q, 1232), q.questionEnd, 1232)).answers;
    assert.deepEqual(answers.map((l) => l.split(' ').slice(0, 2).join(' ')), ['srv.test SRV', 'srv.test SRV']);
  });
});
