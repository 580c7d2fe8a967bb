// "How answers are decided" (docs/answers.md), row by row, in-process: the registry files and the
// resolver of test/helpers/answer-table.ts, query bytes in, reply bytes out, decoded with
// dns-packet as a client would. The same replies are kept whole as goldens (test/unit/golden.test.ts);
// this file says which part of each reply the row promises. The rows are also asked through a
// real daemon with dig in test/integration/answers.test.ts.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import dnsPacket from 'dns-packet';
import { ROOT } from '../helpers/daemon.js';
import { ask, buildTable, seen, TABLE_CASES, UPSTREAM_ADDRESS, type Seen } from '../helpers/answer-table.js';

const SOA_LAB = 'lab. 5 IN SOA nsdns.invalid hostmaster.nsdns.invalid 1 3600 600 86400 5';
const SOA_HOST = 'host.nsdns.internal. 5 IN SOA nsdns.invalid hostmaster.nsdns.invalid 1 3600 600 86400 5';
const LOCAL = ['qr', 'aa', 'rd', 'ra'];

/** What each case's reply must show (null: no reply at all). Keys left out are not checked here. */
const expected: Record<string, Partial<Seen> | null> = {
  'drop-short': null,
  'drop-response': null,
  'notimp-opcode': { rcode: 'NOTIMP', question: [], answer: [] },
  'formerr-no-question': { rcode: 'FORMERR', question: [], answer: [], authority: [] },
  'formerr-two-questions': { rcode: 'FORMERR', question: [], answer: [], authority: [] },
  // BADVERS is 16: the header's 4 bits say 0, the OPT record carries the upper 8 bits (RFC 6891 6.1.3).
  'badvers': { rcode: 'NOERROR', extendedRcode: 1, question: [], answer: [] },
  'a-name': { rcode: 'NOERROR', flags: LOCAL, answer: ['web. 5 IN A 10.190.0.10'] },
  'a-alias': { rcode: 'NOERROR', answer: ['www. 5 IN A 10.190.0.10'] },
  'a-short-id': { rcode: 'NOERROR', answer: ['0123456789ab. 5 IN A 10.190.0.10'] },
  'a-name-network': { rcode: 'NOERROR', answer: ['web.lab. 5 IN A 10.190.0.10'] },
  'a-name-domain': { rcode: 'NOERROR', answer: ['mon.ops.example. 5 IN A 10.191.0.5'] },
  'aaaa-name': { rcode: 'NOERROR', answer: ['db. 5 IN AAAA fd19:190::11'] },
  // db is unhealthy: the shared alias leaves it out.
  'a-shared-alias': { rcode: 'NOERROR', answer: ['pool. 5 IN A 10.190.0.10', 'pool. 5 IN A 10.190.0.12'] },
  'a-unhealthy-own-name': { rcode: 'NOERROR', answer: ['db. 5 IN A 10.190.0.11'] },
  'txt-labels': { rcode: 'NOERROR', answer: ['web. 5 IN TXT "tier=frontend"'] },
  'srv-name': { rcode: 'NOERROR', answer: ['_http._tcp.web. 5 IN SRV 0 0 8080 web.lab'], additional: ['web.lab. 5 IN A 10.190.0.10'] },
  'srv-shared-alias': {
    rcode: 'NOERROR', answer: ['_http._tcp.pool. 5 IN SRV 0 0 8080 web.lab', '_http._tcp.pool. 5 IN SRV 0 0 8081 api.lab'],
    additional: ['api.lab. 5 IN A 10.190.0.12', 'web.lab. 5 IN A 10.190.0.10'],
  },
  'srv-other-type': { rcode: 'NOERROR', answer: [], authority: [SOA_LAB] },
  'srv-unknown-service': { rcode: 'NXDOMAIN', answer: [], authority: [SOA_LAB] },
  'static-a': { rcode: 'NOERROR', answer: ['printer. 5 IN A 10.190.0.200'] },
  'static-cname-local': { rcode: 'NOERROR', answer: ['docs. 5 IN CNAME web.lab', 'web.lab. 5 IN A 10.190.0.10'] },
  'static-cname-outside': { rcode: 'NOERROR', answer: ['ext. 5 IN CNAME www.example.com', `www.example.com. 60 IN A ${UPSTREAM_ADDRESS}`] },
  'host-gateway-namespace': { rcode: 'NOERROR', answer: ['host.nsdns.internal. 5 IN A 10.190.0.1'] },
  'host-gateway-host-listener': { rcode: 'NXDOMAIN', answer: [], authority: [SOA_HOST] },
  'host-gateway-internal-only': { rcode: 'NXDOMAIN', answer: [], authority: [SOA_HOST] },
  'nodata-family': { rcode: 'NOERROR', answer: [], authority: [SOA_LAB] },
  'nodata-type': { rcode: 'NOERROR', answer: [], authority: [SOA_LAB] },
  'any': { rcode: 'NOERROR', answer: ['db. 5 IN A 10.190.0.11', 'db. 5 IN AAAA fd19:190::11'] },
  'ptr-endpoint': { rcode: 'NOERROR', answer: ['10.0.190.10.in-addr.arpa. 5 IN PTR web.lab'] },
  'ptr-static': { rcode: 'NOERROR', answer: ['200.0.190.10.in-addr.arpa. 5 IN PTR printer.lab'] },
  'nxdomain-in-zone': { rcode: 'NXDOMAIN', answer: [], authority: [SOA_LAB] },
  // Not ours: the upstream's answer, without AA.
  'forwarded': { rcode: 'NOERROR', flags: ['qr', 'rd', 'ra'], answer: [`www.example.com. 60 IN A ${UPSTREAM_ADDRESS}`] },
  // AA, RD and CD copied, RA (it could be forwarded), the question as asked (0x20 case kept), TTL 5.
  'local-flags': { rcode: 'NOERROR', flags: ['qr', 'aa', 'rd', 'ra', 'cd'], question: ['Web.LAB. IN A'], answer: ['Web.LAB. 5 IN A 10.190.0.10'] },
  // Only on an internal network with no servers of its own: nothing could be forwarded, so no RA.
  'local-no-ra-internal': { rcode: 'NOERROR', flags: ['qr', 'aa', 'rd'], answer: ['secrets. 5 IN A 10.192.0.7'] },
};

