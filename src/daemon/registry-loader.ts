// Reading and parsing one registry file as hostile input. The read refuses symlinks, anything but a
// regular file and anything over the size cap; the parse runs in a child process at idle CPU
// priority (registry-worker.ts) under a time and memory limit, so a huge or malicious file costs
// the event loop nothing, and its result comes back packed, read in chunks between answers.
import { spawn, type ChildProcess } from 'node:child_process';
import { constants, existsSync, lstatSync, mkdtempSync, readdirSync, rmSync, type Stats } from 'node:fs';
import { lstat, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NsdnsError } from '../errors.js';
import { tablesFromBytes, type PackedTables } from '../registry/packed.js';
import type { Endpoint, Network } from '../registry/types.js';
import { frame, FrameReader } from './frames.js';
import type { WorkerReply, WorkerRequest } from './registry-worker.js';

/**
 * The parser process ends after this long without work, so an idle daemon keeps no second heap.
 * Not sooner: starting one forks the daemon (~10 ms of its loop), so a file rewritten every few
 * seconds keeps the same parser.
 */
const IDLE_MS = 3_000;
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
    // Own ArrayBuffer (not Buffer's shared pool): a whole file in one buffer, written to the parser as it is.
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
  /** `hash` is known unless the parser died before hashing: the same content is not retried. */
  | { kind: 'refused'; hash: string | undefined; problem: string }
  | { kind: 'parsed'; hash: string; network: Network; total: number };

/** Receives a parsed network, packed (registry/packed.ts) but for its notable endpoints. */
export type Consume = (network: Network, tables: PackedTables, notable: Endpoint[]) => void;

export interface ParserLimits {
  /** Wall time for the parser to answer one request. */
  timeoutMs: number;
  /** The parser process's old-generation heap; exceeding it ends the parser, not the daemon. */
  maxHeapMb: number;
}

/** Limits that scale with the file cap: parsing YAML takes ~10-60x the file's size in heap. */
export function parserLimitsFor(maxBytes: number): ParserLimits {
  const mib = maxBytes / MIB;
  // ~4 s per MiB of YAML at idle priority on a busy core, x2.
  return { timeoutMs: Math.round(10_000 + 8_000 * mib), maxHeapMb: Math.round(128 + 64 * mib) };
}

const DIRECTORY_PREFIX = 'nsdns-parser-';
/** A failure of the parser, not of the content (ParseOutcome.hash stays unknown). */
const PARSER_UNAVAILABLE = 'ERR_PARSER_UNAVAILABLE' as const;

/**
 * Tables directories left by a daemon that was killed (their PID is gone); best effort. Only
 * directories that are ours by owner and mode (0700, so nobody else can have put anything in
 * them): a name alone in a shared /tmp proves nothing.
 */
function removeStaleDirectories(parent: string): void {
  try {
    for (const name of readdirSync(parent)) {
      const pid = new RegExp(`^${DIRECTORY_PREFIX}(\\d+)-`).exec(name)?.[1];
      if (pid === undefined || pid === String(process.pid) || existsSync(`/proc/${pid}`)) continue;
      const full = path.join(parent, name);
      const st = lstatSync(full);
      if (!st.isDirectory() || st.uid !== process.getuid?.() || (st.mode & 0o777) !== 0o700) continue;
      rmSync(full, { recursive: true, force: true });
    }
  } catch { /* another daemon's cleanup may race this one: nothing depends on it */ }
}

/**
 * A new private directory for one parser's tables files: in TMPDIR, else /run or /dev/shm (a
 * read-only or missing TMPDIR must not refuse every registry file).
 */
