// A registry file's bytes to a packed network (packed.ts): what the registry parser runs, off the
// daemon's event loop. Throws NsdnsError('ERR_REGISTRY_FILE') with a message fit for a log line.
import { NsdnsError } from '../errors.js';
import { packNetwork } from './compiled.js';
import { parseDocumentText } from './document.js';
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

const strict = new TextDecoder('utf-8', { fatal: true });

export function packFile(bytes: Uint8Array, source: string): PackedFile {
  let text: string;
  try {
    text = strict.decode(bytes);
  } catch {
    throw new NsdnsError('ERR_REGISTRY_FILE', `${source}: not valid UTF-8 (first bad byte on line ${badLine(bytes)})`);
  }
  const record = parseDocumentText(text, source);
  const { tables, notable } = packNetwork(record);
  checkTables(tables);
  return { network: record.network, tables, notable, total: record.endpoints.length };
}

function badLine(bytes: Uint8Array): number {
  const lossy = new TextDecoder('utf-8').decode(bytes);
  const at = lossy.indexOf('\uFFFD');
  let line = 1;
  for (let i = 0; i < at; i++) if (lossy.charCodeAt(i) === 10) line++;
  return line;
}
