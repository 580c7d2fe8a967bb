// The table "How answers are decided" (docs/answers.md), as data: one registry, one resolver, and one case
// per row (some rows have several), each a query in bytes and the listener it arrives at. Shared by
// test/unit/answer-table.test.ts (which asserts what each row promises) and
// test/unit/golden.test.ts (which keeps every reply as a golden file). All in-process: the only
// "upstream" is an Exchange function answering from memory, so nothing leaves this process.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import dnsPacket from 'dns-packet';
import { parseDocumentText } from '../../src/registry/document.js';
import { Registry } from '../../src/registry/registry.js';
import { AnswerCache } from '../../src/resolver/cache.js';
import { Forwarder } from '../../src/resolver/forwarder.js';
import { Resolver, type ListenerContext } from '../../src/resolver/resolver.js';
import type { Exchange } from '../../src/resolver/upstream.js';
import { silentLogger } from '../../src/log.js';
import { ROOT } from './daemon.js';
import { queryPacket } from './packets.js';

/** The registry files of the table's world (a network, one with a domain, an internal one): also goldens' inputs. */
export const TABLE_REGISTRY_DIR = path.join(ROOT, 'test/golden/registry');

export function tableDocuments(): Record<string, string> {
  const files = readdirSync(TABLE_REGISTRY_DIR).filter((f) => f.endsWith('.yaml')).sort();
  return Object.fromEntries(files.map((f) => [f, readFileSync(path.join(TABLE_REGISTRY_DIR, f), 'utf8')]));
}

export const UPSTREAM = '127.0.0.1:26053';
export const UPSTREAM_ADDRESS = '192.0.2.53';

/**
 * The upstream, in memory: any A question is answered with UPSTREAM_ADDRESS, TTL 60; names under
 * `slow.example.com` a little later, as an upstream far away does (the answer is still on its way
 * when the client's other questions are answered).
 */
const upstream: Exchange = async (raw) => {
  const q = dnsPacket.decode(raw);
  const question = q.questions![0];
  if (question.name.toLowerCase().endsWith('slow.example.com')) await new Promise((r) => setTimeout(r, 100));
  const answers: dnsPacket.Answer[] = question.type === 'A' ? [{ type: 'A', name: question.name, ttl: 60, data: UPSTREAM_ADDRESS }] : [];
  return dnsPacket.encode({ type: 'response', id: q.id, flags: 0x8180, questions: q.questions, answers });
};

export type ListenerName = 'host' | 'web' | 'vault';

export interface Table {
  resolver: Resolver;
  listeners: Record<ListenerName, ListenerContext>;
}

export function buildTable(): Table {
  const registry = new Registry();
  for (const [file, text] of Object.entries(tableDocuments())) registry.setNetwork(parseDocumentText(text, file), 'golden');
  const namespace = (netns: string): ListenerContext => ({
    name: `netns:${netns}`, inflight: 0,
    view: () => registry.current().view([...new Set(registry.current().namespaces().get(netns)!.map((e) => e.network))]),
    endpoints: () => registry.current().namespaces().get(netns),
  });
  const listeners = {
    host: { name: 'host:127.0.0.1:53', inflight: 0, view: () => registry.current().view(), endpoints: () => undefined },
    web: namespace('/run/netns/golden-web'),
    vault: namespace('/run/netns/golden-vault'),
  };
  const forward = { timeoutMs: 1000, budgetMs: 2000, maxInflight: 10, maxInflightPerListener: 10, maxInflightPerClient: 10, clientQueriesPerSecond: 0, randomizeCase: false, maxUdpSize: 1232 };
  const cache = new AnswerCache({ size: 0, maxTtl: 60, maxNegativeTtl: 60, maxBytes: 1 << 20, tenantShare: 1 });
  const resolver = new Resolver(
    { ttl: 5, maxUdpSize: 1232, upstreams: [UPSTREAM], hostUpstreams: () => [], ownAddresses: new Set() },
    new Forwarder(forward, cache, upstream, silentLogger), silentLogger);
  return { resolver, listeners };
}

/** Ask the table's resolver over UDP from 10.190.0.10; null when it drops the message. */
export async function ask(table: Table, listener: ListenerName, raw: Buffer): Promise<Buffer | null> {
  return table.resolver.handle(raw, { address: '10.190.0.10', transport: 'udp' }, table.listeners[listener]);
}

