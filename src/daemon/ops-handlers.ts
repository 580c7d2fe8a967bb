// Control methods for operators: `status` (what /readyz says, and more, for `nsdns status`) and
// `firewall.reload` (re-apply the nft table, for `nsdns firewall-reload` and the systemd unit).
// Their parameters are checked here with their own schemas (none are taken), like every method.
import { z } from 'zod';
import { NsdnsError } from '../errors.js';
import type { Handler } from './control.js';
import { describeIssues } from './control-schemas.js';

const noParams = z.strictObject({});

export const opsParamSchemas = {
  status: noParams,
  'firewall.reload': noParams,
} satisfies Record<string, z.ZodType>;

export interface OpsDeps {
  status(): object;
  /** Re-applies the firewall table; says what it did. */
  reloadFirewall?(): Promise<object>;
}

function checked(method: keyof typeof opsParamSchemas, run: () => Promise<unknown>): Handler {
  return async (params) => {
    const parsed = opsParamSchemas[method].safeParse(params);
    if (!parsed.success) throw new NsdnsError('ERR_BAD_REQUEST', `${method}: ${describeIssues(parsed.error.issues)}`);
    return run();
  };
}

export function opsHandlers(deps: OpsDeps): Record<string, Handler> {
  const reload = deps.reloadFirewall?.bind(deps);
  return {
    status: checked('status', async () => deps.status()),
    ...(reload && { 'firewall.reload': checked('firewall.reload', () => reload()) }),
  };
}

/**
 * The handlers with network.connect and network.disconnect timed (the metrics' operation
 * durations), without touching the network manager: the time a client waits for its answer.
 */
export function timedHandlers(handlers: Record<string, Handler>, observe: (operation: 'connect' | 'disconnect', seconds: number, ok: boolean) => void): Record<string, Handler> {
  const out = { ...handlers };
  for (const [method, operation] of [['network.connect', 'connect'], ['network.disconnect', 'disconnect']] as const) {
    const inner = handlers[method];
    if (!inner) continue;
    out[method] = async (params) => {
      const started = performance.now();
      let ok = false;
      try {
        const result = await inner(params);
        ok = true;
        return result;
      } finally {
        observe(operation, (performance.now() - started) / 1000, ok);
      }
    };
  }
  return out;
}
