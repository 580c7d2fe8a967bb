// Scrubbing an upstream reply before it is cached or served, after Unbound's scrubber: only what
// answers our question survives. Answer: the RRsets of the question name and of its CNAME chain
// (DNAMEs above it), with their RRSIGs. Authority: for a negative answer only the SOA of the
// name's zone (and NSEC/NSEC3 proofs below it), else nothing. Additional: A/AAAA of names the kept
// answers point at (MX, SRV, NS targets). OPT is replaced by ours. Runs on the miss path only.
//
// The result is rebuilt from decompressed names, so no pointer refers to a dropped record; owner
// names equal to the question point at it (readdressed per client), others are written once and
// then pointed at where RFC 3597 §4 allows compression. It always ends with our 11-byte OPT, which
// readdressScrubbed() cuts off for a client that sent no EDNS. What the cache needs to know of the
// result (ReplyInfo: TTL offsets, answer TTL, negative TTL) is noted while it is written.
import { FLAG, HEADER_SIZE, QTYPE, RCODE, TCP_MAX_MESSAGE } from './constants.js';
import type { Query } from './query.js';
import type { ReplyInfo } from './records.js';

const DNAME = 39;
const RRSIG = 46;
const NSEC = 47;
const NSEC3 = 50;
const MAX_CHAIN = 16;
const OPT_SIZE = 11;

/** One record; names are canonical keys: wire bytes, ASCII lower-cased, as latin1 text. */
interface Rr {
  owner: string;
  type: number;
  klass: number;
  ttl: number;
  rdata: number;
  rdLength: number;
  section: number;
  /** CNAME/DNAME/NS/PTR target, MX exchange, SRV target; SOA: mname. */
  target?: string;
  /** SOA rname. */
  target2?: string;
  /** RRSIG: the type it covers. */
  covered?: number;
}

/** A decompressed name (backward pointers only, ≤ 255 bytes) and the offset after it in place. */
function readName(buf: Buffer, off: number): { name: string; end: number } | undefined {
  let name = '';
  let end = -1;
  let limit = off;
  for (let hops = 0; hops < 256; hops++) {
    if (off >= buf.length) return undefined;
    const len = buf[off];
    if (len === 0) return { name: name + '\0', end: end < 0 ? off + 1 : end };
    if ((len & 0xc0) === 0xc0) {
      if (off + 1 >= buf.length) return undefined;
      const to = ((len & 0x3f) << 8) | buf[off + 1];
      if (end < 0) end = off + 2;
      // Strictly backwards: no loops.
      if (to >= limit) return undefined;
      limit = off = to;
      continue;
    }
    if (len > 63 || off + 1 + len > buf.length) return undefined;
    name += String.fromCharCode(len);
    for (let i = off + 1; i <= off + len; i++) {
      const c = buf[i];
      name += String.fromCharCode(c >= 0x41 && c <= 0x5a ? c | 0x20 : c);
    }
    if (name.length > 254) return undefined;
    off += len + 1;
  }
  return undefined;
}

/** `name` equals `zone` or lies below it (canonical keys). */
function isAtOrBelow(name: string, zone: string): boolean {
  for (let i = 0; i < name.length; i += name.charCodeAt(i) + 1) {
    if (name.length - i === zone.length && name.endsWith(zone)) return true;
  }
  return zone === '\0';
}

/**
 * readName() for the names of one message, remembered by the offset a pointer leads to: a large
 * answer's owners are all one pointer to the question, read once, and equal names are then one
 * string (compared and hashed at once, not character by character).
 */
class NameReader {
  private readonly byPointer = new Map<number, string>();

  constructor(private readonly buf: Buffer) {}

  read(off: number): { name: string; end: number } | undefined {
    const buf = this.buf;
    if (off + 1 >= buf.length || (buf[off] & 0xc0) !== 0xc0) return readName(buf, off);
    const to = ((buf[off] & 0x3f) << 8) | buf[off + 1];
    // The name at `to` reads the same from any pointer after it (pointers only lead backwards).
    if (to >= off) return undefined;
    let name = this.byPointer.get(to);
    if (name === undefined) {
      const at = readName(buf, to);
      if (!at) return undefined;
      name = at.name;
      this.byPointer.set(to, name);
    }
    return { name, end: off + 2 };
  }
}

