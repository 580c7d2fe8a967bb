// The cache, health and failover logic, driven through an injected exchange function. The real
// sockets are covered by test/integration/forwarding.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import dnsPacket from 'dns-packet';
import { AnswerCache, cacheKey } from '../../src/resolver/cache.js';
import { Forwarder } from '../../src/resolver/forwarder.js';
import { PROBE_INTERVAL_MS, UpstreamHealth } from '../../src/resolver/health.js';
import { parseUpstream } from '../../src/resolver/upstream-address.js';
import type { Exchange } from '../../src/resolver/upstream.js';
import { parseQuery, type Query } from '../../src/wire/query.js';
import { inspectReply } from '../../src/wire/records.js';
import { silentLogger } from '../../src/log.js';
import { Resolver, type ListenerContext } from '../../src/resolver/resolver.js';
import { View } from '../../src/registry/view.js';
import { scrubReply } from '../../src/wire/scrub.js';
import { buildUpstreamQuery } from '../../src/wire/upstream-query.js';
import { decode, queryPacket } from '../helpers/packets.js';

/** A query for the name with these labels, encoded by hand (dns-packet cannot put a '.' inside a label). */
function rawQuery(labels: Buffer[], flags = 0x0100): Buffer {
  const header = Buffer.from([0x12, 0x34, flags >> 8, flags & 0xff, 0, 1, 0, 0, 0, 0, 0, 0]);
  return Buffer.concat([header, ...labels.flatMap((l) => [Buffer.from([l.length]), l]), Buffer.from([0, 0, 1, 0, 1])]);
}

/** What the forwarder stores: the reply scrubbed against the query it would have sent. */
function scrubbed(query: Query, reply: Buffer): Buffer {
  const out = scrubReply(reply, buildUpstreamQuery(query, 1232), query.questionEnd, 1232);
  if (typeof out === 'string') assert.fail(out);
  return out.reply;
}

const q = (name: string, type: dnsPacket.RecordType = 'A', edns?: { do?: boolean }) => parseQuery(queryPacket(name, type, edns ? { edns } : {})) as Query;

function answer(query: Buffer, ttl: number, rcode = 'NOERROR'): Buffer {
  const p = dnsPacket.decode(query);
  const code = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3 }[rcode]!;
  return dnsPacket.encode({ type: 'response', id: p.id, flags: 0x8180 | code, questions: p.questions, answers: code === 0 ? [{ type: 'A', name: p.questions![0].name, ttl, data: '192.0.2.1' }] : [] });
}

describe('answer cache', () => {
  it('keys never mix types, DO bits or names', () => {
    const keys = new Set([cacheKey(q('a.test')), cacheKey(q('a.test', 'AAAA')), cacheKey(q('a.test', 'A', { do: true })), cacheKey(q('b.test'))]);
    assert.equal(keys.size, 4);
    assert.equal(cacheKey(q('A.TEST')), cacheKey(q('a.test')));
  });

  it('keys are one-to-one: a dot or backslash inside a label, and RD, make other keys', () => {
    // `ok-c\` + `example` (two labels) against `ok-c.example` (one label), built by hand.
    const twoLabels = parseQuery(rawQuery([Buffer.from('ok-c\\'), Buffer.from('example')])) as Query;
    const oneLabel = parseQuery(rawQuery([Buffer.from('ok-c.example')])) as Query;
    assert.equal(twoLabels.kind, 'query');
    assert.notEqual(cacheKey(twoLabels), cacheKey(oneLabel));
    const noRecursion = parseQuery(queryPacket('a.test', 'A', { flags: 0 })) as Query;
    assert.notEqual(cacheKey(noRecursion), cacheKey(q('a.test')));
  });

  it('serves a hit with the new id and question case, and TTLs aged', async (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
    const cache = new AnswerCache({ size: 10, maxTtl: 3600, maxNegativeTtl: 300, maxBytes: 1 << 20, tenantShare: 1 });
    const first = q('a.test');
    const reply = scrubbed(first, answer(first.raw, 100));
    assert.equal(cache.put(cacheKey(first), reply, inspectReply(reply, first.questionEnd)!), 100);
    t.mock.timers.tick(30_500);
    const other = parseQuery(queryPacket('A.Test', 'A', { id: 777 })) as Query;
    const hit = decode(cache.get(cacheKey(other), other)!);
    assert.equal(hit.id, 777);
    assert.equal(hit.questions![0].name, 'A.Test');
    assert.equal((hit.answers![0] as { ttl: number }).ttl, 70);
  });

  it('caps TTLs, does not cache SERVFAIL or SOA-less NXDOMAIN', () => {
    const cache = new AnswerCache({ size: 10, maxTtl: 60, maxNegativeTtl: 300, maxBytes: 1 << 20, tenantShare: 1 });
    const query = q('a.test');
    const long = answer(query.raw, 86400);
    assert.equal(cache.put('k1', long, inspectReply(long, query.questionEnd)!), 60);
    const fail = answer(query.raw, 0, 'SERVFAIL');
    assert.equal(cache.put('k2', fail, inspectReply(fail, query.questionEnd)!), 0);
    const nx = answer(query.raw, 0, 'NXDOMAIN');
    assert.equal(cache.put('k3', nx, inspectReply(nx, query.questionEnd)!), 0);
  });
});

