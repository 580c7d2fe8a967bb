// The parts of `network create` and `network connect` requests whose meaning the schemas
// (request-schemas.ts) leave to the planner: names, aliases, upstreams, published ports, services,
// static records and health checks, each parsed into what the registry keeps. Pure: nothing here
// looks at the registry or the host.
import ipaddr from 'ipaddr.js';
import { NsdnsError } from '../errors.js';
import { parseHostPort } from '../host-port.js';
import { isServiceLabel, isServiceName, isValidName } from '../wire/names.js';
import type { HealthCheck, PortMapping, Service, StaticRecord } from '../registry/types.js';
import type { ConnectRequest } from './request-schemas.js';
import { parseHealthSpec } from '../health/spec.js';
import { isUpstreamAddress, normalRecord, normalService } from '../registry/document.js';
import { nameProblems } from '../registry/name-rules.js';
import { healthCheckSchema, isIpv4, isIpv6, isPort, isRecordName, isServiceNameLabel, isTargetName, printable } from '../registry/fields.js';

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
  const seen = new Set<string>();
  for (const s of services) {
    const key = `${s.name}/${s.protocol}`;
    if (seen.has(key)) throw bad(`--service ${s.name}/${s.protocol} is given twice`);
    seen.add(key);
  }
  return services;
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
