// Requests from the `nsdns network` commands, validated before anything changes.
import ipaddr from 'ipaddr.js';
import { NsdnsError } from '../errors.js';
import { parseHostPort } from '../host-port.js';
import { isServiceLabel, isServiceName, isValidName } from '../wire/names.js';
import type { HealthCheck, PortMapping, Service, StaticRecord } from '../registry/types.js';
import { parseHealthSpec } from '../health/spec.js';
import { isUpstreamAddress, normalRecord, normalService } from '../registry/document.js';
import { nameProblems } from '../registry/name-rules.js';
import {
  NETNS_RUN_DIR, OPTION_VALUE_MAX, OPTIONS_MAX, isIfname, isIpv4, isIpv6, isMacAddress, isNetnsPath, isOptionKey, isOptionValue,
  healthCheckSchema, isPort, isUnicastMac, printable, isRecordName, isServiceNameLabel, isTargetName, labelsSchema, RECORDS_MAX, SERVICES_MAX,
} from '../registry/fields.js';

export interface CreateNetworkRequest {
  name: string;
  subnets?: string[];
  gateway?: string;
  ipRange?: string;
  internal?: boolean;
  bridge?: string;
  mtu?: number;
  dnsUpstreams?: string[];
  domain?: string;
  options?: Record<string, string>;
  /** `--label k=v`: network metadata. */
  labels?: Record<string, string>;
  /** `--record NAME=[TYPE:]VALUE` (A, AAAA, CNAME). */
  records?: string[];
}

export interface ConnectRequest {
  network: string;
  target: string;
  name?: string;
  aliases?: string[];
  ip?: string;
  ip6?: string;
  mac?: string;
  ifname?: string;
  dns?: string[];
  publish?: string[];
  /** `--service NAME:PORT[/tcp|udp]`. */
  services?: string[];
  /** `--label k=v`: answered as TXT at the endpoint's names. */
  labels?: Record<string, string>;
  /** `--health tcp:PORT` or `http:PORT[/PATH]`, probed by the daemon from the host side. */
  health?: string;
  healthIntervalMs?: number;
  healthTimeoutMs?: number;
  healthRetries?: number;
  healthStartPeriodMs?: number;
  /** `--health-hide-own`: the endpoint's own name too answers only while it is healthy. */
  healthHideOwn?: boolean;
}

export function bad(message: string): NsdnsError {
  return new NsdnsError('ERR_BAD_REQUEST', message);
}

/**
 * An upstream a namespace's queries go to (`--dns`, `--dns-upstream`). nsdns asks it from the host,
 * so a loopback or unspecified address would be the host's own, not the one a container user
 * means (its own loopback): refused, as are multicast and broadcast (no one server) and anything
 * not an address.
 */
export function checkNamespaceUpstream(flag: string, value: string): void {
  if (!isUpstreamAddress(value)) throw bad(`${flag} "${printable(value)}" is not an address (IP or IP:PORT)`);
  const range = ipaddr.parse(parseHostPort(value, { defaultPort: 53 })!.host).range();
  if (range === 'loopback' || range === 'unspecified') {
    throw bad(`${flag} ${value}: ${range === 'loopback' ? 'a loopback' : 'an unspecified'} address would be the host's own, not the namespace's (nsdns forwards from the host); give the address of a DNS server the host can reach, such as one on the network`);
  }
  if (range === 'multicast' || range === 'broadcast') {
    throw bad(`${flag} ${value}: a ${range} address is not one DNS server; give the address of a DNS server the host can reach`);
  }
}

// Every check uses the shared field types (registry/fields.ts) and shows a rejected value only
// escaped and cut short: errors reach the log and the caller's terminal.
const shown = (value: unknown) => `"${printable(value)}"`;

const NAME_RULE = 'letters, digits, "_" and "-", at most 63, not starting with "_" or "-" nor ending with "-"';

export function checkLabel(what: string, value: string): string {
  if (!isServiceLabel(value)) throw bad(`${what} ${shown(value)} is not a valid name (${NAME_RULE})`);
  return value.toLowerCase();
}

/** A network name, kept as typed: lookups ignore case, `ls` and `inspect` show it as given. */
export function checkNetworkName(value: string): string {
  if (!isServiceLabel(value)) throw bad(`network name ${shown(value)} is not a valid name (${NAME_RULE})`);
  return value;
}

export function checkAlias(value: string): string {
  if (!isServiceName(value)) throw bad(`alias ${shown(value)} is not a valid name (labels of ${NAME_RULE}, joined by ".")`);
  return value.toLowerCase().replace(/\.$/, '');
}

