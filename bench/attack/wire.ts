// The few DNS wire bytes the attack tools need, written by hand so that they can also write the
// malformed packets the server must survive. Nothing here is used by nsdns itself.

/** A standard query (RD=1, one question, class IN) for NAME and TYPE, no EDNS. */
export function query(id: number, name: string, type = 1): Buffer {
  const labels = name.split('.').filter(Boolean);
  const qname = Buffer.concat([
    ...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'ascii')])),
    Buffer.from([0]),
  ]);
  const msg = Buffer.alloc(12 + qname.length + 4);
  msg.writeUInt16BE(id & 0xffff, 0);
  msg.writeUInt16BE(0x0100, 2); // RD
  msg.writeUInt16BE(1, 4); // QDCOUNT
  qname.copy(msg, 12);
  msg.writeUInt16BE(type, 12 + qname.length);
  msg.writeUInt16BE(1, 14 + qname.length);
  return msg;
}

/** TCP framing: a two-byte length before the message (RFC 1035 4.2.2). */
export function framed(msg: Buffer): Buffer {
  const out = Buffer.alloc(2 + msg.length);
  out.writeUInt16BE(msg.length, 0);
  msg.copy(out, 2);
  return out;
}

export interface ReplyHead { id: number; rcode: number; answers: number }

/** The header of a reply, or undefined for something that is not a reply. */
export function replyHead(msg: Buffer): ReplyHead | undefined {
  if (msg.length < 12 || (msg[2] & 0x80) === 0) return undefined;
  return { id: msg.readUInt16BE(0), rcode: msg[3] & 0x0f, answers: msg.readUInt16BE(6) };
}
