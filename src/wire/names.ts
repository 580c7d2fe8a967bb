// Domain names as the registry and resolver see them: lower-case, no trailing dot, labels joined
// with '.'. Reverse names (RFC 1035 §3.5, RFC 3596 §2.5) map to and from addresses here.
import { createRequire } from 'node:module';
import ipaddr from 'ipaddr.js';

// dns-packet's table of type names (it ships no types for this file).
const typeTable = createRequire(import.meta.url)('dns-packet/types.js') as { toType(name: string): number };

/**
 * A record type as people type it (`aaaa`, `MX`, `TYPE65`), upper-cased as dns-packet names it, or
 * undefined when there is no such type (dns-packet would send TYPE0 for it).
 */
export function recordTypeName(text: string): string | undefined {
  if (typeof text !== 'string' || text.length > 12) return undefined;
  const upper = text.toUpperCase();
  const numeric = /^TYPE([1-9]\d{0,4})$/.exec(upper);
  if (numeric) return Number(numeric[1]) <= 65535 ? `UNKNOWN_${numeric[1]}` : undefined;
  return upper !== '*' && !upper.startsWith('UNKNOWN_') && typeTable.toType(upper) !== 0 ? upper : undefined;
}

/** RFC 1123 host label: letters, digits and hyphens, not starting or ending with a hyphen. */
const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/i;

export function isValidLabel(label: string): boolean {
  return LABEL.test(label);
}

/**
 * A label of a name people give endpoints and networks, as Docker, Compose and aardvark-dns take
 * them: letters, digits, '_' and '-', at most 63, not starting with '_' or '-', not ending with '-'
 * (`proj_web_1`, `proj_default`). Only names we register: queries are not checked against it.
 */
const SERVICE_LABEL = /^(?![-_])[a-z0-9_-]{1,63}(?<!-)$/i;

export function isServiceLabel(label: string): boolean {
  return typeof label === 'string' && SERVICE_LABEL.test(label);
}

/** Service labels joined by '.' (an alias such as `db.proj_default`), optionally ending in '.'. */
export function isServiceName(name: string): boolean {
  if (typeof name !== 'string') return false;
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name;
  return trimmed.length > 0 && trimmed.length <= 253 && trimmed.split('.').every(isServiceLabel);
}

/** A name someone may ask about (`_http._tcp.web`, `proj_web_1.proj_default`): labels of letters, digits, '_', '-'. */
export function isQueryName(name: string): boolean {
  if (typeof name !== 'string') return false;
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name;
  return trimmed.length > 0 && trimmed.length <= 253 && trimmed.split('.').every((l) => /^[a-z0-9_-]{1,63}$/i.test(l));
}

export function isValidName(name: string): boolean {
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name;
  return trimmed.length > 0 && trimmed.length <= 253 && trimmed.split('.').every(isValidLabel);
}

/** True when `name` equals `zone` or lies below it; both normalized. */
export function isInZone(name: string, zone: string): boolean {
  if (name === zone) return true;
  if (name.length <= zone.length || !name.endsWith(zone) || name[name.length - zone.length - 1] !== '.') return false;
  // The dot must separate labels: an escaped one ("web\\.lab", a single label) is not a boundary.
  let backslashes = 0;
  for (let i = name.length - zone.length - 2; i >= 0 && name[i] === '\\'; i--) backslashes++;
  return backslashes % 2 === 0;
}

/** The address a reverse name stands for, or undefined when it is not a full reverse name. */
export function addressFromReverseName(name: string): string | undefined {
  if (name.endsWith('.in-addr.arpa')) {
    const parts = name.slice(0, -'.in-addr.arpa'.length).split('.');
    if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) < 256)) return undefined;
    return parts.reverse().join('.');
  }
  if (name.endsWith('.ip6.arpa')) {
    const nibbles = name.slice(0, -'.ip6.arpa'.length).split('.');
    if (nibbles.length !== 32 || !nibbles.every((n) => /^[0-9a-f]$/.test(n))) return undefined;
    const hex = nibbles.reverse().join('');
    const groups = hex.match(/.{4}/g)!.join(':');
    return ipaddr.parse(groups).toString();
  }
  return undefined;
}

export function reverseName(address: string): string {
  const addr = ipaddr.parse(address);
  if (addr.kind() === 'ipv4') return `${addr.toByteArray().reverse().join('.')}.in-addr.arpa`;
  const hex = Buffer.from(addr.toByteArray()).toString('hex');
  return `${hex.split('').reverse().join('.')}.ip6.arpa`;
}
