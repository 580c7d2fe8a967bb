// One long-lived `nft -i` that takes nftables commands over a pipe, so an update costs a line on a
// pipe instead of a process (~6 ms each). Commands submitted in the same event-loop turn go out
// as one line, and nft runs one line as one transaction: all of it reaches the kernel or none.
//
// How a caller learns that its line is done: `nft -i` prints nothing on success and writes errors
// to stderr, unbuffered, in input order. After each line the channel sends a marker line that is a
// syntax error by construction; its error block on stderr means nft finished the line before it,
// and any stderr text ahead of the marker is that line's error. A failed batch of several callers
// is sent again one caller per line, so one bad part fails only its own caller.
//
// `nft -i` reads its input one byte per read() (libedit without a terminal), so a long line costs
// more than a new process: a batch longer than ONE_SHOT_BYTES (a burst of answers, a policy with
// many rules) runs as one `nft -f FILE`, in its turn, like any other line.
//
// If nft dies or stops answering, the callers in flight are rejected (fail closed: their addresses
// are not opened) and the next batch starts a new process. If `nft -i` cannot start, each batch
// runs as its own `nft -f FILE` instead, and `nft -i` is tried again a minute later.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { NsdnsError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { withFile } from '../plumbing/firewall.js';

/** By default, how long one line may take before the process is taken as wedged and replaced. */
const LINE_TIMEOUT_MS = 10_000;
/** How long a new process has to answer its first marker. */
const START_TIMEOUT_MS = 5_000;
/** After `nft -i` failed to start, how long batches run as one-shot processes before it is tried again. */
const RETRY_START_MS = 60_000;
/** Above this, a line costs nft -i more than starting `nft -f` (measured by bench/egress-nft.ts). */
const ONE_SHOT_BYTES = 4096;
const MARKER = 'nsdns-egress-done';
// Interactive nft reads $HOME/.nft.history at start, adds every line to it (libedit, at a cost that
// grows with the history) and writes it all back at exit: every learned address would land in
// root's home, in a file all root `nft -i` share. A HOME that is not a directory keeps none.
const NO_HOME = '/dev/null';
/**
 * Lines one `nft -i` takes before it is replaced: libedit also keeps every line in memory, and
 * adding one costs more the longer that history is (bench/egress.sh); a new process starts empty.
 */
export const LINES_PER_PROCESS = 1000;
// nft's error block for the marker: "Error: …\n<marker line>\n<spaces and carets>\n".
const MARKER_BLOCK = new RegExp(`Error: [^\\n]*\\n${MARKER}-(\\d+)\\n[ \\t]*\\^+\\n`);

interface Part { commands: string; resolve: () => void; reject: (err: Error) => void }
interface InFlight { seq: number; resolve: (stderr: string) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }

export interface NftChannelOptions {
  log?: Logger;
  /** The program and its arguments; tests use it to run a channel that cannot start. */
  command?: readonly string[];
  /** How long one line may take before nft is taken as wedged, killed and its callers rejected. */
  lineTimeoutMs?: number;
}

export class NftChannel {
  private proc: ChildProcessWithoutNullStreams | undefined;
  private stderr = '';
  private seq = 0;
  private inFlight: InFlight | undefined;
  private queue: Part[] = [];
  private flushing = false;
  private scheduled = false;
  /** Until when batches run as one-shot processes because `nft -i` did not start (ms; 0: not). */
  private fallbackUntil = 0;
  private closed = false;
  private started = 0;
  private lines = 0;
  private readonly log: Logger;
  private readonly command: readonly string[];
  private readonly lineTimeoutMs: number;

  constructor(options: NftChannelOptions = {}) {
    this.log = options.log ?? silentLogger;
    this.command = options.command ?? ['nft', '-i'];
    this.lineTimeoutMs = options.lineTimeoutMs ?? LINE_TIMEOUT_MS;
  }

  /** The running `nft -i`'s process id, if one runs. */
  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** Processes started so far: `nft -i` (and its restarts) and every one-shot `nft -f`. */
  get processesStarted(): number {
    return this.started;
  }

  /** 'channel' while one `nft -i` carries the updates, 'per-batch' after it could not start. */
  get mode(): 'channel' | 'per-batch' {
    return this.inFallback() ? 'per-batch' : 'channel';
  }

