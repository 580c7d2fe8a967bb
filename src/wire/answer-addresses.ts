// The addresses an answer gives for the name that was asked: A and AAAA records owned by that
// name or by a name its CNAME chain in the same answer leads to (an allowed name commonly aliases
// a CDN's name). Read from the bytes, without decoding the message; used by egress by name to
// open exactly what the client was told.
import { HEADER_SIZE, QTYPE } from './constants.js';
import { skipName } from './records.js';

/** Most CNAME hops followed (RFC 1034 §3.6.2 chains are short; a loop stops here). */
const MAX_CHAIN = 16;

export interface AnswerAddresses {
  /** IPv4 and IPv6 addresses in text form, in answer order. */
  addresses: string[];
  /** Smallest TTL of the records used (the chain and the addresses), seconds. */
  ttl: number;
}

interface RecordAt {
  /** Offset of the owner name. */
  owner: number;
  type: number;
  ttl: number;
  rdata: number;
  rdLength: number;
}

/**
 * The addresses in `reply`'s answer section for `name` (lower-case, as Query.name), following
 * CNAMEs; undefined when the message is malformed or has none.
 */
export function answerAddresses(reply: Buffer, questionEnd: number, name: string): AnswerAddresses | undefined {
  if (reply.length < HEADER_SIZE) return undefined;
  const direct = directAddresses(reply, questionEnd, name);
  if (direct !== CHAINED) return direct;
  const records = answerRecords(reply, questionEnd);
  if (records === undefined) return undefined;
  let chain: Set<string> | undefined;
  let ttl = Number.MAX_SAFE_INTEGER;
  if (records.some((r) => r.type === QTYPE.CNAME)) {
    chain = new Set([name]);
    for (let current = name, hop = 0; hop < MAX_CHAIN; hop++) {
      const cname = records.find((r) => r.type === QTYPE.CNAME && ownerName(reply, r, name) === current);
      if (cname === undefined) break;
      const target = readName(reply, cname.rdata);
      if (target === undefined || chain.has(target)) break;
      ttl = Math.min(ttl, cname.ttl);
      chain.add(target);
      current = target;
    }
  }
  const addresses: string[] = [];
  for (const r of records) {
    if (r.type !== QTYPE.A && r.type !== QTYPE.AAAA) continue;
    const owner = ownerName(reply, r, name);
    if (owner === undefined || (chain ? !chain.has(owner) : owner !== name)) continue;
    if (r.type === QTYPE.A && r.rdLength === 4) addresses.push(`${reply[r.rdata]}.${reply[r.rdata + 1]}.${reply[r.rdata + 2]}.${reply[r.rdata + 3]}`);
    else if (r.type === QTYPE.AAAA && r.rdLength === 16) addresses.push(ipv6Text(reply, r.rdata));
    else continue;
    ttl = Math.min(ttl, r.ttl);
  }
  return addresses.length === 0 ? undefined : { addresses, ttl };
}

/** directAddresses met a CNAME: the chain is followed by answerAddresses' general path. */
const CHAINED = Symbol('chained');

/**
 * answerAddresses for an answer without CNAMEs (most answers), in one pass over the bytes and
 * nothing kept but the addresses: CHAINED when it has a CNAME.
 */
function directAddresses(buf: Buffer, off: number, name: string): AnswerAddresses | undefined | typeof CHAINED {
  const count = buf.readUInt16BE(6);
  let addresses: string[] | undefined;
  let ttl = Number.MAX_SAFE_INTEGER;
  for (let i = 0; i < count; i++) {
    const owner = off;
    off = skipName(buf, off);
    if (off < 0 || off + 10 > buf.length) return undefined;
    const type = buf.readUInt16BE(off);
    const rdLength = buf.readUInt16BE(off + 8);
    const rdata = off + 10;
    if (rdata + rdLength > buf.length) return undefined;
    off = rdata + rdLength;
    // IN only: another class's address is nothing the client will connect to.
    if (buf.readUInt16BE(rdata - 8) !== 1) continue;
    if (type === QTYPE.CNAME) return CHAINED;
    if (type === QTYPE.A ? rdLength !== 4 : type !== QTYPE.AAAA || rdLength !== 16) continue;
    const pointsAtQuestion = buf[owner] === 0xc0 && buf[owner + 1] === HEADER_SIZE;
    if (!pointsAtQuestion && readName(buf, owner) !== name) continue;
    (addresses ??= []).push(type === QTYPE.A ? `${buf[rdata]}.${buf[rdata + 1]}.${buf[rdata + 2]}.${buf[rdata + 3]}` : ipv6Text(buf, rdata));
    ttl = Math.min(ttl, buf.readUInt32BE(rdata - 6));
  }
  return addresses === undefined ? undefined : { addresses, ttl };
}

/**
 * The owner of `r`. One that points at the question's name (what servers write, and what the
 * cache keeps) is the asked name, without reading it: the reply was matched to the query's
 * question before it got here.
 */
function ownerName(buf: Buffer, r: RecordAt, asked: string): string | undefined {
  if (buf[r.owner] === 0xc0 && buf[r.owner + 1] === HEADER_SIZE) return asked;
  // Unreadable: undefined, which matches no name (the root's '' included).
  return readName(buf, r.owner);
}

function answerRecords(buf: Buffer, off: number): RecordAt[] | undefined {
  const count = buf.readUInt16BE(6);
  const out: RecordAt[] = [];
  for (let i = 0; i < count; i++) {
    const owner = off;
    off = skipName(buf, off);
    if (off < 0 || off + 10 > buf.length) return undefined;
    const rdLength = buf.readUInt16BE(off + 8);
    if (off + 10 + rdLength > buf.length) return undefined;
    // IN only: another class's address is nothing the client will connect to.
    if (buf.readUInt16BE(off + 2) === 1) out.push({ owner, type: buf.readUInt16BE(off), ttl: buf.readUInt32BE(off + 4), rdata: off + 10, rdLength });
    off += 10 + rdLength;
  }
  return out;
}

/**
 * A (possibly compressed) name in lower case, labels joined by '.', without the root's dot;
 * undefined when malformed. A label with bytes outside printable ASCII or a '.' never matches a
 * name we compare with, so it is kept as it is (it only has to differ).
 */
function readName(buf: Buffer, off: number): string | undefined {
  let name = '';
  for (let jumps = 0, labels = 0; labels < 128; labels++) {
    if (off >= buf.length) return undefined;
    const len = buf[off];
    if (len === 0) return name.toLowerCase();
    if ((len & 0xc0) === 0xc0) {
      if (off + 2 > buf.length || ++jumps > 32) return undefined;
      off = ((len & 0x3f) << 8) | buf[off + 1];
      continue;
    }
    if ((len & 0xc0) !== 0 || off + 1 + len > buf.length) return undefined;
    const label = buf.toString('latin1', off + 1, off + 1 + len);
    name = name === '' ? label : `${name}.${label}`;
    off += len + 1;
  }
  return undefined;
}

function ipv6Text(buf: Buffer, off: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(off + 2 * i).toString(16));
  // The shortest form (RFC 5952): the longest run of two or more zero groups becomes '::'.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}