/** A query with its header changed: `patch` edits a copy of the bytes. */
function patched(raw: Buffer, patch: (b: Buffer) => void): Buffer {
  const copy = Buffer.from(raw);
  patch(copy);
  return copy;
}

export interface TableCase {
  /** File name of its golden, and the test's name. */
  id: string;
  /** The docs/answers.md row it checks, as the row begins. */
  row: string;
  listener: ListenerName;
  query: Buffer;
}

const q = (name: string, type: dnsPacket.RecordType = 'A', flags?: number) => queryPacket(name, type, flags === undefined ? {} : { flags });
const RD = dnsPacket.RECURSION_DESIRED;

export const TABLE_CASES: TableCase[] = [
  { id: 'drop-short', row: 'shorter than a header', listener: 'host', query: Buffer.from([0x12, 0x34, 0x01, 0x00, 0x00]) },
  { id: 'drop-response', row: 'a response (QR=1)', listener: 'host', query: patched(q('web'), (b) => { b[2] |= 0x80; }) },
  { id: 'notimp-opcode', row: 'opcode other than QUERY', listener: 'host', query: patched(q('web'), (b) => { b[2] |= 2 << 3; }) },
  { id: 'formerr-no-question', row: 'not exactly one question', listener: 'host', query: Buffer.from([0x10, 0x92, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0]) },
  { id: 'formerr-two-questions', row: 'not exactly one question', listener: 'host',
    query: dnsPacket.encode({ type: 'query', id: 4242, flags: RD, questions: [{ name: 'web', type: 'A' }, { name: 'db', type: 'A' }] }) },
  { id: 'badvers', row: 'EDNS version above 0', listener: 'host',
    query: patched(queryPacket('web', 'A', { edns: {} }), (b) => { b[b.length - 5] = 1; }) }, // the OPT TTL's version byte
  { id: 'a-name', row: 'A / AAAA for a name', listener: 'web', query: q('web') },
  { id: 'a-alias', row: 'A / AAAA for a name, alias', listener: 'web', query: q('www') },
  { id: 'a-short-id', row: 'A / AAAA for a name, alias or 12-character id', listener: 'web', query: q('0123456789ab') },
  { id: 'a-name-network', row: 'A / AAAA (name.network)', listener: 'web', query: q('web.lab') },
  { id: 'a-name-domain', row: 'A / AAAA (name.domain)', listener: 'host', query: q('mon.ops.example') },
  { id: 'aaaa-name', row: 'A / AAAA for a name', listener: 'web', query: q('db', 'AAAA') },
  { id: 'a-shared-alias', row: "a shared alias gives every healthy holder's addresses", listener: 'web', query: q('pool') },
  { id: 'a-unhealthy-own-name', row: "An endpoint's own name keeps answering whatever its health", listener: 'web', query: q('db') },
  { id: 'txt-labels', row: 'TXT for such a name', listener: 'web', query: q('web', 'TXT') },
  { id: 'srv-name', row: 'SRV _service._proto.NAME', listener: 'web', query: q('_http._tcp.web', 'SRV') },
  { id: 'srv-shared-alias', row: 'SRV _service._proto.NAME (a shared alias)', listener: 'web', query: q('_http._tcp.pool', 'SRV') },
  { id: 'srv-other-type', row: 'SRV: other types there: NODATA', listener: 'web', query: q('_http._tcp.web', 'A') },
  { id: 'srv-unknown-service', row: 'SRV: an unknown service: NXDOMAIN', listener: 'web', query: q('_ftp._tcp.web', 'SRV') },
  { id: 'static-a', row: 'a static record of the network', listener: 'web', query: q('printer') },
  { id: 'static-cname-local', row: 'a CNAME to a local name is followed', listener: 'web', query: q('docs') },
  { id: 'static-cname-outside', row: "one to an outside name is answered with the target's records from upstream", listener: 'web', query: q('ext') },
  { id: 'host-gateway-namespace', row: 'host.nsdns.internal', listener: 'web', query: q('host.nsdns.internal') },
  { id: 'host-gateway-host-listener', row: 'host.nsdns.internal: NXDOMAIN on a host listener', listener: 'host', query: q('host.nsdns.internal') },
  { id: 'host-gateway-internal-only', row: 'host.nsdns.internal: NXDOMAIN for a namespace only on internal networks', listener: 'vault', query: q('host.nsdns.internal') },
  { id: 'nodata-family', row: 'no address of that family', listener: 'web', query: q('web', 'AAAA') },
  { id: 'nodata-type', row: 'or another type (MX, ...)', listener: 'web', query: q('web', 'MX') },
  { id: 'any', row: 'ANY for such a name', listener: 'web', query: q('db', 'ANY' as dnsPacket.RecordType) },
  { id: 'ptr-endpoint', row: 'PTR for an endpoint address', listener: 'web', query: q('10.0.190.10.in-addr.arpa', 'PTR') },
  { id: 'ptr-static', row: 'PTR for a static A/AAAA record', listener: 'web', query: q('200.0.190.10.in-addr.arpa', 'PTR') },
  { id: 'nxdomain-in-zone', row: 'a name inside a local zone that does not exist', listener: 'web', query: q('nope.lab') },
  { id: 'forwarded', row: 'anything else', listener: 'web', query: q('www.example.com') },
  { id: 'local-flags', row: 'Local answers have AA=1, copy RD and CD, set RA, keep the question case', listener: 'web',
    query: q('Web.LAB', 'A', RD | dnsPacket.CHECKING_DISABLED) },
  { id: 'local-no-ra-internal', row: 'set RA when the query could be forwarded (internal: not)', listener: 'vault', query: q('secrets') },
];

