// Building replies. The common answer (A/AAAA from the registry) is written by hand: header, the
// client's question bytes copied as they came (so the 0x20 case survives), then fixed-size records
// that point back at the question name. Other records come encoded from records-write.ts.
import dnsPacket from 'dns-packet';
import { CLASSIC_UDP_SIZE, FLAG, HEADER_SIZE, QTYPE, RCODE } from './constants.js';
import { parseQuery, type Query } from './query.js';

/** Header flags every reply to `query` carries: QR, plus RD and CD copied (RFC 1035 §4.1.1, RFC 4035 §3.2.2). */
function replyFlags(query: Query, rcode: number, aa: boolean, ra: boolean, tc: boolean): number {
  return FLAG.QR | (query.flags & (FLAG.RD | FLAG.CD)) | (aa ? FLAG.AA : 0) | (ra ? FLAG.RA : 0) | (tc ? FLAG.TC : 0) | (rcode & 0x0f);
}

/** The UDP payload limit for this client: 512 without EDNS, else its advertised size within [512, max]. */
export function udpLimit(query: Query, maxUdpSize: number): number {
  if (!query.edns) return CLASSIC_UDP_SIZE;
  return Math.max(CLASSIC_UDP_SIZE, Math.min(query.edns.udpSize, maxUdpSize));
}

const OPT_SIZE = 11;

/** RFC 8914 §2: the EDNS option code of an Extended DNS Error. */
const EDE_OPTION = 15;

/** RFC 8914 §5.2: the INFO-CODEs we send. */
export const EDE_CODE = { OTHER: 0, BLOCKED: 15 } as const;

/**
 * An Extended DNS Error as the EDNS option our OPT record carries (RFC 8914 §2): option code,
 * length, INFO-CODE, then EXTRA-TEXT (UTF-8, for people). Built once per reason, not per reply.
 */
export function extendedError(infoCode: number, extraText: string): Buffer {
  const text = Buffer.from(extraText, 'utf8');
  const out = Buffer.alloc(6 + text.length);
  out.writeUInt16BE(EDE_OPTION, 0);
  out.writeUInt16BE(2 + text.length, 2);
  out.writeUInt16BE(infoCode, 4);
  text.copy(out, 6);
  return out;
}

/** Bytes of our OPT record (none when the client sent no EDNS: RFC 6891 §7, no OPT in the reply). */
function optLength(query: Query, option: Buffer | undefined): number {
  return query.edns ? OPT_SIZE + (option?.length ?? 0) : 0;
}

/** RFC 6891 §6.1.2: our OPT record, with the upper bits of an extended RCODE, the DO bit echoed, and `option` when given. */
function writeOpt(out: Buffer, off: number, query: Query, maxUdpSize: number, rcode: number, option?: Buffer): number {
  out[off] = 0;
  out.writeUInt16BE(QTYPE.OPT, off + 1);
  out.writeUInt16BE(maxUdpSize, off + 3);
  out[off + 5] = rcode >> 4;
  out[off + 6] = 0;
  out.writeUInt16BE(query.edns?.dnssecOk ? 0x8000 : 0, off + 7);
  out.writeUInt16BE(option?.length ?? 0, off + 9);
  if (option) option.copy(out, off + OPT_SIZE);
  return off + OPT_SIZE + (option?.length ?? 0);
}

export interface ReplyOptions {
  rcode: number;
  authoritative: boolean;
  recursionAvailable: boolean;
  /** Largest message allowed: udpLimit() over UDP, 65535 over TCP. */
  limit: number;
  maxUdpSize: number;
  /** An EDNS option for the OPT record (extendedError()); sent only to a client that sent EDNS. */
  option?: Buffer;
}

/** An authoritative A/AAAA answer; `start` rotates which address comes first. */
export function addressReply(query: Query, rrtype: number, ttl: number, addresses: readonly Buffer[], start: number, opts: ReplyOptions): Buffer {
  const question = query.questionEnd - HEADER_SIZE;
  const recordSize = 12 + (rrtype === QTYPE.A ? 4 : 16);
  const fixed = HEADER_SIZE + question + (query.edns ? OPT_SIZE : 0);
  const fit = Math.max(0, Math.floor((opts.limit - fixed) / recordSize));
  const count = Math.min(addresses.length, fit);
  const out = Buffer.allocUnsafe(fixed + count * recordSize);
  let off = writeHeader(out, query, opts, count < addresses.length, count, 0);
  for (let i = 0; i < count; i++) {
    const address = addresses[(start + i) % addresses.length];
    out.writeUInt16BE(0xc000 | HEADER_SIZE, off); // pointer to the question name
    out.writeUInt16BE(rrtype, off + 2);
    out.writeUInt16BE(1, off + 4);
    out.writeUInt32BE(ttl, off + 6);
    out.writeUInt16BE(address.length, off + 10);
    address.copy(out, off + 12);
    off += recordSize;
  }
  if (query.edns) writeOpt(out, off, query, opts.maxUdpSize, opts.rcode);
  return out;
}

function writeHeader(out: Buffer, query: Query, opts: ReplyOptions, truncated: boolean, answers: number, authority: number, additional = 0): number {
  out.writeUInt16BE(query.id, 0);
  out.writeUInt16BE(replyFlags(query, opts.rcode, opts.authoritative, opts.recursionAvailable, truncated), 2);
  out.writeUInt16BE(1, 4);
  out.writeUInt16BE(answers, 6);
  out.writeUInt16BE(authority, 8);
  out.writeUInt16BE(additional + (query.edns ? 1 : 0), 10);
  query.raw.copy(out, HEADER_SIZE, HEADER_SIZE, query.questionEnd);
  return query.questionEnd;
}

