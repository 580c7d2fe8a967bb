// The registry parser: a worker thread the daemon starts (registry-loader.ts, RegistryParser) with
// its own heap limits and at idle CPU priority, so a large or hostile file costs the daemon's event
// loop nothing. It hashes one file at a time, then packs it (registry/pack-file.ts) and hands the
// tables back by transfer (no copy). A thread is much cheaper than a process, and it is safe here
// only because the daemon runs with --single-threaded-gc (systemd unit, npm start, bench): each
// isolate then collects on its own thread, so this worker's collections stay at idle priority.
// Without that flag they may run on V8's shared GC threads at normal priority, where a large file
// rewritten often delays the answers of every other network.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import v8 from 'node:v8';
import vm from 'node:vm';
import { parentPort } from 'node:worker_threads';
import { packFile } from '../registry/pack-file.js';
import { tableBuffers, type PackedTables } from '../registry/packed.js';
import type { Endpoint, Network } from '../registry/types.js';

/** `bytes` arrives by transfer: the daemon no longer holds the file. */
export interface WorkerRequest { id: number; source: string; previousHash: string | undefined; bytes: Uint8Array }

export type WorkerReply =
  /** Sent before parsing, so a parse that kills the parser (out of memory) still leaves the content's hash. */
  /** `tid`: this thread's id, so the daemon can read the CPU time it used (registry-loader.ts). */
  | { id: number; kind: 'hashed'; hash: string; tid?: number }
  | { id: number; kind: 'unchanged' }
  | { id: number; kind: 'refused'; hash: string; problem: string }
  /** `notable`: the few endpoints the daemon acts on, as objects; the rest in `tables` (transferred). */
  | { id: number; kind: 'network'; hash: string; network: Network; notable: Endpoint[]; total: number; tables: PackedTables };

/**
 * Idle CPU priority for this thread only: the daemon's main thread answers DNS, and a parse must
 * only use CPU it leaves free. On Linux nice and scheduling policy are per thread: SCHED_IDLE
 * (`chrt --idle -p 0 <tid>`, util-linux) where it can be set, else nice 19. Failure costs nothing
 * but priority, so it is silent.
 */
/** This thread's kernel id (Linux), or undefined. */
const threadId = (() => {
  try {
    const tid = /\/task\/(\d+)$/.exec(readlinkSync('/proc/thread-self'))?.[1];
    return tid === undefined ? undefined : Number(tid);
  } catch {
    return undefined;
  }
})();

function lowerPriority(): void {
  try { setPriority(19); } catch { /* best effort */ }
  try {
    const tid = threadId === undefined ? undefined : String(threadId);
    const chrt = ['/usr/bin/chrt', '/bin/chrt'].find((p) => existsSync(p));
    if (tid !== undefined && chrt !== undefined) execFileSync(chrt, ['--idle', '-p', '0', tid], { stdio: 'ignore', timeout: 5_000 });
  } catch { /* stays at nice 19 */ }
}

function handle(request: WorkerRequest): void {
  const { id, source, bytes } = request;
  const hash = createHash('sha256').update(bytes).digest('hex');
  if (hash === request.previousHash) return send({ id, kind: 'unchanged' });
  send({ id, kind: 'hashed', hash, tid: threadId });
  let reply: WorkerReply;
  try {
    const { network, tables, notable, total } = packFile(bytes, source, { collect });
    reply = { id, kind: 'network', hash, network, notable, total, tables };
  } catch (err) {
    // First line only: YAML errors append a frame of the file's text after it.
    const message = err instanceof Error ? err.message : String(err);
    return send({ id, kind: 'refused', hash, problem: message.split('\n', 1)[0] });
  }
  // Every array is on a buffer of its own (packFile): moved, not copied.
  send(reply, tableBuffers(reply.tables));
}

function send(reply: WorkerReply, transfer: ArrayBuffer[] = []): void {
  parentPort!.postMessage(reply, transfer);
}

lowerPriority();
// A full collection of this thread's heap every few thousand endpoints (packFile): on idle CPU it
// costs nobody anything, and it keeps the heap near what is live, where V8 would let it grow by
// tens of MB before collecting. The flag is process-wide, so it is on only while this context gets
// its `gc`. Only with --single-threaded-gc (systemd unit, npm start): without it a collection runs
// on V8's shared collector threads at normal priority, against the daemon's main thread.
const singleThreadedGc = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].includes('--single-threaded-gc');
let collect: (() => void) | undefined;
if (singleThreadedGc) {
  v8.setFlagsFromString('--expose-gc');
  collect = vm.runInNewContext('gc') as () => void;
  v8.setFlagsFromString('--no-expose-gc');
}
parentPort!.on('message', (request: WorkerRequest) => handle(request));
