// A JSON registry file's endpoints are parsed one by one (src/registry/json-endpoints.ts). Whatever
// the bytes, the pieces must mean exactly what JSON.parse makes of the whole file, and a file
// JSON.parse refuses must never be taken piece by piece.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { splitElements, splitEndpoints } from '../../src/registry/json-endpoints.js';
import { packFile } from '../../src/registry/pack-file.js';

/** What the split makes of the bytes: the document as JSON.parse would give it, or 'refused'. */
function viaSplit(bytes: Uint8Array): unknown {
  const split = splitEndpoints(bytes);
  if (!split) return 'whole';
  try {
    const outer = JSON.parse(split.outer) as { endpoints: unknown[] };
    outer.endpoints = [...splitElements(bytes, split)];
    return outer;
  } catch {
    return 'refused';
  }
}

function viaWhole(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return 'refused';
  }
}

/** Keys JSON.stringify writes without an escape (an escaped key makes the split give up, by design). */
const key = fc.string({ maxLength: 6 }).filter((k) => k !== 'endpoints' && !JSON.stringify(k).includes('\\'));
const space = fc.constantFrom('', ' ', '\n', '\t', '\r\n  ');
/** A network document's text with endpoints of any JSON value, keys in any order, any whitespace. */
const documentText = fc.record({
  before: fc.dictionary(key, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }),
  after: fc.dictionary(key, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 2 }),
  endpoints: fc.array(fc.oneof(fc.record({ name: fc.string(), ipv4: fc.string() }), fc.jsonValue({ maxDepth: 3 })), { maxLength: 6 }),
  gaps: fc.array(space, { minLength: 20, maxLength: 20 }),
}).map(({ before, after, endpoints, gaps }) => {
  const g = (i: number) => gaps[i % gaps.length];
  const members = (o: object, from: number) => Object.entries(o).map(([k, v], i) => `${g(from + i)}${JSON.stringify(k)}${g(from + i + 1)}:${g(from + i + 2)}${JSON.stringify(v)}`);
  const list = endpoints.map((e, i) => `${g(i + 5)}${JSON.stringify(e, null, i % 2 ? 1 : undefined)}${g(i + 6)}`).join(',');
  const all = [...members(before, 0), `${g(3)}"endpoints"${g(4)}:${g(7)}[${list}]${g(8)}`, ...members(after, 9)];
  return `${g(10)}{${all.join(',')}}${g(11)}`;
});

describe('JSON registry files parsed endpoint by endpoint', () => {
  it('mean what JSON.parse makes of the whole file', () => {
    fc.assert(fc.property(documentText, (text) => {
      const bytes = new TextEncoder().encode(text);
      const split = viaSplit(bytes);
      assert.notEqual(split, 'whole', 'a plain document is split');
      assert.deepEqual(split, viaWhole(bytes));
    }), { numRuns: 500 });
  });

  it('never take a file JSON.parse refuses (any byte changed, removed or added)', () => {
    const mutated = fc.tuple(documentText, fc.nat(), fc.constantFrom('delete', 'replace', 'insert'), fc.constantFrom(...'{}[]",:\\ a1-'))
      .map(([text, at, how, c]) => {
        const i = text.length === 0 ? 0 : at % text.length;
        return how === 'delete' ? text.slice(0, i) + text.slice(i + 1) : how === 'replace' ? text.slice(0, i) + c + text.slice(i + 1) : text.slice(0, i) + c + text.slice(i);
      });
    fc.assert(fc.property(mutated, (text) => {
      const bytes = new TextEncoder().encode(text);
      const whole = viaWhole(bytes);
      const split = viaSplit(bytes);
      if (whole === 'refused') assert.ok(split === 'refused' || split === 'whole', `split took ${JSON.stringify(text)}`);
      else if (split !== 'whole') assert.deepEqual(split, whole);
    }), { numRuns: 3000 });
  });

  it('report a syntax error with its line, as a file parsed whole does', () => {
    const text = '{"name": "big",\n "endpoints": [\n  {"name": "a"},\n  {"name": "b",}\n]}\n';
    assert.throws(() => packFile(new TextEncoder().encode(text), 'big.json'), /big\.json: not valid JSON \(line 4, column \d+\)/);
    const missingComma = '{"name": "big", "endpoints": [{"name": "a"} {"name": "b"}]}';
    assert.throws(() => packFile(new TextEncoder().encode(missingComma), 'big.json'), /not valid JSON/);
  });

  it('name a bad endpoint by its place in the file', () => {
    const endpoints = Array.from({ length: 2500 }, (_, i) => ({ name: `e${i}`, ipv4: i === 2345 ? '10.0.0.300' : '10.0.0.1' }));
    const bytes = new TextEncoder().encode(JSON.stringify({ name: 'big', endpoints }));
    assert.throws(() => packFile(bytes, 'big.json'), /big\.json: endpoints\.2345\.ipv4/);
    const { total } = packFile(new TextEncoder().encode(`\uFEFF${JSON.stringify({ name: 'big', endpoints: endpoints.slice(0, 2000) })}`), 'big.json');
    assert.equal(total, 2000, 'a byte-order mark is read past');
  });
});
