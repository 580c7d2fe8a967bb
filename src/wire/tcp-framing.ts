// DNS over TCP (RFC 1035 §4.2.2, RFC 7766 §8): every message carries a two-byte length prefix.
// The reader collects bytes from a stream and yields whole messages, however they were split; a
// server takes them one at a time, so it can stop between two messages when its client stops
// reading replies, and keep the rest for later.

export class FrameReader {
  private pending: Buffer = Buffer.alloc(0);
  private offset = 0;

  /** Adds a chunk of the stream. */
  append(chunk: Buffer): void {
    if (this.offset === this.pending.length) this.pending = chunk;
    else this.pending = Buffer.concat([this.pending.subarray(this.offset), chunk]);
    this.offset = 0;
  }

  /** The next whole message, or undefined until more bytes come. */
  next(): Buffer | undefined {
    const available = this.pending.length - this.offset;
    if (available < 2) return undefined;
    const len = this.pending.readUInt16BE(this.offset);
    if (available - 2 < len) return undefined;
    const message = this.pending.subarray(this.offset + 2, this.offset + 2 + len);
    this.offset += 2 + len;
    return message;
  }

  /** Feeds a chunk; returns every message it completed. */
  push(chunk: Buffer): Buffer[] {
    this.append(chunk);
    const messages: Buffer[] = [];
    for (let m = this.next(); m !== undefined; m = this.next()) messages.push(m);
    return messages;
  }

  /** Bytes received and not yet taken as messages (whole ones waiting, or the start of one). */
  get buffered(): number {
    return this.pending.length - this.offset;
  }

  /** True while the bytes held are only the start of a message: the client owes the rest. */
  get partial(): boolean {
    return this.buffered > 0 && this.peekWhole() === false;
  }

  private peekWhole(): boolean {
    const available = this.pending.length - this.offset;
    return available >= 2 && available - 2 >= this.pending.readUInt16BE(this.offset);
  }
}

export function frame(message: Buffer): Buffer {
  const out = Buffer.allocUnsafe(message.length + 2);
  out.writeUInt16BE(message.length, 0);
  message.copy(out, 2);
  return out;
}
