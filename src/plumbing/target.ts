// What `connect` and `debug` accept as a namespace, like nsenter: a name made by `ip netns add`
// (/run/netns/NAME), a PID (/proc/PID/ns/net), or one of those as a path. The root daemon enters
// (nsenter --net=PATH) only these: no other directory, no `..`.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { NsdnsError } from '../errors.js';
import { NETNS_RUN_DIR, isNetnsName, isNetnsPath, printable } from '../registry/fields.js';
import { bad } from './requests.js';

export { NETNS_RUN_DIR };

export interface NamespaceTarget {
  /** The path nsenter and ip are given. */
  path: string;
  /** Set for named namespaces: the name `ip netns` knows, and /etc/netns/NAME is for. */
  name?: string;
  /** How messages name it, in the caller's words: `namespace "web"`, `the namespace of PID 42`. */
  shown: string;
  /** Which namespace the path names now (namespace-identity.ts), when it was looked at. */
  identity?: string;
}

function shownAs(target: string, name: string | undefined): string {
  if (name !== undefined) return `namespace "${printable(name)}"`;
  const pid = /^(?:\/proc\/)?(\d+)(?:\/ns\/net)?$/.exec(target);
  return pid ? `the namespace of PID ${pid[1]}` : `namespace ${printable(target, 80)}`;
}

/** Where a target's namespace file is (or would be), without looking; refuses anything else. */
export function namespaceTarget(target: string): NamespaceTarget {
  const refuse = () => bad(`namespace "${printable(target)}" is not allowed: give a name from \`ip netns\`, a PID, ${NETNS_RUN_DIR}/NAME or /proc/PID/ns/net`);
  if (typeof target !== 'string') throw refuse();
  if (/^\d+$/.test(target)) {
    const p = `/proc/${target}/ns/net`;
    if (!isNetnsPath(p)) throw refuse();
    return { path: p, shown: shownAs(target, undefined) };
  }
  if (target.includes('/')) {
    // path.resolve folds `..` away, so check the raw text too: /run/netns/../../etc is refused, not mapped.
    const abs = path.resolve(target);
    if (target.includes('\0') || /(^|\/)\.\.?(\/|$)/.test(target) || !isNetnsPath(abs)) throw refuse();
    const name = path.dirname(abs) === NETNS_RUN_DIR ? path.basename(abs) : undefined;
    return name !== undefined ? { path: abs, name, shown: shownAs(target, name) } : { path: abs, shown: shownAs(target, undefined) };
  }
  if (!isNetnsName(target)) throw refuse();
  return { path: path.join(NETNS_RUN_DIR, target), name: target, shown: shownAs(target, target) };
}

/** namespaceTarget(), for a namespace that must exist now (`exists`: how to look, the file system by default). */
export function resolveTarget(target: string, exists: (path: string) => boolean = existsSync): NamespaceTarget {
  const result = namespaceTarget(target);
  if (!exists(result.path)) {
    const what = result.name !== undefined ? `${result.shown} not found` : /^\d+$/.test(target) ? `no process with PID ${target}` : `${result.shown} not found`;
    throw new NsdnsError('ERR_NETNS', `${what}; create one with \`ip netns add NAME\`, or give a PID or a namespace path`);
  }
  return result;
}
