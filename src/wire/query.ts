// The hand-written fast path for reading a query: header, the one question and the EDNS OPT
// record, with no full decode. It also sorts out what RFC 1035/6891 say to do with a bad query.
import { FLAG, HEADER_SIZE, QTYPE, RCODE } from './constants.js';
import { skipName, walkRecords } from './records.js';

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
  /** The question name as sent (0x20 case kept), without the trailing dot; '' for the root. */
  readonly qname: string;
  /** `qname` lower-cased: the key for every lookup. */
  readonly name: string;
  readonly qtype: number;
  readonly qclass: number;
  /** Offset of the first byte after the question: raw[12, questionEnd) is copied into replies. */
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

  const nameEnd = skipName(raw, HEADER_SIZE);
  if (nameEnd < 0 || nameEnd + 4 > raw.length) return reject(RCODE.FORMERR, 'question is malformed');
  const qname = readName(raw, HEADER_SIZE);
  if (qname === undefined) return reject(RCODE.FORMERR, 'question name is malformed');
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

/** Reads a name as text, following compression pointers; a '.' inside a label is escaped. */
function readName(buf: Buffer, off: number): string | undefined {
  let name = '';
  for (let hops = 0; hops < 128; hops++) {
    if (off >= buf.length) return undefined;
    const len = buf[off];
    if (len === 0) return name;
    if ((len & 0xc0) === 0xc0) {
      off = ((len & 0x3f) << 8) | buf[off + 1];
      continue;
    }
    let label = buf.toString('latin1', off + 1, off + 1 + len);
    if (label.includes('.')) label = label.replaceAll('.', '\\.');
    name = name === '' ? label : `${name}.${label}`;
    off += len + 1;
  }
  return undefined;
}
