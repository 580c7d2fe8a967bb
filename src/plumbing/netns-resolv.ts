// /etc/netns/NAME/resolv.conf for named namespaces: `ip netns exec NAME` bind-mounts it over
// /etc/resolv.conf, so programs there (glibc's getent, curl, ...) ask 127.0.0.11. Only files
// nsdns wrote (they carry its marker) are ever replaced or removed.
import { mkdir, readFile, rm, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from './state.js';
import { isValidName } from '../wire/names.js';

const MARKER = '# Written by nsdns';

/** What a namespace keeps of the host's resolver configuration, as docker carries it into containers. */
export interface HostResolverSettings {
  /** The host's search domains (`search` or `domain`), after the network's own. */
  search: string[];
  /** The host's `timeout:N` and `attempts:N` options. */
  options: string[];
}

const NO_HOST: HostResolverSettings = { search: [], options: [] };
/** glibc reads at most 6 search domains in 256 characters (resolv.conf(5), before 2.26). */
const SEARCH_MAX = 6;

/**
 * The search domains and timeout/attempts options of a resolv.conf text. The last `search` or
 * `domain` line wins, as glibc reads them; anything that is not a plain DNS name or a bounded
 * number is left out (the text is the host's, but a namespace's file must stay well formed).
 */
export function hostResolverSettings(text: string): HostResolverSettings {
  let search: string[] = [];
  const options = new Map<string, string>();
  for (const line of text.slice(0, 64 * 1024).split('\n')) {
    const [keyword, ...args] = line.trim().split(/\s+/);
    if (keyword === 'search' || keyword === 'domain') {
      search = args.filter((d) => isValidName(d) && d !== '.').map((d) => d.toLowerCase().replace(/\.$/, ''));
    } else if (keyword === 'options') {
      for (const o of args) {
        const m = /^(timeout|attempts):(\d{1,2})$/.exec(o);
        if (m) options.set(m[1], `${m[1]}:${m[2]}`);
      }
    }
  }
  return { search: search.slice(0, SEARCH_MAX), options: [...options.values()] };
}

/** The host's settings from `file`, or none when it cannot be read (or `false`: no host resolver). */
export function readHostResolverSettings(file: string | false | undefined): HostResolverSettings {
  if (!file) return NO_HOST;
  try {
    return hostResolverSettings(readFileSync(file, 'utf8'));
  } catch {
    return NO_HOST;
  }
}

/**
 * A namespace's resolv.conf: nsdns, the networks' domains, then the host's search domains and
 * options. ndots:0 makes glibc try a short name as it is first, so a name that exists locally
 * always answers locally even when a host search domain has it too.
 */
export function resolvConfText(namespace: string, searchDomains: readonly string[], host: HostResolverSettings = NO_HOST): string {
  const search = [...new Set([...searchDomains, ...host.search])].slice(0, SEARCH_MAX);
  return [
    `${MARKER} for namespace ${namespace}; removed when its last endpoint is disconnected.`,
    'nameserver 127.0.0.11',
    ...(search.length > 0 ? [`search ${search.join(' ')}`] : []),
    `options ndots:0${host.options.map((o) => ` ${o}`).join('')}`,
    '',
  ].join('\n');
}

export class NamespaceResolvConf {
  /** `hostFile`: the host's resolv.conf, whose search domains and options every file keeps (false: none). */
  constructor(private readonly dir: string, private readonly hostFile: string | false = '/etc/resolv.conf') {}

  file(namespace: string): string {
    return path.join(this.dir, namespace, 'resolv.conf');
  }

  async read(namespace: string): Promise<string | undefined> {
    return readFile(this.file(namespace), 'utf8').catch(() => undefined);
  }

  async write(namespace: string, searchDomains: readonly string[]): Promise<void> {
    const existing = await this.read(namespace);
    if (existing !== undefined && !existing.startsWith(MARKER)) return; // someone else's file
    await mkdir(path.dirname(this.file(namespace)), { recursive: true });
    await writeFileAtomic(this.file(namespace), resolvConfText(namespace, searchDomains, readHostResolverSettings(this.hostFile)));
  }

  async remove(namespace: string): Promise<void> {
    const existing = await this.read(namespace);
    if (existing === undefined || !existing.startsWith(MARKER)) return;
    await rm(this.file(namespace), { force: true });
    await rmdir(path.dirname(this.file(namespace))).catch(() => {});
  }
}
