// Writing resource records from registry data: every record nsdns answers from its own data is
// built here (the resolver hands over names, addresses and numbers, never bytes). A record's owner
// is either a pointer to the question name (answers: the client's 0x20 case is kept) or a name
// written out (additional records of SRV targets).
import { QTYPE } from './constants.js';

/** Compression pointer to the question name, which always sits right after the 12-byte header. */
const QUESTION_POINTER = 0xc00c;

/** A lower-case dotted name (validated ASCII) in wire form, uncompressed, with its root label. */
export function encodeName(name: string): Buffer {
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name;
  const out = Buffer.allocUnsafe(trimmed.length === 0 ? 1 : trimmed.length + 2);
  let off = 0;
  if (trimmed.length > 0) {
    for (const label of trimmed.split('.')) {
      out[off++] = label.length;
      off += out.write(label, off, 'latin1');
    }
  }
  out[off++] = 0;
  return out.subarray(0, off);
}

/** One record: `owner` written out, or undefined for a pointer to the question name. */
export function record(owner: Buffer | undefined, type: number, ttl: number, rdata: Buffer): Buffer {
  const ownerSize = owner ? owner.length : 2;
  const out = Buffer.allocUnsafe(ownerSize + 10 + rdata.length);
  if (owner) owner.copy(out, 0);
  else out.writeUInt16BE(QUESTION_POINTER, 0);
  out.writeUInt16BE(type, ownerSize);
  out.writeUInt16BE(1, ownerSize + 2); // class IN
  out.writeUInt32BE(ttl, ownerSize + 4);
  out.writeUInt16BE(rdata.length, ownerSize + 8);
  rdata.copy(out, ownerSize + 10);
  return out;
}

/** A/AAAA records (addresses in wire form, 4 or 16 bytes). */
export function addressRecords(rrtype: number, ttl: number, addresses: readonly Buffer[], owner?: Buffer): Buffer[] {
  return addresses.map((address) => record(owner, rrtype, ttl, address));
}

/** One SRV target, and its addresses for the additional section when the target is ours. */
export interface SrvData {
  readonly priority: number;
  readonly weight: number;
  readonly port: number;
  /** Absolute, lower case, no trailing dot. */
  readonly target: string;
  readonly a: readonly Buffer[];
  readonly aaaa: readonly Buffer[];
}

/** SRV answers (RFC 2782), and the targets' A/AAAA records for the additional section. */
export function srvRecords(ttl: number, targets: readonly SrvData[]): { answers: Buffer[]; additional: Buffer[] } {
  const answers: Buffer[] = [];
  const additional: Buffer[] = [];
  const done = new Set<string>();
  for (const t of targets) {
    const name = encodeName(t.target);
    const rdata = Buffer.allocUnsafe(6 + name.length);
    rdata.writeUInt16BE(t.priority, 0);
    rdata.writeUInt16BE(t.weight, 2);
    rdata.writeUInt16BE(t.port, 4);
    name.copy(rdata, 6);
    answers.push(record(undefined, QTYPE.SRV, ttl, rdata));
    if (done.has(t.target)) continue;
    done.add(t.target);
    additional.push(...addressRecords(QTYPE.A, ttl, t.a, name), ...addressRecords(QTYPE.AAAA, ttl, t.aaaa, name));
  }
  return { answers, additional };
}

/** One TXT record per string (each at most 255 bytes: checked where the strings come in). */
export function txtRecords(ttl: number, strings: readonly string[], owner?: Buffer): Buffer[] {
  return strings.map((text) => {
    const bytes = Buffer.from(text, 'utf8');
    const length = Math.min(bytes.length, 255);
    const rdata = Buffer.allocUnsafe(1 + length);
    rdata[0] = length;
    bytes.copy(rdata, 1, 0, length);
    return record(owner, QTYPE.TXT, ttl, rdata);
  });
}

/** A record whose data is one name: CNAME or PTR. `owner` as in record(). */
export function nameRecord(type: number, ttl: number, target: string, owner?: Buffer): Buffer {
  return record(owner, type, ttl, encodeName(target));
}

const soaCache = new Map<string, Buffer>();
const SOA_MNAME = encodeName('nsdns.invalid');
const SOA_RNAME = encodeName('hostmaster.nsdns.invalid');

/**
 * The SOA that goes with NODATA and NXDOMAIN (RFC 2308 §3): its MINIMUM and TTL are the local TTL,
 * so a client caches our negative answers no longer than our positive ones.
 */
export function soaRecord(zone: string, ttl: number): Buffer {
  const key = `${zone}|${ttl}`;
  let out = soaCache.get(key);
  if (!out) {
    const rdata = Buffer.allocUnsafe(SOA_MNAME.length + SOA_RNAME.length + 20);
    let off = SOA_MNAME.copy(rdata, 0);
    off += SOA_RNAME.copy(rdata, off);
    for (const n of [1, 3600, 600, 86400, ttl]) off = rdata.writeUInt32BE(n, off);
    out = record(encodeName(zone), QTYPE.SOA, ttl, rdata);
    if (soaCache.size > 1000) soaCache.clear();
    soaCache.set(key, out);
  }
  return out;
}

/** A query for `name` (one of ours or a CNAME target: validated ASCII) of type `qtype`, RD set, no EDNS. */
export function queryMessage(id: number, name: string, qtype: number): Buffer {
  const qname = encodeName(name);
  const out = Buffer.alloc(12 + qname.length + 4);
  out.writeUInt16BE(id, 0);
  out.writeUInt16BE(0x0100, 2); // RD
  out.writeUInt16BE(1, 4);
  qname.copy(out, 12);
  out.writeUInt16BE(qtype, 12 + qname.length);
  out.writeUInt16BE(1, 14 + qname.length);
  return out;
}
