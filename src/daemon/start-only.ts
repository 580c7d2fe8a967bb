// Settings read once, at start (paths, sockets, the plumbing, the metrics listener, announcing,
// the egress firewall's): a SIGHUP that changes one cannot apply it, and the log says which ones
// wait for a restart.
import type { Config } from './config.js';
import { isEtcdUrl } from '../etcd/etcd-url.js';

/** Which start-only settings differ between two configurations, as dotted keys. */
export function startOnlyChanges(before: Config, after: Config): string[] {
  const changed: string[] = [];
  const differ = (a: unknown, b: unknown) => JSON.stringify(a) !== JSON.stringify(b);
  if (before.stateDir !== after.stateDir) changed.push('stateDir');
  if (before.socket !== after.socket) changed.push('socket');
  if (before.socketGroup !== after.socketGroup) changed.push('socketGroup');
  for (const key of ['announce', 'announceTtl', 'nodeName', 'cluster', 'advertiseAddress'] as const) if (before[key] !== after[key]) changed.push(key);
  for (const key of Object.keys({ ...before.plumbing, ...after.plumbing }) as Array<keyof Config['plumbing']>) {
    if (differ(before.plumbing[key], after.plumbing[key])) changed.push(`plumbing.${key}`);
  }
  if (before.metrics.listen !== after.metrics.listen) changed.push('metrics.listen');
  // Written with each namespace's rules when the egress firewall opens.
  for (const key of ['logDrops', 'maxLearned'] as const) if (before.egress[key] !== after.egress[key]) changed.push(`egress.${key}`);
  // Shared registries (etcd://) are connected once; directories are watched again on reload.
  if (differ(before.registries.filter(isEtcdUrl), after.registries.filter(isEtcdUrl))) changed.push('registries (etcd://)');
  if (differ(before.etcd, after.etcd)) changed.push('etcd');
  return changed;
}
