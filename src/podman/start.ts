// The start contract netavark relies on: `aardvark-dns --config DIR -p PORT run` returns once the
// server is bound and its pid file written, 0 on success; non-zero with the reason on stderr
// otherwise (netavark ≥ 1.5 shows it to the user; 1.4 ignores it). aardvark forks; Node cannot, so
// this process starts the server as a detached child (its own session, stdin, stdout and stderr on
// /dev/null: anything on netavark's stdout breaks Podman) and waits for the child's word over IPC.
import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';

/** Set in the child's environment: this process is the server, not the starter. */
export const SERVE_ENV = 'NSDNS_AARDVARK_SERVE';

/** How long the starter waits for the server to be bound (netavark waits for us in turn). */
const START_TIMEOUT_MS = 30_000;

/** What the server tells its starter, once. */
export type Readiness = { kind: 'ready' } | { kind: 'failed'; message: string };

/** The child's message checked (by hand: zod would double the starter's start-up time, which netavark waits for). */
function readinessOf(raw: unknown): Readiness | undefined {
  const m = raw as Record<string, unknown> | null;
  if (typeof m !== 'object' || m === null) return undefined;
  if (m.kind === 'ready') return { kind: 'ready' };
  if (m.kind === 'failed' && typeof m.message === 'string') return { kind: 'failed', message: m.message.slice(0, 512) };
  return undefined;
}

/** Starts the server and waits for it; the exit code for netavark, with `fail` told why on failure. */
export function startServer(config: string, entry: string, argv: readonly string[], fail: (message: string) => void): Promise<number> {
  try {
    if (!statSync(config).isDirectory()) throw new Error('not a directory');
  } catch {
    fail(`config directory ${config} must exist and be a directory`);
    return Promise.resolve(1);
  }
  const child = spawn(process.execPath, [...process.execArgv, entry, ...argv], {
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
    env: { ...process.env, [SERVE_ENV]: '1' },
  });
  return new Promise((resolve) => {
    let done = false;
    const finish = (code: number, message?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (message !== undefined) fail(message);
      if (code !== 0 && child.exitCode === null) child.kill('SIGKILL');
      if (child.connected) child.disconnect();
      child.unref();
      resolve(code);
    };
    const timer = setTimeout(() => finish(1, `the server was not ready within ${START_TIMEOUT_MS / 1000} s`), START_TIMEOUT_MS);
    child.on('message', (raw: unknown) => {
      const message = readinessOf(raw);
      if (message === undefined) return finish(1, 'the server sent an unexpected message');
      if (message.kind === 'ready') finish(0);
      else finish(1, message.message);
    });
    child.on('error', (err) => finish(1, `the server could not be started: ${err.message}`));
    child.on('exit', (code, signal) => finish(1, `the server exited before it was ready (${signal ?? `exit ${code}`})`));
  });
}
