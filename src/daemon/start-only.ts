// Settings read once, at start (paths, sockets, the plumbing, the metrics listener, announcing): a SIGHUP that
// changes one cannot apply it, and the log says which ones wait for a restart.
import type { Config } from './config.js';

/** Which start-only settings differ between two configurations, as dotted keys. */
export function startOnlyChanges(before: Config, after: Config): string[] {
  const changed: string[] = [];
  const differ = (a: unknown, b: unknown) => JSON.stringify(a) !== JSON.stringify(b);
  if (before.stateDir !== after.stateDir) changed.push('stateDir');
  if (before.socket !== after.socket) changed.push('socket');
  if (before.socketGroup !== after.socketGroup) changed.push('socketGroup');
  for (const key of ['announce', 'announceTtl', 'nodeName'] as const) if (before[key] !== after[key]) changed.push(key);
  for (const key of Object.keys({ ...before.plumbing, ...after.plumbing }) as Array<keyof Config['plumbing']>) {
    if (differ(before.plumbing[key], after.plumbing[key])) changed.push(`plumbing.${key}`);
  }
  if (before.metrics.listen !== after.metrics.listen) changed.push('metrics.listen');
  return changed;
}
