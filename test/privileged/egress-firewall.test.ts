// Egress enforcement in real namespaces, through the module itself (the DNS side and the CLI that
// call it live elsewhere). One governed namespace "app" on a bridge with a neighbour "peer"; an
// "outside" namespace routed through the host stands in for the internet, with tiny TCP/UDP
// servers that answer with the address they see. Every verdict is a real connect, datagram or
// ping from inside "app", and the kernel's tables are read back with `nft -j`.
// Addresses: 10.132.1.0/24 + fd00:132:1::/64 on the bridge, 10.133.1.0/24 + fd00:132:2::/64 outside.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { release, tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { execa, type ResultPromise } from 'execa';
import { EgressFirewall, type EgressRules } from '../../src/egress/egress-firewall.js';
import { keyNames } from '../../src/egress/egress-rules.js';
import { NftChannel } from '../../src/egress/nft-channel.js';
import { ELEMENTS_PER_BATCH, NftNetlink } from '../../src/egress/nft-netlink.js';
import { Lab, needsRoot, sh } from '../helpers/netns.js';
import { until, waitFor } from '../helpers/wait.js';

// Listens on HOST at the TCP and UDP ports given; answers each with the client's address, then
// echoes what the client sends (TCP), so a connection can be used again later.
const SERVER = `const [host, tcp, udp] = process.argv.slice(2); const net = require('net'), dgram = require('dgram');
const ports = [...tcp.split(',').filter(Boolean).map((p) => ['tcp', +p]), ...udp.split(',').filter(Boolean).map((p) => ['udp', +p])];
let n = 0; const up = () => { if (++n === ports.length) console.log('up'); };
const who = (a) => a.replace(/^::ffff:/, '');
for (const [kind, port] of ports) {
  if (kind === 'tcp') net.createServer((s) => { s.on('error', () => {}); s.write(who(s.remoteAddress) + '\\n'); s.on('data', (d) => s.write(d)); }).listen(port, host, up);
  else { const u = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4'); u.on('message', (m, r) => u.send(who(r.address), r.port, r.address)); u.bind(port, host, up); }
}`;
// One exchange: prints the server's first line, an error code, or "timeout".
const CLIENT = `const [proto, host, port, local] = process.argv.slice(2);
const done = (s) => { console.log(s); process.exit(0); }; setTimeout(() => done('timeout'), 1500);
if (proto === 'tcp') { const s = require('net').connect({ host, port: +port, localAddress: local || undefined }); s.on('data', (d) => done(String(d).split('\\n')[0])); s.on('error', (e) => done(e.code)); }
else { const u = require('dgram').createSocket(host.includes(':') ? 'udp6' : 'udp4'); u.on('message', (m) => done(String(m))); u.bind(0, local || undefined, () => u.send('q', +port, host)); }`;
// A connection kept open: each stdin line is sent, each echoed line printed.
const HOLDER = `const [host, port] = process.argv.slice(2); const s = require('net').connect(+port, host);
require('readline').createInterface({ input: process.stdin }).on('line', (l) => s.write(l + '\\n'));
s.on('data', (d) => process.stdout.write(d)); s.on('error', (e) => console.log('ERR ' + e.code)); s.on('close', () => console.log('CLOSED'));`;

// Neighbour discovery messages (type 135, a marker after the target) to each address given, from a raw socket.
const ND_SENDER = `import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
for dst in sys.argv[1:]:
    s.sendto(bytes([135, 0, 0, 0, 0, 0, 0, 0]) + socket.inet_pton(socket.AF_INET6, dst) + b'NSDNS-ND ' + dst.encode(), (dst, 0))`;
// Prints the address each such message was sent to, as it arrives ("up" first).
const ND_LISTENER = `import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
print('up', flush=True)
while True:
    d = s.recv(4096)
    if b'NSDNS-ND ' in d: print(d.split(b'NSDNS-ND ')[1].decode(errors='replace'), flush=True)`;

