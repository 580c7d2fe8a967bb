// Field types shared by every boundary that accepts them: registry documents, state files and
// control requests. Each is a plain predicate (for hand-written checks) and a zod schema built on
// it, so a value that reaches `ip`, `nft` or `nsenter` was checked by the same definition
// whichever way it came in.
import ipaddr from 'ipaddr.js';
import { z } from 'zod';

/** Linux IFNAMSIZ is 16 with the NUL: names are 1-15 bytes. */
export const IFNAME_MAX = 15;
export const NETNS_RUN_DIR = '/run/netns';

// The kernel refuses '/', ':' and whitespace; we also keep out everything nft or ip could read as
// syntax ('@' is a set reference in nft JSON, '*' a wildcard).
const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;
const NETNS_NAME = /^[A-Za-z0-9_.-]{1,255}$/;

export function isIfname(value: unknown): value is string {
  return typeof value === 'string' && IFNAME.test(value) && value !== '.' && value !== '..';
}

export function isMacAddress(value: unknown): value is string {
  return typeof value === 'string' && /^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(value);
}

/** A MAC an interface may have: not multicast (the low bit of the first octet). */
export function isUnicastMac(value: unknown): value is string {
  return isMacAddress(value) && (parseInt(value.slice(0, 2), 16) & 1) === 0;
}

/** Dotted quad only: ipaddr.js alone would also take `0x7f.1` or `127.1`. */
export function isIpv4(value: unknown): value is string {
  return typeof value === 'string' && value.length <= 15 && ipaddr.IPv4.isValidFourPartDecimal(value);
}

/** No prefix and no zone id (`fe80::1%eth0`): only an address. */
export function isIpv6(value: unknown): value is string {
  return typeof value === 'string' && value.length <= 45 && !/[/%]/.test(value) && ipaddr.IPv6.isValid(value);
}

export function isIp(value: unknown): value is string {
  return isIpv4(value) || isIpv6(value);
}

export function isPort(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 65535;
}

/** A name `ip netns add` could have made: one path component, not `.` or `..`. */
export function isNetnsName(value: unknown): value is string {
  return typeof value === 'string' && NETNS_NAME.test(value) && value !== '.' && value !== '..';
}

/**
 * The only namespace files the root daemon enters (`nsenter --net=PATH`): /run/netns/NAME,
 * /proc/PID/ns/net and /proc/PID/task/TID/ns/net. Anything else (other directories, `..`, NUL,
 * a trailing slash) is refused, so no file or request can point it at an arbitrary path.
 */
export function isNetnsPath(value: unknown): value is string {
  if (typeof value !== 'string' || value.length > 300) return false;
  if (value.startsWith(`${NETNS_RUN_DIR}/`)) return isNetnsName(value.slice(NETNS_RUN_DIR.length + 1));
  return /^\/proc\/[1-9]\d{0,9}(\/task\/[1-9]\d{0,9})?\/ns\/net$/.test(value);
}

/** Network option keys (`--opt k=v`, Docker's `com.docker.network.*`) and values: bounded, printable. */
export const OPTION_KEY = /^[A-Za-z0-9_.\-/]{1,128}$/;
export const OPTION_VALUE_MAX = 1024;
export const OPTIONS_MAX = 64;

export function isOptionKey(value: unknown): value is string {
  return typeof value === 'string' && OPTION_KEY.test(value) && value !== '__proto__';
}

export function isOptionValue(value: unknown): value is string {
  // eslint-disable-next-line no-control-regex
  return typeof value === 'string' && value.length <= OPTION_VALUE_MAX && !/[\u0000-\u001f\u007f]/.test(value);
}

// ---- zod schemas (messages are fixed: they never repeat the value) ----

