// The daemon's settings: defaults, then the config file (YAML or JSON), then command-line flags.
// Everything is validated here, with messages that name the offending key.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { NsdnsError } from '../errors.js';
import { upstreamAddress, yaml } from '../registry/document.js';
import { parseListenSpec } from './listen-spec.js';
import { parseAddress, parseHostPort } from '../host-port.js';
import ipaddr from 'ipaddr.js';
import { isValidName } from '../wire/names.js';
import { isEtcdUrl, parseEtcdUrl } from '../etcd/etcd-url.js';
import { isNodeName } from '../etcd/node-name.js';
import { MAX_LEARNED } from '../egress/egress-rules.js';

const cidr = z.string().refine((s) => { try { ipaddr.parseCIDR(s); return true; } catch { return false; } }, 'not a CIDR (ADDRESS/PREFIX)');

const listenSchema = z.object({
  /** Canonical, as --listen gives it: the loop check compares it with upstreams' keys. */
  address: z.string().transform((s, ctx) => parseAddress(s, { allowZone: true })?.host
    ?? (ctx.addIssue({ code: 'custom', message: 'not an IP address' }), z.NEVER)),
  port: z.number().int().min(0).max(65535).default(53),
  /** The networks this listener may see; all when absent. */
  networks: z.array(z.string()).optional(),
}).strict();

/** `ADDR:PORT` or `[ADDR6]:PORT` of the metrics listener: a literal address, never a host name. */
const hostPort = z.string().max(64).refine((s) => parseHostPort(s) !== undefined, 'not ADDRESS:PORT (IPv4, or [IPv6]:PORT; port 0-65535)');

