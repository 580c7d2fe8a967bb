// What egress by name costs a query, in process (no daemon, no root): cache hits for 100 names
// asked from a namespace listener, built as listeners/namespace-spec.ts builds one. Modes:
//   plain         the namespace has no policy (the path every other namespace takes)
//   policy        its endpoint is under a policy that allows the names (no learner)
//   policy-learn  the same, with a learner that resolves at once (the addresses read from each answer)
//   node dist/bench/egress-dns.js MODE [QUERIES]     (default 2 000 000); prints ns per query.
// `plain` runs against an older build too (copy this file into its dist/bench/): the before/after of
// a namespace without a policy.
import dnsPacket from 'dns-packet';
import { parseDocumentText } from '../src/registry/document.js';
import { Registry } from '../src/registry/registry.js';
import { AnswerCache } from '../src/resolver/cache.js';
import { Forwarder } from '../src/resolver/forwarder.js';
import { Resolver, type ListenerContext } from '../src/resolver/resolver.js';
import type { Exchange } from '../src/resolver/upstream.js';
import { silentLogger } from '../src/log.js';
import { queryMessage } from '../src/wire/records-write.js';

const mode = process.argv[2] ?? 'plain';
const QUERIES = Number(process.argv[3] ?? 2_000_000);
const NAMES = Array.from({ length: 100 }, (_, i) => `n${i}.example.org`);

const upstream: Exchange = async (raw) => {
  const q = dnsPacket.decode(raw);
  const answers: dnsPacket.Answer[] = [{ type: 'A', name: q.questions![0].name, ttl: 3600, data: '192.0.2.1' }];
  return dnsPacket.encode({ type: 'response', id: q.id, flags: 0x8180, questions: q.questions, answers });
};

const egress = mode === 'plain' ? '' : ', egress: ["*.example.org"]';
const registry = new Registry();
registry.setNetwork(parseDocumentText(`name: bench\nsubnets: [{subnet: 10.134.0.0/24}]\nendpoints:\n  - {name: job, ipv4: 10.134.0.2, netns: /run/netns/bench${egress}}\n`, 'bench.yaml'), 'bench');
const netns = '/run/netns/bench';
// Loaded only where it exists: `plain` also runs on builds from before egress by name.
const policyOf = mode === 'plain' ? undefined : (await import('../src/egress/policy.js')).namespacePolicy;
const current = registry.derived((snapshot) => {
  const endpoints = snapshot.namespaces().get(netns) ?? [];
  const policy = policyOf?.(endpoints, (n) => snapshot.networks.get(n)?.network);
  return { endpoints, view: snapshot.view(['bench']), egress: policy && { key: netns, policy, networks: ['bench'] } };
});
const listener = { name: `netns:${netns}`, inflight: 0, view: () => current().view, endpoints: () => current().endpoints, egress: () => current().egress } as ListenerContext;

const forward = { timeoutMs: 1000, budgetMs: 2000, maxInflight: 100, maxInflightPerListener: 100, maxInflightPerClient: 100, clientQueriesPerSecond: 0, randomizeCase: false, maxUdpSize: 1232 };
const cache = new AnswerCache({ size: 10_000, maxTtl: 3600, maxNegativeTtl: 60, maxBytes: 1 << 24, tenantShare: 1 });
const resolver = new Resolver({ ttl: 5, maxUdpSize: 1232, upstreams: ['127.0.0.1:26053'], hostUpstreams: () => [], ownAddresses: new Set() },
  new Forwarder(forward, cache, upstream, silentLogger), silentLogger);
if (mode === 'policy-learn') (resolver as unknown as { egress: { learner: unknown } }).egress.learner = { learn: () => Promise.resolve() };

const client = { address: '10.134.0.2', transport: 'udp' as const };
const queries = NAMES.map((n, i) => queryMessage(i, n, 1));
for (const q of queries) await resolver.handle(q, client, listener);

const start = process.hrtime.bigint();
for (let i = 0; i < QUERIES; i++) {
  const reply = resolver.handle(queries[i % queries.length], client, listener);
  if (reply instanceof Promise) await reply;
}
const ns = Number(process.hrtime.bigint() - start) / QUERIES;
console.log(`${mode}\t${ns.toFixed(0)} ns/query`);
