// Reading and parsing one registry file as hostile input. The read refuses symlinks, anything but a
// regular file and anything over the size cap; the parse runs in a worker thread (registry-worker.ts)
// under a time and memory limit, so a huge or malicious file costs the event loop nothing, and its
// result comes back in chunks the caller applies between event-loop turns.
import { constants, type Stats } from 'node:fs';
import { lstat, open } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import { NsdnsError } from '../errors.js';
import type { PackedTables } from '../registry/packed.js';
import type { Endpoint, Network } from '../registry/types.js';
import type { WorkerReply, WorkerRequest } from './registry-worker.js';

/**
 * The worker is dropped after this long without work: an idle daemon keeps no second heap, and
 * V8's memory reducer, which collects an idle heap a few times some seconds after its last work,
 * never runs there (on a daemon pinned to one core those collections delay answers by ms).
 */
const IDLE_MS = 3_000;
/** After a file this large the worker's heap has grown: drop it at once rather than after IDLE_MS. */
const BIG_FILE = 256 * 1024;
const MIB = 1024 * 1024;

/**
 * Reads a registry file without following a symlink and without reading past `maxBytes`.
 * All symlinks are refused, not only those leading out of the directory: a target inside can be
 * swapped or re-pointed after any check, only O_NOFOLLOW closes that race, and the README's atomic
 * rename needs no links. Returns undefined when the file is gone (a removal races every event).
 */
