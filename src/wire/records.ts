// Walking resource records in a message without decoding them: the hot path needs only offsets
// (where a name ends, where a TTL sits), never the records as objects.
import { HEADER_SIZE, QTYPE } from './constants.js';

/** Offset just past the (possibly compressed) name starting at `off`, or -1 if it is malformed. */
export function skipName(buf: Buffer, off: number): number {
  for (let labels = 0; labels < 128; labels++) {
    if (off >= buf.length) return -1;
    const len = buf[off];
    if (len === 0) return off + 1;
    if ((len & 0xc0) === 0xc0) return off + 2 <= buf.length ? off + 2 : -1;
    if ((len & 0xc0) !== 0) return -1;
    off += len + 1;
  }
  return -1;
}

export interface RecordVisitor {
  (type: number, klass: number, ttlOffset: number, rdataOffset: number, rdLength: number, section: number): void;
}

/** Visits `count` records from `off`; returns the offset after them or -1 if the message is short. */
export function walkRecords(buf: Buffer, off: number, count: number, section: number, visit?: RecordVisitor): number {
  for (let i = 0; i < count; i++) {
    off = skipName(buf, off);
    if (off < 0 || off + 10 > buf.length) return -1;
    const type = buf.readUInt16BE(off);
    const klass = buf.readUInt16BE(off + 2);
    const rdLength = buf.readUInt16BE(off + 8);
    const rdata = off + 10;
    if (rdata + rdLength > buf.length) return -1;
    visit?.(type, klass, off + 4, rdata, rdLength, section);
    off = rdata + rdLength;
  }
  return off;
}

/** Whether the records after the question fill out the counts of the header (without looking at them). */
export function recordsWellFormed(buf: Buffer, questionEnd: number): boolean {
  if (buf.length < HEADER_SIZE) return false;
  return walkRecords(buf, questionEnd, buf.readUInt16BE(6) + buf.readUInt16BE(8) + buf.readUInt16BE(10), 0) >= 0;
}

export const SECTION_ANSWER = 1;
export const SECTION_AUTHORITY = 2;
export const SECTION_ADDITIONAL = 3;

/** What the forwarder and cache need to know about an upstream reply. */
export interface ReplyInfo {
  rcode: number;
  truncated: boolean;
  answerCount: number;
  /** Offsets of every TTL except the OPT pseudo-record's, to age cached copies in place. */
  ttlOffsets: number[];
  /** Smallest TTL among answer records (undefined without answers). */
  minAnswerTtl: number | undefined;
  /** RFC 2308 §5: min(SOA TTL, SOA MINIMUM) of the authority SOA, when there is one. */
  negativeTtl: number | undefined;
}

export function inspectReply(buf: Buffer, questionEnd: number): ReplyInfo | undefined {
  if (buf.length < HEADER_SIZE) return undefined;
  const flags = buf.readUInt16BE(2);
  const info: ReplyInfo = {
    rcode: flags & 0x0f,
    truncated: (flags & 0x0200) !== 0,
    answerCount: buf.readUInt16BE(6),
    ttlOffsets: [],
    minAnswerTtl: undefined,
    negativeTtl: undefined,
  };
  let off = questionEnd;
  const visit: RecordVisitor = (type, _klass, ttlOffset, rdata, _rdLength, section) => {
    if (type === QTYPE.OPT) return;
    info.ttlOffsets.push(ttlOffset);
    const ttl = buf.readUInt32BE(ttlOffset);
    if (section === SECTION_ANSWER) info.minAnswerTtl = Math.min(info.minAnswerTtl ?? ttl, ttl);
    if (section === SECTION_AUTHORITY && type === QTYPE.SOA) {
      const minimum = soaMinimum(buf, rdata);
      if (minimum !== undefined) info.negativeTtl = Math.min(ttl, minimum);
    }
  };
  off = walkRecords(buf, off, info.answerCount, SECTION_ANSWER, visit);
  if (off >= 0) off = walkRecords(buf, off, buf.readUInt16BE(8), SECTION_AUTHORITY, visit);
  if (off >= 0) off = walkRecords(buf, off, buf.readUInt16BE(10), SECTION_ADDITIONAL, visit);
  return off < 0 ? undefined : info;
}

function soaMinimum(buf: Buffer, rdata: number): number | undefined {
  const afterMname = skipName(buf, rdata);
  const afterRname = afterMname < 0 ? -1 : skipName(buf, afterMname);
  if (afterRname < 0 || afterRname + 20 > buf.length) return undefined;
  return buf.readUInt32BE(afterRname + 16);
}
