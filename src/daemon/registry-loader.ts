// Reading and parsing one registry file as hostile input. The read refuses symlinks, anything but a
// regular file and anything over the size cap; the parse runs in a worker thread at idle CPU
// priority (registry-worker.ts) under a time and heap limit, so a huge or malicious file costs the
// event loop nothing, and its result comes back as packed tables moved (not copied) to the daemon
// (why a thread and not a process: registry-worker.ts).
import { Worker } from 'node:worker_threads';
import { constants, readFileSync, type Stats } from 'node:fs';
import { lstat, open } from 'node:fs/promises';
import { NsdnsError } from '../errors.js';
import type { PackedIndexData, PackedTables } from '../registry/packed.js';
import type { Endpoint, Network } from '../registry/types.js';
import type { WorkerReply, WorkerRequest } from './registry-worker.js';

/**
 * The parser ends after this long without work, so an idle daemon keeps no second heap. Not
 * sooner: a file rewritten every few seconds keeps the same parser (no new heap to set up each time).
 */
const IDLE_MS = 3_000;
/** How long a job waits for a stopped parser to end before starting a new one. */
const ENDING_WAIT_MS = 5_000;
const MIB = 1024 * 1024;

/**
 * Reads a registry file without following a symlink and without reading past `maxBytes`.
 * All symlinks are refused, not only those leading out of the directory: a target inside can be
 * swapped or re-pointed after any check, only O_NOFOLLOW closes that race, and the atomic rename
 * docs/registry.md asks for needs no links. Returns undefined when the file is gone (a removal races every event).
 * `limitName`: the setting a refusal for size names.
 */