describe('answer cache bytes', () => {
  /** A reply of about `bytes` bytes: one TXT record padded out. */
  function large(query: Query, bytes: number): Buffer {
    const p = dnsPacket.decode(query.raw);
    const text = Array.from({ length: Math.ceil(bytes / 250) }, () => 'x'.repeat(250));
    return dnsPacket.encode({ type: 'response', id: p.id, flags: 0x8180, questions: p.questions, answers: [{ type: 'TXT', name: p.questions![0].name, ttl: 60, data: text }] });
  }
  const put = (cache: AnswerCache, name: string, tenant: string, bytes = 10_000) => {
    const query = q(name, 'TXT');
    const reply = scrubbed(query, large(query, bytes));
    return cache.put(cacheKey(query), reply, inspectReply(reply, query.questionEnd)!, tenant);
  };

  it('one tenant never holds more than its share, and makes room among its own entries only', () => {
    const cache = new AnswerCache({ size: 10_000, maxTtl: 60, maxNegativeTtl: 60, maxBytes: 200_000, tenantShare: 0.25 });
    put(cache, 'kept.b.test', 'b');
    const bBytes = cache.bytesOf('b');
    for (let i = 0; i < 50; i++) {
      put(cache, `n${i}.a.test`, 'a');
      assert.ok(cache.bytesOf('a') <= 50_000, `tenant a holds ${cache.bytesOf('a')} bytes`);
    }
    assert.ok(cache.bytesOf('a') > 40_000, 'a still caches up to its share');
    assert.equal(cache.bytesOf('b'), bBytes, "b's entry was not pushed out by a");
    assert.ok(cache.get(cacheKey(q('kept.b.test', 'TXT')), q('kept.b.test', 'TXT')));
    assert.ok(cache.get(cacheKey(q('n49.a.test', 'TXT')), q('n49.a.test', 'TXT')), "a's newest entry is kept");
    assert.equal(cache.bytes, cache.bytesOf('a') + cache.bytesOf('b'));
  });

  it('the whole cache stays under maxBytes however many tenants fill it', () => {
    const cache = new AnswerCache({ size: 10_000, maxTtl: 60, maxNegativeTtl: 60, maxBytes: 100_000, tenantShare: 0.5 });
    for (let i = 0; i < 60; i++) {
      put(cache, `n${i}.test`, `t${i % 7}`);
      assert.ok(cache.bytes <= 100_000, `${cache.bytes} bytes`);
    }
    let sum = 0;
    for (let t = 0; t < 7; t++) sum += cache.bytesOf(`t${t}`);
    assert.equal(sum, cache.bytes, 'the tenants\' accounts add up to what the cache holds');
  });

  it('an answer larger than a share is not stored', () => {
    const cache = new AnswerCache({ size: 10, maxTtl: 60, maxNegativeTtl: 60, maxBytes: 100_000, tenantShare: 0.1 });
    assert.equal(put(cache, 'big.test', 'a', 20_000), 0);
    assert.equal(cache.bytes, 0);
  });
});

describe('upstream health', () => {
  it('puts failing servers last and forgives them after a success', () => {
    const health = new UpstreamHealth();
    const servers = ['a', 'b', 'c'].map((key) => ({ key }));
    health.failed('a');
    assert.deepEqual(health.order(servers).map((s) => s.key), ['b', 'c', 'a']);
    health.succeeded('a');
    assert.deepEqual(health.order(servers).map((s) => s.key), ['a', 'b', 'c']);
  });
});

