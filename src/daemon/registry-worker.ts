// The registry parser's worker thread (started by registry-loader.ts): hashes, decodes, parses and
// compiles one file at a time, and hands the network back packed (registry/packed.ts): a few typed
// arrays transferred without a copy, so the daemon's event loop neither parses nor deserializes a
// large network, and its heap gets no object per endpoint.
import { createHash } from 'node:crypto';
import { setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import { parseDocumentText } from '../registry/document.js';
import { packNetwork } from '../registry/compiled.js';
import { transferList, type PackedTables } from '../registry/packed.js';
import type { Endpoint, Network } from '../registry/types.js';

export type WorkerRequest = { id: number; kind: 'parse'; source: string; bytes: ArrayBuffer; previousHash: string | undefined };

export type WorkerReply =
  /** Sent before parsing, so a parse that kills the worker still leaves the content's hash. */
  | { id: number; kind: 'hashed'; hash: string }
  | { id: number; kind: 'unchanged' }
  | { id: number; kind: 'refused'; hash: string; problem: string }
  /** `notable`: the few endpoints the daemon acts on (CompiledNetwork.notable), as objects; the rest packed. */
  | { id: number; kind: 'network'; hash: string; network: Network; notable: Endpoint[]; total: number; tables: PackedTables };

const strict = new TextDecoder('utf-8', { fatal: true });

function handle(request: WorkerRequest): WorkerReply {
  const bytes = new Uint8Array(request.bytes);
  const hash = createHash('sha256').update(bytes).digest('hex');
  if (hash === request.previousHash) return { id: request.id, kind: 'unchanged' };
  parentPort!.postMessage({ id: request.id, kind: 'hashed', hash } satisfies WorkerReply);
  let text: string;
  try {
    text = strict.decode(bytes);
  } catch {
    return { id: request.id, kind: 'refused', hash, problem: `${request.source}: not valid UTF-8 (first bad byte on line ${badLine(bytes)})` };
  }
  try {
    const record = parseDocumentText(text, request.source);
    const { tables, notable } = packNetwork(record);
    return { id: request.id, kind: 'network', hash, network: record.network, notable, total: record.endpoints.length, tables };
  } catch (err) {
    // First line only: YAML errors append a frame of the file's text after it.
    const message = err instanceof Error ? err.message : String(err);
    return { id: request.id, kind: 'refused', hash, problem: message.split('\n', 1)[0] };
  }
}

function badLine(bytes: Uint8Array): number {
  const lossy = new TextDecoder('utf-8').decode(bytes);
  const at = lossy.indexOf('\uFFFD');
  let line = 1;
  for (let i = 0; i < at; i++) if (lossy.charCodeAt(i) === 10) line++;
  return line;
}

// Linux keeps the nice value per thread: this lowers the parser thread only, so on a busy host the
// event loop answering DNS wins the CPU over a long parse.
try { setPriority(10); } catch { /* best effort: parsing still works at normal priority */ }

parentPort?.on('message', (request: WorkerRequest) => {
  const reply = handle(request);
  parentPort!.postMessage(reply, reply.kind === 'network' ? transferList(reply.tables) : []);
});
