// A standalone listener (--listen on a bridge address) is one address every client shares. With one
// UDP socket, a client flooding it fills that socket's kernel queue and the kernel drops everyone's
// datagrams with the flooder's. With the native helper the listener is a group of sockets steered
// by source address (host-sockets.ts): a neighbour asking at a modest rate from another address,
// through the same bridge, gets every answer while the flood goes on. The portable path (one
// socket, NSDNS_NATIVE=0) still serves; under the same flood it loses the neighbour's queries (shown
// as a diagnostic, not asserted: how many depends on the machine). A flood of queries that go
// unanswered (distinct forwarded names past the flooder's upstream share) pauses the flooder's own
// socket of the group (the flood gate): the daemon stops reading what it would only drop.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { execa } from 'execa';
import { ROOT, startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { dig } from '../helpers/dig.js';
import { FakeUpstream } from '../helpers/fake-upstream.js';
import { Lab, needsRoot, sh } from '../helpers/netns.js';
import { queryPacket } from '../helpers/packets.js';
import { udpSockets } from '../helpers/proc-net.js';
import type { SteadyResult } from '../helpers/steady-client.js';
import { stopPid, waitForSuccessor } from '../helpers/successor.js';
import { waitFor } from '../helpers/wait.js';

const NS_CLIENT = path.join(ROOT, 'dist/test/helpers/ns-client.js');
const SUBNET = '10.231.7';
const SERVER = `${SUBNET}.1`;
const LEGIT = `${SUBNET}.2`;
const FLOODER = `${SUBNET}.3`;
/** Steered to the flooder's socket: shares its kernel queue, and so its fate. */
const SHARER = `${SUBNET}.24`;
const GROUP = 16;

/** The socket of the group a source address is steered to: the hash nsdns-bind.c's BPF program computes. */
function bucket(ipv4: string): number {
  const a = ipv4.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
  return Number((BigInt(a) * 0x9e3779b1n) & 0xffffffffn) >>> (32 - Math.log2(GROUP));
}

/**
 * Sends to HOST:PORT as fast as the socket takes it (at most 256 sends in flight; replies are not
 * read) until SIGTERM, or SECS seconds at most, then prints how many it sent. Prints "flooding"
 * once the first sends are out. WHAT: a query's hex, sent again and again, or unique:ZONE, a
 * query for a new name under ZONE each time (a cache miss for every one).
 */
const FLOOD = `
import dgram from 'node:dgram';
const [host, port, secs, what] = process.argv.slice(1);
const zone = what.startsWith('unique:') ? what.slice(7).split('.') : undefined;
const fixed = zone ? undefined : Buffer.from(what, 'hex');
const tail = Buffer.from([0, 0, 1, 0, 1]);
const packet = (n) => {
  if (fixed) return fixed;
  const parts = [Buffer.from([(n >> 8) & 255, n & 255, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0])];
  for (const label of [n.toString(36), ...zone]) parts.push(Buffer.from([label.length]), Buffer.from(label));
  parts.push(tail);
  return Buffer.concat(parts);
};
const udp = dgram.createSocket({ type: 'udp4', recvBufferSize: 4096 });
const end = Date.now() + Number(secs) * 1000;
let pending = 0, sent = 0, scheduled = false;
udp.on('error', () => {});
const pump = () => {
  scheduled = false;
  while (pending < 256 && Date.now() < end) {
    pending++; sent++;
    udp.send(packet(sent), Number(port), host, () => { pending--; if (pending < 128 && !scheduled) { scheduled = true; setImmediate(pump); } });
  }
};
udp.bind(0, () => { pump(); console.log('flooding'); });
const stop = () => { console.log(sent); udp.close(); process.exit(0); };
process.on('SIGTERM', stop);
setTimeout(stop, Number(secs) * 1000);
`;

/** CPU time (user + system) the process has used, in seconds, from /proc/PID/stat (USER_HZ 100). */
async function cpuSeconds(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Per-socket receive drops of the UDP sockets bound to SERVER:port (host namespace). */
async function socketDrops(port: number): Promise<number[]> {
  return (await udpSockets()).filter((socket) => socket.local === `${SERVER}:${port}`).map((socket) => socket.drops);
}

const totalDrops = async (port: number) => (await socketDrops(port)).reduce((a, b) => a + b, 0);

/** One socket of the group holds at least 99 % of the drops: the flooder's. */
function flooderTookTheDrops(drops: readonly number[]): boolean {
  const total = drops.reduce((a, b) => a + b, 0);
  return total > 0 && Math.max(...drops) >= 0.99 * total;
}

describe('host listener: fair queueing by client address', { skip: needsRoot }, () => {
  const lab = new Lab();
  const bridge = `${lab.linkPrefix}fq`;
  let legit: string, flooder: string, sharer: string;

  before(async () => {
    assert.notEqual(bucket(LEGIT), bucket(FLOODER), 'the two clients are steered to different sockets (precondition of this test)');
    assert.equal(bucket(SHARER), bucket(FLOODER));
    [legit, flooder, sharer] = await Promise.all(['legit', 'flood', 'share'].map((n) => lab.namespace(n)));
    await sh('ip', 'link', 'add', bridge, 'type', 'bridge');
    await sh('ip', 'addr', 'add', `${SERVER}/24`, 'dev', bridge);
    await sh('ip', 'link', 'set', bridge, 'up');
    for (const [ns, address, end] of [[legit, LEGIT, 'l'], [flooder, FLOODER, 'f'], [sharer, SHARER, 's']]) {
      const hostEnd = `${lab.linkPrefix}${end}0`;
      await sh('ip', 'link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
      await sh('ip', 'link', 'set', hostEnd, 'master', bridge, 'up');
      await sh('ip', '-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0');
      await sh('ip', '-n', ns, 'link', 'set', 'eth0', 'up');
    }
  });
  after(() => lab.cleanup());

  async function serve(env: NodeJS.ProcessEnv = {}, args: string[] = []): Promise<RunningDaemon> {
    return startDaemon(['--registry', path.join(ROOT, 'fixtures/lab'), '--listen', `${SERVER}:0`, '--allow', `${SUBNET}.0/24`,
      '--nft-table', lab.nftTable, '--link-prefix', lab.linkPrefix, ...args], { env: { ...process.env, ...env } });
  }

  interface FloodOptions {
    /** What the flooder sends (default: the same local name, answered every time). */
    what?: string;
    /** The daemon's pid (a successor's after a handover). */
    pid?: number;
    /** Also ask from a client steered to the flooder's socket (shown, not asserted: it is in the flood's queue). */
    withSharer?: boolean;
    /**
     * What shows the flood is doing what the test is about, awaited before the neighbour starts:
     * on a busy machine the flooder may take a while to reach that rate, so it floods until then
     * (the timeout bounds a run where it never does; the assertion is the test's, not a speed).
     */
    until?: { check: () => Promise<boolean>; what: string };
  }

  /**
   * The neighbour's view (one query every 2 ms for 2 s, each asked up to 3 times) while the
   * flooder floods: from once `until` holds to the end of the neighbour's run.
   */
  async function underFlood(daemon: RunningDaemon, t: TestContext, options: FloodOptions = {}): Promise<SteadyResult & { daemonCpu: number }> {
    const { what = queryPacket('web.lab').toString('hex'), pid = daemon.proc.pid!, withSharer = false, until } = options;
    const cpuBefore = await cpuSeconds(pid);
    const started = Date.now();
    const flood = execa('ip', ['netns', 'exec', flooder, process.execPath, '--input-type=module', '-e', FLOOD, SERVER, String(daemon.port), '60', what], { reject: false });
    try {
      let out = '';
      flood.stdout!.on('data', (chunk: Buffer) => { out += chunk.toString(); });
      await waitFor(() => out.includes('flooding') || flood.exitCode !== null, { timeoutMs: 30_000, what: 'the flooder started' });
      if (until) await waitFor(until.check, { timeoutMs: 30_000, everyMs: 50, what: until.what });
      const steady = (ns: string) => execa('ip', ['netns', 'exec', ns, process.execPath, NS_CLIENT, 'steady', `${SERVER}:${daemon.port}`, 'web.lab', '2'], { reject: false });
      const [client, shared] = await Promise.all([steady(legit), withSharer ? steady(sharer) : undefined]);
      if (shared) t.diagnostic(`a client steered to the flooder's socket: ${shared.stdout}`);
      flood.kill('SIGTERM');
      const sent = (await flood).stdout.trim().split('\n').pop();
      // The share of one core the daemon used while the flood went on (the neighbour's queries included).
      const daemonCpu = (await cpuSeconds(pid) - cpuBefore) / ((Date.now() - started) / 1000);
      t.diagnostic(`flooder sent ${sent} datagrams in ${((Date.now() - started) / 1000).toFixed(1)} s; the daemon used ${(daemonCpu * 100).toFixed(0)} % of a core`);
      assert.equal(client.exitCode, 0, client.stderr);
      return { ...JSON.parse(client.stdout) as SteadyResult, daemonCpu };
    } finally {
      flood.kill('SIGKILL');
    }
  }

  it(`binds ${GROUP} UDP sockets on the listener's address and port, and answers over UDP and TCP`, async () => {
    const daemon = await serve();
    try {
      const ss = await sh('ss', '-Hunap', 'src', `${SERVER}:${daemon.port}`);
      const owners = ss.split('\n').filter(Boolean);
      assert.equal(owners.length, GROUP, ss);
      assert.ok(owners.every((l) => l.includes(`pid=${daemon.proc.pid},`)), `every socket is the daemon's:\n${ss}`);
      assert.equal((await sh('ss', '-Htlnp', 'src', `${SERVER}:${daemon.port}`)).split('\n').filter(Boolean).length, 1, 'one TCP listener');
      assert.equal((await dig(`${SERVER}:${daemon.port}`, 'web.lab')).answers[0]?.data, '10.77.0.10');
      const tcp = await execa('ip', ['netns', 'exec', legit, 'kdig', `@${SERVER}`, '-p', String(daemon.port), '+tcp', '+short', 'web.lab']);
      assert.equal(tcp.stdout.trim(), '10.77.0.10');
      assert.ok(daemon.logs.some((l) => l.msg === 'listening' && l.udpSockets === GROUP));
    } finally {
      await daemon.stop();
    }
  });

  it('a neighbour of a flooding address gets every answer while the flooder\'s own socket drops; answered queries, however many, never pause it', async (t) => {
    const daemon = await serve();
    try {
      // The flood is heavy enough to overflow a queue before the neighbour asks (else this test proves nothing).
      const seen = await underFlood(daemon, t, { withSharer: true, until: { check: async () => await totalDrops(daemon.port) > 0, what: 'the flood overflows a socket queue' } });
      const drops = await socketDrops(daemon.port);
      t.diagnostic(`neighbour: ${JSON.stringify(seen)}; drops per socket: ${drops.join(' ')}`);
      assert.equal(drops.length, GROUP);
      assert.ok(seen.sent >= 100, JSON.stringify(seen));
      // Each query asked up to 3 times, as a stub resolver does: a busy machine may drop a datagram
      // on the way (the veth, the client's own queue), a shared queue would drop most of them.
      assert.equal(seen.lost, 0, `lost ${seen.lost} of ${seen.sent}`);
      // The flooder's queue took the overflow: a CPU-starved daemon may drop a few of another socket's
      // datagrams too (retried, as asserted above), but a flood spread over the group would not
      // leave one socket nearly all of them.
      assert.ok(flooderTookTheDrops(drops), `the flooder's socket dropped nearly all: ${drops.join(' ')}`);
      // Every query it read was answered: however busy, such a client (a NAT of many hosts) is never paused.
      assert.ok(!daemon.logs.some((l) => /not reading/.test(l.msg)), 'answered queries never pause a socket');
      assert.equal(daemon.exitCode, null);
      assert.equal((await dig(`${SERVER}:${daemon.port}`, 'web.lab')).answers[0]?.data, '10.77.0.10');
    } finally {
      await daemon.stop();
    }
  });

  it('a flood that goes unanswered pauses only the flooder\'s socket (one log line naming the listener and socket, the metric); the neighbour keeps every answer; the flooder is answered again once it stops', async (t) => {
    const upstream = await FakeUpstream.start();
    const daemon = await serve({}, ['--upstream', upstream.spec, '--metrics', '127.0.0.1:0']);
    try {
      const ready = await daemon.waitForLog((l) => l.msg === 'ready');
      const pauses = async () => Number(/^nsdns_flood_pauses_total (\d+)$/m.exec(await (await fetch(`http://${String(ready.metrics)}/metrics`)).text())?.[1]);
      assert.equal(await pauses(), 0);
      // Distinct names: each a cache miss, and past the flooder's upstream share mostly dropped.
      // It floods until the gate pauses its socket (how long that takes depends on the machine).
      const seen = await underFlood(daemon, t, { what: 'unique:flood.test', withSharer: true, until: { check: async () => await pauses() >= 1, what: 'the flood gate pauses the flooder\'s socket (nsdns_flood_pauses_total)' } });
      const drops = await socketDrops(daemon.port);
      const lines = daemon.logs.filter((l) => /not reading that socket/.test(l.msg));
      t.diagnostic(`neighbour: ${JSON.stringify(seen)}; drops per socket: ${drops.join(' ')}; pauses: ${await pauses()}; ${JSON.stringify(lines)}`);
      assert.ok(seen.sent >= 100, JSON.stringify(seen));
      assert.equal(seen.lost, 0, `lost ${seen.lost} of ${seen.sent}`);
      // What the gate saves (the daemon's share of a core during the flood) is a figure of the
      // machine: shown above as a diagnostic, not asserted. Paused, and only the flooder's socket:
      // it took the drops (the kernel's, while it was not read).
      assert.ok(flooderTookTheDrops(drops), `the flooder's socket dropped nearly all: ${drops.join(' ')}`);
      // A line for the flood, rate-limited (at most one per 10 s), naming the listener and the
      // socket; no client's address.
      assert.ok(lines.length >= 1, 'the pause is logged');
      for (let i = 1; i < lines.length; i++) assert.ok(Number(lines[i].time) - Number(lines[i - 1].time) >= 10_000, `rate-limited: ${JSON.stringify(lines)}`);
      assert.equal(lines[0].level, 40);
      assert.equal(lines[0].listener, `${SERVER}:${daemon.port}`);
      assert.equal(lines[0].socket, bucket(FLOODER));
      assert.ok(!JSON.stringify(lines).includes(FLOODER), 'no client address in the line');
      // Stopped: the flooder's socket is read again (a pause lasts at most 250 ms, then its backlog is read).
      const answer = await waitFor(async () => (await execa('ip', ['netns', 'exec', flooder, 'kdig', `@${SERVER}`, '-p', String(daemon.port), '+short', '+timeout=1', '+retry=0', 'web.lab'], { reject: false })).stdout.trim(),
        { timeoutMs: 15_000, what: 'the flooder is answered again once it stops' });
      assert.equal(answer, '10.77.0.10');
      assert.equal(daemon.exitCode, null);
    } finally {
      await daemon.stop();
      await upstream.stop();
    }
  });

  it('one socket (NSDNS_NATIVE=0) keeps no flood gate: a shared socket is never paused', async (t) => {
    const upstream = await FakeUpstream.start();
    const daemon = await serve({ NSDNS_NATIVE: '0' }, ['--upstream', upstream.spec]);
    try {
      const seen = await underFlood(daemon, t, { what: 'unique:flood.test' });
      t.diagnostic(`one socket, neighbour: ${JSON.stringify(seen)}; drops: ${(await socketDrops(daemon.port)).join(' ')}`);
      assert.ok(!daemon.logs.some((l) => /not reading/.test(l.msg)), 'never paused');
      assert.equal(daemon.exitCode, null);
      assert.equal((await dig(`${SERVER}:${daemon.port}`, 'web.lab')).answers[0]?.data, '10.77.0.10');
    } finally {
      await daemon.stop();
      await upstream.stop();
    }
  });

  it('a handover (SIGUSR2) carries the whole group: the successor reads the very sockets, steering and all', async (t) => {
    const daemon = await serve();
    let successor: number | undefined;
    try {
      const inodes = async () => (await sh('ss', '-Hunape', 'src', `${SERVER}:${daemon.port}`)).split('\n').filter(Boolean).map((l) => [/ino:(\d+)/.exec(l)?.[1], /pid=(\d+),/.exec(l)?.[1]]);
      const before = await inodes();
      daemon.signal('SIGUSR2');
      successor = await waitForSuccessor(daemon.stateDir, path.join(daemon.stateDir, 'nsdns.sock'), daemon.proc.pid!);
      assert.equal(await daemon.waitForExit(10_000), 0, 'the old daemon exits 0');
      const now = await inodes();
      assert.deepEqual(now.map(([ino]) => ino).sort(), before.map(([ino]) => ino).sort(), 'the same 16 sockets, none bound anew, none left behind');
      assert.ok(now.every(([, pid]) => pid === String(successor)), JSON.stringify(now));
      const seen = await underFlood(daemon, t, { pid: successor, until: { check: async () => await totalDrops(daemon.port) > 0, what: 'the flood overflows a socket queue' } });
      t.diagnostic(`after the handover, neighbour: ${JSON.stringify(seen)}; drops per socket: ${(await socketDrops(daemon.port)).join(' ')}`);
      assert.equal(seen.lost, 0, `lost ${seen.lost} of ${seen.sent}`);
    } finally {
      await stopPid(successor);
      await daemon.stop();
    }
  });

  it('the portable path (NSDNS_NATIVE=0) binds one socket and serves; the same flood costs the neighbour answers there', async (t) => {
    const daemon = await serve({ NSDNS_NATIVE: '0' });
    try {
      const ss = await sh('ss', '-Hunap', 'src', `${SERVER}:${daemon.port}`);
      assert.equal(ss.split('\n').filter(Boolean).length, 1, ss);
      assert.equal((await dig(`${SERVER}:${daemon.port}`, 'web.lab')).answers[0]?.data, '10.77.0.10');
      assert.ok(!daemon.logs.some((l) => l.level === 40), 'no warning: one socket is what the portable path is');
      const seen = await underFlood(daemon, t);
      t.diagnostic(`one socket, neighbour: ${JSON.stringify(seen)}; drops: ${(await socketDrops(daemon.port)).join(' ')}`);
      assert.equal(daemon.exitCode, null);
      assert.equal((await dig(`${SERVER}:${daemon.port}`, 'web.lab')).answers[0]?.data, '10.77.0.10');
    } finally {
      await daemon.stop();
    }
  });
});