export function checkDomain(value: string): string {
  if (typeof value !== 'string' || !isValidName(value)) throw bad(`--domain ${shown(value)} is not a valid DNS name`);
  return value.toLowerCase().replace(/\.$/, '');
}

export function checkInterfaceName(what: string, value: string): string {
  if (!isIfname(value)) throw bad(`${what} ${shown(value)} is not a valid interface name (1-15 letters, digits, '.', '_' or '-'; not '.' or '..')`);
  return value;
}

export function checkMac(value: string): string {
  if (!isMacAddress(value)) throw bad(`MAC address ${shown(value)} is not in the form aa:bb:cc:dd:ee:ff`);
  if (!isUnicastMac(value)) throw bad(`MAC address ${shown(value)} is a multicast address`);
  return value.toLowerCase();
}

export function checkAddress(what: string, value: string, kind: 'ipv4' | 'ipv6'): string {
  if (!(kind === 'ipv4' ? isIpv4(value) : isIpv6(value))) throw bad(`${what} ${shown(value)} is not an ${kind === 'ipv4' ? 'IPv4' : 'IPv6'} address`);
  return ipaddr.parse(value).toString();
}

export function checkNetnsPath(value: string): string {
  if (!isNetnsPath(value)) throw bad(`namespace ${shown(value)} is not allowed: only ${NETNS_RUN_DIR}/NAME, /proc/PID/ns/net or /proc/PID/task/TID/ns/net`);
  return value;
}

/** `--opt k=v`: bounded keys and printable values, as registry documents take them. */
export function checkOptions(options: Record<string, string> | undefined): Record<string, string> {
  if (options === undefined) return {};
  if (typeof options !== 'object' || options === null || Array.isArray(options)) throw bad('options must be an object of strings');
  const entries = Object.entries(options);
  if (entries.length > OPTIONS_MAX) throw bad(`at most ${OPTIONS_MAX} options`);
  for (const [k, v] of entries) {
    if (!isOptionKey(k)) throw bad(`option key ${shown(k)} is not valid (1-128 letters, digits, '.', '_', '-' or '/')`);
    if (!isOptionValue(v)) throw bad(`option ${k}: the value must be at most ${OPTION_VALUE_MAX} printable characters`);
  }
  return Object.fromEntries(entries);
}

/** `[HOSTIP:]HOSTPORT:PORT[/tcp|udp]`, as `docker run --publish` takes it. */
export function parsePublish(spec: string): PortMapping {
  const m = typeof spec === 'string' && spec.length <= 40 ? /^(?:(\d{1,3}(?:\.\d{1,3}){3}):)?(\d{1,5}):(\d{1,5})(?:\/(tcp|udp))?$/.exec(spec) : null;
  const hostPort = Number(m?.[2]);
  const containerPort = Number(m?.[3]);
  if (!m || !isPort(hostPort) || !isPort(containerPort) || (m[1] && !isIpv4(m[1]))) {
    throw bad(`--publish ${shown(spec)}: expected [HOSTIP:]HOSTPORT:PORT[/tcp|udp] with ports 1-65535`);
  }
  return { ...(m[1] && { hostIp: m[1] }), hostPort, containerPort, protocol: (m[4] as 'tcp' | 'udp' | undefined) ?? 'tcp' };
}

/** `NAME:PORT[/tcp|udp]` (`http:8080/tcp`, `metrics:9100`): a service of the endpoint, priority and weight 0. */
export function parseService(spec: string): Service {
  const m = typeof spec === 'string' && spec.length <= 80 ? /^([^:/]+):(\d{1,5})(?:\/(tcp|udp))?$/i.exec(spec) : null;
  if (!m || !isServiceNameLabel(m[1]) || !isPort(Number(m[2]))) {
    throw bad(`--service ${shown(spec)}: expected NAME:PORT[/tcp|udp] (a name of letters, digits and "-", a port 1-65535)`);
  }
  return normalService({ name: m[1], port: Number(m[2]), protocol: (m[3]?.toLowerCase() as 'tcp' | 'udp' | undefined) ?? 'tcp' });
}

export function checkServices(specs: readonly string[] | undefined): Service[] {
  const services = (specs ?? []).map(parseService);
  if (services.length > SERVICES_MAX) throw bad(`at most ${SERVICES_MAX} services`);
  const seen = new Set<string>();
  for (const s of services) {
    const key = `${s.name}/${s.protocol}`;
    if (seen.has(key)) throw bad(`--service ${s.name}/${s.protocol} is given twice`);
    seen.add(key);
  }
  return services;
}

