// /etc/netns/NAME/resolv.conf for named namespaces: `ip netns exec NAME` bind-mounts it over
// /etc/resolv.conf, so programs there (glibc's getent, curl, ...) ask 127.0.0.11. Only files
// nsdns wrote (they carry its marker) are ever replaced or removed.
import { mkdir, readFile, rm, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from './state.js';

const MARKER = '# Written by nsdns';

export function resolvConfText(namespace: string, searchDomains: readonly string[]): string {
  return [
    `${MARKER} for namespace ${namespace}; removed when its last endpoint is disconnected.`,
    'nameserver 127.0.0.11',
    ...(searchDomains.length > 0 ? [`search ${searchDomains.join(' ')}`] : []),
    'options ndots:0',
    '',
  ].join('\n');
}

export class NamespaceResolvConf {
  constructor(private readonly dir: string) {}

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
    await writeFileAtomic(this.file(namespace), resolvConfText(namespace, searchDomains));
  }

  async remove(namespace: string): Promise<void> {
    const existing = await this.read(namespace);
    if (existing === undefined || !existing.startsWith(MARKER)) return;
    await rm(this.file(namespace), { force: true });
    await rmdir(path.dirname(this.file(namespace))).catch(() => {});
  }
}
