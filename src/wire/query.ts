// The hand-written fast path for reading a query: header, the one question and the EDNS OPT
// record, with no full decode. It also sorts out what RFC 1035/6891 say to do with a bad query.
import { FLAG, HEADER_SIZE, QTYPE, RCODE } from './constants.js';
import { walkRecords } from './records.js';

export interface Edns {
  readonly udpSize: number;
  readonly version: number;
  readonly dnssecOk: boolean;
}

export interface Query {
  readonly kind: 'query';
  readonly raw: Buffer;
  readonly id: number;
  readonly flags: number;
  /**
   * The question name as sent (0x20 case kept), without the trailing dot; '' for the root. In
   * presentation form (RFC 1035 §5.1): '.' and '\\' inside a label and bytes outside printable
   * ASCII are escaped, so two different wire names never give the same text.
   */
  readonly qname: string;
  /** `qname` lower-cased: the key for every lookup. */
  readonly name: string;
  readonly qtype: number;
  readonly qclass: number;
  /**
   * Offset of the first byte after the question: raw[12, questionEnd) is copied into replies. The
   * name's wire bytes are raw[12, questionEnd - 4), never compressed (a pointer is a FORMERR).
   */
  readonly questionEnd: number;
  readonly edns: Edns | undefined;
}

/** A message we must not answer (RFC 1035 §4.1.1: too short for a header, or itself a response). */
export interface Dropped { readonly kind: 'drop'; readonly reason: string }

/** A message whose header we read but cannot serve: answered with this RCODE and no question. */
export interface Rejected { readonly kind: 'reject'; readonly rcode: number; readonly reason: string; readonly edns: boolean }

export type Parsed = Query | Dropped | Rejected;

const TOO_SHORT: Dropped = { kind: 'drop', reason: 'shorter than a DNS header' };
const IS_RESPONSE: Dropped = { kind: 'drop', reason: 'QR bit set' };

export function parseQuery(raw: Buffer): Parsed {
  if (raw.length < HEADER_SIZE) return TOO_SHORT;
  const flags = raw.readUInt16BE(2);
  if (flags & FLAG.QR) return IS_RESPONSE;
  if (((flags >> 11) & 0x0f) !== 0) return reject(RCODE.NOTIMP, 'opcode is not QUERY');
  if (raw.readUInt16BE(4) !== 1) return reject(RCODE.FORMERR, 'QDCOUNT is not 1');

  const question = readQuestionName(raw);
  if (typeof question === 'string') return reject(RCODE.FORMERR, question);
  const { qname, nameEnd } = question;
  if (nameEnd + 4 > raw.length) return reject(RCODE.FORMERR, 'question is cut short');
  const questionEnd = nameEnd + 4;

  let edns: Edns | undefined;
  let optCount = 0;
  let off = walkRecords(raw, questionEnd, raw.readUInt16BE(6) + raw.readUInt16BE(8), 0);
  off = off < 0 ? off : walkRecords(raw, off, raw.readUInt16BE(10), 0, (type, klass, ttlOffset) => {
    if (type !== QTYPE.OPT) return;
    optCount++;
    edns = { udpSize: klass, version: raw[ttlOffset + 1], dnssecOk: (raw[ttlOffset + 2] & 0x80) !== 0 };
  });
  if (off < 0) return reject(RCODE.FORMERR, 'records after the question are malformed');
  // RFC 6891 §6.1.1: more than one OPT record is a FORMERR.
  if (optCount > 1) return reject(RCODE.FORMERR, 'more than one OPT record', true);
  // RFC 6891 §6.1.3: we speak EDNS version 0 only.
  if (edns && edns.version > 0) return reject(RCODE.BADVERS, `EDNS version ${edns.version}`, true);

  return {
    kind: 'query',
    raw,
    id: raw.readUInt16BE(0),
    flags,
    qname,
    name: qname.toLowerCase(),
    qtype: raw.readUInt16BE(nameEnd),
    qclass: raw.readUInt16BE(nameEnd + 2),
    questionEnd,
    edns,
  };
}

function reject(rcode: number, reason: string, edns = false): Rejected {
  return { kind: 'reject', rcode, reason, edns };
}

/** RFC 1035 §2.3.4: a name is at most 255 bytes in wire form, a label at most 63. */
const MAX_NAME_WIRE = 255;

/**
 * The question name as text, and where it ends, or why it is malformed. A compression pointer is
 * refused here: a question is the first name of a message, so a pointer in it can only point at
 * the header or loop, and a name that reads differently from its bytes must never reach the
 * forwarder's sharing or the cache.
 */
function readQuestionName(buf: Buffer): { qname: string; nameEnd: number } | string {
  let off = HEADER_SIZE;
  let name = '';
  for (;;) {
    if (off >= buf.length) return 'question is cut short';
    const len = buf[off];
    if (len === 0) break;
    if ((len & 0xc0) === 0xc0) return 'compression pointer in the question';
    if (len > 63) return 'label longer than 63 bytes';
    if (off + 1 + len > buf.length) return 'question is cut short';
    const label = labelText(buf, off + 1, off + 1 + len);
    name = name === '' ? label : `${name}.${label}`;
    off += len + 1;
    if (off + 1 - HEADER_SIZE > MAX_NAME_WIRE) return 'name longer than 255 bytes';
  }
  return { qname: name, nameEnd: off + 1 };
}

/** One label in presentation form; the common all-plain label costs one slice. */
function labelText(buf: Buffer, start: number, end: number): string {
  for (let i = start; i < end; i++) {
    const c = buf[i];
    if (c <= 0x20 || c >= 0x7f || c === 0x2e || c === 0x5c) return escapedLabel(buf, start, end);
  }
  return buf.toString('latin1', start, end);
}

function escapedLabel(buf: Buffer, start: number, end: number): string {
  let out = '';
  for (let i = start; i < end; i++) {
    const c = buf[i];
    if (c === 0x2e || c === 0x5c) out += `\\${String.fromCharCode(c)}`;
    else if (c <= 0x20 || c >= 0x7f) out += `\\${String(c).padStart(3, '0')}`;
    else out += String.fromCharCode(c);
  }
  return out;
}