/** Encodes records with dns-packet; each one separately so that truncation keeps whole records. */
export function encodeRecords(records: readonly dnsPacket.Answer[]): Buffer[] {
  return records.map((record) => dnsPacket.encode({ answers: [record] }).subarray(HEADER_SIZE));
}

/**
 * A general reply: answer, authority and additional records already encoded (records-write.ts).
 * When the answers do not fit the limit, as many whole answers as fit are kept and TC is set;
 * authority and additional records are dropped first (without TC: RFC 2181 §9).
 */
export function recordsReply(query: Query, answers: readonly Buffer[], authority: readonly Buffer[], opts: ReplyOptions, additional: readonly Buffer[] = NONE): Buffer {
  const fixed = query.questionEnd + optLength(query, opts.option);
  let size = fixed;
  let answerCount = 0;
  for (const a of answers) {
    if (size + a.length > opts.limit) break;
    size += a.length;
    answerCount++;
  }
  const truncated = answerCount < answers.length;
  let authorityCount = 0;
  let additionalCount = 0;
  if (!truncated) {
    for (const a of authority) {
      if (size + a.length > opts.limit) break;
      size += a.length;
      authorityCount++;
    }
    if (authorityCount === authority.length) {
      for (const a of additional) {
        if (size + a.length > opts.limit) break;
        size += a.length;
        additionalCount++;
      }
    }
  }
  const out = Buffer.allocUnsafe(size);
  let off = writeHeader(out, query, opts, truncated, answerCount, authorityCount, additionalCount);
  for (let i = 0; i < answerCount; i++) off += answers[i].copy(out, off);
  for (let i = 0; i < authorityCount; i++) off += authority[i].copy(out, off);
  for (let i = 0; i < additionalCount; i++) off += additional[i].copy(out, off);
  if (query.edns) writeOpt(out, off, query, opts.maxUdpSize, opts.rcode, opts.option);
  return out;
}

const NONE: readonly Buffer[] = [];

/** An error reply that echoes the question (SERVFAIL, REFUSED after a good parse), with an Extended DNS Error when given. */
export function errorReply(query: Query, rcode: number, recursionAvailable: boolean, maxUdpSize: number, ede?: Buffer): Buffer {
  return recordsReply(query, [], [], { rcode, authoritative: false, recursionAvailable, limit: Number.MAX_SAFE_INTEGER, maxUdpSize, ...(ede && { option: ede }) });
}

/**
 * A header-only reply for a query we could not parse past its header (FORMERR, NOTIMP, BADVERS):
 * the id and opcode are echoed, QDCOUNT is 0; an OPT is added for EDNS errors (RFC 6891 §7).
 */
export function headerOnlyReply(raw: Buffer, rcode: number, withOpt: boolean, maxUdpSize: number): Buffer {
  const out = Buffer.alloc(HEADER_SIZE + (withOpt ? OPT_SIZE : 0));
  raw.copy(out, 0, 0, 2);
  const flags = raw.readUInt16BE(2);
  out.writeUInt16BE(FLAG.QR | (flags & (0x7800 | FLAG.RD | FLAG.CD)) | (rcode & 0x0f), 2);
  if (withOpt) {
    out.writeUInt16BE(1, 10);
    out[HEADER_SIZE] = 0;
    out.writeUInt16BE(QTYPE.OPT, HEADER_SIZE + 1);
    out.writeUInt16BE(maxUdpSize, HEADER_SIZE + 3);
    out[HEADER_SIZE + 5] = rcode >> 4;
  }
  return out;
}

/**
 * REFUSED for a client a listener does not answer, built from the raw query without asking the
 * resolver; null for what deserves no reply at all (a response, a runt).
 */
export function refusal(raw: Buffer, maxUdpSize: number): Buffer | null {
  const parsed = parseQuery(raw);
  if (parsed.kind === 'drop') return null;
  if (parsed.kind === 'reject') return headerOnlyReply(raw, parsed.rcode, parsed.edns, maxUdpSize);
  return errorReply(parsed, RCODE.REFUSED, false, maxUdpSize);
}

/**
 * Makes a cached or shared upstream reply fit another client: its id, and its question bytes
 * (same length, maybe another 0x20 case). Returns a copy; the original stays untouched.
 */
export function readdressReply(reply: Buffer, query: Query): Buffer {
  const out = Buffer.from(reply);
  out.writeUInt16BE(query.id, 0);
  query.raw.copy(out, HEADER_SIZE, HEADER_SIZE, query.questionEnd);
  return out;
}

/** Cuts an upstream reply that is too large for a UDP client down to its header and question, TC set. */
export function truncatedCopy(reply: Buffer, query: Query): Buffer {
  const out = Buffer.alloc(query.questionEnd);
  reply.copy(out, 0, 0, query.questionEnd);
  out.writeUInt16BE(out.readUInt16BE(2) | FLAG.TC, 2);
  out.writeUInt16BE(0, 6);
  out.writeUInt16BE(0, 8);
  out.writeUInt16BE(0, 10);
  return out;
}

export { RCODE };
