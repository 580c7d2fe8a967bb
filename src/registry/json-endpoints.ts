// Finds a JSON network file's endpoints without parsing the file whole: where each element of its
// top-level "endpoints" array starts and ends, and the document with that array emptied. Each
// piece is then parsed on its own (JSON values do not depend on what surrounds them), so a file of
// 90 000 endpoints is never 90 000 objects at once. Only the structure is scanned here: every piece
// still goes through JSON.parse, and anything this scanner does not expect (a second "endpoints",
// an escaped key, a missing comma) makes it give up, and the caller parses the file whole, which
// gives the usual error with its line and column.

/** The document with its endpoints array emptied, and [start, end) byte offsets of each element. */
export interface SplitDocument {
  outer: string;
  elements: Uint32Array;
  count: number;
}

const SPACE = 0x20, TAB = 0x09, LF = 0x0a, CR = 0x0d;
const OPEN_OBJECT = 0x7b, CLOSE_OBJECT = 0x7d, OPEN_ARRAY = 0x5b, CLOSE_ARRAY = 0x5d;
const QUOTE = 0x22, BACKSLASH = 0x5c, COMMA = 0x2c, COLON = 0x3a;
const ENDPOINTS = Buffer.from('endpoints');

class GiveUp extends Error {}

/** Undefined when the file is not a plain `{..., "endpoints": [...], ...}` (the caller parses it whole). */
export function splitEndpoints(bytes: Uint8Array): SplitDocument | undefined {
  try {
    return split(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (err) {
    if (err instanceof GiveUp) return undefined;
    throw err;
  }
}

function split(b: Buffer): SplitDocument | undefined {
  let at = b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf ? 3 : 0; // a BOM, as TextDecoder drops it
  const space = () => { while (at < b.length && (b[at] === SPACE || b[at] === LF || b[at] === CR || b[at] === TAB)) at++; };
  const expect = (byte: number) => { if (b[at] !== byte) throw new GiveUp(); at++; };
  const begin = at;
  space();
  expect(OPEN_OBJECT);
  let arrayOpen = -1;
  let arrayClose = -1;
  let elements = new Uint32Array(2048);
  let count = 0;
  space();
  if (b[at] !== CLOSE_OBJECT) {
    for (;;) {
      space();
      const keyStart = at;
      at = stringEnd(b, at);
      const key = b.subarray(keyStart + 1, at - 1);
      if (key.includes(BACKSLASH)) throw new GiveUp();
      space();
      expect(COLON);
      space();
      if (key.equals(ENDPOINTS)) {
        if (arrayOpen >= 0 || b[at] !== OPEN_ARRAY) throw new GiveUp();
        arrayOpen = at++;
        space();
        if (b[at] !== CLOSE_ARRAY) {
          for (;;) {
            space();
            const start = at;
            at = valueEnd(b, at);
            if (count * 2 + 2 > elements.length) {
              const bigger = new Uint32Array(elements.length * 2);
              bigger.set(elements);
              elements = bigger;
            }
            elements[count * 2] = start;
            elements[count * 2 + 1] = at;
            count++;
            space();
            if (b[at] === COMMA) { at++; continue; }
            break;
          }
        }
        arrayClose = at;
        expect(CLOSE_ARRAY);
      } else {
        at = valueEnd(b, at);
      }
      space();
      if (b[at] === COMMA) { at++; continue; }
      break;
    }
  }
  expect(CLOSE_OBJECT);
  space();
  if (at !== b.length || arrayOpen < 0) throw new GiveUp();
  const outer = b.toString('utf8', begin, arrayOpen + 1) + b.toString('utf8', arrayClose, b.length);
  return { outer, elements, count };
}

/** Just past the string that starts at `at`. */
function stringEnd(b: Buffer, at: number): number {
  if (b[at] !== QUOTE) throw new GiveUp();
  for (let i = at + 1; i < b.length; i++) {
    if (b[i] === BACKSLASH) i++;
    else if (b[i] === QUOTE) return i + 1;
  }
  throw new GiveUp();
}

/** Just past the value that starts at `at` (its inside is JSON.parse's to judge). */
function valueEnd(b: Buffer, at: number): number {
  const first = b[at];
  if (first === QUOTE) return stringEnd(b, at);
  if (first === OPEN_OBJECT || first === OPEN_ARRAY) {
    let depth = 0;
    for (let i = at; i < b.length; i++) {
      const c = b[i];
      if (c === QUOTE) i = stringEnd(b, i) - 1;
      else if (c === OPEN_OBJECT || c === OPEN_ARRAY) depth++;
      else if ((c === CLOSE_OBJECT || c === CLOSE_ARRAY) && --depth === 0) return i + 1;
    }
    throw new GiveUp();
  }
  // A number, true, false or null: up to the next delimiter.
  let i = at;
  while (i < b.length && b[i] !== COMMA && b[i] !== CLOSE_OBJECT && b[i] !== CLOSE_ARRAY && b[i] !== SPACE && b[i] !== LF && b[i] !== CR && b[i] !== TAB) i++;
  if (i === at) throw new GiveUp();
  return i;
}

/** Each element parsed on its own, in order; a piece JSON.parse refuses throws NotSplittable. */
export function* splitElements(bytes: Uint8Array, split: SplitDocument): Generator<unknown> {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < split.count; i++) {
    let value: unknown;
    try {
      value = JSON.parse(text.toString('utf8', split.elements[i * 2], split.elements[i * 2 + 1]));
    } catch {
      throw new NotSplittable();
    }
    yield value;
  }
}

/** A piece of a split file is not valid JSON: parse the file whole for the usual error. */
export class NotSplittable extends Error {}