/** The rows of the table in docs/answers.md, by their first cell, and the cases that check each. */
const coverage: Record<string, string[]> = {
  'shorter than a header, or a response (QR=1)': ['drop-short', 'drop-response'],
  'opcode other than QUERY': ['notimp-opcode'],
  'not exactly one question, or unreadable': ['formerr-no-question', 'formerr-two-questions'],
  'EDNS version above 0': ['badvers'],
  'A / AAAA for a name, alias or 12-character id': ['a-name', 'a-alias', 'a-short-id', 'a-name-network', 'a-name-domain', 'aaaa-name', 'a-shared-alias', 'a-unhealthy-own-name'],
  'TXT for such a name': ['txt-labels'],
  'SRV `_service._proto.NAME`': ['srv-name', 'srv-shared-alias', 'srv-other-type', 'srv-unknown-service'],
  'a static record of the network': ['static-a', 'static-cname-local', 'static-cname-outside', 'ptr-static'],
  '`host.nsdns.internal`': ['host-gateway-namespace', 'host-gateway-host-listener', 'host-gateway-internal-only'],
  'the same name, but no address of that family': ['nodata-family', 'nodata-type', 'srv-other-type'],
  'ANY for such a name': ['any'],
  'PTR for an endpoint address': ['ptr-endpoint', 'ptr-static'],
  'a name inside a local zone': ['nxdomain-in-zone'],
  'anything else': ['forwarded'],
};

/** The first cells of the answer table in docs/answers.md. */
function documentedRows(): string[] {
  const page = readFileSync(path.join(ROOT, 'docs/answers.md'), 'utf8');
  const section = page.split('# How answers are decided')[1].split('\n## ')[0];
  const table = section.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| query |') && !l.startsWith('| ---'));
  return table.map((l) => l.split(' | ')[0].slice(2));
}

describe('the answer table, in-process', () => {
  const table = buildTable();

  for (const c of TABLE_CASES) {
    it(`${c.id}: ${c.row}`, async () => {
      const want = expected[c.id];
      assert.ok(want !== undefined, `no expectation for case ${c.id}`);
      const reply = await ask(table, c.listener, c.query);
      if (want === null) return assert.equal(reply, null, 'dropped: no reply');
      assert.ok(reply, 'a reply');
      const got = seen(reply);
      assert.equal(got.id, 4242, 'the query id');
      assert.ok(got.flags.includes('qr'), 'a response');
      const picked = Object.fromEntries(Object.keys(want).map((k) => [k, got[k as keyof Seen]]));
      assert.deepEqual(picked, want);
    });
  }

  it('every row of the documented table has cases, and every case an expectation', () => {
    const rows = documentedRows();
    const uncovered = rows.filter((row) => !Object.keys(coverage).some((start) => row.startsWith(start)));
    assert.deepEqual(uncovered, [], 'a documented row without a case here');
    assert.equal(rows.length, Object.keys(coverage).length, 'a case list for a row docs/answers.md no longer has');
    const ids = new Set(TABLE_CASES.map((c) => c.id));
    for (const list of Object.values(coverage)) for (const id of list) assert.ok(ids.has(id), id);
    assert.deepEqual(TABLE_CASES.map((c) => c.id).filter((id) => !(id in expected)), []);
  });

  it('rotates the addresses of a name between replies', async () => {
    const raw = TABLE_CASES.find((c) => c.id === 'a-shared-alias')!.query;
    const firsts = new Set<string>();
    for (let i = 0; i < 20 && firsts.size < 2; i++) {
      const reply = await ask(table, 'web', raw);
      firsts.add(JSON.stringify(dnsPacket.decode(reply!).answers![0]));
    }
    assert.equal(firsts.size, 2, 'both holders come first in some reply');
  });
});
