// Answers from the registry: names, aliases, services (SRV), labels (TXT), static records and
// reverse lookups of what is in the view. A name we own is answered here whatever its type (NODATA
// when we have nothing of that type), and a name inside one of our zones that does not exist is
// NXDOMAIN: neither is ever forwarded. The only exception is a static CNAME to an outside name,
// whose target the resolver forwards (see Chase).
import { QCLASS_ANY, QCLASS_IN, QTYPE, RCODE } from '../wire/constants.js';
import { addressFromReverseName } from '../wire/names.js';
import type { Query } from '../wire/query.js';
import { addressReply, recordsReply, type ReplyOptions } from '../wire/reply.js';
import { addressRecords, encodeName, nameRecord, soaRecord, srvRecords, txtRecords } from '../wire/records-write.js';
import type { EncodedMemo, Found, View } from '../registry/view.js';

export interface LocalOptions {
  /** TTL of local answers, seconds. */
  ttl: number;
  maxUdpSize: number;
  /** The host's name for namespaces (`host.nsdns.internal`), lower case; '' for none. */
  hostName?: string;
  /** PTR gives every name and alias of an endpoint, not its canonical name alone (aardvark-dns does). */
  ptrEveryName?: boolean;
}

/** A static CNAME to a name that is not ours: answered with these records and the target's, forwarded. */
export interface Chase {
  readonly kind: 'chase';
  readonly target: string;
  /** The CNAME records so far (owner: the question). */
  readonly records: readonly Buffer[];
  readonly reply: ReplyOptions;
}

export function isChase(answer: Buffer | Chase | undefined): answer is Chase {
  return answer !== undefined && !Buffer.isBuffer(answer);
}

/**
 * The reply when the name is ours; a Chase for a CNAME to an outside name; undefined when the name
 * is the forwarder's. `namespace`: the client is a namespace (only they have a host gateway).
 */
export function localAnswer(query: Query, view: View, options: LocalOptions, limit: number, recursionAvailable: boolean, namespace = false): Buffer | Chase | undefined {
  if (query.qclass !== QCLASS_IN && query.qclass !== QCLASS_ANY) return undefined;
  const reply: ReplyOptions = { rcode: RCODE.NOERROR, authoritative: true, recursionAvailable, limit, maxUdpSize: options.maxUdpSize };

  const result = view.lookup(query.name);
  switch (result.kind) {
    case 'found': {
      // The hot path: A/AAAA of a registered name, straight from the memoized addresses.
      const { qtype } = query;
      if (qtype === QTYPE.A && result.a.length > 0) return addressReply(query, QTYPE.A, options.ttl, result.a, view.rotation++, reply);
      if (qtype === QTYPE.AAAA && result.aaaa.length > 0) return addressReply(query, QTYPE.AAAA, options.ttl, result.aaaa, view.rotation++, reply);
      return foundReply(query, result, options.ttl, reply);
    }
    case 'apex':
      if (query.qtype === QTYPE.SOA) return recordsReply(query, [soaRecord(result.zone, options.ttl)], [], reply);
      return recordsReply(query, [], [soaRecord(result.zone, options.ttl)], reply);
    case 'nxdomain':
      return recordsReply(query, [], [soaRecord(result.zone, options.ttl)], { ...reply, rcode: RCODE.NXDOMAIN });
    case 'unknown':
      break;
  }

  if (options.hostName && query.name === options.hostName) {
    const gateway = namespace ? view.hostGateway(options.hostName) : null;
    if (gateway === null) return recordsReply(query, [], [soaRecord(options.hostName, options.ttl)], { ...reply, rcode: RCODE.NXDOMAIN });
    if (query.qtype === QTYPE.A && gateway.a.length > 0) return addressReply(query, QTYPE.A, options.ttl, gateway.a, 0, reply);
    if (query.qtype === QTYPE.AAAA && gateway.aaaa.length > 0) return addressReply(query, QTYPE.AAAA, options.ttl, gateway.aaaa, 0, reply);
    return foundReply(query, gateway, options.ttl, reply);
  }

  if (query.qtype === QTYPE.PTR || query.qtype === QTYPE.ANY) {
    const address = addressFromReverseName(query.name);
    const targets = address === undefined ? [] : view.reverse(address, options.ptrEveryName);
    if (targets.length > 0) return recordsReply(query, targets.map((t) => nameRecord(QTYPE.PTR, options.ttl, t)), [], reply);
  }
  return undefined;
}

