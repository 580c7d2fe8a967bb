// The host's resolvers, the last level of upstreams: the nameservers of its resolv.conf (as
// plumbing/host-resolv-conf.ts reads them), re-read when the file changes. The file is polled
// (one stat a second) rather than watched with inotify: resolvconf, NetworkManager and
// systemd-resolved replace it by renaming a new file over it, often through a symlink, and an
// inotify watch on the file itself loses the changes that follow such a replace.
import { unwatchFile, watchFile, type Stats } from 'node:fs';
import type { Logger } from '../log.js';
import { readResolvConf } from '../plumbing/host-resolv-conf.js';

/** How often the file's stat is compared: a rewrite is used within about this long. */
const POLL_MS = 1000;

export class HostResolvers {
  private servers: string[] = [];
  private readonly onChange = (now: Stats, before: Stats) => {
    if (now.mtimeMs !== before.mtimeMs || now.ino !== before.ino || now.size !== before.size || now.ctimeMs !== before.ctimeMs) this.read();
  };

  constructor(private readonly file: string | false, private readonly log: Logger) {
    this.read();
    if (file) watchFile(file, { interval: POLL_MS, persistent: false }, this.onChange);
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
    if (this.file) unwatchFile(this.file, this.onChange);
  }
}
