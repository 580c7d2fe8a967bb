// Properties of the wire layer over generated input (fast-check): whatever bytes arrive, the
// parser decides (query, drop or reject) and never throws; every reply we write is a message
// dns-packet can read; and the name a query is keyed by is one-to-one with its wire form.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import dnsPacket from 'dns-packet';
import fc from 'fast-check';
import { parseQuery, type Query } from '../../src/wire/query.js';
import { errorReply, headerOnlyReply, truncatedCopy } from '../../src/wire/reply.js';
import { RCODE } from '../../src/wire/constants.js';
import { answerLocally } from '../../src/resolver/local.js';
import { parseDocumentText } from '../../src/registry/document.js';
import { Registry } from '../../src/registry/registry.js';
import { ROOT } from '../helpers/daemon.js';
import { queryPacket } from '../helpers/packets.js';

const registry = new Registry();
for (const file of ['lab.yaml', 'ops.yaml']) {
  const full = path.join(ROOT, 'fixtures/lab', file);
  registry.setNetwork(parseDocumentText(readFileSync(full, 'utf8'), full), `file:${full}`);
}
const view = registry.current().view();

/** A question name in wire form from labels of any bytes. */
function wireName(labels: readonly Uint8Array[]): Buffer {
  return Buffer.concat([...labels.flatMap((l) => [Buffer.from([l.length]), Buffer.from(l)]), Buffer.from([0])]);
}

function message(flags: number, counts: [number, number, number, number], body: Buffer): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(0x1234, 0);
  header.writeUInt16BE(flags, 2);
  counts.forEach((c, i) => header.writeUInt16BE(c, 4 + i * 2));
  return Buffer.concat([header, body]);
}

// Any bytes, and labels from the bytes that make names ambiguous if mishandled ('.', '\\', case, Latin-1).
const label = fc.oneof(
  fc.uint8Array({ minLength: 1, maxLength: 63 }),
  fc.array(fc.constantFrom(0x2e, 0x5c, 0x41, 0x61, 0xc0, 0xe0, 0x00, 0x20, 0x30), { minLength: 1, maxLength: 6 }).map((a) => Uint8Array.from(a)),
);
const labels = fc.array(label, { minLength: 0, maxLength: 6 });
const valid = ['web.lab', 'www', 'db', 'nope.lab', '10.0.77.10.in-addr.arpa', 'example.com', 'mon.ops.example'];

/** Valid queries, and the same with bytes overwritten, cut short or extended. */
const mutated = fc.tuple(
  fc.constantFrom(...valid.flatMap((n) => [queryPacket(n), queryPacket(n, 'AAAA', { edns: { udpSize: 4096, do: true } }), queryPacket(n, 'ANY' as dnsPacket.RecordType)])),
  fc.array(fc.tuple(fc.nat(80), fc.nat(255)), { maxLength: 6 }),
  fc.option(fc.nat(80)),
  fc.uint8Array({ maxLength: 40 }),
).map(([base, edits, cut, tail]) => {
  const out = Buffer.from(base);
  for (const [at, value] of edits) if (at < out.length) out[at] = value;
  return Buffer.concat([cut === null ? out : out.subarray(0, cut), Buffer.from(tail)]);
});

/** Headers with any counts and flags, followed by a name that may hold pointers and loops. */
const structured = fc.tuple(
  fc.nat(0xffff),
  fc.tuple(fc.constantFrom(0, 1, 2, 65535), fc.nat(3), fc.nat(3), fc.constantFrom(0, 1, 2, 3)),
  labels,
  fc.constantFrom(Buffer.alloc(0), Buffer.from([0xc0, 0x0c]), Buffer.from([0xc0, 0x00]), Buffer.from([0x40])),
  fc.uint8Array({ maxLength: 60 }),
).map(([flags, counts, ls, pointer, rest]) => message(flags & ~0x8000, counts, Buffer.concat([wireName(ls).subarray(0, -1), pointer.length ? pointer : Buffer.from([0]), Buffer.from(rest)])));

const anyInput = fc.oneof(fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a)), mutated, structured);

/** Every reply the resolver could write for this input, without forwarding. */
function repliesFor(raw: Buffer): Buffer[] {
  const parsed = parseQuery(raw);
  if (parsed.kind === 'drop') return [];
  if (parsed.kind === 'reject') return [headerOnlyReply(raw, parsed.rcode, parsed.edns, 1232)];
  const out = [errorReply(parsed, RCODE.SERVFAIL, true, 1232), errorReply(parsed, RCODE.REFUSED, false, 1232)];
  for (const limit of [512, 1232, 65535]) {
    const local = answerLocally(parsed, view, { ttl: 5, maxUdpSize: 1232 }, limit, true);
    if (local) out.push(local, truncatedCopy(local, parsed));
  }
  return out;
}

