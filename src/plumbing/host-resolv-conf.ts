// The host's resolv.conf, read as glibc reads it (resolv.conf(5)): its nameservers are nsdns's
// last level of upstreams (daemon/resolv-conf.ts), its search domains and timeout/attempts options
// go on into each namespace's file (netns-resolv.ts). The text is the host's, but what leaves here
// reaches sockets and files that must stay well formed: only literal addresses and plain names.
import { closeSync, openSync, readSync } from 'node:fs';
import { parseAddress } from '../host-port.js';
import { isValidName } from '../wire/names.js';

export interface ResolvConf {
  /** Canonical addresses; a link-local one keeps its zone (`fe80::1%eth0`), the interface it is reached through. */
  nameservers: string[];
  /** Lower case, without the trailing dot. */
  search: string[];
  /** `timeout:N` and `attempts:N`, the options a namespace's resolver keeps. */
  options: string[];
}

/** A resolv.conf is a few lines; only this much of a larger file is read. */
export const RESOLV_CONF_MAX_BYTES = 64 * 1024;
/** glibc asks at most 3 nameservers (MAXNS) and reads more lines in vain. */
const NAMESERVERS_MAX = 3;
/** glibc reads at most 6 search domains in 256 characters (resolv.conf(5), before 2.26). */
export const SEARCH_MAX = 6;

/**
 * The nameservers, search domains and options of a resolv.conf text. A nameserver line that is not
 * an address is skipped without taking one of the three places, and the last `search` or `domain`
 * line wins, as in glibc.
 */
export function parseResolvConf(text: string): ResolvConf {
  const nameservers: string[] = [];
  let search: string[] = [];
  const options = new Map<string, string>();
  for (const line of text.slice(0, RESOLV_CONF_MAX_BYTES).split('\n')) {
    const [keyword, ...args] = line.trim().split(/\s+/);
    if (keyword === 'nameserver' && nameservers.length < NAMESERVERS_MAX) {
      const server = parseAddress(args[0] ?? '', { allowZone: true });
      if (server) nameservers.push(server.host);
    } else if (keyword === 'search' || keyword === 'domain') {
      search = args.filter((d) => isValidName(d) && d !== '.').map((d) => d.toLowerCase().replace(/\.$/, ''));
    } else if (keyword === 'options') {
      for (const o of args) {
        const m = /^(timeout|attempts):(\d{1,2})$/.exec(o);
        if (m) options.set(m[1], `${m[1]}:${m[2]}`);
      }
    }
  }
  return { nameservers, search: search.slice(0, SEARCH_MAX), options: [...options.values()] };
}

/** `file` parsed, at most RESOLV_CONF_MAX_BYTES of it; throws when it cannot be read. */
export function readResolvConf(file: string): ResolvConf {
  const fd = openSync(file, 'r');
  try {
    const buffer = Buffer.alloc(RESOLV_CONF_MAX_BYTES);
    let length = 0;
    while (length < buffer.length) {
      const n = readSync(fd, buffer, length, buffer.length - length, null);
      if (n === 0) break;
      length += n;
    }
    return parseResolvConf(buffer.toString('utf8', 0, length));
  } finally {
    closeSync(fd);
  }
}
