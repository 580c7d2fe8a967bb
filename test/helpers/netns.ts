// Kernel objects for the privileged tests: uniquely named namespaces, and a running daemon with
// its own socket, nft table and link prefix. Everything is removed by `cleanup()`, also after a
// failure. These tests need root; without it they are skipped.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { MAIN, ROOT, startDaemon, type RunningDaemon } from './daemon.js';

export const isRoot = process.getuid?.() === 0;
export const needsRoot = isRoot ? false : 'needs root (network namespaces, links, nftables)';

/** Runs a command and returns its stdout; throws with stderr on failure. */
export async function sh(cmd: string, ...args: string[]): Promise<string> {
  return (await execa(cmd, args)).stdout;
}

/**
 * Test files run side by side, and a lab's link prefix has only 3 random hex digits: a tag is
 * claimed with an exclusive mkdir under the temporary directory, so no two live labs (of any test
 * process on this host) share a prefix, and one lab's cleanup never removes another's links. A
 * claim whose process is gone is taken over.
 */
const CLAIMS = path.join(tmpdir(), 'nsdns-test-lab-tags');

function claimTag(): string {
  mkdirSync(CLAIMS, { recursive: true });
  for (;;) {
    const tag = randomBytes(3).toString('hex');
    const claim = path.join(CLAIMS, tag.slice(0, 3));
    try {
      mkdirSync(claim);
      writeFileSync(path.join(claim, 'pid'), String(process.pid));
      return tag;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let owner = NaN;
      try { owner = Number(readFileSync(path.join(claim, 'pid'), 'utf8')); } catch { /* being written: taken */ }
      if (Number.isInteger(owner) && owner > 0 && !alive(owner)) rmSync(claim, { recursive: true, force: true });
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class Lab {
  readonly tag = isRoot ? claimTag() : randomBytes(3).toString('hex');
  /** Short unique prefix for this lab's links (≤ 4 chars, as the config wants). */
  readonly linkPrefix = `t${this.tag.slice(0, 3)}`;
  readonly nftTable = `nsdns_test_${this.tag}`;
  readonly namespaces: string[] = [];
  readonly extraLinks: string[] = [];
  daemon: RunningDaemon | undefined;
  private stateDir: string | undefined;

  /** A new namespace `ns<tag>-<name>` with lo up. */
  async namespace(name: string): Promise<string> {
    const full = `ns${this.tag}-${name}`;
    await sh('ip', 'netns', 'add', full);
    this.namespaces.push(full);
    await sh('ip', '-n', full, 'link', 'set', 'lo', 'up');
    return full;
  }

  /**
   * An "outside" host: a new namespace on its own veth link (not nsdns's), routed through this
   * host, with `hostAddress` on the host end and `outsideAddress` inside (one /30).
   */
  async outsideHost(name: string, hostAddress: string, outsideAddress: string): Promise<string> {
    const ns = await this.namespace(name);
    const hostEnd = `${this.linkPrefix}out`;
    this.extraLinks.push(hostEnd);
    await sh('ip', 'link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    await sh('ip', 'addr', 'add', `${hostAddress}/30`, 'dev', hostEnd);
    await sh('ip', 'link', 'set', hostEnd, 'up');
    await sh('ip', '-n', ns, 'addr', 'add', `${outsideAddress}/30`, 'dev', 'eth0');
    await sh('ip', '-n', ns, 'link', 'set', 'eth0', 'up');
    return ns;
  }

  async start(extra: string[] = []): Promise<RunningDaemon> {
    const args = ['--nft-table', this.nftTable, '--link-prefix', this.linkPrefix, ...extra];
    if (this.stateDir) args.push('--state-dir', this.stateDir, '--socket', `${this.stateDir}/nsdns.sock`);
    this.daemon = await startDaemon(args, { keepState: true });
    this.stateDir = this.daemon.stateDir;
    return this.daemon;
  }

  get socket(): string {
    return `${this.stateDir}/nsdns.sock`;
  }

  get state(): string {
    return this.stateDir!;
  }

  /** `nsdns ARGS --socket ...`; never throws: tests look at exitCode, stdout and stderr. */
  nsdns(...args: string[]) {
    return execa(process.execPath, [MAIN, ...args, '--socket', this.socket], { reject: false, cwd: ROOT });
  }

  async ok(...args: string[]): Promise<string> {
    const r = await this.nsdns(...args);
    if (r.exitCode !== 0) throw new Error(`nsdns ${args.join(' ')} failed (${r.exitCode}): ${r.stderr}`);
    return r.stdout;
  }

  /** dig inside a namespace, through its resolv.conf-free default: @127.0.0.11. */
  async dig(ns: string, ...args: string[]): Promise<string[]> {
    const r = await execa('ip', ['netns', 'exec', ns, 'dig', '@127.0.0.11', '+short', '+tries=1', '+time=3', ...args], { reject: false });
    return r.stdout.split('\n').filter((l) => l && !l.startsWith(';'));
  }

  async digStatus(ns: string, ...args: string[]): Promise<string> {
    const r = await execa('ip', ['netns', 'exec', ns, 'dig', '@127.0.0.11', '+tries=1', '+time=3', ...args], { reject: false });
    return /status: (\w+)/.exec(r.stdout)?.[1] ?? 'NO ANSWER';
  }

  /** glibc's resolver inside the namespace (ip netns exec mounts /etc/netns/NAME/resolv.conf). */
  async getent(ns: string, name: string): Promise<string | undefined> {
    const r = await execa('ip', ['netns', 'exec', ns, 'getent', 'hosts', name], { reject: false });
    return r.exitCode === 0 ? r.stdout.trim().split(/\s+/)[0] : undefined;
  }

  /** Links on the host whose names carry this lab's prefix. */
  async links(): Promise<string[]> {
    const out = await sh('ip', '-o', 'link', 'show');
    return out.split('\n').map((l) => /^\d+:\s+([^:@]+)/.exec(l)?.[1] ?? '').filter((n) => n.startsWith(this.linkPrefix));
  }

  async nftTableExists(): Promise<boolean> {
    return (await execa('nft', ['list', 'table', 'inet', this.nftTable], { reject: false })).exitCode === 0;
  }

  async cleanup(): Promise<void> {
    await this.daemon?.stop();
    for (const link of [...await this.links().catch(() => []), ...this.extraLinks]) await execa('ip', ['link', 'del', link], { reject: false });
    for (const ns of this.namespaces) {
      await execa('ip', ['netns', 'del', ns], { reject: false });
      if (existsSync(`/etc/netns/${ns}`)) await execa('rm', ['-rf', `/etc/netns/${ns}`], { reject: false });
    }
    await execa('nft', ['delete', 'table', 'inet', this.nftTable], { reject: false });
    // Egress rules outlive the daemon by design (a stopped daemon opens nothing): the lab removes them.
    for (const family of ['inet', 'bridge']) await execa('nft', ['delete', 'table', family, `${this.nftTable}_egress`], { reject: false });
    if (this.stateDir) await execa('rm', ['-rf', this.stateDir], { reject: false });
    if (isRoot) rmSync(path.join(CLAIMS, this.tag.slice(0, 3)), { recursive: true, force: true });
  }
}