describe('wire properties', () => {
  it('parses any byte string into a query, a drop or a reject, and never throws', () => {
    fc.assert(fc.property(anyInput, (raw) => {
      const parsed = parseQuery(raw);
      assert.ok(['query', 'drop', 'reject'].includes(parsed.kind));
    }), { numRuns: 20_000 });
  });

  it('writes only replies that dns-packet decodes, with the id and, for queries, the question of the query', () => {
    fc.assert(fc.property(anyInput, (raw) => {
      const parsed = parseQuery(raw);
      for (const reply of repliesFor(raw)) {
        const decoded = dnsPacket.decode(reply);
        assert.equal(decoded.id, raw.readUInt16BE(0));
        assert.ok(reply.readUInt16BE(2) & 0x8000, 'QR set');
        if (parsed.kind === 'query') {
          assert.equal(decoded.questions?.length, 1);
          assert.ok(reply.subarray(12, parsed.questionEnd).equals(raw.subarray(12, parsed.questionEnd)), 'question copied as sent');
        }
      }
    }), { numRuns: 5_000 });
  });

  it('keys names one-to-one: two wire names share a key exactly when they differ only in ASCII case', () => {
    const lower = (l: Uint8Array) => Buffer.from(l).map((b) => (b >= 0x41 && b <= 0x5a ? b | 0x20 : b));
    const bytes = (ls: readonly Uint8Array[]) => ls.map((l) => Buffer.from(l));
    // The second name is a near miss of the first: what a sloppy key would confuse.
    const nearMiss = fc.tuple(labels, fc.nat(), fc.constantFrom('case', 'latin1', 'merge-dot', 'merge-backslash')).map(([a, at, how]) => {
      const b = bytes(a);
      const i = b.length ? at % b.length : 0;
      if (how === 'case' && b.length) b[i] = Buffer.from(b[i].map((x) => (x >= 0x61 && x <= 0x7a ? x & ~0x20 : x)));
      if (how === 'latin1' && b.length) b[i] = Buffer.from(b[i].map((x) => (x >= 0xc0 && x <= 0xde ? x | 0x20 : x)));
      if (how.startsWith('merge') && b.length >= 2 && i + 1 < b.length) {
        const glue = how === 'merge-dot' ? [0x2e] : [0x5c, 0x2e];
        b.splice(i, 2, Buffer.concat([b[i], Buffer.from(glue), b[i + 1]]).subarray(0, 63));
      }
      return [a, b.map((x) => Uint8Array.from(x))] as const;
    });
    fc.assert(fc.property(fc.oneof(nearMiss, fc.tuple(labels, labels)), ([a, b]) => {
      const qa = parseQuery(message(0x0100, [1, 0, 0, 0], Buffer.concat([wireName(a), Buffer.from([0, 1, 0, 1])])));
      const qb = parseQuery(message(0x0100, [1, 0, 0, 0], Buffer.concat([wireName(b), Buffer.from([0, 1, 0, 1])])));
      if (qa.kind !== 'query' || qb.kind !== 'query') return; // over 255 bytes: FORMERR for both sides alike
      const same = wireName(a.map(lower)).equals(wireName(b.map(lower)));
      assert.equal((qa as Query).name === (qb as Query).name, same, `${(qa as Query).name} / ${(qb as Query).name}`);
    }), { numRuns: 20_000 });
  });

  it('refuses a question with a compression pointer, a label over 63 or a name over 255 bytes', () => {
    const pointer = message(0x0100, [1, 0, 0, 0], Buffer.from([3, 0x77, 0x77, 0x77, 0xc0, 0x0c, 0, 1, 0, 1]));
    const long = message(0x0100, [1, 0, 0, 0], Buffer.concat([wireName(Array.from({ length: 5 }, () => new Uint8Array(60).fill(0x61))), Buffer.from([0, 1, 0, 1])]));
    const label64 = message(0x0100, [1, 0, 0, 0], Buffer.concat([Buffer.from([64]), Buffer.alloc(64, 0x61), Buffer.from([0, 0, 1, 0, 1])]));
    for (const raw of [pointer, long, label64]) {
      const parsed = parseQuery(raw);
      assert.equal(parsed.kind, 'reject');
      assert.equal((parsed as { rcode: number }).rcode, RCODE.FORMERR);
    }
  });
});
