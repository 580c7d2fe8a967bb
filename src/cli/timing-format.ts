// `nsdns debug`: the daemon's last connects and disconnects, one line each with where the
// milliseconds went (the daemon's OperationTiming, as JSON over the control socket).
import type { OperationTiming } from '../plumbing/timing.js';

type Timing = OperationTiming;

/** The stage's name, with the implementation that did it where there are two. */
function stageName(stage: string, paths: Timing['paths']): string {
  if (stage === 'addresses+routes in namespace' && paths.links) return `${stage} (${paths.links})`;
  if (stage === 'bind 127.0.0.11' && paths.bind) return `${stage} (${paths.bind})`;
  return stage;
}

export function formatTimings(timings: readonly Timing[]): string[] {
  if (timings.length === 0) return ['recent connects: none since the daemon started'];
  const lines = [`recent connects and disconnects (all namespaces, oldest first, times UTC):`];
  for (const t of timings) {
    const what = `${t.operation} ${t.endpoint ?? '?'} ${t.operation === 'connect' ? 'to' : 'from'} ${t.network}`;
    lines.push(`  ${t.at.slice(11, 23)} ${what}: ${t.totalMs.toFixed(1)} ms${t.ok ? '' : ` (failed${t.code ? `: ${t.code}` : ''})`}`);
    lines.push(`    ${t.stages.map((s) => `${stageName(s.stage, t.paths)} ${s.ms.toFixed(1)}`).join(', ')}`);
  }
  return lines;
}