describe('egress enforcement in the kernel', { skip: needsRoot }, () => {
  const lab = new Lab();
  const p = lab.linkPrefix;
  const table = lab.nftTable;
  const scripts = mkdtempSync(path.join(tmpdir(), 'nsdns-egress-'));
  const procs: ResultPromise[] = [];
  const hostServers: net.Server[] = [];
  let app = '', peer = '', outside = '';
  let fw: EgressFirewall;
  const rules: EgressRules = {
    sources: [{ hostIf: `${p}a`, ipv4: ['10.132.1.2'], ipv6: ['fd00:132:1::2'] }],
    cidrs: [{ cidr: '10.133.1.3/32', port: 16402, protocol: 'tcp' }],
    ownSubnets: ['10.132.1.0/24', 'fd00:132:1::/64'],
    gateways: ['10.132.1.1', 'fd00:132:1::1'],
  };

  const script = (name: string, text: string) => {
    const file = path.join(scripts, `${name}.cjs`);
    writeFileSync(file, text);
    return file;
  };
  const inNs = (ns: string, ...args: string[]) => ['ip', ['netns', 'exec', ns, ...args]] as const;

  async function serve(ns: string | undefined, host: string, tcp: number[], udp: number[] = []): Promise<void> {
    const argv = [process.execPath, script('server', SERVER), host, tcp.join(','), udp.join(',')];
    const proc = ns === undefined ? execa(argv[0], argv.slice(1)) : execa(...inNs(ns, ...argv));
    procs.push(proc);
    proc.catch(() => {});
    await new Promise<void>((resolve, reject) => {
      proc.stdout!.once('data', () => resolve());
      proc.once('exit', () => reject(new Error(`a server at ${host} did not start`)));
    });
  }

  /** What the server said from inside "app" (the address it saw), an error code, or "timeout". */
  async function from(proto: 'tcp' | 'udp', host: string, port: number, local = '', ns = app): Promise<string> {
    return (await execa(...inNs(ns, process.execPath, script('client', CLIENT), proto, host, String(port), local), { timeout: 8000 })).stdout.trim();
  }
  const ping = async (host: string) => (await execa(...inNs(app, 'ping', '-c1', '-W1', '-n', host), { reject: false })).exitCode === 0;

  async function endpoint(ns: string, hostIf: string, v4: string, v6: string): Promise<void> {
    await sh('ip', 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    await sh('ip', 'link', 'set', hostIf, 'master', `${p}br`, 'up');
    await sh('ip', '-n', ns, 'addr', 'add', `${v4}/24`, 'dev', 'eth0');
    await sh('ip', '-n', ns, 'addr', 'add', `${v6}/64`, 'dev', 'eth0', 'nodad');
    await sh('ip', '-n', ns, 'link', 'set', 'eth0', 'up');
    await sh('ip', '-n', ns, 'route', 'add', 'default', 'via', '10.132.1.1');
    await sh('ip', '-n', ns, '-6', 'route', 'add', 'default', 'via', 'fd00:132:1::1');
  }

  before(async () => {
    app = await lab.namespace('app');
    peer = await lab.namespace('peer');
    outside = await lab.namespace('out');
    await sh('ip', 'link', 'add', `${p}br`, 'type', 'bridge');
    await sh('ip', 'addr', 'add', '10.132.1.1/24', 'dev', `${p}br`);
    await sh('ip', 'addr', 'add', 'fd00:132:1::1/64', 'dev', `${p}br`, 'nodad');
    await sh('ip', 'link', 'set', `${p}br`, 'up');
    await endpoint(app, `${p}a`, '10.132.1.2', 'fd00:132:1::2');
    await endpoint(peer, `${p}p`, '10.132.1.3', 'fd00:132:1::3');
    await sh('ip', 'link', 'add', `${p}o`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', outside);
    await sh('ip', 'addr', 'add', '10.133.1.1/24', 'dev', `${p}o`);
    await sh('ip', 'addr', 'add', 'fd00:132:2::1/64', 'dev', `${p}o`, 'nodad');
    await sh('ip', 'link', 'set', `${p}o`, 'up');
    for (const a of ['10.133.1.2/24', '10.133.1.3/24']) await sh('ip', '-n', outside, 'addr', 'add', a, 'dev', 'eth0');
    await sh('ip', '-n', outside, 'addr', 'add', 'fd00:132:2::2/64', 'dev', 'eth0', 'nodad');
    await sh('ip', '-n', outside, 'link', 'set', 'eth0', 'up');
    await sh('ip', '-n', outside, 'route', 'add', 'default', 'via', '10.133.1.1');
    await sh('ip', '-n', outside, '-6', 'route', 'add', 'default', 'via', 'fd00:132:2::1');
    // IPv6 forwarding for this test's two links only (the host-wide switch stays as it is).
    for (const link of [`${p}br`, `${p}o`]) writeFileSync(`/proc/sys/net/ipv6/conf/${link}/force_forwarding`, '1');

    await serve(outside, '::', [16401, 16402, 53, 853], [53, 16402, 16403]);
    await serve(peer, '::', [16405]);
    await serve(app, '127.0.0.11', [], [53]);
    for (const [host, port] of [['10.133.1.1', 16404], ['fd00:132:2::1', 16404], ['10.132.1.1', 16404], ['10.132.1.1', 853]] as const) {
      const server = net.createServer((s) => s.end(`${s.remoteAddress}\n`));
      await new Promise<void>((resolve) => server.listen(port, host, resolve));
      hostServers.push(server);
    }
    // Before any policy: everything is reachable (so every "timeout" below is the firewall).
    // Waited for: new links' link-local addresses are tentative for about a second (DAD), and until
    // then neighbour discovery cannot answer, so on an idle machine the first IPv6 connect is too early.
    await waitFor(async () => (await from('tcp', '10.133.1.2', 16401)) === '10.132.1.2', { what: 'IPv4 outside reachable before any policy' });
    await waitFor(async () => (await from('tcp', 'fd00:132:2::2', 16401)) === 'fd00:132:1::2', { what: 'IPv6 outside reachable before any policy' });

    ({ firewall: fw } = await EgressFirewall.open(table, new Map()));
    await fw.setPolicy('app', rules);
  });

  after(async () => {
    await fw?.close().catch(() => {});
    for (const proc of procs) proc.kill();
    for (const s of hostServers) s.close();
    await lab.cleanup();
    await execa('nft', ['delete', 'table', 'bridge', table], { reject: false });
    rmSync(scripts, { recursive: true, force: true });
  });

  it('denies by default: TCP, UDP and ping to an outside address', async () => {
    assert.equal(await from('tcp', '10.133.1.2', 16401), 'timeout');
    assert.equal(await from('udp', '10.133.1.2', 16403), 'timeout');
    assert.equal(await ping('10.133.1.2'), false);
    assert.ok((await fw.counters('app'))!.dropped > 0);
  });

  it('keeps the own subnet, the gateway (without DNS) and 127.0.0.11 reachable; the host elsewhere is not', async () => {
    assert.equal(await from('tcp', '10.132.1.3', 16405), '10.132.1.2');
    assert.equal(await from('tcp', 'fd00:132:1::3', 16405), 'fd00:132:1::2');
    assert.equal(await from('tcp', '10.132.1.1', 16404), '10.132.1.2');
    assert.equal(await ping('10.132.1.1'), true);
    assert.equal(await from('tcp', '10.132.1.1', 853), 'timeout');
    assert.equal(await from('tcp', '10.133.1.1', 16404), 'timeout');
    assert.equal(await from('tcp', 'fd00:132:2::1', 16404), 'timeout');
    assert.match(await from('udp', '127.0.0.11', 53), /^127\./);
  });

  it('opens a listed CIDR on its port and protocol only', async () => {
    assert.equal(await from('tcp', '10.133.1.3', 16402), '10.132.1.2');
    assert.equal(await from('tcp', '10.133.1.3', 16401), 'timeout');
    assert.equal(await from('udp', '10.133.1.3', 16402), 'timeout');
  });

  it('opens a learned address until its timeout; a connection opened before lives on', async () => {
    await fw.learn('app', ['10.133.1.2'], 3);
    assert.equal(await from('tcp', '10.133.1.2', 16401), '10.132.1.2');
    assert.equal(await from('udp', '10.133.1.2', 16403), '10.132.1.2');
    const holder = execa(...inNs(app, process.execPath, script('holder', HOLDER), '10.133.1.2', '16401'), { stdin: 'pipe' });
    procs.push(holder);
    holder.catch(() => {});
    let seen = '';
    holder.stdout!.on('data', (d: Buffer) => (seen += d.toString()));
    await waitFor(() => seen.includes('10.132.1.2'), { what: 'the held connection opened' });
    await waitFor(async () => (await from('tcp', '10.133.1.2', 16401)) === 'timeout', { what: 'a new connection blocked after the timeout', timeoutMs: 20_000 });
    holder.stdin!.write('still-here\n');
    await waitFor(() => seen.includes('still-here'), { what: 'the established connection still echoes' });
    assert.doesNotMatch(seen, /CLOSED|ERR/);
  });

  it('drops DNS (53, 853) to an outside server even when its address is learned', async () => {
    await fw.learn('app', ['10.133.1.2'], 60);
    assert.equal(await from('tcp', '10.133.1.2', 16401), '10.132.1.2');
    assert.equal(await from('udp', '10.133.1.2', 53), 'timeout');
    assert.equal(await from('tcp', '10.133.1.2', 53), 'timeout');
    assert.equal(await from('tcp', '10.133.1.2', 853), 'timeout');
  });

  it('drops a spoofed source address, even to a learned address', async () => {
    await sh('ip', '-n', app, 'addr', 'add', '10.132.1.50/24', 'dev', 'eth0');
    try {
      assert.equal(await from('tcp', '10.133.1.2', 16401, '10.132.1.50'), 'timeout');
      assert.equal(await from('tcp', '10.133.1.2', 16401), '10.132.1.2');
    } finally {
      await sh('ip', '-n', app, 'addr', 'del', '10.132.1.50/24', 'dev', 'eth0');
    }
  });

  it('applies the same to IPv6: blocked until learned', async () => {
    assert.equal(await from('tcp', 'fd00:132:2::2', 16401), 'timeout');
    await fw.learn('app', ['fd00:132:2::2'], 60);
    assert.equal(await from('tcp', 'fd00:132:2::2', 16401), 'fd00:132:1::2');
    assert.equal(await from('tcp', 'fd00:132:2::2', 853), 'timeout');
  });

  it('lets neighbour discovery out to link-local and link-scope multicast addresses only, not to an address outside', async () => {
    // fd00:132:2::2 is learned (the test before): the control, sent last on the same path.
    await sh('ip', '-n', outside, 'addr', 'add', 'fd00:132:2::9/64', 'dev', 'eth0', 'nodad');
    const listener = execa(...inNs(outside, 'python3', '-u', '-c', ND_LISTENER));
    listener.catch(() => {});
    const arrived: string[] = [];
    try {
      await new Promise<void>((resolve, reject) => {
        listener.stdout!.on('data', (d: Buffer) => {
          for (const line of String(d).split('\n').filter(Boolean)) if (line === 'up') resolve(); else arrived.push(line);
        });
        listener.once('exit', () => reject(new Error('the listener did not start')));
      });
      await execa(...inNs(app, 'python3', '-c', ND_SENDER, 'fd00:132:2::9', 'fd00:132:2::2'));
      await waitFor(() => arrived.includes('fd00:132:2::2'), { what: 'the control message to a learned address' });
      // Sent before the control on the same path: had it not been dropped, it would be here first.
      assert.deepEqual(arrived, ['fd00:132:2::2']);
    } finally {
      listener.kill();
      await sh('ip', '-n', outside, 'addr', 'del', 'fd00:132:2::9/64', 'dev', 'eth0');
    }
  });

  it('shows the kernel what it was told (nft -j read back)', async () => {
    const n = keyNames('app');
    const set4 = JSON.parse(await sh('nft', '-j', 'list', 'set', 'inet', table, n.learned4)) as { nftables: Array<{ set?: { elem?: Array<{ elem: { val: string } }> } }> };
    assert.deepEqual(set4.nftables.find((i) => i.set)?.set?.elem?.map((e) => e.elem.val), ['10.133.1.2']);
    const src4 = await sh('nft', '-j', 'list', 'map', 'inet', table, 'src4');
    assert.match(src4, /"10\.132\.1\.2"/);
    assert.match(src4, new RegExp(`"${n.chain}"`));
  });

  /** The timeout (s) the kernel keeps for a learned address of "app". */
  const timeout = async (address = '10.133.9.9') => {
    const listing = JSON.parse(await sh('nft', '-j', 'list', 'set', 'inet', table, keyNames('app').learned4)) as { nftables: Array<{ set?: { elem?: Array<{ elem: { val: string; timeout: number } }> } }> };
    return listing.nftables.find((i) => i.set)?.set?.elem?.find((e) => e.elem.val === address)?.elem.timeout;
  };

  it('refreshes the timeout of an address answered again, and never shortens it', async () => {
    await fw.learn('app', ['10.133.9.9'], 5);
    assert.equal(await timeout(), 5);
    await fw.learn('app', ['10.133.9.9'], 120);
    assert.equal(await timeout(), 120);
    await fw.learn('app', ['10.133.9.9'], 10);
    assert.equal(await timeout(), 120);
    // Asked twice in one turn: one element, the longer timeout.
    await Promise.all([fw.learn('app', ['10.133.9.10'], 200), fw.learn('app', ['10.133.9.10'], 20)]);
    assert.equal(await timeout('10.133.9.10'), 200);
  });

  it('takes a burst of 1000 learn() calls in a few transactions, not a process or a transaction each', async () => {
    // Counted from here: a policy batch longer than 4 KB before it went to a one-shot nft -f.
    const started = fw.processesStarted;
    const transactions = fw.learnTransactions;
    await Promise.all(Array.from({ length: 1000 }, (_, i) => fw.learn('app', [`10.133.${100 + (i >> 8)}.${i & 255}`], 60)));
    // Some at once (each its own), then the rest of the turn merged: far fewer than 1000.
    assert.ok(fw.learnTransactions - transactions <= 20, `${fw.learnTransactions - transactions} transactions for the burst`);
    // One batch, too long for nft -i's byte-by-byte reader: at most a one-shot nft -f or two.
    assert.ok(fw.processesStarted - started <= 2, `${fw.processesStarted - started} processes for the burst`);
    assert.equal((await fw.counters('app'))!.learned4, 1003);
  });

  it('writes learned addresses over netlink, without a process; one asked right behind a new policy waits for its sets', async () => {
    assert.equal(fw.learnedVia, 'netlink');
    const started = fw.processesStarted;
    await fw.learn('app', ['10.133.1.2'], 60);
    assert.equal(fw.processesStarted, started);
    // "peer" is not governed yet: its sets are made by the policy transaction, which is queued.
    const peerRules: EgressRules = { ...rules, sources: [{ hostIf: `${p}p`, ipv4: ['10.132.1.3'], ipv6: ['fd00:132:1::3'] }], cidrs: [] };
    await Promise.all([fw.setPolicy('peer', peerRules), fw.learn('peer', ['10.133.1.3'], 60)]);
    try {
      assert.equal(await from('tcp', '10.133.1.3', 16401, '', peer), '10.132.1.3');
      assert.equal(await from('tcp', '10.133.1.2', 16401, '', peer), 'timeout');
    } finally {
      await fw.remove('peer');
    }
    // Let go while its addresses are on their way: nothing to open, and no error.
    await fw.setPolicy('peer', peerRules);
    await Promise.all([fw.learn('peer', ['10.133.1.4'], 60), fw.remove('peer')]);
  });

  it('writes a learned address at once while nothing of its namespace is on its way: it connects as soon as learn() returns', async () => {
    await fw.forgetLearned('app');
    assert.equal(await from('tcp', '10.133.1.2', 16401), 'timeout');
    // Nothing of "app" is on its way: written within the call, no promise (the reply goes at once).
    assert.equal(fw.learn('app', ['10.133.1.2'], 90), undefined);
    // In the same turn: open already, nothing to write; a longer timeout is written at once too
    // (a client asking again as soon as it is answered is often read in the same turn).
    assert.equal(fw.learn('app', ['10.133.1.2'], 90), undefined);
    assert.equal(fw.learn('app', ['10.133.1.2'], 300), undefined);
    assert.equal(await from('tcp', '10.133.1.2', 16401), '10.132.1.2');
    assert.equal(await timeout('10.133.1.2'), 300);
  });

  it('closes an address answered just before its policy lost names (the flush comes after it)', async () => {
    const inSet = async (address: string) => (await sh('nft', '-j', 'list', 'set', 'inet', table, keyNames('app').learned4)).includes(`"${address}"`);
    const learned = fw.learn('app', ['10.133.7.7'], 60);
    await Promise.all([learned, fw.forgetLearned('app')]);
    assert.equal(await inSet('10.133.7.7'), false);
    // Answered after the change: open.
    await fw.learn('app', ['10.133.7.7'], 60);
    assert.equal(await inSet('10.133.7.7'), true);
    await fw.forgetLearned('app');
    await fw.learn('app', ['10.133.1.2'], 60);
  });

  it('goes on through nft when its netlink socket fails', async () => {
    const other = await EgressFirewall.open(table, new Map([['app', rules]]));
    try {
      assert.equal(other.firewall.learnedVia, 'netlink');
      // What the binding does after a socket error: it closes the socket, and every send throws.
      (other.firewall as unknown as { netlink: { socket: { close(): void } } }).netlink.socket.close();
      await other.firewall.learn('app', ['10.133.1.3'], 60);
      assert.equal(other.firewall.learnedVia, 'nft');
      assert.equal(await from('tcp', '10.133.1.3', 16401), '10.132.1.2');
    } finally {
      await other.firewall.close();
      await fw.forgetLearned('app');
      await fw.learn('app', ['10.133.1.2'], 60);
    }
  });

  it('learns through the nft channel when asked to (the fallback without netlink)', async () => {
    const channel = await EgressFirewall.open(table, new Map([['app', rules]]), { learnVia: 'nft' });
    try {
      assert.equal(channel.firewall.learnedVia, 'nft');
      assert.equal(await from('tcp', '10.133.1.3', 16401), 'timeout');
      await channel.firewall.learn('app', ['10.133.1.3'], 60);
      assert.equal(await from('tcp', '10.133.1.3', 16401), '10.132.1.2');
      assert.ok(channel.firewall.processesStarted >= 1);
    } finally {
      await channel.firewall.close();
      // Back to what the next tests expect: only 10.133.1.2 learned.
      await fw.forgetLearned('app');
      await fw.learn('app', ['10.133.1.2'], 60);
    }
  });

  it('an address answered again with the same TTL expires that long after the last answer, not the first (over netlink and through nft)', async () => {
    /** The seconds the kernel keeps a learned address of "app" from now (nft rounds down). */
    const expires = async (address: string) => {
      const listing = JSON.parse(await sh('nft', '-j', 'list', 'set', 'inet', table, keyNames('app').learned4)) as { nftables: Array<{ set?: { elem?: Array<{ elem: { val: string; expires: number } }> } }> };
      return listing.nftables.find((i) => i.set)?.set?.elem?.find((e) => e.elem.val === address)?.elem.expires ?? 0;
    };
    const channel = await EgressFirewall.open(table, new Map([['app', rules]]), { learnVia: 'nft' });
    try {
      for (const [address, firewall] of [['10.133.9.20', fw], ['10.133.9.21', channel.firewall]] as const) {
        await firewall.learn('app', [address], 60);
        // Time passes (more than the second within which an answer counts as open already)...
        const left = await until(`${address} past 57 s`, () => expires(address), (s) => s > 0 && s <= 57, 15_000);
        // ...and the same answer again: 60 s from now, where an add with the timeout alone left it.
        await firewall.learn('app', [address], 60);
        const refreshed = await expires(address);
        assert.ok(refreshed > left + 1, `${address} (${firewall.learnedVia}): ${left} s left before the answer again, ${refreshed} s after`);
      }
    } finally {
      await channel.firewall.close();
      // Back to what the next tests expect: only 10.133.1.2 learned.
      await fw.forgetLearned('app');
      await fw.learn('app', ['10.133.1.2'], 60);
    }
  });

  it('asks the kernel how it refreshes an element; before Linux 6.10 it replaces one in a transaction, and adds one no longer there', async () => {
    const [major, minor] = release().split('.').map(Number) as [number, number];
    // Before 6.10 'replace', unless a distribution's kernel took the update from a later one.
    if (major > 6 || (major === 6 && minor >= 10)) assert.equal(fw.refresh, 'in-place');
    else assert.ok(fw.refresh === 'replace' || fw.refresh === 'in-place');
    // No probe set left behind.
    assert.doesNotMatch(await sh('nft', 'list', 'table', 'inet', table), /refresh_probe/);
    // What the kernel is told, as it tells its listeners (a delete, then an add, in one transaction).
    const monitor = execa('nft', ['monitor', 'elements']);
    procs.push(monitor);
    monitor.catch(() => {});
    const events: string[] = [];
    createInterface({ input: monitor.stdout! }).on('line', (line) => events.push(line));
    const set = keyNames('app').learned4;
    await until('nft monitor running', async () => {
      await sh('nft', 'add', 'element', 'inet', table, set, '{ 10.133.9.99 timeout 1s }');
      return events.join('\n');
    }, (e) => e.includes('10.133.9.99'), 10_000);
    const expires = async (address: string) => {
      const listing = JSON.parse(await sh('nft', '-j', 'list', 'set', 'inet', table, set)) as { nftables: Array<{ set?: { elem?: Array<{ elem: { val: string; expires: number } }> } }> };
      return listing.nftables.find((i) => i.set)?.set?.elem?.find((e) => e.elem.val === address)?.elem.expires;
    };
    const netlink = await EgressFirewall.open(table, new Map([['app', rules]]), { refresh: 'replace' });
    const channel = await EgressFirewall.open(table, new Map([['app', rules]]), { refresh: 'replace', learnVia: 'nft' });
    try {
      for (const [address, firewall] of [['10.133.9.30', netlink.firewall], ['10.133.9.31', channel.firewall]] as const) {
        assert.equal(firewall.refresh, 'replace');
        await firewall.learn('app', [address], 60);
        await firewall.learn('app', [address], 120);
        assert.ok((await expires(address) ?? 0) > 100, `${address} (${firewall.learnedVia}) refreshed`);
        // The monitor prints what the kernel tells it in its own time: waited for.
        const told = () => events.filter((e) => e.includes(`{ ${address} `)).map((e) => e.split(' ')[0]);
        const seen = await until(`${address}: three events`, told, (e) => e.length >= 3, 10_000).catch(() => told());
        assert.deepEqual(seen, ['add', 'delete', 'add'], `${address} (${firewall.learnedVia}): ${events.join(' | ')}`);
        // The same among a burst (past the writes done at once, a turn's others are merged).
        const burst = Array.from({ length: 20 }, (_, i) => `10.133.10.${firewall.learnedVia === 'nft' ? 100 + i : i}`);
        await Promise.all([...burst.map((a) => firewall.learn('app', [a], 60)), firewall.learn('app', [address], 200)]);
        assert.ok((await expires(address) ?? 0) > 180, `${address} (${firewall.learnedVia}) refreshed in a burst`);
        await until(`${address}: five events`, told, (e) => e.length >= 5, 10_000).catch(() => undefined);
        assert.deepEqual(told(), ['add', 'delete', 'add', 'delete', 'add'], `${address} (${firewall.learnedVia}) in a burst`);
        // Gone from the set behind the firewall's back: the replace is refused, and the address is added.
        await sh('nft', 'delete', 'element', 'inet', table, set, `{ ${address} }`);
        await firewall.learn('app', [address], 400);
        assert.ok((await expires(address) ?? 0) > 380, `${address} (${firewall.learnedVia}) added again after it was deleted`);
      }
      assert.equal(await from('tcp', '10.133.1.2', 16401), '10.132.1.2');
    } finally {
      monitor.kill();
      await netlink.firewall.close();
      await channel.firewall.close();
    }
  });

  it('holds at most maxLearned addresses per family: the next is refused (ERR_EGRESS_FULL) and stays closed; open ones connect and refresh; another namespace learns (over netlink and through nft)', async () => {
    const peerRules: EgressRules = { ...rules, sources: [{ hostIf: `${p}p`, ipv4: ['10.132.1.3'], ipv6: ['fd00:132:1::3'] }], cidrs: [] };
    /** The size of a namespace's IPv4 set and the elements it holds, read back from the kernel. */
    const set4 = async (key: string) => {
      const listing = JSON.parse(await sh('nft', '-j', 'list', 'set', 'inet', table, keyNames(key).learned4)) as { nftables: Array<{ set?: { size?: number; elem?: unknown[] } }> };
      const found = listing.nftables.find((i) => i.set)?.set;
      return { size: found?.size, elements: found?.elem?.length ?? 0 };
    };
    const full = { code: 'ERR_EGRESS_FULL', message: /limit of 16 open addresses of one family \(egress\.maxLearned\)/ };
    for (const learnVia of ['netlink', 'nft'] as const) {
      await fw.forgetLearned('app');
      const { firewall: capped } = await EgressFirewall.open(table, new Map([['app', rules], ['peer', peerRules]]), { maxLearned: 16, learnVia });
      try {
        assert.equal(capped.learnedVia, learnVia);
        // The smallest limit egress.maxLearned takes, filled in two answers.
        await capped.learn('app', ['10.133.1.2', ...Array.from({ length: 14 }, (_, i) => `10.133.30.${i + 1}`)], 60);
        await capped.learn('app', ['10.133.30.15'], 60);
        assert.deepEqual(await set4('app'), { size: 16, elements: 16 }, learnVia);
        await assert.rejects(Promise.resolve(capped.learn('app', ['10.133.1.3'], 60)), full);
        // Not taken as open: asked again, refused again (never an answer for an address that is closed).
        await assert.rejects(Promise.resolve(capped.learn('app', ['10.133.1.3'], 60)), full);
        // The daemon's map of expiries keeps what the kernel keeps, no more: bounded by the sets too.
        const expiries = (capped as unknown as { expiries: Map<string, { until: Map<string, unknown> }> }).expiries.get('app')!.until;
        assert.deepEqual([expiries.size, expiries.has('10.133.1.3')], [16, false]);
        assert.equal(await from('tcp', '10.133.1.3', 16401), 'timeout');
        assert.equal(await from('tcp', '10.133.1.2', 16401), '10.132.1.2');
        // Open already: answered again and for longer, refreshed in the full set.
        await capped.learn('app', ['10.133.1.2'], 60);
        await capped.learn('app', ['10.133.1.2'], 120);
        assert.equal(await timeout('10.133.1.2'), 120);
        // IPv6 has a set of its own; the other namespace its own two.
        await capped.learn('app', ['fd00:132:2::2'], 60);
        assert.equal(await from('tcp', 'fd00:132:2::2', 16401), 'fd00:132:1::2');
        await capped.learn('peer', ['10.133.1.3'], 60);
        assert.equal(await from('tcp', '10.133.1.3', 16401, '', peer), '10.132.1.3');
        assert.deepEqual(await set4('app'), { size: 16, elements: 16 });
      } finally {
        await capped.remove('peer');
        await capped.close();
      }
    }
    // The next policy transaction writes the size again, as a start with another maxLearned would: the default here.
    await fw.setPolicy('app', rules);
    assert.equal((await set4('app')).size, 32768);
    // Back to what the next tests expect: only 10.133.1.2 learned.
    await fw.forgetLearned('app');
    await fw.learn('app', ['10.133.1.2'], 60);
  });

  it('keeps enforcing after close(); a new instance opened with the known namespace adopts it and keeps its learned addresses', async () => {
    await fw.close();
    assert.equal(await from('tcp', '10.133.1.3', 16401), 'timeout');
    assert.equal(await from('tcp', '10.133.1.2', 16401), '10.132.1.2');
    const reopened = await EgressFirewall.open(table, new Map([['app', rules]]));
    fw = reopened.firewall;
    assert.deepEqual([reopened.kept, reopened.removed], [1, 0]);
    assert.equal(await from('tcp', '10.133.1.3', 16401), 'timeout');
    assert.equal(await from('tcp', '10.133.1.2', 16401), '10.132.1.2');
  });

  it('remove() opens the namespace again', async () => {
    await fw.remove('app');
    assert.equal(await from('tcp', '10.133.1.3', 16401), '10.132.1.2');
    assert.equal(await from('tcp', 'fd00:132:2::2', 853), 'fd00:132:1::2');
    assert.equal(await ping('10.133.1.2'), true);
  });

  it('open() removes a namespace whose policy is no longer known', async () => {
    await fw.setPolicy('app', rules);
    assert.equal(await from('tcp', '10.133.1.3', 16401), 'timeout');
    await fw.close();
    const reopened = await EgressFirewall.open(table, new Map());
    fw = reopened.firewall;
    assert.deepEqual([reopened.kept, reopened.removed], [0, 1]);
    assert.equal(await from('tcp', '10.133.1.3', 16401), '10.132.1.2');
    // Nothing governed: no tables left behind.
    for (const family of ['inet', 'bridge']) assert.notEqual((await execa('nft', ['list', 'table', family, table], { reject: false })).exitCode, 0);
  });
});

describe('set elements over netlink', { skip: needsRoot }, () => {
  const table = `nsdns_nl_${process.pid}`;
  const elements = async (set: string) => (JSON.parse(await sh('nft', '-j', 'list', 'set', 'inet', table, set)) as { nftables: Array<{ set?: { elem?: Array<{ elem: { val: string; timeout: number } }> } }> })
    .nftables.find((i) => i.set)?.set?.elem?.map((e) => `${e.elem.val}/${e.elem.timeout}`) ?? [];
  let writer: NftNetlink;
  before(async () => {
    await execa('nft', ['-f', '-'], { input: `add table inet ${table}\nadd set inet ${table} a { type ipv4_addr; flags timeout; }\nadd set inet ${table} b { type ipv6_addr; flags timeout; }\n` });
    const opened = NftNetlink.open();
    assert.ok('writer' in opened);
    writer = opened.writer;
  });
  after(async () => {
    writer?.close();
    await execa('nft', ['delete', 'table', 'inet', table], { reject: false });
  });

  it('adds IPv4 and IPv6 elements with their timeouts in one transaction', async () => {
    assert.ok(writer.synchronous, 'writes go on the socket\'s descriptor, acknowledged within the write');
    await writer.addElements(table, [
      { set: 'a', elements: [{ address: '10.133.8.1', ttl: 90 }, { address: '10.133.8.2', ttl: 604800 }] },
      { set: 'b', elements: [{ address: '2001:db8::1', ttl: 30 }] },
    ]);
    assert.deepEqual((await elements('a')).sort(), ['10.133.8.1/90', '10.133.8.2/604800']);
    assert.deepEqual(await elements('b'), ['2001:db8::1/30']);
  });

  it('is refused with the kernel\'s reason, and a refused batch applies nothing', async () => {
    await assert.rejects(writer.addElements(table, [{ set: 'nosuchset', elements: [{ address: '10.133.8.3', ttl: 60 }] }]), /ENOENT/);
    await assert.rejects(writer.addElements(table, [
      { set: 'a', elements: [{ address: '10.133.8.4', ttl: 60 }] },
      { set: 'nosuchset', elements: [{ address: '10.133.8.5', ttl: 60 }] },
    ]), /ENOENT/);
    assert.ok(!(await elements('a')).some((e) => e.startsWith('10.133.8.4/')), 'the other set of the refused batch got nothing');
    await assert.rejects(writer.addElements(`${table}_missing`, [{ set: 'a', elements: [{ address: '10.133.8.6', ttl: 60 }] }]), /ENOENT/);
    // A refusal echoes the refused message: a full batch's is longer than one read, and is cut.
    const full = Array.from({ length: ELEMENTS_PER_BATCH }, (_, i) => ({ address: `fd00:133::${i.toString(16)}`, ttl: 60 }));
    await assert.rejects(writer.addElements(table, [{ set: 'nosuchset', elements: full }]), /ENOENT/);
    await writer.addElements(table, [{ set: 'a', elements: [{ address: '10.133.8.7', ttl: 60 }] }]);
    assert.ok((await elements('a')).some((e) => e.startsWith('10.133.8.7/')), 'the writer goes on after a long refusal');
  });

  it('replaces elements (a delete and an add in one transaction) beside plain adds; a replace of one not there applies nothing', async () => {
    await writer.addElements(table, [{ set: 'a', elements: [{ address: '10.133.8.10', ttl: 60 }] }, { set: 'b', elements: [{ address: '2001:db8::10', ttl: 60 }] }]);
    await writer.addElements(table, [
      { set: 'a', elements: [{ address: '10.133.8.10', ttl: 120, replace: true }, { address: '10.133.8.11', ttl: 45 }] },
      { set: 'b', elements: [{ address: '2001:db8::10', ttl: 90, replace: true }] },
    ]);
    assert.deepEqual((await elements('a')).filter((e) => /^10\.133\.8\.1\d\//.test(e)).sort(), ['10.133.8.10/120', '10.133.8.11/45']);
    assert.ok((await elements('b')).includes('2001:db8::10/90'));
    const outcome = writer.addElementsNow(table, [{ set: 'a', elements: [{ address: '10.133.8.12', ttl: 60 }, { address: '10.133.8.13', ttl: 60, replace: true }] }]);
    assert.match(String(outcome instanceof Promise ? await outcome.catch((err: unknown) => err) : outcome), /ENOENT/);
    assert.ok(!(await elements('a')).some((e) => e.startsWith('10.133.8.12/')), 'the plain add of the refused batch was not applied');
  });

  it('takes more elements than one batch holds', async () => {
    const many = Array.from({ length: ELEMENTS_PER_BATCH + 10 }, (_, i) => ({ address: `10.134.${i >> 8}.${i & 255}`, ttl: 60 }));
    await writer.addElements(table, [{ set: 'a', elements: many }]);
    assert.equal((await elements('a')).filter((e) => e.startsWith('10.134.')).length, ELEMENTS_PER_BATCH + 10);
  });
});

describe('the nft channel', { skip: needsRoot }, () => {
  const table = `nsdns_test_ch_${process.pid}`;
  const add = (a: string, set = 's') => `add element inet ${table} ${set} { ${a} timeout 60s }`;
  const elements = async () => {
    const listing = JSON.parse(await sh('nft', '-j', 'list', 'set', 'inet', table, 's')) as { nftables: Array<{ set?: { elem?: Array<{ elem: { val: string } }> } }> };
    return (listing.nftables.find((i) => i.set)?.set?.elem ?? []).map((e) => e.elem.val).sort();
  };
  const channels: NftChannel[] = [];
  const open = (options: ConstructorParameters<typeof NftChannel>[0] = {}) => {
    const c = new NftChannel(options);
    channels.push(c);
    return c;
  };

  before(async () => {
    await sh('nft', `add table inet ${table}; add set inet ${table} s { type ipv4_addr; flags timeout; }`);
  });
  after(async () => {
    for (const c of channels) await c.close().catch(() => {});
    await execa('nft', ['delete', 'table', 'inet', table], { reject: false });
  });

  it('fails only the caller whose part nft refused, in a batch of three', async () => {
    const c = open();
    const results = await Promise.allSettled([c.submit(add('10.133.0.1')), c.submit(add('10.133.0.2', 'nosuchset')), c.submit(add('10.133.0.3'))]);
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
    assert.match(String((results[1] as PromiseRejectedResult).reason), /nft refused the update/);
    assert.deepEqual(await elements(), ['10.133.0.1', '10.133.0.3']);
    assert.equal(c.processesStarted, 1);
  });

  it('refuses a line break (one line is one transaction)', async () => {
    await assert.rejects(open().submit(`${add('10.133.0.9')}\nflush ruleset`), { code: 'ERR_FIREWALL' });
  });

  it('rejects the caller in flight when nft hangs or dies, and starts a new nft for the next one', async () => {
    const c = open({ lineTimeoutMs: 1000 });
    await c.submit(add('10.133.0.4'));
    const first = c.pid!;
    process.kill(first, 'SIGSTOP'); // wedged: the line times out, nft is killed, the caller told
    await assert.rejects(c.submit(add('10.133.0.5')), /nft stopped before confirming/);
    await c.submit(add('10.133.0.6'));
    const second = c.pid!;
    assert.notEqual(second, first);
    process.kill(second, 'SIGKILL'); // gone between lines: the next caller simply gets a new one
    await waitFor(() => c.pid === undefined, { what: 'the channel saw nft exit' });
    await c.submit(add('10.133.0.7'));
    assert.equal(c.processesStarted, 3);
    const now = await elements();
    assert.ok(now.includes('10.133.0.6') && now.includes('10.133.0.7'), now.join(' '));
  });

  it('falls back to one nft -f per batch when nft -i cannot start', async () => {
    const c = open({ command: ['/nonexistent/nft-for-egress-test', '-i'] });
    await c.submit(add('10.133.0.8'));
    assert.equal(c.mode, 'per-batch');
    assert.ok((await elements()).includes('10.133.0.8'));
  });
});