export const configSchema = z.object({
  stateDir: z.string().default('/var/lib/nsdns'),
  socket: z.string().default('/run/nsdns/nsdns.sock'),
  /** A group whose members may use the control socket too (like docker.sock's "docker"); root only when absent. */
  socketGroup: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}\$?$/i, 'not a group name').optional(),
  /** Registry directories and shared registries (`etcd://HOST:PORT[,…]/PREFIX`). */
  registries: z.array(z.string().superRefine((s, ctx) => {
    if (!isEtcdUrl(s)) return;
    try { parseEtcdUrl(s); } catch (err) { ctx.addIssue({ code: 'custom', message: (err as Error).message }); }
  })).default([]),
  /** How shared registries (etcd://) are reached and read. */
  etcd: z.object({
    /** CA certificate (PEM): given, etcd is spoken to over TLS. */
    cacert: z.string().optional(),
    cert: z.string().optional(),
    key: z.string().optional(),
    user: z.string().min(1).max(128).optional(),
    /** The user's password is read from this file (its first line), never given on a command line. */
    passwordFile: z.string().optional(),
    /** A value larger than this is refused with a log line naming its key. */
    maxValueBytes: z.number().int().min(1024).max(1024 * 1024).default(64 * 1024),
    /**
     * After etcd was away, a delete of a key that had a lease is held back this long: a live
     * host's re-announcement (its lease expired while etcd was stopped) replaces it without a gap.
     */
    deleteGraceMs: z.number().int().min(0).max(600_000).default(30_000),
    /** How often etcd is asked whether it still answers (a stopped server never closes the watch). */
    checkIntervalMs: z.number().int().min(100).max(60_000).default(2000),
    /** Longest wait between attempts to reach etcd again (the wait doubles from 100 ms). */
    maxBackoffMs: z.number().int().min(100).max(60_000).default(5000),
  }).strict().prefault({}),
  /** Limits on registry files: anything larger is refused with a log line, never read. */
  registryFiles: z.object({
    maxBytes: z.number().int().min(1024).default(4 * 1024 * 1024),
    /**
     * Ranges a file's health checks may probe besides its networks' subnets (which never include
     * loopback, link-local or the host's own addresses). Here only, never in a file.
     */
    probeAllow: z.array(cidr).max(256).default([]),
  }).strict().prefault({}),
  /**
   * Who a host listener answers (CIDRs). Absent: loopback and the host's own connected subnets,
   * like dnsmasq's local-service, so nsdns is never an open resolver by accident.
   */
  allow: z.array(cidr).optional(),
  /** Objects, or `ADDR:PORT[=net,...]` strings as on the command line. */
  listen: z.array(z.preprocess((value, ctx) => {
    if (typeof value !== 'string') return value;
    try { return parseListenSpec(value); } catch (err) { ctx.addIssue({ code: 'custom', message: (err as Error).message }); return z.NEVER; }
  }, listenSchema)).default([]),
  upstreams: z.array(upstreamAddress).default([]),
  /**
   * Also answer each provisioned network's names at its gateway address (port 53), for the host and
   * for clients on that network; bridges are registered with systemd-resolved when it runs.
   */
  hostDns: z.boolean().default(false),
  /** Where the host's resolvers are read from, or false to never use them. */
  resolvConf: z.union([z.string(), z.literal(false)]).default('/etc/resolv.conf'),
  ttl: z.number().int().min(0).max(86400).default(5),
  maxUdpSize: z.number().int().min(512).max(4096).default(1232),
  cache: z.object({
    size: z.number().int().min(0).default(10_000),
    maxTtl: z.number().int().min(0).default(3600),
    maxNegativeTtl: z.number().int().min(0).default(300),
    /** Most bytes of answers (and their keys) kept; a forwarded TCP answer may be ~64 KB. */
    maxBytes: z.number().int().min(65536).default(32 * 1024 * 1024),
    /** The part of maxBytes one namespace (or host-listener client address) may hold. */
    tenantShare: z.number().gt(0).max(1).default(0.25),
    /**
     * shared: tenants asking the same upstreams share entries (the remaining TTL shows what another
     * asked lately); network: entries are kept apart per set of networks a client sees.
     */
    scope: z.enum(['shared', 'network']).default('shared'),
  }).strict().prefault({}),
  forward: z.object({
    timeoutMs: z.number().int().min(10).default(1500),
    budgetMs: z.number().int().min(10).default(4000),
    maxInflight: z.number().int().min(1).default(1024),
    maxInflightPerListener: z.number().int().min(1).default(256),
    /** Most distinct upstream exchanges at once for one client (a namespace, or a source address). */
    maxInflightPerClient: z.number().int().min(1).default(64),
    /** Upstream queries (cache misses) one client may start per second; 0: no rate limit. */
    clientQueriesPerSecond: z.number().int().min(0).default(500),
    /** 0x20: random letter case in upstream questions, checked case-exactly in replies. */
    randomizeCase: z.boolean().default(false),
  }).strict().prefault({}),
  tcp: z.object({
    idleTimeoutMs: z.number().int().min(100).default(10_000),
    maxConnections: z.number().int().min(1).default(256),
    /** Connections from one client address on one listener (a namespace listener's clients are all its own). */
    maxConnectionsPerClient: z.number().int().min(1).default(64),
    /** Connections over all listeners together (file descriptors). */
    maxTotalConnections: z.number().int().min(1).default(4096),
    /** A message must arrive whole within this long of its first byte, ms (a slow sender is cut off). */
    messageTimeoutMs: z.number().int().min(100).default(5000),
    /** Unanswered queries on one connection: reading stops while this many are open. */
    maxPendingPerConnection: z.number().int().min(1).default(64),
    /** Queries one connection may send before it is closed (the client reconnects). */
    maxQueriesPerConnection: z.number().int().min(1).default(10_000),
    /** Reply bytes the client has not read yet, per connection: reading stops while over; closed when it stays over. */
    maxUnsentBytes: z.number().int().min(1024).default(128 * 1024),
    /** The same, all connections together. */
    maxTotalUnsentBytes: z.number().int().min(64 * 1024).default(16 * 1024 * 1024),
  }).strict().prefault({}),
  plumbing: z.object({
    /** Prefix of the links nsdns names (bridges `<prefix>br-…`, veth host ends `<prefix>v…`). */
    linkPrefix: z.string().regex(/^[a-z][a-z0-9]{0,3}$/, '1-4 lower-case letters or digits, starting with a letter').default('ns'),
    /** The nftables table (family inet) nsdns owns; nothing else is touched. */
    nftTable: z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_]{0,31}$/).default('nsdns'),
    firewall: z.enum(['nftables', 'none']).default('nftables'),
    /** Where `ip netns exec` finds per-namespace files (resolv.conf). */
    resolvConfDir: z.string().default('/etc/netns'),
    /** Address pools for networks created without --subnet: CIDR and the size of each block. */
    pools: z.array(z.object({ base: z.string(), size: z.number().int().min(8).max(126) }).strict()).optional(),
    /** How often endpoints whose namespace vanished are looked for and removed, ms (0: never). */
    reapIntervalMs: z.number().int().min(0).default(5000),
    /** How often the nft table is compared to what nsdns applied and restored if gone or changed, ms (0: never). */
    firewallCheckMs: z.number().int().min(0).max(60_000).default(2000),
  }).strict().prefault({}),
  metrics: z.object({
    /** Where /metrics, /healthz and /readyz are served (plain HTTP); off when absent. */
    listen: hostPort.optional(),
  }).strict().prefault({}),
  dns: z.object({
    /** The name a namespace reaches the host by: its first non-internal network's gateway. */
    hostName: z.string().refine(isValidName, 'not a valid DNS name').default('host.nsdns.internal'),
  }).strict().prefault({}),
  /** Egress by name (docs/egress.md). */
  egress: z.object({
    /** Seconds a learned address stays open past its answer's TTL. */
    grace: z.number().int().min(0).max(86400).default(30),
    /** One JSON line per decision (namespace, name, allowed) in the daemon's log. */
    logDecisions: z.boolean().default(false),
    /** Log the firewall's drops in the kernel log (rate-limited, prefix "nsdns-egress-drop: "). */
    logDrops: z.boolean().default(false),
    /** The most addresses a namespace may hold open per family: the size of its learned sets. */
    maxLearned: z.number().int().min(MAX_LEARNED.least).max(MAX_LEARNED.most).default(MAX_LEARNED.byDefault),
  }).strict().prefault({}),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** etcd://HOST:PORT[,…]/PREFIX: publish the networks nsdns provisions (and their endpoints) there. */
  announce: z.string().refine((s) => { try { parseEtcdUrl(s); return true; } catch { return false; } }, 'not an etcd:// URL (etcd://HOST:PORT[,HOST:PORT…]/PREFIX)').optional(),
  /** The lease of announced endpoints, seconds: how long a dead host's names outlive it. */
  announceTtl: z.number().int().min(2).max(3600).default(10),
  /** The node announced endpoints are kept under; default: host name and an id kept in stateDir. */
  nodeName: z.string().refine(isNodeName, '1-128 letters, digits, ".", "_" and "-"').optional(),
  /** etcd://HOST:PORT[,…]/PREFIX: a cluster member reads (registries) and announces (announce) this prefix, and keeps overlay networks there. */
  cluster: z.string().refine((s) => { try { parseEtcdUrl(s); return true; } catch { return false; } }, 'not an etcd:// URL (etcd://HOST:PORT[,HOST:PORT…]/PREFIX)').optional(),
  /** This host's underlay address: the source of its VXLAN traffic, where other hosts send its endpoints' frames. */
  advertiseAddress: z.string().transform((s, ctx) => parseAddress(s)?.host
    ?? (ctx.addIssue({ code: 'custom', message: 'not an IP address' }), z.NEVER)).optional(),
}).strict().superRefine((c, ctx) => {
  if (c.advertiseAddress !== undefined && c.cluster === undefined) ctx.addIssue({ code: 'custom', path: ['advertiseAddress'], message: 'needs cluster (--cluster etcd://…/PREFIX)' });
  if (c.cluster !== undefined && c.announce !== undefined && c.announce !== c.cluster) ctx.addIssue({ code: 'custom', path: ['announce'], message: 'a cluster member announces to its cluster: give --cluster alone, or the same URL' });
}).transform((c) => {
  // --cluster is --registry and --announce on one prefix: the rest of the daemon knows only those two.
  if (c.cluster === undefined) return c;
  return { ...c, announce: c.cluster, registries: c.registries.includes(c.cluster) ? c.registries : [...c.registries, c.cluster] };
});

