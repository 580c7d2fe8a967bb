// A root Podman that touches nothing of the host's: its own network and mount namespace (held by
// one `sleep` process), tmpfs over /run, /dev/shm, /var/lib and /var/tmp there (netavark's config
// directory, the netns bind mounts, runc's state, the lock shm and the image blob cache all live
// there by default), a private resolv.conf, and storage, containers.conf and the network config
// directory in one temporary directory. `cleanup()` removes containers and networks, ends
// every process left in the namespace (all started through this sandbox) and removes the directory,
// storage included (`podman system reset` would write under root's ~/.config).
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { tempDir } from './tmp.js';
import { waitFor } from './wait.js';

export interface PodmanSandboxOptions {
  /** Directories netavark searches for aardvark-dns (and itself) first: containers.conf's helper_binaries_dir. */
  helperDirs: string[];
  /**
   * Environment of every podman command, and so of netavark and the DNS server it starts, given
   * the sandbox's directory.
   */
  env?: (dir: string) => Record<string, string>;
  /** The nameserver line Podman copies into containers after its own (an address nobody serves). */
  hostNameserver: string;
}

const PODMAN_HELPERS = ['/usr/local/libexec/podman', '/usr/local/lib/podman', '/usr/libexec/podman', '/usr/lib/podman'];

/**
 * Podman 4.3 without systemd (runc, cgroupfs, events in a file), every path of its own under
 * `dir`, and `helperDirs` searched before Podman's own helper directories.
 */
function containersConf(dir: string, helperDirs: string[]): string {
  const list = (xs: string[]) => `[${xs.map((x) => JSON.stringify(x)).join(', ')}]`;
  return [
    '[containers]',
    // Unasked, Podman wants 1048576 open files and a process limit that runc fails to set
    // ("error setting rlimit type 6/7: operation not permitted") where root lacks
    // CAP_SYS_RESOURCE, as on the CI machine: ask for limits below what root has.
    'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]',
    '[network]',
    'network_backend = "netavark"',
    `network_config_dir = ${JSON.stringify(path.join(dir, 'networks'))}`,
    '[engine]',
    'runtime = "runc"',
    'cgroup_manager = "cgroupfs"',
    'events_logger = "file"',
    `events_logfile_path = ${JSON.stringify(path.join(dir, 'tmp', 'events.log'))}`,
    `tmp_dir = ${JSON.stringify(path.join(dir, 'tmp'))}`,
    `image_copy_tmp_dir = ${JSON.stringify(path.join(dir, 'tmp'))}`,
    `helper_binaries_dir = ${list([...helperDirs, ...PODMAN_HELPERS])}`,
    '',
  ].join('\n');
}

export class PodmanSandbox {
  private constructor(
    private readonly tmp: ReturnType<typeof tempDir>,
    private readonly holder: ChildProcess,
    private readonly env: Record<string, string>,
  ) {}

  static async create(options: PodmanSandboxOptions): Promise<PodmanSandbox> {
    const tmp = tempDir('nsdns-podman-');
    for (const d of ['root', 'runroot', 'tmp', 'networks']) mkdirSync(path.join(tmp.dir, d));
    tmp.write('containers.conf', containersConf(tmp.dir, options.helperDirs));
    tmp.write('storage.conf', `[storage]\ndriver = "vfs"\ngraphroot = "${tmp.dir}/root"\nrunroot = "${tmp.dir}/runroot"\n`);
    tmp.write('resolv.conf', `nameserver ${options.hostNameserver}\n`);
    const holder = spawn('unshare', ['--mount', '--net', '--propagation', 'private', 'sleep', 'infinity'], { stdio: 'ignore' });
    const env = {
      ...options.env?.(tmp.dir),
      CONTAINERS_CONF: path.join(tmp.dir, 'containers.conf'),
      CONTAINERS_STORAGE_CONF: path.join(tmp.dir, 'storage.conf'),
    };
    const sandbox = new PodmanSandbox(tmp, holder, env);
    try {
      await waitFor(() => sandbox.netns() !== readlinkSync('/proc/self/ns/net'), { what: 'the sandbox namespaces' });
      const r = await sandbox.enter('sh', '-ec', [
        'for d in /run /dev/shm /var/lib /var/tmp; do mount -t tmpfs tmpfs "$d"; done',
        `mount --bind ${tmp.dir}/resolv.conf /etc/resolv.conf`,
        'ip link set lo up',
      ].join('\n'));
      if (r.exitCode !== 0) throw new Error(`setting up the Podman sandbox failed: ${r.stderr}`);
    } catch (err) {
      await sandbox.cleanup();
      throw err;
    }
    return sandbox;
  }

