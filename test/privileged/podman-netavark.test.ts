// Debian's netavark 1.4 drives the drop-in for real: `netavark -a bin/aardvark-dns setup` of two
// containers on one network starts it, containers (namespaces) ask the gateway with dig, a
// teardown's SIGHUP takes a container's names away, and the last teardown ends the server.
// netavark makes its bridge and firewall rules in the namespace it runs in: a namespace of this
// test's own ("host"), so nothing of the real host changes. A second network checks that an alias
// which is another container's name answers both containers, as aardvark answers them.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { ROOT } from '../helpers/daemon.js';
import { isRoot } from '../helpers/netns.js';
import { tempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const NETAVARK = '/usr/lib/podman/netavark';
const BIN = path.join(ROOT, 'bin/aardvark-dns');
const skip = !isRoot ? 'needs root (network namespaces)' : !existsSync(NETAVARK) ? 'needs Debian\'s netavark (apt-get install netavark iptables)' : false;

const suffix = `${process.pid % 100000}`;
const HOST = `pdm177h${suffix}`;
const CTRS = [`pdm177a${suffix}`, `pdm177b${suffix}`];
const NETWORK = 'pdm177';
const PORT = '25953';

/** What Podman sends netavark for one container on the test network. */
function setupJson(id: string, name: string, address: string, aliases: string[]): string {
  return JSON.stringify({
    container_id: id,
    container_name: name,
    networks: { [NETWORK]: { static_ips: [address], aliases, interface_name: 'eth0' } },
    network_info: {
      [NETWORK]: {
        name: NETWORK, id: '177'.repeat(21) + '1', driver: 'bridge', network_interface: `pdmbr${suffix}`.slice(0, 15),
        subnets: [{ subnet: '10.177.0.0/24', gateway: '10.177.0.1' }], ipv6_enabled: false, internal: false, dns_enabled: true,
        ipam_options: { driver: 'host-local' },
      },
    },
  });
}

const containers = [
  { netns: CTRS[0], json: setupJson('3c'.repeat(32), 'web', '10.177.0.2', ['api']) },
  { netns: CTRS[1], json: setupJson('4d'.repeat(32), 'db', '10.177.0.3', []) },
];

/** Alive and not a zombie. */
function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

describe('netavark 1.4 starts and reloads the drop-in', { skip }, () => {
  const tmp = tempDir('nsdns-netavark-');
  const config = path.join(tmp.dir, 'config');
  const pidFile = path.join(config, 'aardvark-dns', 'aardvark.pid');
  let pid: number | undefined;

  const netavark = (command: 'setup' | 'teardown', c: (typeof containers)[number]) => execa('ip', [
    'netns', 'exec', HOST, NETAVARK, '--config', config, '-a', BIN, command, `/run/netns/${c.netns}`,
  ], { input: c.json, reject: false, env: { NETAVARK_DNS_PORT: PORT, NSDNS_AARDVARK_LOG: path.join(tmp.dir, 'server.log'), NSDNS_AARDVARK_RESOLV_CONF: '' } });
  const ask = async (from: string, name: string) => (await execa('ip', ['netns', 'exec', from, 'dig', '+short', '+tries=1', '+time=3', '@10.177.0.1', '-p', PORT, name])).stdout.split('\n').filter(Boolean);

  before(async () => {
    // netavark 1.4 does not create its config directory (Podman does).
    mkdirSync(config);
    for (const ns of [HOST, ...CTRS]) await execa('ip', ['netns', 'add', ns]);
  });
  after(async () => {
    if (pid !== undefined && alive(pid)) process.kill(pid, 'SIGKILL');
    for (const ns of [HOST, ...CTRS]) await execa('ip', ['netns', 'del', ns], { reject: false });
    tmp.cleanup();
  });

  it('setup of the first container starts the server: pid file, the command line netavark gave, names at the gateway', async () => {
    const first = await netavark('setup', containers[0]);
    assert.equal(first.exitCode, 0, first.stdout + first.stderr);
    pid = Number(readFileSync(pidFile, 'utf8'));
    assert.ok(alive(pid));
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
    assert.match(cmdline, new RegExp(`aardvark-dns --config ${config}/aardvark-dns -p ${PORT} run`));
    const second = await netavark('setup', containers[1]);
    assert.equal(second.exitCode, 0, second.stdout + second.stderr);
    assert.equal(Number(readFileSync(pidFile, 'utf8')), pid, 'the second setup signals the same server');
    await waitFor(async () => (await ask(CTRS[0], 'db')).includes('10.177.0.3'), { what: 'db answers after the SIGHUP' });
    assert.deepEqual(await ask(CTRS[1], 'api'), ['10.177.0.2']);
    assert.deepEqual(await ask(CTRS[1], 'web.dns.podman'), ['10.177.0.2']);
    // PTR gives every name and alias, as aardvark's does.
    const ptr = await execa('ip', ['netns', 'exec', CTRS[1], 'dig', '+short', '+tries=1', '+time=3', '@10.177.0.1', '-p', PORT, '-x', '10.177.0.2']);
    assert.deepEqual(ptr.stdout.split('\n').filter(Boolean).sort(), ['api.', 'web.']);
  });

  it('teardown of one container takes its names away; of the last, ends the server', async () => {
    assert.equal((await netavark('teardown', containers[0])).exitCode, 0);
    // netavark 1.4 leaves the bridge's MAC to the kernel, which takes the lowest port's: the first
    // container's veth is gone, so the gateway's MAC changed under the second container's ARP
    // cache (it would find out in its own time, several seconds). Not DNS: forget it at once.
    await execa('ip', ['-n', CTRS[1], 'neigh', 'flush', 'all']);
    // Under dns.podman: a name that is no longer ours is NXDOMAIN there, not forwarded.
    await waitFor(async () => (await ask(CTRS[1], 'web.dns.podman')).length === 0, { what: 'web is gone' }).catch((err) => {
      throw new Error(`${err.message}\n${readFileSync(path.join(tmp.dir, 'server.log'), 'utf8')}`);
    });
    assert.deepEqual(await ask(CTRS[1], 'db'), ['10.177.0.3']);
    assert.equal((await netavark('teardown', containers[1])).exitCode, 0);
    await waitFor(() => !alive(pid!), { what: 'the server exits with its last network' });
    assert.equal(existsSync(pidFile), false);
  });
});

// A network alias that is another container's name (Podman allows it: a new version of `web`
// started beside the old one with `--network-alias web`): aardvark answers both containers, and
// so does the drop-in, where nsdns's own name rules would refuse the network's file.
describe('netavark 1.4: a network alias that is another container\'s name answers both', { skip }, () => {
  const host = `pdm120h${suffix}`;
  const ctrs = [`pdm120a${suffix}`, `pdm120b${suffix}`];
  const network = 'pdm120';
  const port = '15353';
  const tmp = tempDir('nsdns-netavark-alias-');
  const config = path.join(tmp.dir, 'config');
  let pid: number | undefined;

  const json = (id: string, name: string, address: string, aliases: string[]) => JSON.stringify({
    container_id: id,
    container_name: name,
    networks: { [network]: { static_ips: [address], aliases, interface_name: 'eth0' } },
    network_info: {
      [network]: {
        name: network, id: '120'.repeat(21) + '1', driver: 'bridge', network_interface: `pdm120br${suffix}`.slice(0, 15),
        subnets: [{ subnet: '10.120.5.0/24', gateway: '10.120.5.1' }], ipv6_enabled: false, internal: false, dns_enabled: true,
        ipam_options: { driver: 'host-local' },
      },
    },
  });
  const blueGreen = [
    { netns: ctrs[0], json: json('5e'.repeat(32), 'web', '10.120.5.2', []) },
    { netns: ctrs[1], json: json('6f'.repeat(32), 'web-v2', '10.120.5.3', ['web']) },
  ];
  const netavark = (command: 'setup' | 'teardown', c: (typeof blueGreen)[number]) => execa('ip', [
    'netns', 'exec', host, NETAVARK, '--config', config, '-a', BIN, command, `/run/netns/${c.netns}`,
  ], { input: c.json, reject: false, env: { NETAVARK_DNS_PORT: port, NSDNS_AARDVARK_LOG: path.join(tmp.dir, 'server.log'), NSDNS_AARDVARK_RESOLV_CONF: '' } });
  const ask = async (from: string, name: string) => (await execa('ip', ['netns', 'exec', from, 'dig', '+short', '+tries=1', '+time=3', '@10.120.5.1', '-p', port, name])).stdout.split('\n').filter(Boolean);

  before(async () => {
    mkdirSync(config);
    for (const ns of [host, ...ctrs]) await execa('ip', ['netns', 'add', ns]);
  });
  after(async () => {
    for (const c of [...blueGreen].reverse()) await netavark('teardown', c);
    if (pid !== undefined && alive(pid)) process.kill(pid, 'SIGKILL');
    for (const ns of [host, ...ctrs]) await execa('ip', ['netns', 'del', ns], { reject: false });
    tmp.cleanup();
  });

  it('both containers answer `web`; each keeps its own name', async () => {
    for (const c of blueGreen) {
      const r = await netavark('setup', c);
      assert.equal(r.exitCode, 0, r.stdout + r.stderr);
    }
    pid = Number(readFileSync(path.join(config, 'aardvark-dns', 'aardvark.pid'), 'utf8'));
    await waitFor(async () => (await ask(ctrs[0], 'web-v2')).includes('10.120.5.3'), { what: 'web-v2 answers after the SIGHUP' }).catch((err) => {
      throw new Error(`${err.message}\n${readFileSync(path.join(tmp.dir, 'server.log'), 'utf8')}`);
    });
    assert.deepEqual((await ask(ctrs[0], 'web')).sort(), ['10.120.5.2', '10.120.5.3']);
    assert.deepEqual((await ask(ctrs[1], 'web.dns.podman')).sort(), ['10.120.5.2', '10.120.5.3']);
  });
});
