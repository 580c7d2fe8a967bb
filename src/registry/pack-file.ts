// A registry file's bytes to a packed network (packed.ts): what the registry parser runs, off the
// daemon's event loop. Endpoints are validated and packed one by one (NetworkPacker), and a JSON
// file's endpoints are parsed one by one too (json-endpoints.ts), so a large file never costs an
// object per endpoint at once: the parser's memory is the file, the tables, and a slice of
// endpoints. Throws NsdnsError('ERR_REGISTRY_FILE') with a message fit for a log line.
import { isUtf8 } from 'node:buffer';
import { NsdnsError } from '../errors.js';
import { NetworkPacker } from './compiled.js';
import { documentParts, parseDocumentData, readDocument, type DocumentParts } from './document.js';
import { NotSplittable, splitElements, splitEndpoints } from './json-endpoints.js';
import { checkTables, type PackedTables } from './packed.js';
import type { Endpoint, Network } from './types.js';

export interface PackedFile {
  network: Network;
  /** Every array on a buffer of its own, whole (they can be transferred one by one). */
  tables: PackedTables;
  /** The endpoints the daemon acts on (CompiledNetwork.notable), as objects. */
  notable: Endpoint[];
  total: number;
}

export interface PackOptions {
  /**
   * A full garbage collection, run every COLLECT_EVERY endpoints: where it is cheap (the parser's
   * own heap, on idle CPU), collecting often keeps the peak near what is live (the tables and a
   * slice of endpoints) instead of letting V8 grow the heap with the garbage of every endpoint.
   */
  collect?: () => void;
}

const COLLECT_EVERY = 10_000;
/** The smallest endpoint a file can hold, `{"name":"a"}`: room is never made for more than fit (a file of `0,0,0…` is not 2 million endpoints). */
const MIN_ENDPOINT_BYTES = 12;

export function packFile(bytes: Uint8Array, source: string, options: PackOptions = {}): PackedFile {
  if (!isUtf8(bytes)) throw new NsdnsError('ERR_REGISTRY_FILE', `${source}: not valid UTF-8 (first bad byte on line ${badLine(bytes)})`);
  const split = /\.json$/i.test(source) ? splitEndpoints(bytes) : undefined;
  if (split) {
    let outer: unknown;
    try {
      outer = JSON.parse(split.outer);
    } catch {
      outer = undefined;
    }
    if (outer !== undefined) {
      try {
        return pack({ data: outer, endpoints: splitElements(bytes, split) }, source, options, false, { endpoints: Math.min(split.count, bytes.byteLength / MIN_ENDPOINT_BYTES), bytes: bytes.byteLength });
      } catch (err) {
        if (!(err instanceof NotSplittable)) throw err;
      }
    }
  }
  // YAML, or JSON the split did not take: parsed whole (a syntax error gets its line and column).
  const text = new TextDecoder('utf-8').decode(bytes);
  return pack(documentParts(parseDocumentData(text, source)), source, options, true);
}

function pack(parts: DocumentParts, source: string, { collect }: PackOptions, release: boolean, expected?: { endpoints: number; bytes: number }): PackedFile {
  let packer: NetworkPacker | undefined;
  let added = 0;
  const network = readDocument(parts, source, (n) => {
    packer = new NetworkPacker(n, expected);
    return (e) => {
      packer!.add(e);
      if (collect && ++added % COLLECT_EVERY === 0) collect();
    };
  }, () => packer!.problems(), { release, file: true });
  const { tables, notable, total } = packer!.finish();
  checkTables(tables);
  return { network, tables, notable, total };
}

function badLine(bytes: Uint8Array): number {
  const lossy = new TextDecoder('utf-8').decode(bytes);
  const at = lossy.indexOf('\uFFFD');
  let line = 1;
  for (let i = 0; i < at; i++) if (lossy.charCodeAt(i) === 10) line++;
  return line;
}