  /**
   * Queues `commands` (one or more nft commands joined with "; ", no newline) for the next
   * transaction. Resolves once the kernel has applied them; rejects with nft's reason otherwise.
   */
  submit(commands: string): Promise<void> {
    if (this.closed) return Promise.reject(new NsdnsError('ERR_FIREWALL', 'the nft channel is closed'));
    if (/[\r\n]/.test(commands)) return Promise.reject(new NsdnsError('ERR_FIREWALL', 'refusing an nft command with a line break'));
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ commands, resolve, reject });
      if (!this.scheduled && !this.flushing) {
        this.scheduled = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  /** Stops the process; queued callers are rejected. What nft applied stays in the kernel. */
  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.queue.splice(0)) p.reject(new NsdnsError('ERR_FIREWALL', 'the nft channel is closed'));
    const proc = this.proc;
    if (proc === undefined) return;
    const gone = new Promise<void>((resolve) => proc.once('close', () => resolve()));
    proc.stdin.end();
    // nft exits at the end of its input; one that is wedged is killed rather than waited for.
    const wedged = setTimeout(() => proc.kill('SIGKILL'), START_TIMEOUT_MS);
    await gone;
    clearTimeout(wedged);
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    this.flushing = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0);
        const error = await this.runLine(batch.map((p) => p.commands).join('; ')).then(() => undefined, (err: Error) => err);
        if (error === undefined) batch.forEach((p) => p.resolve());
        else if (batch.length === 1 || !(error instanceof NftRefused)) batch.forEach((p) => p.reject(error));
        else for (const p of batch) await this.runLine(p.commands).then(p.resolve, p.reject);
      }
    } finally {
      this.flushing = false;
    }
  }

  private async runLine(line: string): Promise<void> {
    if (this.closed) throw new NsdnsError('ERR_FIREWALL', 'the nft channel is closed');
    if (this.inFallback() || line.length > ONE_SHOT_BYTES) return this.runOnce(line);
    if (this.proc === undefined) await this.start();
    if (this.inFallback()) return this.runOnce(line);
    const stderr = await this.exchange(`${line}\n`);
    if (++this.lines >= LINES_PER_PROCESS) this.retire();
    if (stderr.trim() !== '') throw new NftRefused(stderr);
  }

  /** Starts `nft -i` and waits for its first marker; on failure, switches to one process per batch. */
  private async start(): Promise<void> {
    this.started++;
    const proc = spawn(this.command[0], this.command.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, HOME: NO_HOME } });
    this.proc = proc;
    this.stderr = '';
    this.lines = 0;
    proc.stdout.resume();
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (chunk: string) => { if (this.proc === proc) this.onStderr(chunk); });
    proc.stdin.on('error', () => {}); // a dead process shows up as 'close' below
    proc.once('error', (err) => this.onGone(proc, err.message));
    proc.once('close', (code, signal) => this.onGone(proc, `nft exited (${signal ?? code})`));
    try {
      const stderr = await this.exchange('', START_TIMEOUT_MS);
      if (stderr.trim() !== '') throw new Error(stderr.trim());
    } catch (err) {
      this.fallbackUntil = Date.now() + RETRY_START_MS;
      proc.kill();
      this.log.warn({ err }, 'nft -i did not start; egress updates run one nft process per batch for a minute');
    }
  }

  /** Lets the current process end (at EOF, after the line it has answered); the next line starts a new one. */
  private retire(): void {
    const proc = this.proc;
    this.proc = undefined;
    proc?.stdin.end();
  }

  /** Writes `text` and a marker, and returns what nft wrote to stderr before the marker's error. */
  private exchange(text: string, timeoutMs = this.lineTimeoutMs): Promise<string> {
    const proc = this.proc;
    if (proc === undefined) return Promise.reject(new NsdnsError('ERR_FIREWALL', 'nft is not running'));
    const seq = ++this.seq;
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.log.warn({ timeoutMs }, 'nft -i did not answer; restarting it');
        proc.kill('SIGKILL');
      }, timeoutMs);
      this.inFlight = { seq, resolve, reject, timer };
      proc.stdin.write(`${text}${MARKER}-${seq}\n`);
    });
  }

  private inFallback(): boolean {
    return this.fallbackUntil > Date.now();
  }

  private onStderr(chunk: string): void {
    this.stderr += chunk;
    const m = MARKER_BLOCK.exec(this.stderr);
    if (m === null) return;
    const before = this.stderr.slice(0, m.index);
    this.stderr = this.stderr.slice(m.index + m[0].length);
    const waiting = this.inFlight;
    if (waiting === undefined || Number(m[1]) !== waiting.seq) return;
    this.inFlight = undefined;
    clearTimeout(waiting.timer);
    waiting.resolve(before);
  }

  private onGone(proc: ChildProcessWithoutNullStreams, reason: string): void {
    if (this.proc !== proc) return;
    this.proc = undefined;
    const waiting = this.inFlight;
    this.inFlight = undefined;
    if (waiting !== undefined) {
      clearTimeout(waiting.timer);
      waiting.reject(new NsdnsError('ERR_FIREWALL', `nft stopped before confirming the update (it may or may not be in the kernel): ${reason}`));
    }
    if (!this.closed) this.log.warn({ reason }, 'nft -i is gone; the next update starts a new one');
  }

  /** One `nft -f FILE` for this batch: a long one, or every one when nft -i cannot start. */
  private async runOnce(line: string): Promise<void> {
    this.started++;
    const { execa } = await import('execa');
    const r = await withFile(`${line}\n`, (file) => execa('nft', ['-f', file], { reject: false, timeout: this.lineTimeoutMs }));
    if (r.exitCode !== 0) throw new NftRefused(r.stderr);
  }
}

/** nft refused a line (as opposed to nft being gone): retrying the parts alone may succeed. */
class NftRefused extends NsdnsError {
  constructor(stderr: string) {
    super('ERR_FIREWALL', `nft refused the update: ${stderr.trim().split('\n').slice(0, 3).join('; ').slice(0, 400)}`);
  }
}