describe('forwarder', () => {
  const options = { timeoutMs: 200, budgetMs: 1000, maxInflight: 10, maxInflightPerListener: 10, maxInflightPerClient: 10, clientQueriesPerSecond: 0, randomizeCase: false, maxUdpSize: 1232 };
  const servers = [parseUpstream('127.0.0.1:1001'), parseUpstream('127.0.0.1:1002')];

  it('fails over on timeout and SERVFAIL, then remembers the failing server', async () => {
    const asked: string[] = [];
    const exchange: Exchange = async (raw, _qe, server) => {
      asked.push(server.key);
      if (server.port === 1001) throw new Error('timeout');
      return answer(raw, 60);
    };
    const fwd = new Forwarder(options, new AnswerCache({ size: 0, maxTtl: 60, maxNegativeTtl: 60, maxBytes: 1 << 20, tenantShare: 1 }), exchange, silentLogger);
    const listener = { inflight: 0 };
    const first = await fwd.forward(q('x.test'), servers, 'k', 'udp', listener, 'c');
    assert.equal(decode(first.reply!).answers!.length, 1);
    await fwd.forward(q('y.test'), servers, 'k', 'udp', listener, 'c');
    assert.deepEqual(asked, ['127.0.0.1:1001', '127.0.0.1:1002', '127.0.0.1:1002']);
    assert.equal(listener.inflight, 0);
  });

  it('asks the next server after REFUSED, passes REFUSED through when none answers better, and keeps the server healthy', async () => {
    const asked: string[] = [];
    const refusing: Exchange = async (raw, _qe, server) => {
      asked.push(server.key);
      const reply = answer(raw, 60, 'SERVFAIL');
      if (server.port === 1001) reply.writeUInt16BE((reply.readUInt16BE(2) & ~0x0f) | 5, 2);
      return reply;
    };
    const fwd = new Forwarder(options, new AnswerCache({ size: 0, maxTtl: 60, maxNegativeTtl: 60, maxBytes: 1 << 20, tenantShare: 1 }), refusing, silentLogger);
    const got = await fwd.forward(q('x.test'), servers, 'k', 'udp', { inflight: 0 }, 'c');
    assert.equal(decode(got.reply!).rcode, 'REFUSED', 'the first answer, since SERVFAIL from the second is no better');
    assert.deepEqual(asked, ['127.0.0.1:1001', '127.0.0.1:1002']);
    assert.equal(fwd.health.isFailing('127.0.0.1:1001'), false);
    assert.equal(fwd.health.isFailing('127.0.0.1:1002'), false);
  });

  it('does not ask a known-dead server again until its probe interval has passed', async (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
    let asked = 0;
    const dead: Exchange = async () => { asked++; throw new Error('timeout'); };
    const fwd = new Forwarder(options, new AnswerCache({ size: 0, maxTtl: 60, maxNegativeTtl: 60, maxBytes: 1 << 20, tenantShare: 1 }), dead, silentLogger);
    const one = [servers[0]];
    const rcodes = [];
    for (let i = 0; i < 6; i++) rcodes.push(decode((await fwd.forward(q(`n${i}.test`), one, 'k', 'udp', { inflight: 0 }, 'c')).reply!).rcode);
    assert.deepEqual(rcodes, Array(6).fill('SERVFAIL'));
    assert.equal(asked, 3, 'asked until known dead (3 failures in a row), then not');
    const skipped = await fwd.forward(q('skipped.test'), one, 'k', 'udp', { inflight: 0 }, 'c');
    assert.match((skipped.origin as { reason: string }).reason, /known dead/);
    t.mock.timers.tick(PROBE_INTERVAL_MS);
    await fwd.forward(q('probe.test'), one, 'k', 'udp', { inflight: 0 }, 'c');
    await fwd.forward(q('after-probe.test'), one, 'k', 'udp', { inflight: 0 }, 'c');
    assert.equal(asked, 4, 'one query per probe interval asks it');
  });

  it('answers SERVFAIL when every server fails, and at once when over the in-flight limit', async () => {
    const never: Exchange = () => new Promise(() => {});
    const fwd = new Forwarder({ ...options, maxInflight: 1 }, new AnswerCache({ size: 0, maxTtl: 60, maxNegativeTtl: 60, maxBytes: 1 << 20, tenantShare: 1 }), never, silentLogger);
    void fwd.forward(q('slow.test'), servers, 'k', 'udp', { inflight: 0 }, 'c');
    const refused = await fwd.forward(q('other.test'), servers, 'k', 'udp', { inflight: 0 }, 'c');
    assert.equal(decode(refused.reply!).rcode, 'SERVFAIL');
    assert.deepEqual(refused.origin, { source: 'error', reason: 'overload' });
  });

  it('at the cap, a client still below its fair part of it gets in; the one holding the cap does not', async () => {
    const asked: string[] = [];
    const never: Exchange = (query) => { asked.push(String(query.readUInt16BE(0))); return new Promise(() => {}); };
    const fwd = new Forwarder({ ...options, maxInflight: 4, maxInflightPerClient: 10 }, new AnswerCache({ size: 0, maxTtl: 60, maxNegativeTtl: 60, maxBytes: 1 << 20, tenantShare: 1 }), never, silentLogger);
    const listener = { inflight: 0 };
    for (const n of ['a', 'b', 'c', 'd']) void fwd.forward(q(`${n}.hog.test`), servers, 'k', 'udp', listener, 'hog');
    const hog = await fwd.forward(q('e.hog.test'), servers, 'k', 'udp', listener, 'hog');
    assert.equal(decode(hog.reply!).rcode, 'SERVFAIL', 'the client holding the whole cap is turned away');
    void fwd.forward(q('light.test'), servers, 'k', 'udp', listener, 'light');
    await new Promise((r) => setImmediate(r));
    assert.equal(asked.length, 5, 'the light client was sent upstream');
  });
});