function privateDirectory(): string {
  const errors: string[] = [];
  for (const parent of [tmpdir(), '/run', '/dev/shm']) {
    try {
      removeStaleDirectories(parent);
      return mkdtempSync(path.join(parent, `${DIRECTORY_PREFIX}${process.pid}-`));
    } catch (err) {
      errors.push(`${parent}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  }
  throw new NsdnsError(PARSER_UNAVAILABLE, `no directory for the registry parser's tables (${errors.join(', ')})`);
}

/** How the parser process is started: under `chrt --idle 0` where util-linux has it. */
function parserCommand(nodeArgs: string[], idle: boolean): [string, string[]] {
  const chrt = idle ? ['/usr/bin/chrt', '/bin/chrt'].find((p) => existsSync(p)) : undefined;
  return chrt ? [chrt, ['--idle', '0', process.execPath, ...nodeArgs]] : [process.execPath, nodeArgs];
}

/** The largest reply frame (JSON: a network and its notable endpoints). */
const MAX_REPLY_BYTES = 256 * MIB;
const STDERR_KEPT = 8192;

type Waiting = { resolve: (r: WorkerReply) => void; reject: (e: Error) => void };
/** The largest packed network read back (a 4 MB file packs into ~25 MB). */
const MAX_TABLES_BYTES = 1024 * MIB;
const READ_CHUNK = 4 * MIB;

/**
 * One long-lived parser process (registry-worker.ts), one job at a time, restarted after a crash,
 * a timeout or idleness.
 */
export class RegistryParser {
  private child: ChildProcess | undefined;
  /** Start the parser under `chrt --idle` (cleared if chrt fails here). */
  private idlePriority = true;
  /** The current parser's private directory (tables files). */
  private directory: string | undefined;
  private waiting: Waiting | undefined;
  private tail: Promise<unknown> = Promise.resolve();
  private idle: NodeJS.Timeout | undefined;
  private nextId = 1;
  /** The hash of the current job's content, sent by the parser before it parses. */
  private jobHash: string | undefined;

  constructor(private readonly limits: ParserLimits) {}

  /**
   * Parses `bytes`. Unchanged content (same hash as `previousHash`) is not parsed again.
   * `consume` runs while the job holds the parser.
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
    try {
      const reply = await this.request({ id, source, previousHash }, bytes);
      if (reply.id !== id) throw new NsdnsError('ERR_INTERNAL', 'registry parser answered out of order');
      if (reply.kind === 'unchanged') return { kind: 'unchanged' };
      if (reply.kind === 'refused') return { kind: 'refused', hash: reply.hash, problem: reply.problem };
      if (reply.kind !== 'network') throw new NsdnsError('ERR_INTERNAL', 'registry parser answered out of order');
      const tables = await this.readTables(reply.tablesFile, reply.tablesBytes).catch((err: Error) => {
        throw new NsdnsError(PARSER_UNAVAILABLE, `the parser's tables could not be read (${(err as NodeJS.ErrnoException).code ?? err.message})`);
      });
      consume(reply.network, tablesFromBytes(reply.lengths, tables), reply.notable);
      return { kind: 'parsed', hash: reply.hash, network: reply.network, total: reply.total };
    } catch (err) {
      // A crash or a registry conflict: refused, and remembered like any refusal. A timeout (the
      // parser runs only on idle CPU: a busy host can starve it), a stop or a lost tables file
      // says nothing about the content: not remembered, so the next event tries it again.
      const transient = err instanceof NsdnsError && err.code === PARSER_UNAVAILABLE;
      return { kind: 'refused', hash: transient ? undefined : this.jobHash, problem: err instanceof Error ? err.message : String(err) };
    } finally {
      this.idle = setTimeout(() => this.stop(), IDLE_MS).unref();
    }
  }

  /** A network's packed tables, from the file the parser wrote in our private directory (then removed). */
  private async readTables(file: string, size: number): Promise<Uint8Array> {
    if (this.directory === undefined || path.dirname(file) !== this.directory || !Number.isSafeInteger(size) || size < 0 || size > MAX_TABLES_BYTES) {
      throw new NsdnsError('ERR_INTERNAL', 'registry parser named a wrong tables file');
    }
    const handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      if ((await handle.stat()).size !== size) throw new NsdnsError('ERR_INTERNAL', 'registry parser wrote a short tables file');
      const tables = new Uint8Array(size);
      for (let at = 0; at < size;) {
        const { bytesRead } = await handle.read(tables, at, Math.min(size - at, READ_CHUNK), at);
        if (bytesRead === 0) throw new NsdnsError('ERR_INTERNAL', 'registry parser wrote a short tables file');
        at += bytesRead;
      }
      return tables;
    } finally {
      await handle.close();
      await rm(file, { force: true });
    }
  }

  private request(message: WorkerRequest, bytes: Uint8Array): Promise<WorkerReply> {
    const child = this.child ?? this.spawn();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = undefined;
        void this.stop();
        reject(new NsdnsError(PARSER_UNAVAILABLE, `parsing took longer than ${Math.round(this.limits.timeoutMs / 1000)} s; parser stopped (tried again at the next change)`));
      }, this.limits.timeoutMs);
      this.waiting = {
        resolve: (r) => { clearTimeout(timer); resolve(r); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      };
      for (const piece of [...frame(Buffer.from(JSON.stringify(message))), ...frame(bytes)]) child.stdin!.write(piece);
    });
  }

  private spawn(): ChildProcess {
    const script = fileURLToPath(new URL('./registry-worker.js', import.meta.url));
    // No size-optimized mode here (the daemon's v8-flags.ts): it would collect every few MB of a parse.
    // A directory only root can enter, for the tables files; a new one per parser process.
    this.directory = privateDirectory();
    const idle = this.idlePriority;
    const [command, args] = parserCommand([`--max-old-space-size=${this.limits.maxHeapMb}`, '--max-semi-space-size=4', '--stack-size=4096', '--expose-gc', script, this.directory], idle);
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    const directory = this.directory;
    // Only the current parser may settle a request: a stopped one's late 'exit' must not.
    let answered = false;
    const fail = (problem: string, transient = false) => {
      rmSync(directory, { recursive: true, force: true });
      if (this.child !== child) return;
      this.child = undefined;
      const waiting = this.waiting;
      this.waiting = undefined;
      waiting?.reject(transient ? new NsdnsError(PARSER_UNAVAILABLE, problem) : refused(problem));
    };
    const reader = new FrameReader(MAX_REPLY_BYTES, (body) => {
      answered = true;
      if (this.child !== child) return;
      const reply = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8')) as WorkerReply;
      if (reply.kind === 'hashed') this.jobHash = reply.hash;
      else this.settle(reply);
    });
    child.stdout!.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk);
      } catch (err) {
        fail(`the parser's answer was refused (${(err as Error).message})`);
        child.kill('SIGKILL');
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => { if (stderr.length < STDERR_KEPT) stderr += chunk.toString('utf8', 0, STDERR_KEPT - stderr.length); });
    child.stdin!.on('error', () => { /* the exit below reports it */ });
    child.on('error', (err: NodeJS.ErrnoException) => fail(`the parser did not start (${err.code ?? err.name})`));
    child.on('exit', (code, signal) => {
      // chrt refused (a policy forbids SCHED_IDLE): from now on the parser starts without it.
      if (idle && !answered && code !== 0 && signal === null && /chrt/.test(stderr)) {
        this.idlePriority = false;
        return fail('the parser could not start at idle priority; it starts at its lowest nice level from now on', true);
      }
      fail(/heap limit|out of memory/i.test(stderr)
      ? `parsing needs more than ${this.limits.maxHeapMb} MB; parser stopped`
      : code === 0 || signal === 'SIGTERM' ? 'the parser stopped; it restarts with the next file'
        : `the parser crashed (${signal ?? `exit ${code}`}); it restarts with the next file`);
    });
    // The daemon's life does not depend on its parser.
    child.unref();
    for (const stream of [child.stdin, child.stdout, child.stderr]) (stream as unknown as { unref?: () => void }).unref?.();
    this.child = child;
    return child;
  }

  private settle(reply: WorkerReply): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.resolve(reply);
  }

  /** Ends the parser (idle, timed out, or the daemon is stopping); the next job starts a new one. */
  async stop(): Promise<void> {
    clearTimeout(this.idle);
    const child = this.child;
    this.child = undefined;
    // A job in progress ends now, unjudged (its content is tried again by the next parser).
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.reject(new NsdnsError(PARSER_UNAVAILABLE, 'the parser was stopped'));
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    // Referenced while it ends: a stopping daemon whose other handles are closed waits for it (and
    // its directory's removal) instead of leaving the event loop empty.
    child.ref();
    child.kill('SIGTERM');
    await exited;
  }
}