/** `--label k=v`: the limits of registry files (64 labels, each key=value at most 255 bytes, printable). */
export function checkLabels(what: string, labels: Record<string, string> | undefined): Record<string, string> | undefined {
  if (labels === undefined) return undefined;
  const result = labelsSchema.safeParse(labels);
  if (!result.success) throw bad(`${what}: ${result.error.issues[0]?.message ?? 'not valid'}`);
  return Object.keys(result.data).length > 0 ? { ...(result.data as Record<string, string>) } : undefined;
}

/**
 * `NAME=VALUE` (an address: A or AAAA) or `NAME=TYPE:VALUE` (A, AAAA or CNAME), as
 * `network create --record` takes them: `printer=10.77.0.200`, `docs=CNAME:web`.
 */
export function parseRecord(spec: string): StaticRecord {
  const refuse = (why: string) => bad(`--record ${shown(spec)}: ${why}`);
  if (typeof spec !== 'string' || spec.length > 300) throw refuse('expected NAME=[TYPE:]VALUE');
  const eq = spec.indexOf('=');
  if (eq <= 0) throw refuse('expected NAME=[TYPE:]VALUE (such as printer=10.77.0.200 or docs=CNAME:web)');
  const name = spec.slice(0, eq);
  if (!isRecordName(name)) throw refuse('the name must be labels of letters, digits, "_" and "-"');
  const rest = spec.slice(eq + 1);
  const typed = /^(A|AAAA|CNAME):(.*)$/i.exec(rest);
  const type = typed ? typed[1].toUpperCase() : isIpv4(rest) ? 'A' : isIpv6(rest) ? 'AAAA' : undefined;
  const value = typed ? typed[2] : rest;
  if (type === undefined) throw refuse('the value is not an address; give TYPE:VALUE (A, AAAA or CNAME)');
  if (type === 'A' && !isIpv4(value)) throw refuse('not an IPv4 address');
  if (type === 'AAAA' && !isIpv6(value)) throw refuse('not an IPv6 address');
  if (type === 'CNAME' && !isTargetName(value)) throw refuse('the CNAME target is not a DNS name');
  return normalRecord({ name, type: type as 'A' | 'AAAA' | 'CNAME', value });
}

export function checkRecords(specs: readonly string[] | undefined, network: { name: string }): StaticRecord[] | undefined {
  if (specs === undefined || specs.length === 0) return undefined;
  if (specs.length > RECORDS_MAX) throw bad(`at most ${RECORDS_MAX} records`);
  const records = specs.map(parseRecord);
  const problems = nameProblems({ name: network.name, id: '', subnets: [], internal: false, upstreams: [], records }, []);
  if (problems.length > 0) throw bad(problems[0]);
  return records;
}

const HEALTH_FLAGS = { intervalMs: '--health-interval', timeoutMs: '--health-timeout', retries: '--health-retries', startPeriodMs: '--health-start-period' } as const;

/**
 * `--health SPEC` with its timing flags: the endpoint's check, within the limits of registry files
 * (healthCheckSchema), or undefined without --health. A timing flag without --health is refused.
 */
export function checkHealth(req: Pick<ConnectRequest, 'health' | 'healthIntervalMs' | 'healthTimeoutMs' | 'healthRetries' | 'healthStartPeriodMs'>): HealthCheck | undefined {
  const timing = { intervalMs: req.healthIntervalMs, timeoutMs: req.healthTimeoutMs, retries: req.healthRetries, startPeriodMs: req.healthStartPeriodMs };
  if (req.health === undefined) {
    const given = (Object.keys(timing) as Array<keyof typeof timing>).find((k) => timing[k] !== undefined);
    if (given) throw bad(`${HEALTH_FLAGS[given]} needs --health (tcp:PORT or http:PORT/PATH)`);
    return undefined;
  }
  const target = parseHealthSpec(req.health);
  if (!target) throw bad(`--health ${shown(req.health)}: expected tcp:PORT or http:PORT[/PATH] (a port 1-65535)`);
  const result = healthCheckSchema.safeParse({ ...target, ...Object.fromEntries(Object.entries(timing).filter(([, v]) => v !== undefined)) });
  if (!result.success) {
    const issue = result.error.issues[0];
    const field = issue?.path[0];
    const flag = typeof field === 'string' && field in HEALTH_FLAGS ? HEALTH_FLAGS[field as keyof typeof HEALTH_FLAGS] : '--health';
    throw bad(`${flag}: ${flag === '--health' ? issue?.message ?? 'not valid' : `must be ${issue?.message ?? 'valid'}`}`);
  }
  return result.data;
}
