// Runs the real `nsdns serve` as a child process on its own temporary state directory and waits
// for its "ready" log line, which also says which port it bound (tests listen on port 0).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './free-port.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const MAIN = path.join(ROOT, 'dist/src/main.js');

/** How long a daemon may take to say it is ready. */
const READY_TIMEOUT_MS = 60_000;

export interface LogLine { level: number; msg: string; [key: string]: unknown }

export class RunningDaemon {
  readonly logs: LogLine[] = [];
  port = 0;
  ports: number[] = [];
  exitCode: number | null = null;
  private readonly exited: Promise<number | null>;
  private readonly waiters: Array<{ match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }> = [];

  constructor(readonly proc: ChildProcess, readonly stateDir: string, private readonly keepState = false) {
    let partial = '';
    proc.stdout!.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split('\n');
      partial = lines.pop()!;
      for (const text of lines) {
        let line: LogLine;
        try { line = JSON.parse(text); } catch { continue; }
        this.logs.push(line);
        for (const w of [...this.waiters]) if (w.match(line)) { this.waiters.splice(this.waiters.indexOf(w), 1); w.resolve(line); }
      }
    });
    this.exited = new Promise((resolve) => proc.on('exit', (code) => { this.exitCode = code; resolve(code); }));
  }

  /** "127.0.0.1:port" of the first listener. */
  get server(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** The first log line that matches, seen or to come; the timeout (generous, for a busy machine) only bounds a broken run. */
  waitForLog(match: (l: LogLine) => boolean, timeoutMs = 15_000): Promise<LogLine> {
    const seen = this.logs.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching log line within ${timeoutMs} ms; logs:\n${this.logs.map((l) => JSON.stringify(l)).join('\n')}`)), timeoutMs);
      // A wait nobody awaits any more (the daemon exited first) does not hold the test process.
      timer.unref();
      this.waiters.push({ match, resolve: (l) => { clearTimeout(timer); resolve(l); } });
    });
  }

  signal(sig: NodeJS.Signals): void {
    this.proc.kill(sig);
  }

  waitForExit(timeoutMs = 10_000): Promise<number | null> {
    return Promise.race([this.exited, new Promise<number | null>((_, reject) => setTimeout(() => reject(new Error('daemon did not exit')), timeoutMs).unref())]);
  }

  async stop(): Promise<void> {
    if (this.exitCode === null && this.proc.exitCode === null) {
      this.proc.kill('SIGTERM');
      const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
      await this.exited;
      clearTimeout(timer);
    }
    if (!this.keepState) rmSync(this.stateDir, { recursive: true, force: true });
  }
}

/** Starts `nsdns serve ARGS` (a --state-dir and --no-resolv-conf are added unless given). */
/**
 * Where a test asks for `--listen 127.0.0.1:0`, a free port below the kernel's ephemeral range
 * (32768-60999) instead. A host listener is a SO_REUSEPORT group (with the native helper), and dig
 * sets SO_REUSEPORT on its own client socket: a dig whose random source port happened to be the
 * daemon's ephemeral port joined the group and read its own query back (";; Warning: query
 * response not set"), once in a CI run.
 */
async function withFixedListenPorts(args: readonly string[]): Promise<string[]> {
  const out = [...args];
  for (let i = 0; i < out.length - 1; i++) {
    const m = out[i] === '--listen' ? /^127\.0\.0\.1:0(=.*)?$/.exec(out[i + 1]) : null;
    if (!m) continue;
    let port: number;
    do port = await freePort('127.0.0.1', 27000, 5000); while (out.includes(`127.0.0.1:${port}`) || out.some((a) => a.startsWith(`127.0.0.1:${port}=`)));
    out[i + 1] = `127.0.0.1:${port}${m[1] ?? ''}`;
  }
  return out;
}

export async function startDaemon(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; keepState?: boolean } = {}): Promise<RunningDaemon> {
  const given = args.indexOf('--state-dir');
  const stateDir = given >= 0 ? args[given + 1] : mkdtempSync(path.join(tmpdir(), 'nsdns-test-'));
  const full = ['serve', ...await withFixedListenPorts(args)];
  if (!args.includes('--state-dir')) full.push('--state-dir', stateDir);
  if (!args.includes('--socket')) full.push('--socket', path.join(stateDir, 'nsdns.sock'));
  // Tests never touch the real nsdns table or link names: each daemon gets its own.
  if (!args.includes('--nft-table')) full.push('--nft-table', `nsdns_test_${path.basename(stateDir).replace(/\W/g, '_')}`);
  if (!args.includes('--link-prefix')) full.push('--link-prefix', 'nt');
  if (!args.includes('--resolv-conf') && !args.includes('--no-resolv-conf') && !args.includes('--config')) full.push('--no-resolv-conf');
  const proc = spawn(process.execPath, [MAIN, ...full], { cwd: options.cwd ?? ROOT, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const daemon = new RunningDaemon(proc, stateDir, given >= 0 || (options.keepState ?? false));
  let stderr = '';
  proc.stderr!.on('data', (c: Buffer) => { stderr += c.toString(); });
  // Generous: on a busy machine a daemon may take many seconds to start. One that is not ready in
  // time is stopped, so no daemon outlives the test that started it.
  const ready = await Promise.race([
    daemon.waitForLog((l) => l.msg === 'ready', READY_TIMEOUT_MS),
    daemon.waitForExit(READY_TIMEOUT_MS + 1000).then((code) => { throw new Error(`daemon exited with ${code} before ready: ${stderr}\n${daemon.logs.map((l) => JSON.stringify(l)).join('\n')}`); }),
  ]).catch(async (err: unknown) => {
    await daemon.stop();
    throw err;
  });
  daemon.ports = (ready.listeners as Array<{ port: number }>).map((l) => l.port);
  daemon.port = daemon.ports[0] ?? 0;
  return daemon;
}
