// The control socket's boundary: one zod schema for the request envelope and one per method for
// its parameters, the only place a request is checked before its handler runs. They check
// structure and size only (strict objects, bounded strings, arrays and numbers), and fields that
// reach `ip`/`nft` with the same schemas as registry files (registry/fields.ts). The requests that
// change networks have their schemas beside the planner that judges the rest of them
// (plumbing/request-schemas.ts: names, subnets, targets and allocation).
import { z } from 'zod';
import { NsdnsError } from '../errors.js';
import { healthStateSchema } from '../registry/fields.js';
import { egressRulesSchema } from '../registry/egress-rules.js';
import { connectSchema, createNetworkSchema, list, text } from '../plumbing/request-schemas.js';
import { isQueryName, recordTypeName } from '../wire/names.js';

/**
 * Longest accepted request line, newline excluded. The largest real request (a network with 256
 * static records of 300 characters and 64 labels) is about 100 KB; 256 such slots cost 64 MiB.
 */
export const MAX_LINE_BYTES = 256 * 1024;

export const requestSchema = z.strictObject({
  id: z.int().min(0),
  method: text(64),
  params: z.unknown().optional(),
});

const noParams = z.strictObject({});

/** Every method's parameters, by method name. */
export const paramSchemas = {
  ping: noParams,
  'network.create': createNetworkSchema,
  'network.ls': noParams,
  'network.inspect': z.strictObject({ names: list().min(1) }),
  'network.rm': z.strictObject({
    names: list().min(1),
    /** Before 0.2: "detach endpoints first"; kept with that meaning for old clients (see disconnect). */
    force: z.boolean().optional(),
    disconnect: z.boolean().optional(),
    ignoreMissing: z.boolean().optional(),
    /** Answer { removed, failed } instead of failing as a whole when one name cannot be removed. */
    report: z.boolean().optional(),
  }),
  'network.prune': noParams,
  'network.connect': connectSchema,
  'network.disconnect': z.strictObject({ network: text(), target: text(4096) }),
  /** `nsdns endpoint health NETWORK ENDPOINT STATE`: a state set from outside. */
  'endpoint.health': z.strictObject({ network: text(), endpoint: text(), state: healthStateSchema }),
  /** `nsdns endpoint egress NETWORK ENDPOINT --allow X | --clear`: the endpoint's own policy, or null to remove it. */
  'endpoint.egress': z.strictObject({ network: text(), endpoint: text(), egress: egressRulesSchema.nullable() }),
  /** `nsdns egress log [TARGET]`: an endpoint (NETWORK/NAME, name, id) or a namespace (name, path); all when absent. */
  'egress.log': z.strictObject({ target: text(4096).optional() }),
  'debug.namespace': z.strictObject({
    target: text(4096),
    resolve: text().refine(isQueryName, 'not a DNS name').optional(),
    /** As dns-packet names it: `mx` and `TYPE15` become `MX`. */
    type: z.string().refine((t) => recordTypeName(t) !== undefined, 'not a record type (A, AAAA, MX, ... or TYPEnn)').transform((t) => recordTypeName(t)!).optional(),
  }),
} satisfies Record<string, z.ZodType>;

export type Method = keyof typeof paramSchemas;
export type ParamsOf<M extends Method> = z.infer<(typeof paramSchemas)[M]>;
export type ControlRequest = z.infer<typeof requestSchema>;

/** The parameters of `method`, or ERR_BAD_REQUEST naming each bad parameter by its path. */
export function parseParams<M extends Method>(method: M, params: unknown): ParamsOf<M> {
  const result = paramSchemas[method].safeParse(params);
  if (!result.success) throw new NsdnsError('ERR_BAD_REQUEST', `${method}: ${describeIssues(result.error.issues)}`);
  return result.data as ParamsOf<M>;
}

/**
 * Issues as "path: problem; ...", each clipped: keys and paths come from the client, and a reply
 * or log line must not carry a megabyte of its input back.
 */
export function describeIssues(issues: readonly z.core.$ZodIssue[]): string {
  const shown = issues.slice(0, 5).map((issue) => {
    const where = issue.path.length > 0 ? `${plain(issue.path.map(String).join('.'), 64)}: ` : '';
    // zod's own words for unknown keys would repeat every key in full.
    const what = issue.code === 'unrecognized_keys' ? `unknown parameter${issue.keys.length > 1 ? 's' : ''} ${issue.keys.slice(0, 5).map((k) => quote(k)).join(', ')}` : plain(issue.message, 200);
    return where + what;
  });
  if (issues.length > 5) shown.push(`and ${issues.length - 5} more`);
  return shown.join('; ');
}

const cut = (value: string, max: number): string => (value.length > max ? `${value.slice(0, max)}...` : value);

/** `value` cut to `max` characters, in double quotes, escaped as in JSON. */
export function quote(value: string, max = 64): string {
  return JSON.stringify(cut(value, max));
}

/** `value` cut to `max` characters, with control and non-ASCII characters escaped. */
function plain(value: string, max: number): string {
  return cut(value, max).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
