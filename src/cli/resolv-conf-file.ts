// `network connect --resolv-conf FILE`: a resolv.conf pointing at nsdns, written where a namespace
// given by PID or path reads its own (such as a container's ROOTFS/etc/resolv.conf). The CLI writes
// it, not the daemon: the file is wherever the caller says, so it is written with the caller's
// rights, and the daemon never writes outside its own directories.
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from './options.js';

/**
 * The --resolv-conf path, checked before anything is connected: absolute, no NUL, not inside /proc
 * or /sys (kernel files, where a write would change the system), not a directory; its directory
 * must exist. Checked here only, since the daemon never sees this path.
 */
export function checkResolvConfPath(file: string): string {
  const refuse = (why: string) => new UsageError(`--resolv-conf ${JSON.stringify(file.slice(0, 80))}: ${why}\nSee 'nsdns network connect --help'.`);
  if (file.includes('\0') || file.length > 4096) throw refuse('not a usable path');
  if (!path.isAbsolute(file)) throw refuse('give an absolute path');
  const resolved = path.resolve(file);
  if (/^\/(proc|sys)(\/|$)/.test(resolved) || resolved === '/') throw refuse('not inside /proc or /sys');
  if (existsSync(resolved) && statSync(resolved).isDirectory()) throw refuse('is a directory; give the file, such as ROOTFS/etc/resolv.conf');
  if (!existsSync(path.dirname(resolved))) throw refuse(`its directory ${path.dirname(resolved).slice(0, 80)} does not exist`);
  return resolved;
}

/** Writes `file` atomically: nameserver 127.0.0.11, the endpoint's network domain, then the host's search domains and options. */
export async function writeResolvConf(file: string, endpointName: string, domain: string | undefined): Promise<void> {
  try {
    // Loaded here only: state.js brings the registry's parsers, which other commands do not need.
    const [{ readHostResolverSettings, resolvConfText }, { writeFileAtomic }] = await Promise.all([import('../plumbing/netns-resolv.js'), import('../plumbing/state.js')]);
    // The host's search domains and options come after the network's domain, as in /etc/netns files.
    await writeFileAtomic(file, resolvConfText(endpointName, domain === undefined ? [] : [domain], readHostResolverSettings('/etc/resolv.conf')));
  } catch (err) {
    throw new Error(`connected, but writing --resolv-conf ${file} failed: ${(err as Error).message}`);
  }
}