  get dir(): string {
    return this.tmp.dir;
  }

  /** A path as processes inside the sandbox see it. */
  inside(file: string): string {
    return `/proc/${this.holder.pid}/root${file}`;
  }

  /** Runs a command in the sandbox's namespaces; never throws: look at exitCode. */
  enter(cmd: string, ...args: string[]) {
    return execa('nsenter', ['-t', String(this.holder.pid), '-m', '-n', cmd, ...args], { reject: false, env: this.env, timeout: 60_000 });
  }

  podman(...args: string[]) {
    return this.enter('podman', '--root', path.join(this.dir, 'root'), '--runroot', path.join(this.dir, 'runroot'), ...args);
  }

  /** Like podman(), but throws with stderr when it fails. */
  async ok(...args: string[]): Promise<string> {
    const r = await this.podman(...args);
    if (r.exitCode !== 0) throw new Error(`podman ${args.join(' ')} failed (${r.exitCode}): ${r.stderr}`);
    return r.stdout;
  }

  /**
   * Imports an image made of Debian's static busybox with the applets named, from a tarball:
   * no registry is asked.
   */
  async importBusybox(image: string, applets: string[]): Promise<void> {
    const root = path.join(this.dir, 'image');
    mkdirSync(path.join(root, 'bin'), { recursive: true });
    copyFileSync('/bin/busybox', path.join(root, 'bin', 'busybox'));
    for (const applet of applets) symlinkSync('busybox', path.join(root, 'bin', applet));
    const tarball = path.join(this.dir, 'busybox.tar');
    await execa('tar', ['-C', root, '-cf', tarball, '.']);
    await this.ok('import', tarball, image);
  }

  /**
   * Links `target` at /usr/local/libexec/podman/`name`, where Podman looks before its own
   * helpers, as an overlay on /usr/local inside the sandbox (the host's stays as it is).
   */
  async linkHelper(name: string, target: string): Promise<void> {
    // The layer on the sandbox's tmpfs: an overlay's upper directory cannot be on every file
    // system (not on another overlay, as /tmp is in some CI containers).
    const layer = '/var/tmp/usr-local';
    const r = await this.enter('sh', '-ec', [
      `mkdir -p ${layer}/upper ${layer}/work`,
      `mount -t overlay overlay -o lowerdir=/usr/local,upperdir=${layer}/upper,workdir=${layer}/work /usr/local`,
      'mkdir -p /usr/local/libexec/podman',
      `ln -s ${target} /usr/local/libexec/podman/${name}`,
    ].join('\n'));
    if (r.exitCode !== 0) throw new Error(`linking ${name} in the sandbox failed: ${r.stderr}`);
  }

  private netns(): string {
    return readlinkSync(`/proc/${this.holder.pid}/ns/net`);
  }

  /** Pids of the processes in the sandbox's network namespace, the holder aside. */
  private processes(): number[] {
    const ns = this.netns();
    return readdirSync('/proc').filter((p) => /^\d+$/.test(p)).map(Number).filter((pid) => {
      if (pid === this.holder.pid) return false;
      try {
        return readlinkSync(`/proc/${pid}/ns/net`) === ns && !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
      } catch {
        return false;
      }
    });
  }

  async cleanup(): Promise<void> {
    if (this.holder.exitCode === null) {
      await this.podman('rm', '--force', '--all', '--time', '0');
      await this.podman('network', 'prune', '--force');
      // conmon, a server that did not exit: all started through this sandbox, ended by pid.
      for (const pid of this.processes()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch { /* gone meanwhile */ }
      }
      await waitFor(() => this.processes().length === 0, { what: 'the sandbox\'s processes end' });
      const exited = new Promise((resolve) => this.holder.once('exit', resolve));
      this.holder.kill('SIGKILL');
      await exited;
    }
    this.tmp.cleanup();
  }
}
