// The host's resolvers, the last level of upstreams: the first three `nameserver` lines of
// resolv.conf (glibc reads no more), re-read when the file changes.
import { readFileSync } from 'node:fs';
import chokidar, { type FSWatcher } from 'chokidar';
import type { Logger } from '../log.js';

export function parseResolvConf(text: string): string[] {
  const servers: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m && servers.length < 3) servers.push(m[1].replace(/%.*$/, ''));
  }
  return servers;
}

export class HostResolvers {
  private servers: string[] = [];
  private watcher: FSWatcher | undefined;

  constructor(private readonly file: string | false, private readonly log: Logger) {
    this.read();
    if (file) {
      this.watcher = chokidar.watch(file, { ignoreInitial: true });
      this.watcher.on('all', () => this.read());
    }
  }

  get current(): readonly string[] {
    return this.servers;
  }

  private read(): void {
    if (!this.file) return;
    try {
      this.servers = parseResolvConf(readFileSync(this.file, 'utf8'));
    } catch (err) {
      this.log.warn({ err, file: this.file }, 'cannot read resolv.conf; host resolvers unavailable');
      this.servers = [];
    }
  }

  async close(): Promise<void> {
    await this.watcher?.close();
  }
}