export const ifname = z.string().refine(isIfname, 'not a valid interface name (1-15 letters, digits, ".", "_" or "-")');
export const macAddress = z.string().refine(isMacAddress, 'not a MAC address (aa:bb:cc:dd:ee:ff)');
export const unicastMac = z.string().refine(isUnicastMac, 'not a unicast MAC address (aa:bb:cc:dd:ee:ff, first octet even)');
export const ipv4Address = z.string().refine(isIpv4, 'not an IPv4 address');
export const ipv6Address = z.string().refine(isIpv6, 'not an IPv6 address');
export const ipAddress = z.string().refine(isIp, 'not an IP address');
export const port = z.number().refine(isPort, 'not a port (1-65535)');
export const netnsPath = z.string().refine(isNetnsPath, `not an allowed namespace path (${NETNS_RUN_DIR}/NAME, /proc/PID/ns/net or /proc/PID/task/TID/ns/net)`);
export const networkOptions = z.record(
  z.string().refine(isOptionKey, 'not a valid option key (1-128 letters, digits, ".", "_", "-" or "/")'),
  z.string().refine(isOptionValue, `not a valid option value (at most ${OPTION_VALUE_MAX} printable characters)`),
).refine((o) => Object.keys(o).length <= OPTIONS_MAX, `at most ${OPTIONS_MAX} options`);

/**
 * Outside text made safe to show in a message or log line: quotes, backslashes and control or
 * line-breaking characters escaped, cut to `max` characters. Nothing raw from a file or request
 * is ever printed as it came.
 */
export function printable(value: unknown, max = 40): string {
  const text = typeof value === 'string' ? value : typeof value === 'number' || typeof value === 'boolean' ? String(value) : `(${typeof value})`;
  // eslint-disable-next-line no-control-regex
  const escaped = text.slice(0, max * 2).replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029"\\]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return escaped.length > max || text.length > max * 2 ? `${escaped.slice(0, max)}…` : escaped;
}

// ---- service discovery: services, labels, static records, health ----

/** Limits on what one endpoint or network may declare. */
export const SERVICES_MAX = 32;
export const LABELS_MAX = 64;
/** One TXT string (`key=value`) is at most 255 bytes (RFC 1035 §3.3). */
export const LABEL_TEXT_MAX = 255;
export const RECORDS_MAX = 256;

/** RFC 6335 §5.1 service names, a little wider: letters, digits and '-', at most 63, not starting or ending with '-'. */
const SERVICE_NAME = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;

export function isServiceNameLabel(value: unknown): value is string {
  return typeof value === 'string' && SERVICE_NAME.test(value);
}

/** A label key: what docker takes for label keys (letters, digits, '.', '_', '-', '/'), no '='. */
export function isLabelKey(value: unknown): value is string {
  return isOptionKey(value);
}

/** `key=value` must fit one TXT string and hold no control characters. */
export function isLabelEntry(key: string, value: unknown): boolean {
  return typeof value === 'string' && isOptionValue(value) && Buffer.byteLength(`${key}=${value}`) <= LABEL_TEXT_MAX;
}

/**
 * A static record's name, relative to its network's zones: labels of letters, digits, '_' and '-'
 * (`printer`, `_ldap._tcp`), no empty label, at most 253 characters.
 */
export function isRecordName(value: unknown): value is string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 253) return false;
  return value.split('.').every((l) => /^[A-Za-z0-9_-]{1,63}$/.test(l) && !l.startsWith('-') && !l.endsWith('-'));
}

/** A target name (CNAME, SRV): a DNS name, '_' allowed, an optional trailing dot. */
export function isTargetName(value: unknown): value is string {
  if (typeof value !== 'string') return false;
  const trimmed = value.endsWith('.') ? value.slice(0, -1) : value;
  return isRecordName(trimmed);
}

/** TXT record text: one string of at most 255 bytes, printable. */
export function isTxtText(value: unknown): value is string {
  return typeof value === 'string' && isOptionValue(value) && Buffer.byteLength(value) <= LABEL_TEXT_MAX;
}

const u16 = z.number().int().min(0).max(65535);

export const serviceSchema = z.object({
  name: z.string().refine(isServiceNameLabel, 'not a service name (letters, digits and "-", at most 63)'),
  port,
  protocol: z.enum(['tcp', 'udp']).default('tcp'),
  priority: u16.default(0),
  weight: u16.default(0),
}).strict();

