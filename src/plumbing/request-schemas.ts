// The requests that change networks (`network create`, `network connect`) as the control socket
// receives them: one zod schema each, and their types inferred from it, so the boundary and the
// planner read the same definition. The schemas check structure and size (strict objects, bounded
// strings, arrays and numbers) and the fields that reach `ip`/`nft` with the schemas of registry
// files (registry/fields.ts); what needs the registry or the host (names taken, subnets free,
// addresses, ports) and the NAME:PORT-like specs are judged once, by the planner.
import { z } from 'zod';
import { egressRulesSchema } from '../registry/egress-rules.js';
import { HEALTH_LIMITS, ifname, ipAddress, ipv4Address, ipv6Address, labelsSchema, networkOptions, RECORDS_MAX, SERVICES_MAX, unicastMac } from '../registry/fields.js';

const MAX_ITEMS = 64;

/** A bounded, non-empty string. */
export const text = (max = 255) => z.string().min(1).max(max);
/** A bounded list (of bounded strings unless told). */
export const list = (item = text()) => z.array(item).max(MAX_ITEMS);
/** An address, CIDR or ADDRESS:PORT in text form; its meaning is checked by the planner. */
const address = text(64);

export const createNetworkSchema = z.strictObject({
  name: text(),
  /** bridge (default), macvlan or ipvlan (sublinks.ts): these two need `options.parent`; overlay: a cluster's (etcd/cluster-networks.ts). */
  driver: z.enum(['bridge', 'macvlan', 'ipvlan', 'overlay']).optional(),
  subnets: list(address).optional(),
  gateway: ipAddress.optional(),
  ipRange: address.optional(),
  /** `--aux-address NAME=IP`: never allocated (aux-addresses.ts judges them). */
  auxAddresses: z.record(text(63), address).refine((o) => Object.keys(o).length <= MAX_ITEMS, `at most ${MAX_ITEMS} aux addresses`).optional(),
  internal: z.boolean().optional(),
  bridge: ifname.optional(),
  mtu: z.int().min(68).max(65535).optional(),
  dnsUpstreams: list(address).optional(),
  domain: text().optional(),
  // Checked before the record: zod drops a "__proto__" key silently, and it should be refused.
  options: z.custom<object>((o) => typeof o !== 'object' || o === null || !Object.hasOwn(o, '__proto__'), 'option key "__proto__" is not allowed')
    .pipe(networkOptions).optional(),
  /** `--label k=v`: network metadata. */
  labels: labelsSchema.optional(),
  /** `--record NAME=[TYPE:]VALUE` (A, AAAA, CNAME), judged by the planner. */
  records: z.array(text(300)).max(RECORDS_MAX).optional(),
  /** `--egress-policy FILE`, read by the CLI: the default egress policy of the network's endpoints. */
  egress: egressRulesSchema.optional(),
});

/** A health timing, bounded here; the planner holds it to the limits of registry files, in words naming the flag. */
const timing = (what: keyof typeof HEALTH_LIMITS) => z.int().min(0).max(HEALTH_LIMITS[what].max * 10).optional();

export const connectSchema = z.strictObject({
  network: text(),
  target: text(4096),
  name: text().optional(),
  aliases: list().optional(),
  ip: ipv4Address.optional(),
  ip6: ipv6Address.optional(),
  // Lower case, as `ip link` shows it and state files keep it.
  mac: unicastMac.transform((mac) => mac.toLowerCase()).optional(),
  ifname: ifname.optional(),
  dns: list(address).optional(),
  publish: list(text(64)).optional(),
  /** `--service NAME:PORT[/tcp|udp]`, judged by the planner. */
  services: z.array(text(80)).max(SERVICES_MAX).optional(),
  /** `--label k=v`: answered as TXT at the endpoint's names. */
  labels: labelsSchema.optional(),
  /** `--health tcp:PORT` or `http:PORT[/PATH]`, judged by the planner with the timings below. */
  health: text(300).optional(),
  healthIntervalMs: timing('intervalMs'),
  healthTimeoutMs: timing('timeoutMs'),
  healthRetries: timing('retries'),
  healthStartPeriodMs: timing('startPeriodMs'),
  /** `--health-hide-own`: the endpoint's own name too answers only while it is healthy. */
  healthHideOwn: z.boolean().optional(),
  /** `--egress-allow X` (repeatable), short forms or objects: the endpoint's egress policy. */
  egress: egressRulesSchema.optional(),
});

export type CreateNetworkRequest = z.infer<typeof createNetworkSchema>;
export type ConnectRequest = z.infer<typeof connectSchema>;
