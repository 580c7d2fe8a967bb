// The DNS side of egress by name, in process (privileged/egress-dns.test.ts has it in real
// namespaces): a namespace under a policy gets NXDOMAIN with EDE 15 for names it may not resolve,
// its network's own names as always, and allowed answers only once their addresses (the CNAME
// chain's included) went to the learner; a namespace without a policy is untouched.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import dnsPacket from 'dns-packet';
import { parseDocumentText } from '../../src/registry/document.js';
import { Registry } from '../../src/registry/registry.js';
import { AnswerCache } from '../../src/resolver/cache.js';
import { Forwarder } from '../../src/resolver/forwarder.js';
import { Resolver, type ListenerContext } from '../../src/resolver/resolver.js';
import type { Exchange } from '../../src/resolver/upstream.js';
import { NsdnsError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { namespacePolicy } from '../../src/egress/policy.js';
import { answerAddresses } from '../../src/wire/answer-addresses.js';
import { parseQuery, type Query } from '../../src/wire/query.js';
import { decode, queryPacket } from '../helpers/packets.js';

const NETWORK = `
name: sandbox
subnets: [{ subnet: 10.134.0.0/24 }]
records: [{ name: ext, type: CNAME, value: cdn.allowed.org }]
endpoints:
  - { name: job, ipv4: 10.134.0.2, netns: /run/netns/job, egress: [pypi.org, "*.pythonhosted.org", { cidr: 10.0.5.0/24, port: 443 }] }
  - { name: free, ipv4: 10.134.0.3, netns: /run/netns/free }
`;

/** The upstream: pypi.org is a CNAME to a CDN name with two addresses; every other A name one address. */
const upstream: Exchange = async (raw) => {
  const q = dnsPacket.decode(raw);
  const question = q.questions![0];
  const name = question.name.toLowerCase();
  let answers: dnsPacket.Answer[] = [];
  if (question.type === 'A' && name === 'pypi.org') {
    answers = [{ type: 'CNAME', name: question.name, ttl: 300, data: 'edge.cdn.example' },
      { type: 'A', name: 'edge.cdn.example', ttl: 20, data: '192.0.2.10' }, { type: 'A', name: 'edge.cdn.example', ttl: 40, data: '192.0.2.11' },
      { type: 'A', name: 'unrelated.example', ttl: 40, data: '198.51.100.1' }];
  } else if (question.type === 'AAAA') {
    answers = [{ type: 'AAAA', name: question.name, ttl: 60, data: '2001:db8::1' }];
  } else if (question.type === 'A') {
    answers = [{ type: 'A', name: question.name, ttl: 60, data: '192.0.2.99' }];
  }
  return dnsPacket.encode({ type: 'response', id: q.id, flags: 0x8180, questions: q.questions, answers });
};

interface Learned { key: string; addresses: readonly string[]; ttl: number }

function world(learn?: (l: Learned) => Promise<void>) {
  const registry = new Registry();
  registry.setNetwork(parseDocumentText(NETWORK, 'sandbox.yaml'), 'test');
  const learned: Learned[] = [];
  const namespace = (netns: string): ListenerContext => ({
    name: `netns:${netns}`, inflight: 0,
    view: () => registry.current().view(['sandbox']),
    endpoints: () => registry.current().namespaces().get(netns),
    egress: () => {
      const policy = namespacePolicy(registry.current().namespaces().get(netns)!, (n) => registry.current().networks.get(n)?.network);
      return policy && { key: netns, policy, networks: ['sandbox'] };
    },
  });
  const forward = { timeoutMs: 1000, budgetMs: 2000, maxInflight: 10, maxInflightPerListener: 10, maxInflightPerClient: 10, clientQueriesPerSecond: 0, randomizeCase: false, maxUdpSize: 1232 };
  const cache = new AnswerCache({ size: 100, maxTtl: 60, maxNegativeTtl: 60, maxBytes: 1 << 20, tenantShare: 1 });
  const resolver = new Resolver({ ttl: 5, maxUdpSize: 1232, upstreams: ['127.0.0.1:26053'], hostUpstreams: () => [], ownAddresses: new Set(), egress: { graceSeconds: 30, logDecisions: false } },
    new Forwarder(forward, cache, upstream, silentLogger), silentLogger);
  resolver.egress.learner = { learn: async (key, addresses, ttl) => { learned.push({ key, addresses: [...addresses], ttl }); await learn?.({ key, addresses, ttl }); } };
  const ask = async (who: 'job' | 'free', raw: Buffer) => decode((await resolver.handle(raw, { address: '10.134.0.2', transport: 'udp' }, namespace(`/run/netns/${who}`)))!);
  return { resolver, learned, ask };
}

/** The EDE options (option code 15) of a reply: [INFO-CODE, EXTRA-TEXT]. */
function edes(reply: dnsPacket.Packet): Array<[number, string]> {
  const opt = (reply.additionals ?? []).find((a) => a.type === 'OPT') as { options?: Array<{ code: number; data: Buffer }> } | undefined;
  return (opt?.options ?? []).filter((o) => o.code === 15).map((o) => [o.data.readUInt16BE(0), o.data.subarray(2).toString('utf8')]);
}

describe('egress by name, the DNS side', () => {
  it('a denied name: NXDOMAIN with EDE 15 "Blocked" to an EDNS client, plain NXDOMAIN otherwise, upstream never asked', async () => {
    const { resolver, ask, learned } = world();
    const sent = resolver.forwarder.stats.servers.size;
    const withEdns = await ask('job', queryPacket('evil.org', 'A', { edns: {} }));
    assert.equal(withEdns.rcode, 'NXDOMAIN');
    assert.deepEqual(edes(withEdns), [[15, 'blocked by egress policy']]);
    const plain = await ask('job', queryPacket('evil.org'));
    assert.equal(plain.rcode, 'NXDOMAIN');
    assert.equal((plain.additionals ?? []).length, 0);
    for (const name of ['pythonhosted.org', 'www.pypi.org']) assert.equal((await ask('job', queryPacket(name))).rcode, 'NXDOMAIN', name);
    assert.equal(resolver.forwarder.stats.servers.size, sent, 'nothing was forwarded');
    assert.deepEqual(learned, []);
    assert.deepEqual(resolver.egress.counts.get('sandbox'), { allowed: 0, denied: 4 });
  });

  it('an allowed name is answered once the addresses of its CNAME chain were learned, with the TTL plus the grace', async () => {
    const { ask, learned } = world();
    const reply = await ask('job', queryPacket('PyPI.org', 'A', { edns: {} }));
    assert.equal(reply.rcode, 'NOERROR');
    assert.deepEqual(learned, [{ key: '/run/netns/job', addresses: ['192.0.2.10', '192.0.2.11'], ttl: 20 + 30 }]);
    await ask('job', queryPacket('files.pythonhosted.org', 'AAAA'));
    assert.deepEqual(learned[1], { key: '/run/netns/job', addresses: ['2001:db8::1'], ttl: 60 + 30 });
    // From the cache: learned again (the set's timeout is renewed).
    await ask('job', queryPacket('pypi.org'));
    assert.equal(learned.length, 3);
  });

  it('the reply waits for the learner, and is SERVFAIL when it fails', async () => {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => { open = resolve; });
    const held = world(() => gate);
    let answered = false;
    const pending = held.ask('job', queryPacket('pypi.org')).then((r) => { answered = true; return r; });
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(answered, false, 'held until the addresses are in');
    open();
    assert.equal((await pending).rcode, 'NOERROR');
    const failing = world(() => Promise.reject(new Error('nft gone')));
    assert.equal((await failing.ask('job', queryPacket('pypi.org'))).rcode, 'SERVFAIL');
    assert.equal(failing.resolver.egress.learnFailures, 1);
    assert.equal(failing.resolver.egress.learnFull, 0);
    assert.deepEqual(edes(await failing.ask('job', queryPacket('pypi.org', 'A', { edns: {} }))), [], 'no reason given for another failure');
  });

  it('a namespace at its limit of open addresses: SERVFAIL with EDE 0 and its reason, counted apart', async () => {
    const full = world(() => Promise.reject(new NsdnsError('ERR_EGRESS_FULL', 'egress: the namespace holds its limit of 16 open addresses of one family (egress.maxLearned)')));
    const reply = await full.ask('job', queryPacket('pypi.org', 'A', { edns: {} }));
    assert.equal(reply.rcode, 'SERVFAIL');
    assert.deepEqual(edes(reply), [[0, 'egress: too many open addresses']]);
    assert.equal((await full.ask('job', queryPacket('pypi.org'))).rcode, 'SERVFAIL', 'without EDNS: no OPT to carry it');
    assert.deepEqual([full.resolver.egress.learnFailures, full.resolver.egress.learnFull], [2, 2]);
  });

  it("the network's own names answer as always; a static CNAME's outside target is opened too", async () => {
    const { ask, learned } = world();
    const own = await ask('job', queryPacket('free'));
    assert.equal(own.rcode, 'NOERROR');
    assert.deepEqual(own.answers!.map((a) => (a as { data?: unknown }).data), ['10.134.0.3']);
    assert.equal((await ask('job', queryPacket('nobody.sandbox'))).rcode, 'NXDOMAIN');
    const ext = await ask('job', queryPacket('ext'));
    assert.equal(ext.rcode, 'NOERROR');
    assert.deepEqual(learned.map((l) => l.addresses), [['192.0.2.99']]);
  });

  it('a namespace without a policy answers everything and learns nothing', async () => {
    const { ask, learned, resolver } = world();
    assert.equal((await ask('free', queryPacket('evil.org'))).rcode, 'NOERROR');
    assert.deepEqual(learned, []);
    assert.equal(resolver.egress.counts.size, 0);
  });

  it('decisions are kept per namespace, oldest first', async () => {
    const { ask, resolver } = world();
    await ask('job', queryPacket('evil.org'));
    await ask('job', queryPacket('pypi.org'));
    assert.deepEqual(resolver.egress.decisions.of('/run/netns/job').map((d) => [d.name, d.allowed]), [['evil.org', false], ['pypi.org', true]]);
    assert.deepEqual(resolver.egress.decisions.of('/run/netns/free'), []);
  });
});

