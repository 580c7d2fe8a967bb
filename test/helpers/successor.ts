// A daemon after a handover (SIGUSR2, `nsdns restart`): the successor is not the test's child, so
// RunningDaemon does not know it. It is found the way an operator finds it, by the pid file and a
// control ping, and stopped by its PID at the end of the test.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { MAIN, ROOT } from './daemon.js';
import { waitFor } from './wait.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function pidFile(stateDir: string): number | undefined {
  try {
    const text = readFileSync(path.join(stateDir, 'nsdns.pid'), 'utf8').trim();
    return /^\d+$/.test(text) ? Number(text) : undefined;
  } catch {
    return undefined;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The pid `ping` answers on the control socket, or undefined when nothing answers. */
export async function pingPid(socket: string): Promise<number | undefined> {
  const script = `import('${path.join(ROOT, 'dist/src/cli/control-client.js')}').then((m) => m.call(process.argv[1], 'ping')).then((r) => console.log(r.pid), () => process.exit(1))`;
  const r = await execa(process.execPath, ['-e', script, socket], { reject: false, timeout: 10_000 });
  return r.exitCode === 0 ? Number(r.stdout.trim()) : undefined;
}

/** Waits until the pid file names a live process other than `oldPid` and the control socket answers with it. */
export async function waitForSuccessor(stateDir: string, socket: string, oldPid: number, timeoutMs = 30_000): Promise<number> {
  return waitFor(async () => {
    const pid = pidFile(stateDir);
    return pid !== undefined && pid !== oldPid && isAlive(pid) && (await pingPid(socket)) === pid ? pid : undefined;
  }, { timeoutMs, everyMs: 100, what: `a successor of pid ${oldPid} named by the pid file and answering on the control socket` });
}

/** SIGTERM to `pid` (a successor this test caused), SIGKILL after 5 s; resolves once it is gone. */
export async function stopPid(pid: number | undefined): Promise<void> {
  if (pid === undefined || !isAlive(pid)) return;
  process.kill(pid, 'SIGTERM');
  for (let waited = 0; waited < 5000 && isAlive(pid); waited += 50) await sleep(50);
  if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  for (let waited = 0; waited < 2000 && isAlive(pid); waited += 50) await sleep(50);
}

/** `nsdns ARGS` with the given socket; never throws. */
export function nsdns(socket: string, ...args: string[]) {
  return execa(process.execPath, [MAIN, ...args, '--socket', socket], { reject: false, cwd: ROOT, timeout: 30_000 });
}
