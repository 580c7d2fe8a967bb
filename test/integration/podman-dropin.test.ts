// The aardvark-dns drop-in started the way netavark starts it: `bin/aardvark-dns --config DIR -p
// PORT run`, which must return only once every listen address is bound and the pid file written,
// exit 0 with nothing on stdout, or non-zero with aardvark's reason on stderr; SIGHUP re-reads
// the directory, and with no network left the server removes its pid file and exits. Loopback
// addresses stand in for the bridges' gateways (the netavark-driven test needs root and bridges).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { MAIN, ROOT } from '../helpers/daemon.js';
import { digShort, dig } from '../helpers/dig.js';
import { tempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { freePort } from '../helpers/free-port.js';
import { FakeUpstream } from '../helpers/fake-upstream.js';

const BIN = path.join(ROOT, 'bin/aardvark-dns');
const ID1 = 'f031bf33eecba75d0d84952337b1ceef6a239eb8e94b48aee0993d0791345325';
const ID2 = 'a031bf33eecba75d0d84952337b1ceef6a239eb8e94b48aee0993d0791345325';
const ID3 = 'b031bf33eecba75d0d84952337b1ceef6a239eb8e94b48aee0993d0791345325';

/** Alive and not a zombie (a reparented child is reaped by whatever init this machine has). */
function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

describe('aardvark-dns drop-in: the start contract', () => {
  const tmp = tempDir('nsdns-podman-');
  const config = path.join(tmp.dir, 'aardvark-dns');
  const log = path.join(tmp.dir, 'server.log');
  const resolv = path.join(tmp.dir, 'resolv.conf');
  const started: number[] = [];
  let port: number;
  let upstream: FakeUpstream;

  const env = { NSDNS_AARDVARK_LOG: log, NSDNS_AARDVARK_RESOLV_CONF: resolv };
  const run = (...args: string[]) => execa(BIN, args, { reject: false, env });
  /** Files the process has open, by what their descriptors point at. */
  const openFiles = (pid: number) => readdirSync(`/proc/${pid}/fd`).map((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      return '';
    }
  });
  const pidFile = () => path.join(config, 'aardvark.pid');
  const logLines = () => (existsSync(log) ? readFileSync(log, 'utf8') : '');

  before(async () => {
    mkdirSync(config);
    // The host resolvers are a local fake: nothing leaves this machine.
    // resolv.conf has no port: the fake listens on 53 of its own loopback address (root, as in CI).
    upstream = await FakeUpstream.start({ address: '127.0.173.53', port: 53, zone: { 'example.com': ['192.0.2.1'] } });
    writeFileSync(resolv, 'nameserver 127.0.173.53\n');
    port = await freePort('127.0.173.1', 25900, 200);
  });
  after(async () => {
    for (const pid of started) if (alive(pid)) process.kill(pid, 'SIGKILL');
    await upstream?.stop();
    tmp.cleanup();
  });

  it('nsdns --help names the drop-in', async () => {
    const help = await execa('node', [MAIN, '--help']);
    assert.match(help.stdout, /Podman: bin\/aardvark-dns .* see docs\/podman\.md/);
  });

  it('refuses a command line that is not aardvark\'s with a usage error (exit 2)', async () => {
    const r = await run('--config', config, 'serve');
    assert.equal(r.exitCode, 2);
    assert.match(r.stderr, /unknown subcommand "serve"[\s\S]*Usage: aardvark-dns/);
    assert.equal((await run('run')).exitCode, 2);
    assert.match((await run('-p', 'x', '--config', config, 'run')).stderr, /--port must be a port number/);
    const version = await run('--version');
    assert.deepEqual([version.exitCode, version.stdout, version.stderr], [0, 'aardvark-dns (nsdns drop-in)', '']);
  });

  it('returns 0 once bound, with a pid file naming a live server, nothing on stdout, and answers there', async () => {
    writeFileSync(path.join(config, 'podman'), `127.0.173.1\n${ID1} 10.173.3.2  web,api\n`);
    writeFileSync(path.join(config, 'other%int'), `127.0.173.2\n${ID2} 10.173.4.2  db\n`);
    // Started with descriptors its caller left open (the one the starter reports on, a low one and
    // a high one): on a pipe, a server that kept one would keep its reader (netavark, Podman) waiting.
    const inherited = path.join(tmp.dir, 'inherited');
    writeFileSync(inherited, '');
    const r = await execa('bash', ['-c', 'exec 3<"$0" 5<"$0" 100<"$0"; exec "$@"', inherited, BIN, '--config', config, '-p', String(port), 'run'], { reject: false, env });
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, '');
    const text = readFileSync(pidFile(), 'utf8');
    assert.match(text, /^\d+$/, 'decimal, no newline');
    const pid = Number(text);
    started.push(pid);
    assert.ok(alive(pid), 'the server outlives its starter');
    for (const fd of [0, 1, 2]) assert.equal(readlinkSync(`/proc/${pid}/fd/${fd}`), '/dev/null', `fd ${fd} on /dev/null`);
    assert.equal(openFiles(pid).includes(inherited), false, 'the descriptors it inherited are closed');
    // Its own session: netavark's process group and terminal signals do not reach it.
    assert.equal(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[3], String(pid));
    assert.deepEqual(await digShort(`127.0.173.1:${port}`, 'web'), ['10.173.3.2']);
    assert.deepEqual(await digShort(`127.0.173.1:${port}`, '+tcp', 'API.dns.podman'), ['10.173.3.2']);
    assert.deepEqual(await digShort(`127.0.173.2:${port}`, 'db'), ['10.173.4.2']);
    // Each listener answers its own network's names.
    assert.equal((await dig(`127.0.173.2:${port}`, 'web.dns.podman')).status, 'NXDOMAIN');
  });

  it('forwards other names to the host resolvers, except on an internal network', async () => {
    assert.deepEqual(await digShort(`127.0.173.1:${port}`, 'example.com'), ['192.0.2.1']);
    const internal = await dig(`127.0.173.2:${port}`, 'example.com');
    assert.deepEqual(internal.answers, []);
    assert.notEqual(internal.status, 'NOERROR');
  });

  it('a container on two networks sees both, whichever gateway it asks; the host sees the gateway\'s network', async () => {
    const pid = Number(readFileSync(pidFile(), 'utf8'));
    // One container (one id) with an address on each network; the addresses are loopback ones, so
    // dig can ask from them (-b) as the container would.
    writeFileSync(path.join(config, 'podman'), `127.0.173.1\n${ID1} 10.173.3.2  web,api\n${ID3} 127.0.173.10  multi\n`);
    writeFileSync(path.join(config, 'other%int'), `127.0.173.2\n${ID2} 10.173.4.2  db\n${ID3} 127.0.173.11  multi\n`);
    process.kill(pid, 'SIGHUP');
    await waitFor(async () => (await digShort(`127.0.173.1:${port}`, 'multi'))[0] === '127.0.173.10', { what: 'the reloaded files answer' });
    assert.deepEqual(await digShort(`127.0.173.1:${port}`, '-b', '127.0.173.10', 'db'), ['10.173.4.2'], 'the other network\'s name, asked at the first network\'s gateway');
    assert.deepEqual(await digShort(`127.0.173.2:${port}`, '-b', '127.0.173.11', 'web'), ['10.173.3.2'], 'and the other way round');
    assert.equal((await dig(`127.0.173.1:${port}`, 'db')).status, 'NXDOMAIN', 'the host sees only the gateway\'s network');
    assert.equal((await dig(`127.0.173.1:${port}`, '-b', '127.0.173.99', 'db')).status, 'NXDOMAIN', 'so does an address no container has');
  });

  it('a second start on a bound address fails with aardvark\'s reason on stderr and leaves the running server alone', async () => {
    const pid = readFileSync(pidFile(), 'utf8');
    const r = await run('--config', config, '-p', String(port), 'run');
    assert.notEqual(r.exitCode, 0);
    assert.equal(r.stdout, '');
    assert.match(r.stderr.trim(), new RegExp(`^failed to bind udp listener on 127\\.0\\.173\\.[12]:${port}: EADDRINUSE$`));
    assert.equal(readFileSync(pidFile(), 'utf8'), pid);
  });

  it('SIGHUP re-reads the files: a broken file is one log line, a removed one closes its listener, the rest serve on', async () => {
    const pid = Number(readFileSync(pidFile(), 'utf8'));
    writeFileSync(path.join(config, 'podman'), `127.0.173.1\n${ID1} 10.173.3.2  web,api\n${ID2} 10.173.3.3  cache\n`);
    writeFileSync(path.join(config, 'bad'), 'root:$y$secret:19000\n');
    rmSync(path.join(config, 'other%int'));
    process.kill(pid, 'SIGHUP');
    await waitFor(async () => (await digShort(`127.0.173.1:${port}`, 'cache'))[0] === '10.173.3.3', { what: 'the new container answers' });
    const refused = logLines().split('\n').filter((l) => l.includes('aardvark config file refused'));
    assert.equal(refused.length, 1);
    assert.match(refused[0], /"file":"bad".*bad: line 1: listen address 1: not an IP address/);
    assert.doesNotMatch(logLines(), /secret/);
    await waitFor(() => freePort('127.0.173.2', 25900, 200).then(() => true), { what: "the removed network's address is free again" });
    assert.deepEqual(await digShort(`127.0.173.1:${port}`, 'web'), ['10.173.3.2']);
  });

  it('SIGHUP with no network left: the pid file goes and the server exits', async () => {
    const pid = Number(readFileSync(pidFile(), 'utf8'));
    rmSync(path.join(config, 'podman'));
    rmSync(path.join(config, 'bad'));
    process.kill(pid, 'SIGHUP');
    await waitFor(() => !alive(pid), { what: 'the server exits' });
    assert.equal(existsSync(pidFile()), false);
  });

  it('without node on the PATH, or a node that dies before it is ready, the start fails with the reason', async () => {
    const bin = path.join(tmp.dir, 'path');
    mkdirSync(bin);
    const setsid = (await execa('sh', ['-c', 'command -v setsid'])).stdout;
    const withPath = (dir: string) => execa(BIN, ['--config', config, '-p', String(port), 'run'], { reject: false, env: { PATH: dir }, extendEnv: false });
    const none = await withPath(path.join(tmp.dir, 'nowhere'));
    assert.deepEqual([none.exitCode, none.stdout, none.stderr], [1, '', 'aardvark-dns: node (20 or later) is not on the PATH']);
    // A node that exits at once, as one too old to read the server would.
    writeFileSync(path.join(bin, 'node'), '#!/bin/sh\nexit 3\n', { mode: 0o755 });
    writeFileSync(path.join(bin, 'setsid'), `#!/bin/sh\nexec ${setsid} "$@"\n`, { mode: 0o755 });
    const dead = await withPath(bin);
    assert.equal(dead.exitCode, 1);
    assert.match(dead.stderr, /^aardvark-dns: the server \(node .*bin\/aardvark-dns\) exited before it was ready$/);
  });

  it('with no network to serve or no directory, the start fails with the reason', async () => {
    const empty = await run('--config', config, '-p', String(port), 'run');
    assert.equal(empty.exitCode, 1);
    assert.match(empty.stderr, /no network to serve in /);
    const missing = await run('--config', path.join(tmp.dir, 'nope'), '-p', String(port), 'run');
    assert.equal(missing.exitCode, 1);
    assert.match(missing.stderr, /config directory .*nope must exist and be a directory/);
    assert.equal(existsSync(pidFile()), false);
  });
});