describe('answerAddresses', () => {
  const reply = (answers: dnsPacket.Answer[], name = 'a.example'): [Buffer, Query] => {
    const raw = queryPacket(name);
    const q = parseQuery(raw) as Query;
    return [dnsPacket.encode({ type: 'response', id: 1, flags: 0x8180, questions: [{ name, type: 'A' }], answers }), q];
  };
  it('follows the chain from the asked name only, and stops at loops', () => {
    const [buf, q] = reply([{ type: 'CNAME', name: 'a.example', ttl: 9, data: 'b.example' }, { type: 'CNAME', name: 'b.example', ttl: 9, data: 'a.example' },
      { type: 'A', name: 'b.example', ttl: 50, data: '192.0.2.1' }, { type: 'A', name: 'c.example', ttl: 50, data: '192.0.2.2' },
      { type: 'AAAA', name: 'A.EXAMPLE', ttl: 70, data: '2001:db8:0:0:1::' }]);
    assert.deepEqual(answerAddresses(buf, q.questionEnd, q.name), { addresses: ['192.0.2.1', '2001:db8:0:0:1::'], ttl: 9 });
  });
  it('without a CNAME: the asked name\'s IN addresses, its owner named or pointed at, with the smallest TTL', () => {
    const [buf, q] = reply([{ type: 'A', name: 'A.example', ttl: 50, data: '192.0.2.1' }, { type: 'A', name: 'c.example', ttl: 1, data: '192.0.2.2' },
      { type: 'A', name: 'a.example', class: 'CH', ttl: 1, data: '192.0.2.3' }, { type: 'TXT', name: 'a.example', ttl: 1, data: 'x' },
      { type: 'AAAA', name: 'a.example', ttl: 30, data: '2001:db8::7' }]);
    assert.deepEqual(answerAddresses(buf, q.questionEnd, q.name), { addresses: ['192.0.2.1', '2001:db8::7'], ttl: 30 });
    // What servers and the cache write: the owner a pointer to the question's name (0xc00c).
    const rr = (type: number, ttl: number, rdata: number[]) => Buffer.from([0xc0, 12, 0, type, 0, 1, 0, 0, 0, ttl, 0, rdata.length, ...rdata]);
    const header = Buffer.from(buf.subarray(0, q.questionEnd));
    header.writeUInt16BE(2, 6);
    const pointed = Buffer.concat([header, rr(1, 40, [198, 51, 100, 9]), rr(1, 20, [198, 51, 100, 10])]);
    assert.deepEqual(answerAddresses(pointed, q.questionEnd, q.name), { addresses: ['198.51.100.9', '198.51.100.10'], ttl: 20 });
    // A record cut short after the addresses: the whole message is malformed.
    header.writeUInt16BE(3, 6);
    assert.equal(answerAddresses(Buffer.concat([header, rr(1, 40, [198, 51, 100, 9]), rr(1, 20, [198, 51, 100, 10]), rr(1, 20, [1, 2, 3, 4]).subarray(0, 8)]), q.questionEnd, q.name), undefined);
  });
  it('with a CNAME: an address whose owner name cannot be read is nobody\'s, even when the chain reaches the root', () => {
    // The chain ends at the root's name (''), what an unreadable owner must never be taken for.
    const [chained, q] = reply([{ type: 'CNAME', name: 'a.example', ttl: 30, data: 'b.example' }, { type: 'CNAME', name: 'b.example', ttl: 30, data: '.' },
      { type: 'A', name: 'b.example', ttl: 40, data: '192.0.2.1' }]);
    // Two more A records whose owners are compression pointers that cannot be followed: one to
    // itself (a loop), one past the end of the message. Their addresses must not be opened.
    const unreadable = (target: number, address: number[]) => Buffer.from([0xc0 | (target >> 8), target & 0xff, 0, 1, 0, 1, 0, 0, 0, 10, 0, 4, ...address]);
    const looped = unreadable(chained.length, [198, 51, 100, 66]);
    const beyond = unreadable(0x3fff, [198, 51, 100, 67]);
    const buf = Buffer.concat([chained, looped, beyond]);
    buf.writeUInt16BE(5, 6);
    assert.deepEqual(answerAddresses(buf, q.questionEnd, q.name), { addresses: ['192.0.2.1'], ttl: 30 });
  });
  it('none, or a malformed message: undefined', () => {
    const [buf, q] = reply([{ type: 'A', name: 'other.example', ttl: 5, data: '192.0.2.1' }]);
    assert.equal(answerAddresses(buf, q.questionEnd, q.name), undefined);
    assert.equal(answerAddresses(buf.subarray(0, buf.length - 3), q.questionEnd, q.name), undefined);
  });
});
