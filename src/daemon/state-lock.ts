// One daemon per state directory: two would provision the same networks, fight over the same
// files and each believe it owns the firewall table. The lock is a pid file created atomically
// (link(2) of a finished temp file: it exists whole or not at all); a file whose process is gone,
// or is no longer a node process (the pid was reused), is stale and taken over.
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { NsdnsError } from '../errors.js';

export const LOCK_FILE = 'nsdns.pid';

export class StateLock {
  private held = false;

  private constructor(readonly file: string) {}

  /** Takes the lock of `stateDir` or fails at once, naming the daemon that holds it. */
  static async acquire(stateDir: string): Promise<StateLock> {
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    const lock = new StateLock(path.join(stateDir, LOCK_FILE));
    const temp = `${lock.file}.${process.pid}.tmp`;
    await writeFile(temp, `${process.pid}\n`, { mode: 0o644 });
    try {
      // Twice at most: once as is, once after removing a stale file.
      for (let attempt = 0; attempt < 2; attempt++) {
        try {
          await link(temp, lock.file);
          lock.held = true;
          return lock;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        }
        const holder = await readHolder(lock.file);
        if (holder !== undefined && holder !== process.pid && await isNodeProcess(holder)) {
          throw new NsdnsError('ERR_STATE', `the state directory ${stateDir} is in use by another nsdns daemon (pid ${holder}); stop it first, or give this one its own --state-dir`);
        }
        await rm(lock.file, { force: true });
      }
      throw new NsdnsError('ERR_STATE', `the state directory ${stateDir} is being taken by another nsdns daemon starting at the same time`);
    } finally {
      await rm(temp, { force: true });
    }
  }

  /** Removes the pid file if it is still ours. */
  async release(): Promise<void> {
    if (!this.held) return;
    this.held = false;
    if ((await readHolder(this.file)) === process.pid) await rm(this.file, { force: true });
  }
}

/** The pid in a lock file, or undefined when it is unreadable or holds anything else. */
async function readHolder(file: string): Promise<number | undefined> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return /^\d{1,10}\n?$/.test(text) ? Number(text.trim()) : undefined;
}

/** True while `pid` runs and is a node process (a reused pid belongs to something else). */
async function isNodeProcess(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists, owned by someone else: treat as alive.
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => undefined);
  if (cmdline === undefined) return true;
  const argv0 = path.basename(cmdline.split('\0')[0] ?? '');
  return /node|nsdns/.test(argv0);
}
