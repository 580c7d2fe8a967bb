// Record data in presentation form, as dig and zone files print it (RFC 1035 §5.1), from what
// dns-packet decodes: `nsdns debug --resolve` shows answers this way. Data from upstreams is
// escaped, never printed raw: it reaches a terminal.

/** Printable ASCII as is; anything else (and, quoted, `"` and `\`) as \DDD or \c, as zone files write them. */
function escaped(text: string, quoted: boolean): string {
  let out = '';
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    if (quoted && (ch === '"' || ch === '\\')) out += `\\${ch}`;
    else if (code < 0x20 || code > 0x7e) out += code > 0xff ? '?' : `\\${String(code).padStart(3, '0')}`;
    else out += ch;
  }
  return out;
}

/** A domain name as a zone file writes it: fully qualified (the root as "."). */
function fqdn(name: unknown): string {
  const text = escaped(String(name ?? ''), false);
  return text === '' || text === '.' ? '.' : text.endsWith('.') ? text : `${text}.`;
}

/** A character string (TXT, HINFO, ...) in quotes; upstream data stays escaped, never raw. */
function quotedString(value: unknown): string {
  const text = Buffer.isBuffer(value) ? value.toString('latin1') : String(value ?? '');
  return `"${escaped(text, true)}"`;
}

const hex = (b: Buffer) => b.toString('hex');

/**
 * A record's data in presentation form, as dig prints it: SRV "priority weight port target.", MX
 * "preference exchange.", TXT quoted strings, SOA its seven fields; a type without a form here
 * as RFC 3597's `\# LENGTH HEX` when raw, else its fields.
 */
export function presentData(type: string, data: unknown): string {
  const d = data as Record<string, unknown>;
  switch (type) {
    case 'A': case 'AAAA': return escaped(String(data), false);
    case 'CNAME': case 'NS': case 'PTR': case 'DNAME': return fqdn(data);
    case 'SRV': return `${d.priority ?? 0} ${d.weight ?? 0} ${d.port} ${fqdn(d.target)}`;
    case 'MX': return `${d.preference ?? 0} ${fqdn(d.exchange)}`;
    case 'TXT': case 'SPF': return (Array.isArray(data) ? data : [data]).map(quotedString).join(' ');
    case 'SOA': return `${fqdn(d.mname)} ${fqdn(d.rname)} ${d.serial} ${d.refresh} ${d.retry} ${d.expire} ${d.minimum}`;
    case 'CAA': return `${d.flags ?? (d.issuerCritical ? 128 : 0)} ${escaped(String(d.tag), false)} ${quotedString(d.value)}`;
    case 'HINFO': return `${quotedString(d.cpu)} ${quotedString(d.os)}`;
    case 'NAPTR': return `${d.order} ${d.preference} ${quotedString(d.flags)} ${quotedString(d.services)} ${quotedString(d.regexp)} ${fqdn(d.replacement)}`;
    default:
      if (Buffer.isBuffer(data)) return `\\# ${data.length}${data.length > 0 ? ` ${hex(data)}` : ''}`;
      if (data !== null && typeof data === 'object') {
        return Object.entries(d).map(([k, v]) => `${escaped(k, false)}=${Buffer.isBuffer(v) ? hex(v) : escaped(typeof v === 'object' ? JSON.stringify(v) : String(v), false)}`).join(' ');
      }
      return escaped(String(data), false);
  }
}
