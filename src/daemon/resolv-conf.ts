// The host's resolvers, the last level of upstreams: the nameservers of its resolv.conf (as
// plumbing/host-resolv-conf.ts reads them), re-read when the file changes. The file is polled
// (one stat a second) rather than watched with inotify: resolvconf, NetworkManager and
// systemd-resolved replace it by renaming a new file over it, often through a symlink, and an
// inotify watch on the file itself loses the changes that follow such a replace. The stat each
// poll compares with is the one taken before the last read, not fs.watchFile's first poll: that
// one is taken a moment after the start, and a rewrite in between would never be seen.
import { stat, statSync, type Stats } from 'node:fs';
import type { Logger } from '../log.js';
import { readResolvConf } from '../plumbing/host-resolv-conf.js';

/** How often the file's stat is compared: a rewrite is used within about this long. */
const POLL_MS = 1000;

export class HostResolvers {
  private servers: string[] = [];
  /** The file's identity and times when it was last read ('' when it could not be seen). */
  private seen = '';
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(private readonly file: string | false, private readonly log: Logger) {
    this.read();
    if (file) this.timer = setInterval(() => stat(file, (err, now) => { if (statKey(err ? undefined : now) !== this.seen) this.read(); }), POLL_MS).unref();
  }

  get current(): readonly string[] {
    return this.servers;
  }

  private read(): void {
    if (!this.file) return;
    // Before the read: a rewrite during it leaves a newer stat, seen by the next poll.
    this.seen = statKey(statOrUndefined(this.file));
    try {
      this.servers = readResolvConf(this.file).nameservers;
    } catch (err) {
      this.log.warn({ err, file: this.file }, 'cannot read resolv.conf; host resolvers unavailable');
      this.servers = [];
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
  }
}

function statOrUndefined(file: string): Stats | undefined {
  try {
    return statSync(file);
  } catch {
    return undefined;
  }
}

/** What tells one version of the file from another: a rename over it changes ino, a rewrite in place the times and size. */
function statKey(s: Stats | undefined): string {
  return s === undefined ? '' : `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
}
