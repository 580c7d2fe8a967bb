// /etc/netns/NAME/resolv.conf for named namespaces: `ip netns exec NAME` bind-mounts it over
// /etc/resolv.conf, so programs there (glibc's getent, curl, ...) ask 127.0.0.11. Only files
// nsdns wrote (they carry its marker) are ever replaced or removed.
import { mkdir, readFile, rm, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from './state.js';
import { readResolvConf, SEARCH_MAX, type ResolvConf } from './host-resolv-conf.js';

const MARKER = '# Written by nsdns';

/** What a namespace keeps of the host's resolver configuration, as docker carries it into containers. */
export type HostResolverSettings = Pick<ResolvConf, 'search' | 'options'>;

const NO_HOST: HostResolverSettings = { search: [], options: [] };

/** The host's search domains and options from `file`, or none when it cannot be read (or `false`: no host resolver). */
export function readHostResolverSettings(file: string | false | undefined): HostResolverSettings {
  if (!file) return NO_HOST;
  try {
    const { search, options } = readResolvConf(file);
    return { search, options };
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
