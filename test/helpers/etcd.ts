// A real etcd (Debian's etcd-server) on loopback for one test file: its own data directory, its
// own client and peer ports, ended by its PID. pause()/resume() stop and continue the process,
// which is how the tests take etcd away without losing its data.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { execa } from 'execa';
import { freePort } from './free-port.js';
import { tempDir } from './tmp.js';
import { waitFor } from './wait.js';

export interface EtcdOptions {
  /** First of the ports this test file gives etcd (the client port is picked in the first half, the peer port in the second). */
  portBase: number;
  /** How many ports from portBase etcd may take (default 100): fewer leaves the rest to the test's own listeners. */
  portCount?: number;
  /** Extra etcd flags (TLS: --cert-file, --key-file, --client-cert-auth, --trusted-ca-file). */
  args?: string[];
  /** The scheme clients use: https when `args` turn TLS on. */
  scheme?: 'http' | 'https';
  /** etcdctl flags needed to reach it (TLS: --cacert, --cert, --key). */
  ctlArgs?: string[];
}

const stderrOf = new WeakMap<ChildProcess, string>();

function spawnEtcd(args: string[]): ChildProcess {
  const child = spawn('etcd', args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ETCD_UNSUPPORTED_ARCH: process.env.ETCD_UNSUPPORTED_ARCH ?? '' } });
  stderrOf.set(child, '');
  child.stderr!.on('data', (d: Buffer) => { const text = stderrOf.get(child)!; if (text.length < 20_000) stderrOf.set(child, text + d.toString()); });
  return child;
}

export class TestEtcd {
  private constructor(
    private child: ChildProcess,
    private readonly cleanupDir: () => void,
    /** `127.0.0.1:PORT`, as nsdns's etcd:// URLs name it. */
    readonly hostPort: string,
    readonly endpoint: string,
    private readonly ctlArgs: string[],
  ) {}

  static async start(options: EtcdOptions): Promise<TestEtcd> {
    const { dir, cleanup } = tempDir('nsdns-etcd-');
    const half = Math.floor((options.portCount ?? 100) / 2);
    const clientPort = await freePort('127.0.0.1', options.portBase, half);
    const peerPort = await freePort('127.0.0.1', options.portBase + half, half);
    const scheme = options.scheme ?? 'http';
    const endpoint = `${scheme}://127.0.0.1:${clientPort}`;
    const args = [
      '--name', 'nsdns-test', '--data-dir', dir,
      '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint,
      '--listen-peer-urls', `http://127.0.0.1:${peerPort}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
      '--initial-cluster', `nsdns-test=http://127.0.0.1:${peerPort}`,
      '--log-level', 'error', '--logger', 'zap',
      ...(options.args ?? []),
    ];
    const etcd = new TestEtcd(spawnEtcd(args), cleanup, `127.0.0.1:${clientPort}`, endpoint, options.ctlArgs ?? []);
    etcd.args = args;
    try {
      await etcd.healthy();
    } catch (err) {
      await etcd.stop();
      throw err;
    }
    return etcd;
  }

  private args: string[] = [];

  private async healthy(): Promise<void> {
    const child = this.child;
    await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`etcd exited (${child.exitCode}): ${stderrOf.get(child)?.slice(-2000)}`);
      return (await this.ctl(['endpoint', 'health'], { reject: false })).exitCode === 0;
    }, { timeoutMs: 30_000, what: 'etcd healthy' });
  }

  /** kill -9: etcd is gone (connections refused), its data directory kept for start(). */
  async kill(): Promise<void> {
    this.child.kill('SIGKILL');
    if (this.child.exitCode === null && this.child.signalCode === null) await once(this.child, 'exit');
  }

  /** Starts etcd again after kill(), on the same ports and data. */
  async restart(): Promise<void> {
    this.child = spawnEtcd(this.args);
    await this.healthy();
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** etcdctl (API v3) against this etcd. */
  ctl(args: string[], options: { input?: string; reject?: boolean } = {}) {
    return execa('etcdctl', ['--endpoints', this.endpoint, '--dial-timeout', '2s', '--command-timeout', '5s', ...this.ctlArgs, ...args],
      { env: { ETCDCTL_API: '3' }, input: options.input, reject: options.reject ?? true, timeout: 15_000 });
  }

  async put(key: string, value: string): Promise<void> {
    // From stdin: a value starting with '-' would be read as a flag.
    await this.ctl(['put', '--', key], { input: value });
  }

  async del(key: string, prefix = false): Promise<void> {
    await this.ctl(['del', ...(prefix ? ['--prefix'] : []), key]);
  }

  /** Every key under `prefix` with its value. */
  async list(prefix: string): Promise<Map<string, string>> {
    const out = await this.ctl(['get', '--prefix', prefix, '-w', 'json']);
    const parsed = JSON.parse(out.stdout) as { kvs?: { key: string; value: string }[] };
    return new Map((parsed.kvs ?? []).map((kv) => [Buffer.from(kv.key, 'base64').toString(), Buffer.from(kv.value, 'base64').toString()]));
  }

  pause(): void {
    this.child.kill('SIGSTOP');
  }

  resume(): void {
    this.child.kill('SIGCONT');
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGCONT');
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
      await once(this.child, 'exit').catch(() => undefined);
      clearTimeout(timer);
    }
    this.cleanupDir();
  }
}
