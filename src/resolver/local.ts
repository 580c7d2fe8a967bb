// Answers from the registry: names, aliases and reverse lookups of the endpoints in the view.
// A name we own is answered here whatever its type (NODATA when we have nothing of that type),
// and a name inside one of our zones that does not exist is NXDOMAIN: neither is ever forwarded.
import { QCLASS_ANY, QCLASS_IN, QTYPE, RCODE } from '../wire/constants.js';
import { addressFromReverseName } from '../wire/names.js';
import type { Query } from '../wire/query.js';
import { addressReply, encodeRecords, recordsReply, type ReplyOptions } from '../wire/reply.js';
import type { View } from '../registry/view.js';

export interface LocalOptions {
  /** TTL of local answers, seconds. */
  ttl: number;
  maxUdpSize: number;
}

/** The reply when the name is ours; undefined when it is the forwarder's. */
export function answerLocally(query: Query, view: View, options: LocalOptions, limit: number, recursionAvailable: boolean): Buffer | undefined {
  if (query.qclass !== QCLASS_IN && query.qclass !== QCLASS_ANY) return undefined;
  const reply: ReplyOptions = { rcode: RCODE.NOERROR, authoritative: true, recursionAvailable, limit, maxUdpSize: options.maxUdpSize };

  const result = view.lookup(query.name);
  switch (result.kind) {
    case 'found': {
      const { qtype } = query;
      if (qtype === QTYPE.A && result.a.length > 0) return addressReply(query, QTYPE.A, options.ttl, result.a, view.rotation++, reply);
      if (qtype === QTYPE.AAAA && result.aaaa.length > 0) return addressReply(query, QTYPE.AAAA, options.ttl, result.aaaa, view.rotation++, reply);
      if (qtype === QTYPE.ANY && result.a.length + result.aaaa.length > 0) {
        const records = [...addressRecords(QTYPE.A, options.ttl, result.a), ...addressRecords(QTYPE.AAAA, options.ttl, result.aaaa)];
        return recordsReply(query, records, [], reply);
      }
      return recordsReply(query, [], [soaRecord(result.zone, options.ttl)], reply);
    }
    case 'apex':
      if (query.qtype === QTYPE.SOA) return recordsReply(query, [soaRecord(result.zone, options.ttl)], [], reply);
      return recordsReply(query, [], [soaRecord(result.zone, options.ttl)], reply);
    case 'nxdomain':
      return recordsReply(query, [], [soaRecord(result.zone, options.ttl)], { ...reply, rcode: RCODE.NXDOMAIN });
    case 'unknown':
      break;
  }

  if (query.qtype === QTYPE.PTR || query.qtype === QTYPE.ANY) {
    const address = addressFromReverseName(query.name);
    const targets = address === undefined ? [] : view.reverse(address);
    if (targets.length > 0) {
      return recordsReply(query, encodeRecords(targets.map((data) => ({ type: 'PTR', name: query.qname, ttl: options.ttl, data }))), [], reply);
    }
  }
  return undefined;
}

/** A/AAAA records whose owner is a pointer to the question name. */
function addressRecords(rrtype: number, ttl: number, addresses: readonly Buffer[]): Buffer[] {
  return addresses.map((address) => {
    const out = Buffer.allocUnsafe(12 + address.length);
    out.writeUInt16BE(0xc00c, 0);
    out.writeUInt16BE(rrtype, 2);
    out.writeUInt16BE(1, 4);
    out.writeUInt32BE(ttl, 6);
    out.writeUInt16BE(address.length, 10);
    address.copy(out, 12);
    return out;
  });
}

const soaCache = new Map<string, Buffer>();

/**
 * The SOA that goes with NODATA and NXDOMAIN (RFC 2308 §3): its MINIMUM and TTL are the local TTL,
 * so a client caches our negative answers no longer than our positive ones.
 */
function soaRecord(zone: string, ttl: number): Buffer {
  const key = `${zone}|${ttl}`;
  let record = soaCache.get(key);
  if (!record) {
    [record] = encodeRecords([{
      type: 'SOA', name: zone, ttl,
      data: { mname: 'nsdns.invalid', rname: 'hostmaster.nsdns.invalid', serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: ttl },
    }]);
    if (soaCache.size > 1000) soaCache.clear();
    soaCache.set(key, record);
  }
  return record;
}
