// Commands for operators: the daemon's health, the firewall and restarts (`nsdns status`,
// `nsdns firewall-reload`, `nsdns restart`).
import type { Command } from 'commander';
import { call } from './control-client.js';
import { socketOption } from './options.js';

interface Status {
  pid: number;
  uptimeSeconds: number;
  ready: boolean;
  problems: string[];
  warnings?: string[];
  networks: number;
  endpoints: number;
  namespaces: { attached: number; served: number; unserved: string[] };
  upstreams: Array<{ server: string; failing: boolean }>;
  listeners: string[];
  metrics: string | null;
  forwardInflight: number;
  cacheEntries: number;
  tcpConnections: number;
  gateways?: string[];
  helpers?: { bind: string; links: string; probe?: string };
  /** Shared registries (etcd://); absent from daemons before they existed. */
  sharedRegistries?: Array<{ registry: string; synchronised: boolean; stale: boolean; staleSince: string | null; revision: string | null; networks: number; keys: number; heldDeletes: number; sharedNames: number }>;
  /** Absent from daemons before handovers existed. */
  handover?: { running: boolean; failures: number; lastFailure: string | null };
  /** `serve --announce`: null when not announcing. */
  announce?: { url: string; node: string; leaseSince: string | null; endpoints: number; refused: string[]; lastError: { message: string; at: string } | null } | null;
}

function formatAnnounce(a: NonNullable<Status['announce']>): string {
  const lease = a.leaseSince ? `lease since ${safe(a.leaseSince)}, ${a.endpoints} endpoints` : `NO LEASE${a.lastError ? ` (last failure ${safe(a.lastError.at)}: ${safe(a.lastError.message)})` : ''}`;
  const refused = a.refused.length > 0 ? `; not announced (etcd defines them otherwise): ${a.refused.map(safe).join(', ')}` : '';
  return `announce:    node ${safe(a.node)} to ${safe(a.url)}; ${lease}${refused}`;
}

/** Control characters from the daemon's answer never reach the terminal as such. */
const safe = (value: unknown): string => String(value).replace(/[\x00-\x1f\x7f]/g, '?');

function formatStatus(s: Status): string {
  const upstreams = s.upstreams.length === 0
    ? 'none (nothing is forwarded)'
    : s.upstreams.map((u) => `${safe(u.server)}${u.failing ? ' (failing)' : ''}`).join(', ');
  const lines = [
    `nsdns: ${s.ready ? 'ready' : 'NOT READY'} (pid ${s.pid}, up ${s.uptimeSeconds}s)`,
    ...s.problems.map((p) => `  - ${safe(p)}`),
    ...(s.warnings ?? []).map((w) => `  warning: ${safe(w)}`),
    `networks:    ${s.networks} (${s.endpoints} endpoints)`,
    `namespaces:  ${s.namespaces.served} of ${s.namespaces.attached} served at 127.0.0.11`,
    `upstreams:   ${upstreams}`,
    `listeners:   ${s.listeners.length > 0 ? s.listeners.map(safe).join(', ') : 'none on the host'}`,
    `metrics:     ${s.metrics ? `http://${safe(s.metrics)}/metrics` : 'off (serve --metrics ADDR:PORT)'}`,
    ...(s.sharedRegistries ?? []).map((r) => `registry:    ${safe(r.registry)}: ${sharedState(r)}`),
    ...(s.gateways && s.gateways.length > 0 ? [`gateways:    ${s.gateways.map(safe).join(', ')}`] : []),
    ...(s.helpers ? [`helpers:     bind ${safe(s.helpers.bind)}, links ${safe(s.helpers.links)}${s.helpers.probe ? `, probe ${safe(s.helpers.probe)}` : ''} (native: the fast path; node/ip: its fallback)`] : []),
    `in flight:   ${s.forwardInflight} upstream queries, ${s.tcpConnections} TCP connections; ${s.cacheEntries} cached answers`,
    ...(s.announce ? [formatAnnounce(s.announce)] : []),
  ];
  return lines.join('\n');
}

function sharedState(r: NonNullable<Status['sharedRegistries']>[number]): string {
  const state = r.stale ? `STALE since ${safe(r.staleSince)} (etcd cannot be reached; the last snapshot answers)` : r.synchronised ? 'in sync' : 'not read yet (etcd does not answer)';
  const held = r.heldDeletes > 0 ? `, ${r.heldDeletes} deletes held back after an outage` : '';
  const shared = r.sharedNames > 0 ? `, ${r.sharedNames} names held by several nodes` : '';
  return `${state}, revision ${safe(r.revision ?? '-')}, ${r.networks} networks, ${r.keys} keys${held}${shared}`;
}

export function opsCommands(program: Command): void {
  program.command('status')
    .description('is the daemon ready? (registry loaded, namespaces served, an upstream answering); exit 1 when not')
    .option('--json', 'print JSON', false)
    .addOption(socketOption())
    .action(async (o) => {
      const status = await call<Status>(o.socket, 'status');
      process.stdout.write(`${o.json ? JSON.stringify(status, null, 2) : formatStatus(status)}\n`);
      if (!status.ready) process.exitCode = 1;
    });

  program.command('restart')
    .description('hand every socket to a new daemon started from the files on disk, losing no query (as SIGUSR2)')
    .option('--timeout <seconds>', 'how long to wait for the new daemon', (v) => Number(v), 20)
    .addOption(socketOption())
    .action(async (o) => {
      const before = await call<{ pid: number; failures: number }>(o.socket, 'restart');
      const deadline = Date.now() + Math.max(1, o.timeout) * 1000;
      // The socket answers throughout: the old daemon, then the new one on the same socket.
      while (Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 200));
        const now = await call<Status>(o.socket, 'status', {}, 5000).catch(() => undefined);
        if (!now) continue;
        if (now.pid !== before.pid) {
          process.stdout.write(`restarted: pid ${before.pid} handed over to pid ${now.pid}\n`);
          return;
        }
        if ((now.handover?.failures ?? 0) > before.failures) {
          throw new Error(`the new daemon did not take over; pid ${before.pid} goes on serving: ${safe(now.handover?.lastFailure ?? 'see its log')}`);
        }
      }
      throw new Error(`no new daemon within ${o.timeout} s; see the daemon's log`);
    });

  program.command('firewall-reload')
    .description('re-apply nsdns\'s nftables table (after the host firewall was reloaded or flushed)')
    .addOption(socketOption())
    .action(async (o) => {
      const result = await call<{ table: string | null; action: string }>(o.socket, 'firewall.reload');
      process.stdout.write(`${safe(result.action)}\n`);
    });
}
