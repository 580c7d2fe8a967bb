// The server's half of the start contract netavark relies on: `aardvark-dns --config DIR -p PORT
// run` returns once the server is bound and its pid file written, 0 on success; non-zero with the
// reason on stderr otherwise (netavark ≥ 1.5 shows it to the user; 1.4 ignores it). aardvark forks;
// Node cannot, so bin/aardvark-dns is a sh script that starts this process detached (its own
// session; stdin, stdout and stderr on /dev/null: anything on netavark's stdout breaks Podman) with
// a pipe on REPORT_FD, waits for the one report below and exits with it. One Node start, not two:
// netavark waits for it.
import { closeSync, writeSync } from 'node:fs';

/** Set by bin/aardvark-dns: the descriptor of the pipe its starter reads the report from. */
const REPORT_FD_ENV = 'NSDNS_AARDVARK_REPORT_FD';
/** Set by bin/aardvark-dns: descriptors it was given by its caller, which the server must not keep. */
const INHERITED_ENV = 'NSDNS_AARDVARK_INHERITED_FDS';

/** What the server tells its starter, once. */
export type Readiness = { kind: 'ready' } | { kind: 'failed'; message: string };

/**
 * The outcome for whoever started us, once: an exit code and a text, for stdout with 0 (help,
 * version) or stderr otherwise. Without a starter (run as `node bin/aardvark-dns` in the
 * foreground) the text goes to our own stdout or stderr. Returns the code.
 */
export function report(code: number, text: string): number {
  const fd = reportFd();
  if (fd === undefined) {
    if (text !== '') (code === 0 ? process.stdout : process.stderr).write(`${text}\n`);
    return code;
  }
  delete process.env[REPORT_FD_ENV];
  try {
    // One write of a few hundred bytes at most: a pipe takes it whole.
    writeSync(fd, `${code}\n${text}`);
  } catch { /* the starter is gone (killed by netavark): nobody to tell */ }
  try {
    closeSync(fd);
  } catch { /* already closed */ }
  return code;
}

function reportFd(): number | undefined {
  const value = process.env[REPORT_FD_ENV];
  return value !== undefined && /^\d{1,4}$/.test(value) ? Number(value) : undefined;
}

/**
 * Closes the descriptors our caller left open to us (netavark's or Podman's pipes, say): a server
 * that held one would keep its reader waiting for the end of it. The starter lists them, since Node
 * marks the low ones close-on-exec at start-up and so cannot tell them from its own.
 */
export function closeInherited(): void {
  const list = process.env[INHERITED_ENV];
  delete process.env[INHERITED_ENV];
  if (list === undefined) return;
  const own = reportFd();
  for (const item of list.split(' ')) {
    if (!/^\d{1,6}$/.test(item)) continue;
    const fd = Number(item);
    if (fd <= 2 || fd === own) continue;
    try {
      closeSync(fd);
    } catch { /* closed already */ }
  }
}