function readRecords(buf: Buffer, off: number): Rr[] | undefined {
  const rrs: Rr[] = [];
  const names = new NameReader(buf);
  for (let section = 1; section <= 3; section++) {
    const count = buf.readUInt16BE(4 + section * 2);
    for (let i = 0; i < count; i++) {
      const owner = names.read(off);
      if (!owner || owner.end + 10 > buf.length) return undefined;
      off = owner.end;
      const rr: Rr = { owner: owner.name, type: buf.readUInt16BE(off), klass: buf.readUInt16BE(off + 2), ttl: buf.readUInt32BE(off + 4), rdata: off + 10, rdLength: buf.readUInt16BE(off + 8), section };
      off = rr.rdata + rr.rdLength;
      if (rr.type === RRSIG && rr.rdLength >= 2 && off <= buf.length) rr.covered = buf.readUInt16BE(rr.rdata);
      if (off > buf.length || !readTargets(names, rr)) return undefined;
      rrs.push(rr);
    }
  }
  return off === buf.length ? rrs : undefined;
}

/** Offset of the name inside the rdata of types that carry one (RFC 1035, 2782, 6672). */
function nameOffset(type: number): number {
  switch (type) {
    case QTYPE.CNAME: case QTYPE.NS: case QTYPE.PTR: case DNAME: case QTYPE.SOA: return 0;
    case QTYPE.MX: return 2;
    case QTYPE.SRV: return 6;
    default: return -1;
  }
}

/** Reads the names in the rdata; false when they do not fill it exactly as their type says. */
function readTargets(names: NameReader, rr: Rr): boolean {
  const at = nameOffset(rr.type);
  if (at < 0) return true;
  const end = rr.rdata + rr.rdLength;
  const first = rr.rdata + at <= end ? names.read(rr.rdata + at) : undefined;
  if (!first || first.end > end) return false;
  rr.target = first.name;
  if (rr.type !== QTYPE.SOA) return first.end === end;
  const second = names.read(first.end);
  if (!second || second.end + 20 !== end) return false;
  rr.target2 = second.name;
  return true;
}

/** What to keep of the records: each section's survivors, or why the reply is unusable. */
function select(rrs: Rr[], qname: string, qtype: number, qclass: number, rcode: number): Rr[][] | string {
  const answers = rrs.filter((r) => r.section === 1 && r.klass === qclass);
  const kept: Rr[] = [];
  let target = qname;
  const chain = new Set([qname]);
  for (let hops = 0; ; hops++) {
    if (hops > MAX_CHAIN) return 'CNAME chain too long';
    // A DNAME above the name explains the CNAME synthesized from it (RFC 6672 §3.4).
    for (const r of answers) if (r.type === DNAME && r.owner !== target && isAtOrBelow(target, r.owner) && !kept.includes(r)) kept.push(r);
    const here = answers.filter((r) => r.owner === target);
    const cnames = here.filter((r) => r.type === QTYPE.CNAME);
    if (cnames.length > 0 && qtype !== QTYPE.CNAME && qtype !== QTYPE.ANY) {
      if (cnames.some((c) => c.target !== cnames[0].target)) return 'two CNAMEs for one name';
      kept.push(...cnames);
      target = cnames[0].target!;
      if (chain.has(target)) return 'CNAME loop';
      chain.add(target);
      continue;
    }
    // For ANY, signatures come with their RRsets below; a question for RRSIG keeps them here.
    kept.push(...here.filter((r) => (qtype === QTYPE.ANY ? r.type !== RRSIG : r.type === qtype)));
    break;
  }
  if (answers.length > 0 && kept.length === 0) return 'answer for another name';
  const found = kept.some((r) => r.owner === target && r.type !== QTYPE.CNAME && r.type !== DNAME);
  const answer = withSignatures(kept, answers);

  let authority: Rr[] = [];
  const negative = rcode === RCODE.NXDOMAIN || (rcode === RCODE.NOERROR && !found);
  const soa = negative ? rrs.find((r) => r.section === 2 && r.type === QTYPE.SOA && r.klass === qclass && isAtOrBelow(target, r.owner)) : undefined;
  if (soa) {
    const proofs = rrs.filter((r) => r.section === 2 && (r.type === NSEC || r.type === NSEC3) && isAtOrBelow(r.owner, soa.owner));
    authority = withSignatures([soa, ...proofs], rrs.filter((r) => r.section === 2));
  }

  // Glue the kept answers ask for: addresses of their MX, SRV and NS targets.
  const wanted = new Set(answer.filter((r) => r.type === QTYPE.MX || r.type === QTYPE.SRV || r.type === QTYPE.NS).map((r) => r.target!));
  const glue = rrs.filter((r) => r.section === 3 && r.klass === qclass && (r.type === QTYPE.A || r.type === QTYPE.AAAA) && wanted.has(r.owner));
  const additional = withSignatures(glue, rrs.filter((r) => r.section === 3));
  return [answer, authority, additional];
}

