// The query nsdns sends upstream, built from the parsed question rather than copied from the
// client's packet: a client's header bits, extra records or EDNS options never leave the host, and
// every client that shares an upstream exchange is served by a reply to exactly this packet.
import { randomBytes } from 'node:crypto';
import { FLAG, HEADER_SIZE, QTYPE } from './constants.js';
import type { Query } from './query.js';

const OPT_SIZE = 11;

/**
 * Header (id 0: the exchange writes a fresh one per attempt; RD and CD as the client asked),
 * the question with the name lower-cased, and our OPT: our own UDP size, DO as the client set it.
 * The question ends at the same offset as the client's (same name bytes, same length).
 */
export function buildUpstreamQuery(query: Query, maxUdpSize: number): Buffer {
  const out = Buffer.alloc(query.questionEnd + OPT_SIZE);
  out.writeUInt16BE(query.flags & (FLAG.RD | FLAG.CD), 2);
  out.writeUInt16BE(1, 4);
  out.writeUInt16BE(1, 10);
  query.raw.copy(out, HEADER_SIZE, HEADER_SIZE, query.questionEnd);
  // Labels are length-prefixed: lower-casing every byte A-Z of the name leaves length bytes (< 64) alone.
  for (let i = HEADER_SIZE; i < query.questionEnd - 4; i++) if (out[i] >= 0x41 && out[i] <= 0x5a) out[i] |= 0x20;
  const opt = query.questionEnd;
  out.writeUInt16BE(QTYPE.OPT, opt + 1);
  out.writeUInt16BE(maxUdpSize, opt + 3);
  out.writeUInt16BE(query.edns?.dnssecOk ? 0x8000 : 0, opt + 7);
  return out;
}

/** A copy with every letter of the question name in random case (0x20, draft-vixie-dnsext-dns0x20). */
export function withRandomCase(packet: Buffer, questionEnd: number): Buffer {
  const out = Buffer.from(packet);
  const bits = randomBytes(questionEnd - HEADER_SIZE);
  for (let i = HEADER_SIZE; i < questionEnd - 4; i++) {
    const c = out[i] | 0x20;
    if (c >= 0x61 && c <= 0x7a && (bits[i - HEADER_SIZE] & 1)) out[i] = c & ~0x20;
  }
  return out;
}

export const Match = {
  No: 0,
  Exact: 1,
  /** The same question but letters in another case: the server does not keep 0x20 case. */
  OtherCase: 2,
} as const;
export type Match = (typeof Match)[keyof typeof Match];

/** Whether `reply` answers `sent`: same id, QR set, one question, the same question bytes. */
export function matchReply(reply: Buffer, sent: Buffer, questionEnd: number): Match {
  if (reply.length < questionEnd || reply.readUInt16BE(0) !== sent.readUInt16BE(0)) return Match.No;
  if (!(reply.readUInt16BE(2) & FLAG.QR) || reply.readUInt16BE(4) !== 1) return Match.No;
  let match: Match = Match.Exact;
  for (let i = HEADER_SIZE; i < questionEnd; i++) {
    const a = reply[i];
    const b = sent[i];
    if (a === b) continue;
    // Only inside the name, and only between the two cases of one ASCII letter.
    const lower = a | 0x20;
    if (i >= questionEnd - 4 || lower !== (b | 0x20) || lower < 0x61 || lower > 0x7a) return Match.No;
    match = Match.OtherCase;
  }
  return match;
}
