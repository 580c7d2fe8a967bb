// Egress policies as the DNS side uses them (issue 22): the rules of a namespace compiled once
// into a name matcher, and policy files read into rules. The rules themselves, their schema and
// short forms are the registry's (registry/egress-rules.ts).
//
// A policy is per namespace: a namespace that has any endpoint under a policy is governed by the
// union of its endpoints' policies (an endpoint's own `egress`, else its network's). Its other
// endpoints add nothing, and open nothing: one namespace has one firewall and one resolver.
import { NsdnsError } from '../errors.js';
import { parseDocumentData } from '../registry/document.js';
import { egressRulesSchema, type EgressRule } from '../registry/egress-rules.js';
import { printable } from '../registry/fields.js';
import type { Endpoint, Network } from '../registry/types.js';

/** Largest policy file read (`network create --egress-policy FILE`): 1024 entries fit many times over. */
export const POLICY_FILE_MAX_BYTES = 256 * 1024;

/** A namespace's policy, compiled: which names may be resolved. */
export interface EgressPolicy {
  readonly rules: readonly EgressRule[];
  /**
   * Whether `name` may be answered from outside. `name` as the wire reads it (Query.name):
   * lower-case, without the trailing dot. Exact entries match the name alone, `*.zone` entries any
   * name below the zone (not the zone itself).
   */
  allows(name: string): boolean;
}

/** Compiles `rules` once: a set of exact names and one of wildcard zones, so a query costs a few set lookups. */
export function compilePolicy(rules: readonly EgressRule[]): EgressPolicy {
  const exact = new Set<string>();
  const below = new Set<string>();
  for (const rule of rules) {
    if (!('name' in rule)) continue;
    if (rule.name.startsWith('*.')) below.add(rule.name.slice(2));
    else exact.add(rule.name);
  }
  const name = (n: string) => (n.endsWith('.') ? n.slice(0, -1) : n).toLowerCase();
  return {
    rules,
    allows(asked: string): boolean {
      const n = name(asked);
      // An escape (a dot inside a label, a byte that is not printable) is in no policy name, and
      // the split on dots below would read an escaped dot as a label boundary.
      if (n.includes('\\')) return false;
      if (exact.has(n)) return true;
      if (below.size === 0) return false;
      for (let dot = n.indexOf('.'); dot >= 0; dot = n.indexOf('.', dot + 1)) {
        if (below.has(n.slice(dot + 1))) return true;
      }
      return false;
    },
  };
}

/** The rules an endpoint is under: its own, else its network's default; undefined: none. */
export function endpointRules(endpoint: Endpoint, network: Network | undefined): readonly EgressRule[] | undefined {
  return endpoint.egress ?? network?.egress;
}

/** The policy of a namespace with these endpoints (the union of theirs), or undefined when none has one. */
export function namespacePolicy(endpoints: readonly Endpoint[], networkOf: (name: string) => Network | undefined): EgressPolicy | undefined {
  let union: EgressRule[] | undefined;
  for (const e of endpoints) {
    const rules = endpointRules(e, networkOf(e.network));
    if (rules !== undefined) (union ??= []).push(...rules);
  }
  return union === undefined ? undefined : compilePolicy(union);
}

/**
 * A policy file's text (YAML, or JSON when `source` ends in .json): a list of entries, objects or
 * short forms. Throws ERR_BAD_REQUEST naming the file and each bad entry, escaped.
 */
export function parsePolicyText(text: string, source: string): EgressRule[] {
  const where = printable(source, 200);
  if (Buffer.byteLength(text) > POLICY_FILE_MAX_BYTES) throw new NsdnsError('ERR_BAD_REQUEST', `${where}: larger than ${POLICY_FILE_MAX_BYTES} bytes`);
  let data: unknown;
  try {
    data = parseDocumentData(text, source);
  } catch (err) {
    throw new NsdnsError('ERR_BAD_REQUEST', (err as Error).message);
  }
  return checkRules(data, where);
}

/** `data` as rules, or ERR_BAD_REQUEST naming `where` and the first bad entries. */
export function checkRules(data: unknown, where: string): EgressRule[] {
  const parsed = egressRulesSchema.safeParse(data);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.slice(0, 5).map((i) => `${i.path.length > 0 ? `entry ${i.path.map(String).join('.').slice(0, 40)}: ` : ''}${i.message.slice(0, 200)}`);
  if (parsed.error.issues.length > 5) problems.push(`and ${parsed.error.issues.length - 5} more`);
  throw new NsdnsError('ERR_BAD_REQUEST', `${where}: ${problems.join('; ')}`);
}