/** `kept`, plus the RRSIGs among `pool` that cover one of its RRsets (same owner, covered type). */
function withSignatures(kept: Rr[], pool: Rr[]): Rr[] {
  const signatures = pool.filter((r) => r.covered !== undefined);
  if (signatures.length === 0) return kept;
  const sets = new Set(kept.map((r) => `${r.type}|${r.owner}`));
  return [...kept, ...signatures.filter((r) => sets.has(`${r.covered}|${r.owner}`))];
}

/**
 * Room for the message being scrubbed: scrubReply() runs to the end without yielding, so one
 * buffer serves every call, and the result is one copy of what was written.
 */
const scratch = Buffer.allocUnsafe(TCP_MAX_MESSAGE);

/**
 * Appends records to the message in `scratch`, compressing whole names it has written before.
 * Stops writing (and says so in `full`) at what a TCP message can hold with our OPT.
 */
class Writer {
  length: number;
  full = false;
  private readonly names = new Map<string, number>();

  constructor(head: Buffer, qname: string, readonly info: ReplyInfo) {
    head.copy(scratch, 0);
    this.length = head.length;
    this.names.set(qname, HEADER_SIZE);
  }

  private room(bytes: number): boolean {
    if (this.length + bytes + OPT_SIZE > TCP_MAX_MESSAGE) this.full = true;
    return !this.full;
  }

  private copy(buf: Buffer, from: number, to: number): void {
    if (this.room(to - from)) this.length += buf.copy(scratch, this.length, from, to);
  }

  name(name: string, compress: boolean): void {
    const at = compress ? this.names.get(name) : undefined;
    if (at !== undefined) {
      if (this.room(2)) this.length = scratch.writeUInt16BE(0xc000 | at, this.length);
      return;
    }
    if (!this.room(name.length)) return;
    if (this.length < 0x3fff && !this.names.has(name)) this.names.set(name, this.length);
    this.length += scratch.write(name, this.length, 'latin1');
  }

  record(buf: Buffer, r: Rr): void {
    this.name(r.owner, true);
    if (!this.room(10)) return;
    const fixed = this.length;
    scratch.writeUInt16BE(r.type, fixed);
    scratch.writeUInt16BE(r.klass, fixed + 2);
    scratch.writeUInt32BE(r.ttl, fixed + 4);
    this.length += 10;
    this.note(buf, r, fixed + 4);
    const at = nameOffset(r.type);
    if (at < 0) {
      scratch.writeUInt16BE(r.rdLength, fixed + 8);
      this.copy(buf, r.rdata, r.rdata + r.rdLength);
      return;
    }
    const start = this.length;
    // RFC 3597 §4: only the RFC 1035 types may compress names in their rdata.
    const compress = r.type !== QTYPE.SRV && r.type !== DNAME;
    if (at > 0) this.copy(buf, r.rdata, r.rdata + at);
    this.name(r.target!, compress);
    if (r.type === QTYPE.SOA) {
      this.name(r.target2!, compress);
      this.copy(buf, r.rdata + r.rdLength - 20, r.rdata + r.rdLength);
    }
    scratch.writeUInt16BE(this.length - start, fixed + 8);
  }

  /** What inspectReply() would find in the written record (as the cache reads it, RFC 2308 §5). */
  private note(buf: Buffer, r: Rr, ttlOffset: number): void {
    const info = this.info;
    info.ttlOffsets.push(ttlOffset);
    if (r.section === 1) info.minAnswerTtl = Math.min(info.minAnswerTtl ?? r.ttl, r.ttl);
    // readTargets() checked that an SOA's rdata ends with its five numbers; MINIMUM is the last.
    if (r.section === 2 && r.type === QTYPE.SOA) info.negativeTtl = Math.min(r.ttl, buf.readUInt32BE(r.rdata + r.rdLength - 4));
  }