export async function readRegistryFile(file: string, maxBytes: number, limitName = 'registryFiles.maxBytes'): Promise<Uint8Array | undefined> {
  let seen: Stats;
  try {
    seen = await lstat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw refused(`cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (seen.isSymbolicLink()) throw refused(SYMLINK);
  if (!seen.isFile()) throw refused('not a regular file');
  if (seen.size > maxBytes) throw refused(tooLarge(seen.size, maxBytes, limitName));
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
    if (st.size > maxBytes) throw refused(tooLarge(st.size, maxBytes, limitName));
    // Own ArrayBuffer (not Buffer's shared pool): a whole file in one buffer, moved to the parser as it is.
    let bytes = new Uint8Array(Math.min(st.size, maxBytes) + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(bytes, length, bytes.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > maxBytes) throw refused(tooLarge(length, maxBytes, limitName, 'while being read'));
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

function tooLarge(size: number, maxBytes: number, limitName: string, when = ''): string {
  return `larger than ${limitName} (${maxBytes} bytes)${when ? ` ${when}` : `: ${size} bytes`}; not read`;
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
  /** `hash` is known unless the parser died before hashing: the same content is not retried. */
  | { kind: 'refused'; hash: string | undefined; problem: string }
  | { kind: 'parsed'; hash: string; network: Network; total: number };

/** Receives a parsed network, packed (registry/packed.ts) but for its notable endpoints. */
export type Consume = (network: Network, tables: PackedTables, notable: Endpoint[]) => void;

export interface ParserLimits {
  /**
   * CPU time the parser may spend on one request. CPU, not wall time: the parser runs only on CPU
   * the host leaves idle, so on a saturated host a file waits (up to STARVED_FACTOR times this in
   * wall time) instead of being refused for the host's load.
   */
  timeoutMs: number;
  /** The parser's old-generation heap; exceeding it ends the parser, not the daemon. */
  maxHeapMb: number;
}

/** Limits that scale with the file cap: parsing YAML takes many times the file's size in heap. */
export function parserLimitsFor(maxBytes: number): ParserLimits {
  const mib = maxBytes / MIB;
  // YAML is the slow format (JSON parses several times faster); the limit allows a slow machine
  // twice what a MiB of YAML takes, so only a hostile file reaches it.
  return { timeoutMs: Math.round(10_000 + 8_000 * mib), maxHeapMb: Math.round(128 + 64 * mib) };
}

/** How much longer than `timeoutMs` a starved parser may take in wall time before it is stopped. */
const STARVED_FACTOR = 10;
/** How often a running job's CPU time is read. */
const CPU_CHECK_MS = 1000;

/** A failure of the parser, not of the content (ParseOutcome.hash stays unknown). */
const PARSER_UNAVAILABLE = 'ERR_PARSER_UNAVAILABLE' as const;
/**
 * The worker's young generation. Its size does not change the peak memory of a large file, so a
 * small one is chosen: it keeps each scavenge short, on idle CPU either way.
 */
const YOUNG_GENERATION_MB = 8;
const STACK_MB = 4;

type Answer = Exclude<WorkerReply, { kind: 'hashed' }>;
type Waiting = { id: number; resolve: (r: Answer) => void; reject: (e: Error) => void };

/**
 * One long-lived parser thread (registry-worker.ts), one job at a time, restarted after a crash,
 * a timeout or idleness.
 */
export class RegistryParser {
  private worker: Worker | undefined;
  private waiting: Waiting | undefined;
  private tail: Promise<unknown> = Promise.resolve();
  private idle: NodeJS.Timeout | undefined;
  private nextId = 1;
  /** The last stopped parser's termination (run() lets it end before starting another). */
  private ending: Promise<unknown> | undefined;
  private closed = false;
  /** The hash of the current job's content, sent by the parser before it parses. */
  private jobHash: string | undefined;
  /** The parser thread's kernel id, to read its CPU time (undefined until it says). */
  private parserTid: number | undefined;

  constructor(private readonly limits: ParserLimits) {}

  /**
   * Parses `bytes`, which are moved to the parser (their buffer is detached: the caller must not
   * use them afterwards). Unchanged content (same hash as `previousHash`) is not parsed again.
   * `consume` runs while the job holds the parser.
   */
  parse(source: string, bytes: Uint8Array, previousHash: string | undefined, consume: Consume): Promise<ParseOutcome> {
    const job = this.tail.then(() => this.run(source, bytes, previousHash, consume));
    this.tail = job.catch(() => undefined);
    return job;
  }

  private async run(source: string, bytes: Uint8Array, previousHash: string | undefined, consume: Consume): Promise<ParseOutcome> {
    clearTimeout(this.idle);
    if (this.closed) return { kind: 'refused', hash: undefined, problem: 'the daemon is stopping' };
    // A stopped parser (timeout, crash) ends before the next starts: on a busy CPU a thread at idle
    // priority may take a while to act on it, and two would hold two heaps. Not forever, though.
    if (this.ending) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.ending, new Promise((resolve) => { timer = setTimeout(resolve, ENDING_WAIT_MS); })]);
      clearTimeout(timer);
      this.ending = undefined;
    }
    const id = this.nextId++;
    this.jobHash = undefined;
    try {
      const reply = await this.request({ id, source, previousHash, bytes });
      if (reply.kind === 'unchanged') return { kind: 'unchanged' };
      if (reply.kind === 'refused') return { kind: 'refused', hash: reply.hash, problem: reply.problem };
      consume(reply.network, reply.tables, reply.notable);
      return { kind: 'parsed', hash: reply.hash, network: reply.network, total: reply.total };
    } catch (err) {
      // A crash, a parse over the heap limit or a registry conflict: refused, and remembered like
      // any refusal. A timeout (the parser runs only on idle CPU: a busy host can starve it), a stop
      // or a parser that could not start says nothing about the content: not remembered, so the
      // next event tries it again.
      const transient = err instanceof NsdnsError && err.code === PARSER_UNAVAILABLE;
      return { kind: 'refused', hash: transient ? undefined : this.jobHash, problem: firstLine(err instanceof Error ? err.message : String(err)) };
    } finally {
      if (!this.closed) this.idle = setTimeout(() => void this.stop(), IDLE_MS).unref();
    }
  }

  private request(message: WorkerRequest): Promise<Answer> {
    let worker: Worker;
    try {
      worker = this.worker ?? this.start();
    } catch (err) {
      return Promise.reject(new NsdnsError(PARSER_UNAVAILABLE, `the parser did not start (${(err as NodeJS.ErrnoException).code ?? (err as Error).name})`));
    }
    return new Promise((resolve, reject) => {
      const started = Date.now();
      const cpuAtStart = this.parserTid === undefined ? undefined : threadCpuMs(this.parserTid);
      const limit = this.limits.timeoutMs;
      const timer = setInterval(() => {
        // The thread's id arrives with the first job's 'hashed' message; until then, wall time.
        const cpuNow = this.parserTid === undefined ? undefined : threadCpuMs(this.parserTid);
        const cpu = cpuNow === undefined ? undefined : cpuNow - (cpuAtStart ?? 0);
        const wall = Date.now() - started;
        const over = cpu !== undefined ? cpu > limit || wall > limit * STARVED_FACTOR : wall > limit;
        if (!over) return;
        clearInterval(timer);
        this.waiting = undefined;
        void this.stop();
        const what = cpu !== undefined && cpu > limit ? `more than ${Math.round(limit / 1000)} s of CPU` : `longer than ${Math.round(wall / 1000)} s`;
        reject(new NsdnsError(PARSER_UNAVAILABLE, `parsing took ${what}; parser stopped (tried again at the next change)`));
      }, Math.min(CPU_CHECK_MS, limit));
      this.waiting = {
        id: message.id,
        resolve: (r) => { clearInterval(timer); resolve(r); },
        reject: (e) => { clearInterval(timer); reject(e); },
      };
      // Moved, not copied: the file's bytes are the parser's from here on. A buffer of no bytes is
      // copied instead: postMessage silently drops a message naming a detached buffer (the job
      // would wait for its timeout), and copying bytes already moved throws here at once.
      const buffer = message.bytes.buffer;
      const movable = buffer instanceof ArrayBuffer && buffer.byteLength > 0;
      try {
        worker.postMessage(movable ? message : { ...message, bytes: new Uint8Array(message.bytes) }, movable ? [buffer] : []);
      } catch (err) {
        // Bytes that cannot be sent (a detached buffer): this job ends, the parser stays.
        const waiting = this.waiting;
        this.waiting = undefined;
        waiting.reject(new NsdnsError('ERR_INTERNAL', `the file could not be handed to the parser (${(err as Error).name})`));
      }
    });
  }

  private start(): Worker {
    // No output to the daemon's stdout or stderr (a worker's are piped to them by default): the
    // worker writes nothing, and whatever a library might write is dropped.
    const worker = new Worker(new URL('./registry-worker.js', import.meta.url), {
      resourceLimits: { maxOldGenerationSizeMb: this.limits.maxHeapMb, maxYoungGenerationSizeMb: YOUNG_GENERATION_MB, stackSizeMb: STACK_MB },
      stdout: true,
      stderr: true,
    });
    worker.stdout.resume();
    worker.stderr.resume();
    this.parserTid = undefined;
    // Only the current parser may settle a request: a stopped one's late events must not.
    let answered = false;
    const fail = (problem: string, transient = false) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      this.ending = worker.terminate();
      const waiting = this.waiting;
      this.waiting = undefined;
      waiting?.reject(transient ? new NsdnsError(PARSER_UNAVAILABLE, problem) : refused(problem));
    };
    worker.on('message', (value: unknown) => {
      answered = true;
      const waiting = this.waiting;
      if (this.worker !== worker || waiting === undefined) return;
      let reply: WorkerReply;
      try {
        reply = checkReply(value, waiting.id);
      } catch (err) {
        return fail(`the parser's answer was refused (${(err as Error).message})`);
      }
      if (reply.kind === 'hashed') {
        this.jobHash = reply.hash;
        this.parserTid = reply.tid;
        return;
      }
      this.waiting = undefined;
      waiting.resolve(reply);
    });
    worker.on('messageerror', () => fail("the parser's answer could not be read"));
    worker.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ERR_WORKER_OUT_OF_MEMORY') return fail(`parsing needs more than ${this.limits.maxHeapMb} MB; parser stopped`);
      // Nothing from it yet: it failed before it read any content.
      if (!answered) return fail(`the parser did not start (${err.code ?? err.name})`, true);
      fail(`the parser crashed (${err.code ?? err.name}); it restarts with the next file`);
    });
    worker.on('exit', (code) => fail(code === 0 ? 'the parser stopped; it restarts with the next file' : `the parser crashed (exit ${code}); it restarts with the next file`));
    // The daemon's life does not depend on its parser.
    worker.unref();
    this.worker = worker;
    return worker;
  }

  /** Ends the parser (idle, timed out, or the daemon is stopping); the next job starts a new one. */
  async stop(): Promise<void> {
    clearTimeout(this.idle);
    const worker = this.worker;
    this.worker = undefined;
    // A job in progress ends now, unjudged (its content is tried again by the next parser).
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.reject(new NsdnsError(PARSER_UNAVAILABLE, 'the parser was stopped'));
    if (!worker) return;
    // Referenced while it ends: a stopping daemon whose other handles are closed waits for it.
    worker.ref();
    this.ending = worker.terminate();
    await this.ending;
  }

  /** Stops the parser for good (the daemon is stopping): jobs still queued end unjudged, without starting one. */
  async close(): Promise<void> {
    this.closed = true;
    await this.stop();
  }
}