/** What a client sees in a reply, in words; records sorted in each section (shared names are shuffled). */
export interface Seen {
  id: number;
  rcode: string;
  /** Extended RCODE from the OPT record, when one is there (BADVERS is 16: 1 there, 0 in the header). */
  extendedRcode?: number;
  flags: string[];
  question: string[];
  answer: string[];
  authority: string[];
  additional: string[];
}

function recordText(r: dnsPacket.Answer): string {
  const record = r as { name: string; type: string; ttl?: number; class?: string; data?: unknown };
  const data = Array.isArray(record.data)
    ? record.data.map((d) => JSON.stringify(Buffer.isBuffer(d) ? d.toString() : d)).join(' ')
    : typeof record.data === 'object' && record.data !== null ? Object.values(record.data).join(' ') : String(record.data);
  return `${record.name}. ${record.ttl} ${record.class ?? 'IN'} ${record.type} ${data}`;
}

export function seen(reply: Buffer): Seen {
  const p = dnsPacket.decode(reply) as dnsPacket.Packet & { rcode?: string; flag_qr?: boolean; flag_aa?: boolean; flag_tc?: boolean; flag_rd?: boolean; flag_ra?: boolean; flag_ad?: boolean; flag_cd?: boolean };
  const flags = (['qr', 'aa', 'tc', 'rd', 'ra', 'ad', 'cd'] as const).filter((f) => p[`flag_${f}`]);
  const opt = (p.additionals ?? []).find((a) => a.type === 'OPT') as { extendedRcode?: number } | undefined;
  return {
    id: p.id ?? 0,
    rcode: p.rcode ?? '?',
    ...(opt?.extendedRcode ? { extendedRcode: opt.extendedRcode } : {}),
    flags,
    question: (p.questions ?? []).map((x) => `${x.name}. ${x.class} ${x.type}`),
    answer: (p.answers ?? []).map(recordText).sort(),
    authority: (p.authorities ?? []).map(recordText).sort(),
    additional: (p.additionals ?? []).filter((a) => a.type !== 'OPT').map(recordText).sort(),
  };
}

/** A reply as dig-like text, for the goldens. */
export function replyText(reply: Buffer | null): string {
  if (reply === null) return ';; dropped: no reply\n';
  const s = seen(reply);
  const lines = [`;; id ${s.id}, ${s.rcode}${s.extendedRcode ? ` (extended rcode ${s.extendedRcode})` : ''}, flags: ${s.flags.join(' ')}`];
  for (const [section, records] of [['QUESTION', s.question], ['ANSWER', s.answer], ['AUTHORITY', s.authority], ['ADDITIONAL', s.additional]] as const) {
    if (records.length > 0) lines.push(`;; ${section}`, ...records);
  }
  return `${lines.join('\n')}\n`;
}
