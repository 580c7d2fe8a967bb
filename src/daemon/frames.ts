// Length-prefixed frames over a byte stream (the registry parser process's stdin and stdout): a
// 4-byte big-endian length, then that many bytes. The reader fills each frame into one buffer
// allocated at its announced size, so a large frame costs one copy per chunk as it arrives and no
// concatenation; a frame over the cap ends the stream as an error.

export function frame(payload: Uint8Array): Buffer[] {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(payload.byteLength);
  return [length, Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)];
}

export class FrameReader {
  private header = Buffer.alloc(4);
  private headerFill = 0;
  private body: Uint8Array | undefined;
  private bodyFill = 0;

  constructor(private readonly maxBytes: number, private readonly onFrame: (body: Uint8Array) => void) {}

  /** Throws when a frame announces more than maxBytes. */
  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.body === undefined) {
        const n = Math.min(4 - this.headerFill, chunk.length - at);
        chunk.copy(this.header, this.headerFill, at, at + n);
        this.headerFill += n;
        at += n;
        if (this.headerFill < 4) return;
        const length = this.header.readUInt32BE(0);
        if (length > this.maxBytes) throw new Error(`a frame of ${length} bytes is over the limit of ${this.maxBytes}`);
        this.body = new Uint8Array(length);
        this.bodyFill = 0;
        this.headerFill = 0;
        if (length === 0) {
          this.body = undefined;
          this.onFrame(new Uint8Array(0));
          continue;
        }
      }
      const n = Math.min(this.body.length - this.bodyFill, chunk.length - at);
      this.body.set(chunk.subarray(at, at + n), this.bodyFill);
      this.bodyFill += n;
      at += n;
      if (this.bodyFill === this.body.length) {
        const body = this.body;
        this.body = undefined;
        this.onFrame(body);
      }
    }
  }
}
