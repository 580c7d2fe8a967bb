// `nsdns debug TARGET [--resolve NAME [TYPE]]`: what a namespace sees, from the kernel (read here)
// and from the daemon (debug.namespace). The daemon's answer, or its refusal, is part of the report,
// so debug still shows the kernel's side when the daemon is down.
import type { Command } from 'commander';
import { recordTypeName } from '../wire/names.js';
import { call } from './control-client.js';
import { kernelView } from './namespace-kernel-view.js';
import { formatDebug, type DebugReport } from './debug-report.js';
import { UsageError, socketOption } from './options.js';
import { print } from './print.js';

export function debugCommand(program: Command): void {
  program.command('debug')
    .description('show what a namespace sees: attachments, addresses, routes, resolv.conf, its resolver and view')
    .argument('<target>', 'named namespace, namespace file, or PID')
    .argument('[type]', 'record type for --resolve, as `query` takes it (default A)')
    .option('--resolve <name>', 'resolve a name as the namespace would, and say where the answer came from')
    .option('--type <type>', 'record type for --resolve (same as the positional type)')
    .option('--json', 'print JSON', false)
    .addOption(socketOption())
    .action(async (target: string, positionalType: string | undefined, o) => {
      const typeText = recordType(positionalType, o.type, o.resolve);
      // The namespace's path, for the kernel's view read here. Loaded here only: it brings zod.
      const { resolveTarget } = await import('../plumbing/target.js');
      const ns = resolveTarget(target);
      const kernel = await kernelView(ns.path);
      let daemon: Record<string, unknown>;
      try {
        daemon = await call<Record<string, unknown>>(o.socket, 'debug.namespace', { target, resolve: o.resolve, type: o.resolve === undefined ? undefined : typeText });
      } catch (err) {
        daemon = { error: (err as Error).message };
      }
      const report: DebugReport = { namespace: ns.path, ...kernel, daemon };
      print(o.json ? report : formatDebug(report));
    });
}

/**
 * The record type for --resolve, from the positional TYPE or --type. Which flags go together is a
 * rule of this command line only. The type itself is checked here too although the daemon checks
 * it: debug shows a refusal by the daemon inside its report (exit 0), so a mistyped type would
 * otherwise pass for a result.
 */
function recordType(positional: string | undefined, flag: string | undefined, resolve: string | undefined): string {
  if (positional !== undefined && flag !== undefined && positional.toUpperCase() !== flag.toUpperCase()) {
    throw new UsageError(`two record types given (${positional.slice(0, 12)} and --type ${String(flag).slice(0, 12)})\nSee 'nsdns debug --help'.`);
  }
  const typeText = positional ?? flag ?? 'A';
  if ((positional !== undefined || flag !== undefined) && resolve === undefined) throw new UsageError("a record type is for --resolve NAME\nSee 'nsdns debug --help'.");
  if (recordTypeName(typeText) === undefined) throw new UsageError(`unknown record type '${typeText.slice(0, 20)}' (A, AAAA, CNAME, MX, NS, PTR, SOA, SRV, TXT, ANY, ... or TYPEnn)\nSee 'nsdns debug --help'.`);
  return typeText;
}
