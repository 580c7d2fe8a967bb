// The host's resolvers, the last level of upstreams: the nameservers of its resolv.conf (as
// plumbing/host-resolv-conf.ts reads them), re-read when the file changes.
import chokidar, { type FSWatcher } from 'chokidar';
import type { Logger } from '../log.js';
import { readResolvConf } from '../plumbing/host-resolv-conf.js';

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
      this.servers = readResolvConf(this.file).nameservers;
    } catch (err) {
      this.log.warn({ err, file: this.file }, 'cannot read resolv.conf; host resolvers unavailable');
      this.servers = [];
    }
  }

  async close(): Promise<void> {
    await this.watcher?.close();
  }
}