  /** The message with `opt` after it: a copy of its own. */
  finish(opt: Buffer): Buffer {
    const out = Buffer.allocUnsafe(this.length + opt.length);
    scratch.copy(out, 0, 0, this.length);
    opt.copy(out, this.length);
    return out;
  }
}

function ourOpt(maxUdpSize: number, dnssecOk: boolean): Buffer {
  const opt = Buffer.alloc(OPT_SIZE);
  opt.writeUInt16BE(QTYPE.OPT, 1);
  opt.writeUInt16BE(maxUdpSize, 3);
  opt.writeUInt16BE(dnssecOk ? 0x8000 : 0, 7);
  return opt;
}

/** Header flags we pass on: QR, RA, RD/AD/CD and RCODE as the server set them; never AA (we are not the authority). */
function replyFlags(flags: number, truncated: boolean): number {
  return FLAG.QR | FLAG.RA | (flags & (FLAG.RD | FLAG.AD | FLAG.CD | 0x0f)) | (truncated ? FLAG.TC : 0);
}

/** A scrubbed reply, and what the cache needs to know about it. */
export interface Scrubbed {
  reply: Buffer;
  info: ReplyInfo;
}

/**
 * The scrubbed reply to `sent` (the query we sent upstream, whose question `reply` matched), or
 * why it cannot be used. A TC reply keeps its header and question only: the client retries over TCP.
 */
export function scrubReply(reply: Buffer, sent: Buffer, questionEnd: number, maxUdpSize: number): Scrubbed | string {
  const flags = reply.readUInt16BE(2);
  const dnssecOk = (sent.readUInt16BE(questionEnd + 7) & 0x8000) !== 0;
  const head = Buffer.from(sent.subarray(0, questionEnd));
  head.writeUInt16BE(reply.readUInt16BE(0), 0);
  const info: ReplyInfo = { rcode: flags & 0x0f, truncated: (flags & FLAG.TC) !== 0, answerCount: 0, ttlOffsets: [], minAnswerTtl: undefined, negativeTtl: undefined };
  if (flags & FLAG.TC) {
    head.writeUInt16BE(replyFlags(flags, true), 2);
    head.writeUInt16BE(1, 10);
    return { reply: Buffer.concat([head, ourOpt(maxUdpSize, dnssecOk)]), info };
  }
  const rrs = readRecords(reply, questionEnd);
  if (!rrs) return 'malformed records';
  const opt = rrs.find((r) => r.type === QTYPE.OPT && r.section === 3);
  // An extended RCODE (BADVERS, BADCOOKIE...) means the server did not take our query as sent.
  if (opt && opt.ttl >>> 24 !== 0) return 'extended RCODE';
  const question = readName(sent, HEADER_SIZE)!.name;
  const sections = select(rrs.filter((r) => r.type !== QTYPE.OPT), question, sent.readUInt16BE(questionEnd - 4), sent.readUInt16BE(questionEnd - 2), flags & 0x0f);
  if (typeof sections === 'string') return sections;
  head.writeUInt16BE(replyFlags(flags, false), 2);
  sections.forEach((s, i) => head.writeUInt16BE(s.length + (i === 2 ? 1 : 0), 6 + i * 2));
  info.answerCount = sections[0].length;
  const out = new Writer(head, question, info);
  for (const section of sections) for (const r of section) out.record(reply, r);
  if (out.full) return 'too large once decompressed';
  return { reply: out.finish(ourOpt(maxUdpSize, dnssecOk)), info };
}

/**
 * A scrubbed reply made this client's: its id and question bytes (same length: same name, maybe
 * another case), and no OPT when it sent none (RFC 6891 §7). A copy; the stored one stays as is.
 */
export function readdressScrubbed(stored: Buffer, query: Query): Buffer {
  const length = query.edns ? stored.length : stored.length - OPT_SIZE;
  const out = Buffer.allocUnsafe(length);
  stored.copy(out, 0, 0, length);
  out.writeUInt16BE(query.id, 0);
  query.raw.copy(out, HEADER_SIZE, HEADER_SIZE, query.questionEnd);
  if (!query.edns) out.writeUInt16BE(out.readUInt16BE(10) - 1, 10);
  return out;
}
