// The control socket's boundary: one zod schema for the request envelope and one per method for
// its parameters. They check structure and size only (strict objects, bounded strings, arrays and
// numbers), and fields that reach `ip`/`nft` with the same schemas as registry files
// (registry/fields.ts). Names, subnets, targets and allocation are judged by the planner.
import { z } from 'zod';
import { NsdnsError } from '../errors.js';
import { HEALTH_LIMITS, healthStateSchema, ifname, ipAddress, ipv4Address, ipv6Address, labelsSchema, networkOptions, RECORDS_MAX, SERVICES_MAX, unicastMac } from '../registry/fields.js';
import { isQueryName, recordTypeName } from '../wire/names.js';

/**
 * Longest accepted request line, newline excluded. The largest real request (a network with 256
 * static records of 300 characters and 64 labels) is about 100 KB; 256 such slots cost 64 MiB.
 */
export const MAX_LINE_BYTES = 256 * 1024;
const MAX_ITEMS = 64;

const text = (max = 255) => z.string().min(1).max(max);
const list = (item = text()) => z.array(item).max(MAX_ITEMS);
/** An address, CIDR or ADDRESS:PORT in text form; its meaning is checked by the planner. */
const address = text(64);

export const requestSchema = z.strictObject({
  id: z.int().min(0),
  method: text(64),
  params: z.unknown().optional(),
});

const noParams = z.strictObject({});

const createNetwork = z.strictObject({
  name: text(),
  subnets: list(address).optional(),
  gateway: ipAddress.optional(),
  ipRange: address.optional(),
  internal: z.boolean().optional(),
  bridge: ifname.optional(),
  mtu: z.int().min(68).max(65535).optional(),
  dnsUpstreams: list(address).optional(),
  domain: text().optional(),
  // Checked before the record: zod drops a "__proto__" key silently, and it should be refused.
  options: z.custom<object>((o) => typeof o !== 'object' || o === null || !Object.hasOwn(o, '__proto__'), 'option key "__proto__" is not allowed')
    .pipe(networkOptions).optional(),
  labels: labelsSchema.optional(),
  /** NAME=[TYPE:]VALUE, judged by the planner. */
  records: z.array(text(300)).max(RECORDS_MAX).optional(),
});

/** A health timing, bounded here; the planner holds it to the limits of registry files, in words naming the flag. */
const timing = (what: keyof typeof HEALTH_LIMITS) => z.int().min(0).max(HEALTH_LIMITS[what].max * 10).optional();

const connect = z.strictObject({
  network: text(),
  target: text(4096),
  name: text().optional(),
  aliases: list().optional(),
  ip: ipv4Address.optional(),
  ip6: ipv6Address.optional(),
  mac: unicastMac.optional(),
  ifname: ifname.optional(),
  dns: list(address).optional(),
  publish: list(text(64)).optional(),
  /** NAME:PORT[/tcp|udp], judged by the planner. */
  services: z.array(text(80)).max(SERVICES_MAX).optional(),
  labels: labelsSchema.optional(),
  /** tcp:PORT or http:PORT[/PATH], judged by the planner with the timings below. */
  health: text(300).optional(),
  healthIntervalMs: timing('intervalMs'),
  healthTimeoutMs: timing('timeoutMs'),
  healthRetries: timing('retries'),
  healthStartPeriodMs: timing('startPeriodMs'),
  healthHideOwn: z.boolean().optional(),
});

/** Every method's parameters, by method name. */
export const paramSchemas = {
  ping: noParams,
  'network.create': createNetwork,
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
  'network.connect': connect,
  'network.disconnect': z.strictObject({ network: text(), target: text(4096) }),
  /** `nsdns endpoint health NETWORK ENDPOINT STATE`: a state set from outside. */
  'endpoint.health': z.strictObject({ network: text(), endpoint: text(), state: healthStateSchema }),
  'debug.namespace': z.strictObject({
    target: text(4096),
    resolve: text().refine(isQueryName, 'not a DNS name').optional(),
    type: z.string().refine((t) => recordTypeName(t) !== undefined, 'not a record type (A, AAAA, MX, ... or TYPEnn)').optional(),
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
