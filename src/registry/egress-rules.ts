// Egress rules as the registry keeps them (issue 22): the one schema for every place a policy
// comes from (`network connect --egress-allow`, `network create --egress-policy FILE`, `egress:` in
// registry files, the state directory). An entry is a name or an address range:
//   { name: 'pypi.org' }              that name exactly
//   { name: '*.pythonhosted.org' }    any name below pythonhosted.org, not pythonhosted.org itself
//   { cidr: '10.0.5.0/24', port?: 443, protocol?: 'tcp' | 'udp' }   no protocol: both
// and each has a short form, the one the CLI takes and files may use instead of an object:
// `pypi.org`, `*.pythonhosted.org`, `10.0.5.0/24`, `10.0.5.0/24:443/tcp`, `[2001:db8::/32]:443`.
// Names are kept lower-case without the trailing dot, ranges by their network address.
import ipaddr from 'ipaddr.js';
import { z } from 'zod';
import { isValidName } from '../wire/names.js';
import { printable } from './fields.js';

export type EgressRule =
  | { name: string }
  | { cidr: string; port?: number; protocol?: 'tcp' | 'udp' };

/** Entries in one policy: far more than a sandbox needs, few enough to compile on every change. */
export const EGRESS_RULES_MAX = 1024;

const WILDCARD = '*.';

/** `name` or `*.name` in canonical form, or undefined when it is neither. */
export function egressName(text: string): string | undefined {
  if (typeof text !== 'string' || text.length > 255) return undefined;
  const lower = text.toLowerCase().replace(/\.$/, '');
  const bare = lower.startsWith(WILDCARD) ? lower.slice(WILDCARD.length) : lower;
  return isValidName(bare) && bare.length <= 253 ? lower : undefined;
}

/** A CIDR in canonical form (its network address, the prefix kept), or undefined. */
export function egressCidr(text: string): string | undefined {
  if (typeof text !== 'string' || text.length > 64 || text.includes('%') || !text.includes('/')) return undefined;
  try {
    const [address, bits] = ipaddr.parseCIDR(text);
    const network = address.kind() === 'ipv4'
      ? ipaddr.IPv4.networkAddressFromCIDR(text)
      : ipaddr.IPv6.networkAddressFromCIDR(text);
    return `${network.toString()}/${bits}`;
  } catch {
    return undefined;
  }
}

const port = z.int().min(1).max(65535);
const protocol = z.enum(['tcp', 'udp']);

const nameRule = z.strictObject({
  name: z.string().max(255).transform((s, ctx) => egressName(s) ?? (ctx.addIssue({ code: 'custom', message: 'not a DNS name or *.name (at most 253 characters)' }), z.NEVER)),
});
const cidrRule = z.strictObject({
  cidr: z.string().max(64).transform((s, ctx) => egressCidr(s) ?? (ctx.addIssue({ code: 'custom', message: 'not an IPv4 or IPv6 CIDR' }), z.NEVER)),
  port: port.optional(),
  protocol: protocol.optional(),
});
/**
 * One entry: its short form, or an object. Read by hand rather than by a zod union, whose error
 * would say only "Invalid input": each problem names the entry, escaped.
 */
export const egressRuleSchema = z.unknown().transform((value, ctx): EgressRule => {
  const rule = toRule(value);
  if (typeof rule !== 'string') return rule;
  ctx.addIssue({ code: 'custom', message: rule });
  return z.NEVER;
});

function toRule(value: unknown): EgressRule | string {
  if (typeof value === 'string') {
    const rule = parseEgressRule(value);
    return typeof rule === 'string' ? `"${printable(value, 60)}": ${rule}` : rule;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return `not ${SHORT_FORMS}, nor an object { name } or { cidr, port?, protocol? }`;
  const parsed = ('name' in value ? nameRule : cidrRule).safeParse(value);
  if (parsed.success) return parsed.data;
  return parsed.error.issues.slice(0, 3).map((i) => {
    const key = i.path.map(String).join('.');
    const field = /^[a-z]{1,10}$/.test(key) ? key : '';
    if (i.code === 'unrecognized_keys') return `unknown key${i.keys.length > 1 ? 's' : ''} ${i.keys.slice(0, 3).map((k) => `"${printable(k, 20)}"`).join(', ')}`;
    const shown = field === 'name' || field === 'cidr' ? ` "${printable((value as Record<string, unknown>)[field], 60)}"` : '';
    return `${field}${shown}: ${i.message.slice(0, 120)}`;
  }).join('; ');
}

/** A policy: at most EGRESS_RULES_MAX entries. */
export const egressRulesSchema = z.array(egressRuleSchema).max(EGRESS_RULES_MAX, `at most ${EGRESS_RULES_MAX} egress entries`)
  .transform((rules) => rules.map(canonicalRule));

function canonicalRule(rule: EgressRule): EgressRule {
  if ('name' in rule) return { name: rule.name };
  return { cidr: rule.cidr, ...(rule.port !== undefined && { port: rule.port }), ...(rule.protocol !== undefined && { protocol: rule.protocol }) };
}

const RANGE = /^(?:\[([^\]]{1,64})\]|([0-9.]{7,15}\/\d{1,2}))(?::(\d{1,5}))?(?:\/(tcp|udp))?$/;
const SHORT_FORMS = 'a name, *.name, CIDR, CIDR:PORT[/tcp|udp] or [IPv6-CIDR]:PORT[/tcp|udp]';

/**
 * A short form as typed (`pypi.org`, `*.pythonhosted.org`, `10.0.5.0/24:443/tcp`,
 * `[2001:db8::/32]:443`, a bare IPv6 CIDR), or the problem in words (never the text itself: the
 * caller names the entry, escaped).
 */
export function parseEgressRule(text: string): EgressRule | string {
  if (typeof text !== 'string' || text.length === 0 || text.length > 300) return `not ${SHORT_FORMS}`;
  if (!text.includes('/') && !text.startsWith('[')) {
    const name = egressName(text);
    return name !== undefined ? { name } : `not ${SHORT_FORMS}`;
  }
  const range = RANGE.exec(text);
  // A bare IPv6 CIDR: no port can follow it unbracketed.
  const cidr = egressCidr(range ? range[1] ?? range[2] : text);
  if (cidr === undefined) return `not ${SHORT_FORMS}`;
  if (!range) return { cidr };
  const port = range[3] === undefined ? undefined : Number(range[3]);
  if (port !== undefined && (port < 1 || port > 65535)) return 'port out of range (1-65535)';
  if (range[4] !== undefined && port === undefined) return 'a protocol needs a port (CIDR:PORT/tcp)';
  return { cidr, ...(port !== undefined && { port }), ...(range[4] !== undefined && { protocol: range[4] as 'tcp' | 'udp' }) };
}

/** The short form of a rule, as `network inspect` and `egress log` show it. */
export function egressRuleText(rule: EgressRule): string {
  if ('name' in rule) return rule.name;
  if (rule.port === undefined) return rule.cidr;
  const range = rule.cidr.includes(':') ? `[${rule.cidr}]` : rule.cidr;
  return `${range}:${rule.port}${rule.protocol ? `/${rule.protocol}` : ''}`;
}
