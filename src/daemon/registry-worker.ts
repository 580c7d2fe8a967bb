// The registry parser: a child process the daemon starts (registry-loader.ts) at idle CPU priority,
// so that parsing a large or hostile file, and the garbage collection it causes, only ever uses CPU
// the daemon leaves free (a worker thread shared the daemon's garbage-collector threads, which run
// at normal priority: a 90 000-endpoint file rewritten every 2 s delayed answers by 10-20 ms). It
// hashes, decodes, parses and packs one file at a time (registry/packed.ts) and hands the network
// back as one block of bytes the daemon reads in chunks between answers.
//
// Requests on stdin: a frame of JSON ({id, source, previousHash}), then a frame of the file's bytes.
// Replies on stdout: frames of JSON (WorkerReply). A `network` reply's packed tables
// (writeTables) are written to a file in the private directory the daemon names (argv[2]): the
// daemon reads them into one buffer off its event loop, where a pipe would hand it thousands of
// chunks to copy and collect.
import { createHash } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import path from 'node:path';
import { setPriority } from 'node:os';
import { packNetwork } from '../registry/compiled.js';
import { checkTables, writeTables } from '../registry/packed.js';
import { parseDocumentText } from '../registry/document.js';
import type { Endpoint, Network } from '../registry/types.js';
import { frame, FrameReader } from './frames.js';

export interface WorkerRequest { id: number; source: string; previousHash: string | undefined }

export type WorkerReply =
  /** Sent before parsing, so a parse that kills the parser still leaves the content's hash. */
  | { id: number; kind: 'hashed'; hash: string }
  | { id: number; kind: 'unchanged' }
  | { id: number; kind: 'refused'; hash: string; problem: string }
  /**
   * `notable`: the few endpoints the daemon acts on (CompiledNetwork.notable), as objects; the rest
   * packed in the frame that follows, `lengths` giving its arrays' sizes.
   */
  | { id: number; kind: 'network'; hash: string; network: Network; notable: Endpoint[]; total: number; lengths: number[]; tablesFile: string; tablesBytes: number };

const strict = new TextDecoder('utf-8', { fatal: true });

const directory = process.argv[2];

function send(reply: WorkerReply): void {
  for (const piece of frame(Buffer.from(JSON.stringify(reply)))) process.stdout.write(piece);
}

function handle(request: WorkerRequest, bytes: Uint8Array): void {
  const { id, source } = request;
  const hash = createHash('sha256').update(bytes).digest('hex');
  if (hash === request.previousHash) return send({ id, kind: 'unchanged' });
  send({ id, kind: 'hashed', hash });
  let text: string;
  try {
    text = strict.decode(bytes);
  } catch {
    return send({ id, kind: 'refused', hash, problem: `${source}: not valid UTF-8 (first bad byte on line ${badLine(bytes)})` });
  }
  let reply: WorkerReply;
  try {
    const record = parseDocumentText(text, source);
    // The file's own objects are garbage now: collect them before packing allocates (a lower peak;
    // this process runs on idle CPU, where collecting more often costs nobody anything).
    collect();
    const { tables, notable } = packNetwork(record);
    checkTables(tables);
    const tablesFile = path.join(directory, `tables-${id}`);
    const fd = openSync(tablesFile, 'wx', 0o600);
    let written;
    try {
      written = writeTables(tables, (piece) => { for (let at = 0; at < piece.byteLength;) at += writeSync(fd, piece, at); });
    } finally {
      closeSync(fd);
    }
    const { lengths, bytes: tablesBytes } = written;
    reply = { id, kind: 'network', hash, network: record.network, notable, total: record.endpoints.length, lengths, tablesFile, tablesBytes };
  } catch (err) {
    // First line only: YAML errors append a frame of the file's text after it.
    const message = err instanceof Error ? err.message : String(err);
    return send({ id, kind: 'refused', hash, problem: message.split('\n', 1)[0] });
  }
  send(reply);
  collect();
}

/** A full collection where the daemon started us with --expose-gc. */
function collect(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

function badLine(bytes: Uint8Array): number {
  const lossy = new TextDecoder('utf-8').decode(bytes);
  const at = lossy.indexOf('\uFFFD');
  let line = 1;
  for (let i = 0; i < at; i++) if (lossy.charCodeAt(i) === 10) line++;
  return line;
}

// Started under `chrt --idle` where there is one (every thread, the collector's too, runs only on
// CPU nothing else wants); this lowers the main thread at least where there is not.
try { setPriority(19); } catch { /* best effort */ }

let request: WorkerRequest | undefined;
const reader = new FrameReader(2 ** 31 - 1, (body) => {
  if (request === undefined) {
    request = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8')) as WorkerRequest;
    return;
  }
  const current = request;
  request = undefined;
  handle(current, body);
});
process.stdin.on('data', (chunk: Buffer) => reader.push(chunk));
process.stdin.on('end', () => process.exit(0));