export const servicesSchema = z.array(serviceSchema).max(SERVICES_MAX, `at most ${SERVICES_MAX} services`)
  .refine((list) => new Set(list.map((s) => `${s.name.toLowerCase()}/${s.protocol}`)).size === list.length, 'a service is declared twice (same name and protocol)');

export const labelsSchema = z.custom<object>((o) => typeof o !== 'object' || o === null || !Object.hasOwn(o, '__proto__'), 'label key "__proto__" is not allowed')
  .pipe(z.record(
    z.string().refine(isLabelKey, 'not a valid label key (1-128 letters, digits, ".", "_", "-" or "/")'),
    z.string().refine(isOptionValue, 'not a valid label value (printable characters)'),
  ))
  .refine((o) => Object.keys(o).length <= LABELS_MAX, `at most ${LABELS_MAX} labels`)
  .refine((o) => Object.entries(o).every(([k, v]) => isLabelEntry(k, v)), `a label is longer than ${LABEL_TEXT_MAX} bytes as key=value`);

const recordName = z.string().refine(isRecordName, 'not a valid record name (labels of letters, digits, "_" and "-")');
const targetName = z.string().refine(isTargetName, 'not a valid target name');

export const staticRecordSchema = z.discriminatedUnion('type', [
  z.object({ name: recordName, type: z.literal('A'), value: ipv4Address }).strict(),
  z.object({ name: recordName, type: z.literal('AAAA'), value: ipv6Address }).strict(),
  z.object({ name: recordName, type: z.literal('CNAME'), value: targetName }).strict(),
  z.object({ name: recordName, type: z.literal('TXT'), value: z.string().refine(isTxtText, `not TXT text (printable, at most ${LABEL_TEXT_MAX} bytes)`) }).strict(),
  z.object({ name: recordName, type: z.literal('SRV'), priority: u16.default(0), weight: u16.default(0), port, target: targetName }).strict(),
]);

export const staticRecordsSchema = z.array(staticRecordSchema).max(RECORDS_MAX, `at most ${RECORDS_MAX} records`);

export const healthStateSchema = z.enum(['healthy', 'unhealthy', 'starting']);

/** Health check limits: a probe at most every 100 ms, waits at most a minute, periods at most a day. */
export const HEALTH_LIMITS = {
  intervalMs: { min: 100, max: 86_400_000, default: 5_000 },
  timeoutMs: { min: 10, max: 60_000, default: 2_000 },
  retries: { min: 1, max: 100, default: 3 },
  startPeriodMs: { min: 0, max: 86_400_000, default: 0 },
} as const;
export const HEALTH_PATH_MAX = 256;

/** An HTTP check's path: '/' then printable ASCII without spaces or '#', at most HEALTH_PATH_MAX. */
export function isHealthPath(value: unknown): value is string {
  return typeof value === 'string' && value.length <= HEALTH_PATH_MAX && /^\/[\x21-\x22\x24-\x7e]*$/.test(value);
}

// Messages name the limit, not the field: the path (or the flag) says which field.
const bounded = (what: keyof typeof HEALTH_LIMITS, unit: string) => {
  const { min, max, default: d } = HEALTH_LIMITS[what];
  return z.number().int('a whole number').min(min, `at least ${min}${unit}`).max(max, `at most ${max}${unit}`).default(d);
};

export const healthCheckSchema = z.object({
  type: z.enum(['tcp', 'http']),
  port,
  path: z.string().refine(isHealthPath, `not an HTTP path ('/' then printable characters without spaces or '#', at most ${HEALTH_PATH_MAX})`).optional(),
  intervalMs: bounded('intervalMs', ' ms'),
  timeoutMs: bounded('timeoutMs', ' ms'),
  retries: bounded('retries', ''),
  startPeriodMs: bounded('startPeriodMs', ' ms'),
}).strict()
  .refine((c) => c.type === 'http' || c.path === undefined, 'a tcp check has no path')
  .transform((c) => (c.type === 'http' ? { ...c, path: c.path ?? '/' } : c));
