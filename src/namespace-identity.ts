// Which network namespace a path names now. `ip netns del X; ip netns add X` leaves the same path
// on a new namespace; the device and inode of its nsfs file tell the two apart (stat follows the
// bind mount at /run/netns/X to the namespace itself). While nsdns holds a socket in the old
// namespace, the kernel keeps it, so the new one cannot get the old one's inode.
import { statSync } from 'node:fs';

/** `DEV:INO` of the namespace at `path`, or undefined when there is none. */
export function namespaceIdentity(path: string): string | undefined {
  try {
    const st = statSync(path, { throwIfNoEntry: false });
    return st === undefined ? undefined : `${st.dev}:${st.ino}`;
  } catch {
    // ESRCH, ENOTDIR, EACCES: no namespace we could serve there either.
    return undefined;
  }
}

/** The form namespaceIdentity returns: what a state file may hold. */
export const NAMESPACE_IDENTITY = /^\d{1,20}:\d{1,20}$/;