export type Config = z.output<typeof configSchema>;
export type ListenConfig = Config['listen'][number];

/** Flags as the CLI parsed them: only what was given is set. */
export interface ConfigFlags {
  config?: string;
  stateDir?: string;
  socket?: string;
  socketGroup?: string;
  registry?: string[];
  allow?: string[];
  listen?: string[];
  upstream?: string[];
  hostDns?: boolean;
  resolvConf?: string | false;
  ttl?: number;
  cacheSize?: number;
  maxTtl?: number;
  logLevel?: string;
  linkPrefix?: string;
  nftTable?: string;
  firewall?: string;
  resolvConfDir?: string;
  metrics?: string;
  etcdCacert?: string;
  etcdCert?: string;
  etcdKey?: string;
  etcdUser?: string;
  etcdPasswordFile?: string;
  announce?: string;
  announceTtl?: number;
  nodeName?: string;
  cluster?: string;
  advertiseAddress?: string;
}

export function loadConfig(flags: ConfigFlags): Config {
  const fromFile = flags.config ? readConfigFile(flags.config) : {};
  const merged: Record<string, unknown> = { ...fromFile };
  const set = (key: string, value: unknown) => { if (value !== undefined) merged[key] = value; };
  set('stateDir', flags.stateDir);
  set('socket', flags.socket);
  set('socketGroup', flags.socketGroup);
  set('registries', flags.registry);
  set('allow', flags.allow);
  set('listen', flags.listen);
  set('upstreams', flags.upstream);
  set('hostDns', flags.hostDns);
  set('resolvConf', flags.resolvConf);
  set('ttl', flags.ttl);
  set('logLevel', flags.logLevel);
  set('announce', flags.announce);
  set('announceTtl', flags.announceTtl);
  set('nodeName', flags.nodeName);
  set('cluster', flags.cluster);
  set('advertiseAddress', flags.advertiseAddress);
  if (flags.metrics !== undefined) merged.metrics = { ...(merged.metrics as object | undefined), listen: flags.metrics };
  const plumbing = { ...(merged.plumbing as object | undefined) } as Record<string, unknown>;
  for (const key of ['linkPrefix', 'nftTable', 'firewall', 'resolvConfDir'] as const) if (flags[key] !== undefined) plumbing[key] = flags[key];
  if (Object.keys(plumbing).length > 0) merged.plumbing = plumbing;
  const etcd = { ...(merged.etcd as object | undefined) } as Record<string, unknown>;
  for (const [flag, key] of [['etcdCacert', 'cacert'], ['etcdCert', 'cert'], ['etcdKey', 'key'], ['etcdUser', 'user'], ['etcdPasswordFile', 'passwordFile']] as const) {
    if (flags[flag] !== undefined) etcd[key] = flags[flag];
  }
  if (Object.keys(etcd).length > 0) merged.etcd = etcd;
  if (flags.cacheSize !== undefined || flags.maxTtl !== undefined) {
    const cache = { ...(merged.cache as object | undefined) } as Record<string, unknown>;
    if (flags.cacheSize !== undefined) cache.size = flags.cacheSize;
    if (flags.maxTtl !== undefined) cache.maxTtl = flags.maxTtl;
    merged.cache = cache;
  }
  return validate(merged, flags.config ?? 'command line');
}

export function validate(data: unknown, source: string): Config {
  const parsed = configSchema.safeParse(data);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`);
    throw new NsdnsError('ERR_CONFIG', `invalid configuration in ${source}: ${problems.join('; ')}`);
  }
  return parsed.data;
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new NsdnsError('ERR_CONFIG', `cannot read config file ${path}: ${(err as Error).message}`, { cause: err });
  }
  let data: unknown;
  try {
    data = yaml().parse(text);
  } catch (err) {
    throw new NsdnsError('ERR_CONFIG', `config file ${path} is not valid YAML/JSON: ${(err as Error).message}`, { cause: err });
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data)) throw new NsdnsError('ERR_CONFIG', `config file ${path} must hold a mapping of settings`);
  return data as Record<string, unknown>;
}
