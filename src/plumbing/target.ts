// What `connect` and `debug` accept as a namespace, like nsenter: a name made by `ip netns add`
// (/run/netns/NAME), a path to a namespace file, or a PID (/proc/PID/ns/net).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { NsdnsError } from '../errors.js';

export const NETNS_RUN_DIR = '/run/netns';

export interface NamespaceTarget {
  /** The path nsenter and ip are given. */
  path: string;
  /** Set for named namespaces: the name `ip netns` knows, and /etc/netns/NAME is for. */
  name?: string;
}

/** Where a target's namespace file is (or would be), without looking. */
export function namespaceTarget(target: string): NamespaceTarget {
  if (/^\d+$/.test(target)) return { path: `/proc/${target}/ns/net` };
  if (target.includes('/')) {
    const abs = path.resolve(target);
    return path.dirname(abs) === NETNS_RUN_DIR ? { path: abs, name: path.basename(abs) } : { path: abs };
  }
  return { path: path.join(NETNS_RUN_DIR, target), name: target };
}

/** namespaceTarget(), for a namespace that must exist now. */
export function resolveTarget(target: string): NamespaceTarget {
  const result = namespaceTarget(target);
  if (!existsSync(result.path)) {
    throw new NsdnsError('ERR_NETNS', `namespace ${target} not found (no ${result.path}); create it with \`ip netns add NAME\` or give a PID or a namespace path`);
  }
  return result;
}