export async function readRegistryFile(file: string, maxBytes: number): Promise<Uint8Array | undefined> {
  let seen: Stats;
  try {
    seen = await lstat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw refused(`cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (seen.isSymbolicLink()) throw refused(SYMLINK);
  if (!seen.isFile()) throw refused('not a regular file');
  if (seen.size > maxBytes) throw refused(tooLarge(seen.size, maxBytes));
  let handle;
  try {
    // O_NONBLOCK: a FIFO swapped in after lstat cannot hang the open.
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw refused(code === 'ELOOP' ? SYMLINK : `cannot be opened (${code ?? 'error'})`);
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw refused('not a regular file');
    if (st.size > maxBytes) throw refused(tooLarge(st.size, maxBytes));
    // Own ArrayBuffer (not Buffer's shared pool), so it can be transferred to the worker.
    let bytes = new Uint8Array(Math.min(st.size, maxBytes) + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(bytes, length, bytes.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > maxBytes) throw refused(tooLarge(length, maxBytes, 'while being read'));
      if (length === bytes.length) {
        // The file grew after fstat: keep reading, but never past maxBytes + 1.
        const grown = new Uint8Array(Math.min(bytes.length * 2, maxBytes + 1));
        grown.set(bytes);
        bytes = grown;
      }
    }
    return bytes.subarray(0, length);
  } finally {
    await handle.close();
  }
}

const SYMLINK = 'a symbolic link; registry files must be regular files (links are never followed)';

function tooLarge(size: number, maxBytes: number, when = ''): string {
  return `larger than registryFiles.maxBytes (${maxBytes} bytes)${when ? ` ${when}` : `: ${size} bytes`}; not read`;
}

function refused(problem: string): NsdnsError {
  return new NsdnsError('ERR_REGISTRY_FILE', problem);
}

/**
 * Text from anywhere (file names, parser messages) made fit for one log line: control, bidi and
 * line-separator characters escaped, length capped, so a file can neither forge lines nor dump itself.
 */
export function safeText(text: string, max = 400): string {
  // eslint-disable-next-line no-control-regex
  const escaped = text.replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return escaped.length > max ? `${escaped.slice(0, max)}… (${escaped.length - max} more)` : escaped;
}

export type ParseOutcome =
  | { kind: 'unchanged' }
  /** `hash` is known unless the worker died before hashing: the same content is not retried. */
  | { kind: 'refused'; hash: string | undefined; problem: string }
  | { kind: 'parsed'; hash: string; network: Network; total: number };

/** Receives a parsed network, packed (registry/packed.ts) but for its notable endpoints. */
export type Consume = (network: Network, tables: PackedTables, notable: Endpoint[]) => void;

export interface ParserLimits {
  /** Wall time for the worker to answer one request. */
  timeoutMs: number;
  /** The worker's old-generation heap; exceeding it ends the worker, not the daemon. */
  maxHeapMb: number;
}

/** Limits that scale with the file cap: parsing YAML takes ~10-60x the file's size in heap. */
export function parserLimitsFor(maxBytes: number): ParserLimits {
  const mib = maxBytes / MIB;
  // ~4 s per MiB of YAML in V8's size-optimized mode (v8-flags.ts applies to the worker too), x2.
  return { timeoutMs: Math.round(10_000 + 8_000 * mib), maxHeapMb: Math.round(128 + 64 * mib) };
}

/** One long-lived parser worker, one job at a time, respawned after a crash, a timeout or idleness. */
export class RegistryParser {
  private worker: Worker | undefined;
  private waiting: { resolve: (r: WorkerReply) => void; reject: (e: Error) => void } | undefined;
  private tail: Promise<unknown> = Promise.resolve();
  private idle: NodeJS.Timeout | undefined;
  private nextId = 1;
  /** The hash of the current job's content, sent by the worker before it parses. */
  private jobHash: string | undefined;

  constructor(private readonly limits: ParserLimits) {}

  /**
   * Parses `bytes` (transferred: the caller loses them). Unchanged content (same hash as
   * `previousHash`) is not parsed again. `consume` runs while the job holds the worker.
   */
  parse(source: string, bytes: Uint8Array, previousHash: string | undefined, consume: Consume): Promise<ParseOutcome> {
    const job = this.tail.then(() => this.run(source, bytes, previousHash, consume));
    this.tail = job.catch(() => undefined);
    return job;
  }

  private async run(source: string, bytes: Uint8Array, previousHash: string | undefined, consume: Consume): Promise<ParseOutcome> {
    clearTimeout(this.idle);
    const id = this.nextId++;
    this.jobHash = undefined;
    // Read before the transfer below detaches the bytes (their length is 0 then).
    const size = bytes.byteLength;
    const buffer = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes.buffer : bytes.slice().buffer;
    try {
      const reply = await this.request({ id, kind: 'parse', source, bytes: buffer as ArrayBuffer, previousHash }, [buffer as ArrayBuffer]);
      if (reply.kind === 'unchanged') return { kind: 'unchanged' };
      if (reply.kind === 'refused') return { kind: 'refused', hash: reply.hash, problem: reply.problem };
      if (reply.kind !== 'network') throw new NsdnsError('ERR_INTERNAL', 'registry parser answered out of order');
      consume(reply.network, reply.tables, reply.notable);
      return { kind: 'parsed', hash: reply.hash, network: reply.network, total: reply.total };
    } catch (err) {
      // A crash, a timeout or a registry conflict: refused, and remembered like any refusal.
      return { kind: 'refused', hash: this.jobHash, problem: err instanceof Error ? err.message : String(err) };
    } finally {
      if (size > BIG_FILE) void this.stop();
      else this.idle = setTimeout(() => this.stop(), IDLE_MS).unref();
    }
  }

  private request(message: WorkerRequest, transfer: ArrayBuffer[] = []): Promise<WorkerReply> {
    const worker = this.worker ?? this.spawn();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = undefined;
        void this.stop();
        reject(refused(`parsing took longer than ${Math.round(this.limits.timeoutMs / 1000)} s; parser stopped`));
      }, this.limits.timeoutMs);
      this.waiting = {
        resolve: (r) => { clearTimeout(timer); resolve(r); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      };
      worker.postMessage(message, transfer);
    });
  }

  private spawn(): Worker {
    const worker = new Worker(new URL('./registry-worker.js', import.meta.url), {
      resourceLimits: { maxOldGenerationSizeMb: this.limits.maxHeapMb, maxYoungGenerationSizeMb: 32, stackSizeMb: 4 },
    });
    worker.unref();
    // Only the current worker may settle a request: a stopped one's late 'exit' must not.
    const fail = (problem: string) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      const waiting = this.waiting;
      this.waiting = undefined;
      waiting?.reject(refused(problem));
    };
    worker.on('message', (reply: WorkerReply) => {
      if (this.worker !== worker) return;
      if (reply.kind === 'hashed') {
        this.jobHash = reply.hash;
        return;
      }
      const waiting = this.waiting;
      this.waiting = undefined;
      waiting?.resolve(reply);
    });
    worker.on('error', (err: NodeJS.ErrnoException) => fail(err.code === 'ERR_WORKER_OUT_OF_MEMORY'
      ? `parsing needs more than ${this.limits.maxHeapMb} MB; parser stopped`
      : `the parser crashed (${err.code ?? err.name}); it restarts with the next file`));
    worker.on('exit', () => fail('the parser stopped; it restarts with the next file'));
    this.worker = worker;
    return worker;
  }

  /** Ends the worker (idle, timed out, or the daemon is stopping); the next job starts a new one. */
  async stop(): Promise<void> {
    clearTimeout(this.idle);
    const worker = this.worker;
    this.worker = undefined;
    await worker?.terminate();
  }
}