describe('fair shares', () => {
  const settings = { ttl: 5, maxUdpSize: 1232, upstreams: ['127.0.0.1:1001'], hostUpstreams: () => [], ownAddresses: new Set<string>() };
  const namespace = (name: string): ListenerContext => ({ name: `netns:${name}`, inflight: 0, view: () => view, endpoints: () => [] });
  const view = new View([]);
  const client = { address: '10.0.0.2', transport: 'udp' as const };

  function resolver(limits: { maxInflightPerClient: number; clientQueriesPerSecond: number }) {
    const asked: string[] = [];
    const never: Exchange = (raw) => {
      asked.push(decode(raw).questions![0].name);
      return new Promise(() => {});
    };
    const options = { timeoutMs: 200, budgetMs: 1000, maxInflight: 100, maxInflightPerListener: 100, randomizeCase: false, maxUdpSize: 1232, ...limits };
    return { asked, resolver: new Resolver(settings, new Forwarder(options, new AnswerCache({ size: 0, maxTtl: 60, maxNegativeTtl: 60, maxBytes: 1 << 20, tenantShare: 1 }), never, silentLogger), silentLogger) };
  }

  const rcodeOf = async (r: Buffer | null | Promise<Buffer | null>) => {
    const settled = await Promise.race([r, new Promise<null>((resolve) => setTimeout(() => resolve(null), 50))]);
    return settled ? decode(settled).rcode : 'pending';
  };

  it('refuses a namespace over its in-flight share while another namespace is forwarded', async () => {
    const { asked, resolver: res } = resolver({ maxInflightPerClient: 2, clientQueriesPerSecond: 0 });
    const a = namespace('a');
    const b = namespace('b');
    const got = [];
    for (const n of ['1', '2', '3']) got.push(await rcodeOf(res.handle(queryPacket(`${n}.a.test`), client, a)));
    got.push(await rcodeOf(res.handle(queryPacket('1.b.test'), client, b)));
    assert.deepEqual(got, ['pending', 'pending', 'REFUSED', 'pending']);
    assert.deepEqual(asked, ['1.a.test', '2.a.test', '1.b.test']);
  });

  it('refuses a namespace over its rate while another namespace is forwarded', async () => {
    const { asked, resolver: res } = resolver({ maxInflightPerClient: 100, clientQueriesPerSecond: 2 });
    const got = [];
    for (const n of ['1', '2', '3']) got.push(await rcodeOf(res.handle(queryPacket(`${n}.a.test`), client, namespace('a'))));
    got.push(await rcodeOf(res.handle(queryPacket('1.b.test'), client, namespace('b'))));
    assert.deepEqual(got, ['pending', 'pending', 'REFUSED', 'pending']);
    assert.equal(asked.length, 3);
  });
});