/** CPU time (user + system) a thread of this process has used, in ms; undefined when unreadable. */
function threadCpuMs(tid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'latin1');
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/** USER_HZ: /proc reports CPU times in these; 100 on every Linux architecture Node runs on. */
const CLOCK_TICKS_PER_SECOND = 100;

function firstLine(text: string): string {
  return text.split('\n', 1)[0];
}

const HASH = /^[0-9a-f]{64}$/;

/** The type of each array of PackedIndexData (checked by tsc against its fields). */
const INDEX_ARRAYS = {
  slots: Int32Array, keyStarts: Uint32Array, keyBytes: Uint8Array, listStarts: Uint32Array, lists: Uint32Array, own: Uint8Array, seed: Uint32Array,
} as const satisfies Record<keyof PackedIndexData, Int32ArrayConstructor | Uint32ArrayConstructor | Uint8ArrayConstructor>;

/**
 * The parser's message, checked before use: its job, its kind and the types of what the daemon
 * keeps. The tables' contents were range-checked where they were made (packFile's checkTables).
 */
function checkReply(value: unknown, id: number): WorkerReply {
  const r = value as Record<string, unknown> | null;
  if (typeof r !== 'object' || r === null || r.id !== id) throw new Error('not the current job');
  const hashed = typeof r.hash === 'string' && HASH.test(r.hash);
  switch (r.kind) {
    case 'unchanged': return r as WorkerReply;
    case 'hashed': if (hashed && (r.tid === undefined || (Number.isSafeInteger(r.tid) && (r.tid as number) > 0))) return r as WorkerReply; break;
    case 'refused': if (hashed && typeof r.problem === 'string') return r as WorkerReply; break;
    case 'network': {
      const network = r.network as Record<string, unknown> | null;
      if (hashed && typeof network === 'object' && network !== null && typeof network.name === 'string'
        && Array.isArray(r.notable) && Number.isSafeInteger(r.total) && (r.total as number) >= 0 && tablesTyped(r.tables)) return r as WorkerReply;
      break;
    }
  }
  throw new Error(`a malformed ${typeof r.kind === 'string' ? safeText(r.kind, 20) : ''} reply`);
}

function tablesTyped(value: unknown): value is PackedTables {
  const t = value as Record<string, unknown> | null;
  if (typeof t !== 'object' || t === null || !(t.endpointStarts instanceof Uint32Array) || !(t.endpointBytes instanceof Uint8Array)) return false;
  return [t.names, t.addresses].every((index) => {
    const i = index as Record<string, unknown> | null;
    return typeof i === 'object' && i !== null && Object.entries(INDEX_ARRAYS).every(([field, Type]) => i[field] instanceof Type);
  });
}