/** localAnswer for callers that cannot forward: a CNAME to an outside name is answered alone. */
export function answerLocally(query: Query, view: View, options: LocalOptions, limit: number, recursionAvailable: boolean, namespace = false): Buffer | undefined {
  const answer = localAnswer(query, view, options, limit, recursionAvailable, namespace);
  return isChase(answer) ? recordsReply(query, answer.records, [], answer.reply) : answer;
}

/** The encoded records of a found name, made once per view memo entry and TTL. */
function encoded(result: Found, ttl: number): EncodedMemo {
  let memo = result.encoded;
  if (memo === undefined || memo.ttl !== ttl) result.encoded = memo = { ttl };
  return memo;
}

/** Every type but an A/AAAA that has addresses: SRV, TXT, ANY, CNAME chains, NODATA. */
function foundReply(query: Query, result: Found, ttl: number, reply: ReplyOptions): Buffer | Chase {
  const { qtype } = query;
  if (result.cname !== undefined) return cnameReply(query, result, ttl, reply);
  if (qtype === QTYPE.SRV && result.srv.length > 0) {
    const memo = encoded(result, ttl);
    memo.srv ??= srvRecords(ttl, result.srv);
    return recordsReply(query, memo.srv.answers, [], reply, memo.srv.additional);
  }
  if (qtype === QTYPE.TXT && result.txt.length > 0) {
    const memo = encoded(result, ttl);
    memo.txt ??= txtRecords(ttl, result.txt);
    return recordsReply(query, memo.txt, [], reply);
  }
  if (qtype === QTYPE.ANY && result.a.length + result.aaaa.length + result.txt.length + result.srv.length > 0) {
    const memo = encoded(result, ttl);
    memo.any ??= [
      ...addressRecords(QTYPE.A, ttl, result.a), ...addressRecords(QTYPE.AAAA, ttl, result.aaaa),
      ...txtRecords(ttl, result.txt), ...srvRecords(ttl, result.srv).answers,
    ];
    return recordsReply(query, memo.any, [], reply);
  }
  return recordsReply(query, [], [soaRecord(result.zone, ttl)], reply);
}

/**
 * A name that is a static CNAME: the CNAME, then (glibc does not chase it) the target's records of
 * the asked type, followed through local targets; an outside target is left to the resolver.
 */
function cnameReply(query: Query, result: Found, ttl: number, reply: ReplyOptions): Buffer | Chase {
  const records: Buffer[] = [];
  let at: Found | undefined = result;
  let owner: Buffer | undefined;
  for (let depth = 0; at?.cname !== undefined && depth < 8; depth++) {
    records.push(nameRecord(QTYPE.CNAME, ttl, at.cname.target, owner));
    if (query.qtype === QTYPE.CNAME && depth === 0) return recordsReply(query, records, [], reply);
    owner = encodeName(at.cname.target);
    if (at.cname.local === undefined) return { kind: 'chase', target: at.cname.target, records, reply };
    at = at.cname.local;
  }
  if (at !== undefined && at.cname === undefined) {
    if (query.qtype === QTYPE.A) records.push(...addressRecords(QTYPE.A, ttl, at.a, owner));
    else if (query.qtype === QTYPE.AAAA) records.push(...addressRecords(QTYPE.AAAA, ttl, at.aaaa, owner));
    else if (query.qtype === QTYPE.TXT) records.push(...txtRecords(ttl, at.txt, owner));
  }
  return recordsReply(query, records, [], reply);
}
