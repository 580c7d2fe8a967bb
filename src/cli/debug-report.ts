// The text of `nsdns debug`: what the kernel says of a namespace, then what the daemon says of it
// (its view, endpoints with their health, upstreams, resolv.conf, recent connect timings, and the
// resolution of --resolve NAME). `--json` prints the same report as it is.
import type { KernelView } from './namespace-kernel-view.js';
import { formatTimings } from './timing-format.js';

/** The daemon's debug.namespace answer, or the error that stood in for it. */
export type DebugReport = { namespace: string } & KernelView & { daemon: Record<string, unknown> };

export function formatDebug(r: DebugReport): string {
  const d = r.daemon;
  const lines = [`namespace ${r.namespace}`];
  lines.push('interfaces:');
  for (const i of r.interfaces) lines.push(`  ${i.name.padEnd(10)} ${i.state.padEnd(8)} ${i.addresses.join(' ')}`);
  lines.push('routes:', ...r.routes.map((x) => `  ${x}`));
  lines.push(`127.0.0.11:53 (udp) listening: ${r.listening53 ? 'yes' : 'no'}`);
  if (d.error) {
    lines.push(`daemon: ${d.error}`);
    return lines.join('\n');
  }
  lines.push(`served by nsdns: ${d.served ? 'yes' : 'no'}${d.bindError ? ` (${d.bindError})` : ''}`);
  lines.push(`view (networks it resolves): ${(d.view as string[]).join(', ') || '(none)'}`);
  lines.push('endpoints:');
  for (const e of d.endpoints as Array<Record<string, unknown>>) lines.push(...endpointLines(e));
  lines.push(`upstreams: ${(d.upstreams as string[]).join(', ') || '(none)'}`);
  lines.push('resolv.conf:', ...(String(d.resolvConf ?? '(not written by nsdns)').trim().split('\n').map((l) => `  ${l}`)));
  // An older daemon sends no timings.
  if (Array.isArray(d.timings)) lines.push(...formatTimings(d.timings));
  const res = d.resolution as Record<string, unknown> | undefined;
  if (res) lines.push(...resolutionLines(res));
  return lines.join('\n');
}

function endpointLines(e: Record<string, unknown>): string[] {
  const lines = [`  ${e.name} on ${e.network}: ${[...(e.ipv4 as string[]), ...(e.ipv6 as string[])].join(' ')} (${e.ifname}, aliases ${(e.aliases as string[]).join(',') || '-'})`];
  const h = e.health as { Status: string; FailingStreak: number; Log: Array<{ End: string; ExitCode: number; Output: string }>; Check?: { Test: string; Interval: string } } | undefined;
  if (h) {
    const last = h.Log.at(-1);
    const check = h.Check ? `, check ${h.Check.Test} every ${h.Check.Interval}` : ', no check';
    lines.push(`    health ${h.Status}${h.FailingStreak > 0 ? ` (${h.FailingStreak} failing)` : ''}${check}${last ? `, last probe ${last.End}: ${last.ExitCode === 0 ? 'ok' : 'failed'} (${last.Output})` : ''}`);
  }
  return lines;
}

function resolutionLines(res: Record<string, unknown>): string[] {
  const origin = res.origin as Record<string, string>;
  const from = origin.source === 'upstream' ? `upstream ${origin.server}` : origin.source === 'error' ? `error: ${origin.reason}` : origin.source;
  return [`resolve ${res.name} ${res.type}: ${res.rcode} from ${from}`, ...(res.answers as Array<Record<string, unknown>>).map((a) => `  ${a.type} ${a.data} ttl ${a.ttl}`)];
}
