// What the aardvark-dns drop-in answers, through bin/aardvark-dns started as netavark starts it:
// PTR gives every name and alias of a container (v4 and v6), an upstream's rcode reaches the
// client, no reply at all when every upstream fails (as aardvark: a SERVFAIL makes clients give
// up), and a rewritten resolv.conf is used without a signal (at most its first three servers).
// Loopback addresses stand in for the gateways and containers; upstreams are local fakes on port 53
// of their own loopback address (aardvark's files and resolv.conf have no port syntax).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { ROOT } from '../helpers/daemon.js';
import { dig, digShort } from '../helpers/dig.js';
import { FakeUpstream } from '../helpers/fake-upstream.js';
import { tempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { freePort } from '../helpers/free-port.js';

const BIN = path.join(ROOT, 'bin/aardvark-dns');
const ID1 = 'c031bf33eecba75d0d84952337b1ceef6a239eb8e94b48aee0993d0791345325';
const ID2 = 'd031bf33eecba75d0d84952337b1ceef6a239eb8e94b48aee0993d0791345325';
const ID3 = 'e031bf33eecba75d0d84952337b1ceef6a239eb8e94b48aee0993d0791345325';
const ID4 = '9031bf33eecba75d0d84952337b1ceef6a239eb8e94b48aee0993d0791345325';
const ID5 = '8031bf33eecba75d0d84952337b1ceef6a239eb8e94b48aee0993d0791345325';
const GATEWAY = '127.0.191.1';
/** Loopback addresses where nothing listens: a query there fails at once (port unreachable). */
const DEAD = ['127.0.191.56', '127.0.191.58', '127.0.191.59'];

function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

/** dig's view of a query nobody answered: no status line, and it says so. */
function unanswered(result: { status: string; raw: string }): boolean {
  return result.status === 'NONE' && /timed out|no servers could be reached/.test(result.raw);
}

describe('aardvark-dns drop-in: answers as aardvark gives them', { skip: process.getuid?.() !== 0 && 'needs root (fake upstreams on port 53)' }, () => {
  const tmp = tempDir('nsdns-podans-');
  const config = path.join(tmp.dir, 'aardvark-dns');
  const resolv = path.join(tmp.dir, 'resolv.conf');
  const upstreams: FakeUpstream[] = [];
  let pid = 0;
  let port: number;
  let at: string;
  let host: FakeUpstream;
  let metricsAt: string;

  before(async () => {
    mkdirSync(config);
    host = await FakeUpstream.start({ address: '127.0.191.53', port: 53, zone: { 'example.com': ['192.0.2.1'] } });
    upstreams.push(host);
    upstreams.push(await FakeUpstream.start({ address: '127.0.191.54', port: 53, behaviour: 'refused' }));
    upstreams.push(await FakeUpstream.start({ address: '127.0.191.57', port: 53, zone: { 'example.com': ['192.0.2.7'] } }));
    writeFileSync(resolv, 'nameserver 127.0.191.53\n');
    port = await freePort(GATEWAY, 25500);
    at = `${GATEWAY}:${port}`;
    metricsAt = `${GATEWAY}:${await freePort(GATEWAY, 25600)}`;
    writeFileSync(path.join(config, 'answers'), [
      GATEWAY,
      `${ID1} 10.191.3.2 fd19:1::2 web,api,www`,
      `${ID2} 10.191.3.3  db`,
      // Containers with DNS servers of their own, asking from these (loopback) addresses.
      `${ID3} 127.0.191.10  refusing 127.0.191.54`,
      `${ID4} 127.0.191.11  unlucky ${DEAD.join(',')}`,
      '',
    ].join('\n'));
    const r = await execa(BIN, ['--config', config, '-p', String(port), 'run'], {
      reject: false,
      env: { NSDNS_AARDVARK_RESOLV_CONF: resolv, NSDNS_METRICS: metricsAt, NSDNS_AARDVARK_LOG: path.join(tmp.dir, 'server.log') },
    });
    assert.equal(r.exitCode, 0, r.stderr);
    pid = Number(readFileSync(path.join(config, 'aardvark.pid'), 'utf8'));
  });
  after(async () => {
    if (pid > 0 && alive(pid)) process.kill(pid, 'SIGKILL');
    for (const u of upstreams) await u.stop();
    tmp.cleanup();
  });

  it('PTR gives every name and alias of the container, as aardvark does, for v4 and v6', async () => {
    for (const address of ['10.191.3.2', 'fd19:1::2']) {
      const reply = await dig(at, '-x', address);
      assert.equal(reply.status, 'NOERROR', reply.raw);
      assert.deepEqual(reply.answers.map((a) => [a.type, a.ttl, a.data]).sort(),
        [['PTR', 0, 'api.'], ['PTR', 0, 'web.'], ['PTR', 0, 'www.']], `${address}: ${reply.raw}`);
    }
    assert.deepEqual((await dig(at, '+tcp', '-x', '10.191.3.3')).answers.map((a) => a.data), ['db.']);
  });

  it('an upstream\'s REFUSED and NXDOMAIN reach the client', async () => {
    const refused = await dig(at, '-b', '127.0.191.10', 'example.com');
    assert.equal(refused.status, 'REFUSED', refused.raw);
    const nx = await dig(at, 'nothing-here.example');
    assert.equal(nx.status, 'NXDOMAIN', nx.raw);
  });

  it('no reply at all when every upstream fails, over UDP and TCP', async () => {
    const udp = await dig(at, '-b', '127.0.191.11', '+time=3', 'example.com');
    assert.ok(unanswered(udp), `expected no reply, got:\n${udp.raw}`);
    const tcp = await dig(at, '-b', '127.0.191.11', '+tcp', '+time=3', 'example.com');
    assert.ok(unanswered(tcp), `expected no reply, got:\n${tcp.raw}`);
    // The server is still there for everyone else.
    assert.deepEqual(await digShort(at, 'web'), ['10.191.3.2']);
  });

  it('uses a rewritten resolv.conf within seconds, without a signal: in place, renamed over, at most three servers', async () => {
    assert.deepEqual(await digShort(at, 'example.com'), ['192.0.2.1']);
    writeFileSync(resolv, 'nameserver 127.0.191.57\n');
    await waitFor(async () => (await digShort(at, 'example.com'))[0] === '192.0.2.7', { what: 'the rewritten resolv.conf is used' });
    // As resolvconf and NetworkManager replace it: a new file renamed over the old one. Only the
    // first three servers count: the fourth, which would answer, is never asked.
    const next = `${resolv}.new`;
    writeFileSync(next, [...DEAD, '127.0.191.53'].map((a) => `nameserver ${a}\n`).join(''));
    renameSync(next, resolv);
    const before = host.received.length;
    let last = '';
    await waitFor(async () => unanswered(await dig(at, '+time=2', 'example.com').then((r) => { last = r.raw; return r; })), { what: 'the renamed-over resolv.conf is used', timeoutMs: 20_000 })
      .catch((err) => { throw new Error(`${(err as Error).message}; last answer:\n${last}`); });
    assert.equal(host.received.slice(before).filter((q) => q.name === 'example.com').length, 0, 'the fourth server is not asked');
    assert.ok(existsSync(resolv));
  });

  it('NSDNS_METRICS=ADDR:PORT serves /metrics (what was answered), /healthz and /readyz', async () => {
    const get = async (what: string) => {
      const res = await fetch(`http://${metricsAt}${what}`);
      return { status: res.status, body: await res.text() };
    };
    const metrics = await waitFor(() => get('/metrics').catch(() => undefined), { what: 'metrics are served' });
    assert.equal(metrics.status, 200);
    assert.match(metrics.body, /^nsdns_queries_total\{[^}]*source="local",qtype="PTR",rcode="NOERROR"\} [1-9]/m);
    assert.match(metrics.body, /^nsdns_queries_total\{[^}]*source="upstream",qtype="A",rcode="REFUSED"\} [1-9]/m);
    assert.match(metrics.body, /^nsdns_networks 1$/m);
    assert.equal((await get('/healthz')).status, 200);
    assert.match((await get('/readyz')).body, /^(ready|not ready:)/);
  });
});

// Where nsdns's own rules would answer otherwise, the drop-in answers as aardvark does
// (aardvark src/dns/coredns.rs, src/backend/mod.rs): nothing when no upstream is known at all,
// NXDOMAIN to a container on internal networks only, RA always, every address holding a name even
// when it is also another container's name, and no zone named after a network (`example.com` on a
// network named `com` is forwarded). Addresses: 127.0.120.x (gateways, clients), 10.120.x.x.
describe('aardvark-dns drop-in: aardvark\'s answers where nsdns\'s own rules differ', { skip: process.getuid?.() !== 0 && 'needs root (a fake upstream on port 53)' }, () => {
  const tmp = tempDir('nsdns-podpar-');
  const config = path.join(tmp.dir, 'aardvark-dns');
  let upstream: FakeUpstream;
  let pid = 0;
  let port = 0;
  const OPEN = '127.0.120.1';
  const COM = '127.0.120.2';
  const CLOSED = '127.0.120.3';
  const INSIDE = '127.0.120.20';
  /** The container on `com`: the network's DNS server is used for its queries, not the host's. */
  const WWW = '127.0.120.21';
  const at = (gateway: string) => `${gateway}:${port}`;

  before(async () => {
    mkdirSync(config);
    upstream = await FakeUpstream.start({ address: '127.0.120.53', port: 53, zone: { 'example.com': ['192.0.2.1'] } });
    // No upstream at all: an empty resolv.conf, and no DNS servers in the `open` network's file.
    const resolv = path.join(tmp.dir, 'resolv.conf');
    writeFileSync(resolv, '');
    port = await freePort(OPEN, 15300);
    writeFileSync(path.join(config, 'open'), [
      OPEN,
      `${ID1} 10.120.1.2  web`,
      `${ID2} 10.120.1.3  db,web`,
      `${ID3} 10.120.1.4  web,cache`,
      '',
    ].join('\n'));
    writeFileSync(path.join(config, 'com'), `${COM} 127.0.120.53\n${ID4} ${WWW}  www\n`);
    writeFileSync(path.join(config, 'closed%int'), `${CLOSED}\n${ID5} ${INSIDE}  inside\n`);
    const r = await execa(BIN, ['--config', config, '-p', String(port), 'run'], {
      reject: false,
      env: { NSDNS_AARDVARK_RESOLV_CONF: resolv, NSDNS_AARDVARK_LOG: path.join(tmp.dir, 'server.log') },
    });
    assert.equal(r.exitCode, 0, r.stderr);
    pid = Number(readFileSync(path.join(config, 'aardvark.pid'), 'utf8'));
  });
  after(async () => {
    if (pid > 0 && alive(pid)) process.kill(pid, 'SIGKILL');
    await upstream?.stop();
    tmp.cleanup();
  });

  it('with no upstream at all, no reply (UDP and TCP); local names still answer, with RA', async () => {
    const udp = await dig(at(OPEN), '+time=2', 'example.com');
    assert.ok(unanswered(udp), `expected no reply, got:\n${udp.raw}`);
    const tcp = await dig(at(OPEN), '+tcp', '+time=2', 'example.com');
    assert.ok(unanswered(tcp), `expected no reply, got:\n${tcp.raw}`);
    const local = await dig(at(OPEN), 'db');
    assert.deepEqual(local.answers.map((a) => a.data), ['10.120.1.3'], local.raw);
    assert.ok(local.flags.includes('ra'), `RA is set, as aardvark sets it:\n${local.raw}`);
  });

  it('a container on internal networks only gets NXDOMAIN for other names, with RA', async () => {
    const outside = await dig(at(CLOSED), '-b', INSIDE, 'example.com');
    assert.equal(outside.status, 'NXDOMAIN', outside.raw);
    assert.ok(outside.flags.includes('ra'), outside.raw);
    const local = await dig(at(CLOSED), '-b', INSIDE, 'inside');
    assert.deepEqual(local.answers.map((a) => a.data), [INSIDE], local.raw);
    assert.ok(local.flags.includes('ra'), `no "recursion requested but not available" warning:\n${local.raw}`);
    assert.equal(upstream.countFor('example.com'), 0, 'nothing was forwarded');
  });

  it('a name that is also another container\'s name or alias answers every container holding it, bare and under dns.podman', async () => {
    for (const name of ['web', 'web.dns.podman']) {
      const reply = await dig(at(OPEN), name);
      assert.equal(reply.status, 'NOERROR', reply.raw);
      assert.deepEqual(reply.answers.map((a) => a.data).sort(), ['10.120.1.2', '10.120.1.3', '10.120.1.4'], `${name}: ${reply.raw}`);
    }
    assert.deepEqual(await digShort(at(OPEN), 'cache'), ['10.120.1.4']);
  });

  it('a network named like a TLD (`com`) keeps names under it: they are forwarded, not NXDOMAIN', async () => {
    assert.deepEqual(await digShort(at(COM), '-b', WWW, 'example.com'), ['192.0.2.1']);
    // aardvark answers `www` and `www.dns.podman`, never `www.<network>`: that name is the upstream's.
    assert.deepEqual(await digShort(at(COM), '-b', WWW, 'www'), [WWW]);
    assert.deepEqual(await digShort(at(COM), '-b', WWW, 'www.dns.podman'), [WWW]);
    const before = upstream.countFor('www.com');
    await dig(at(COM), '-b', WWW, 'www.com');
    assert.equal(upstream.countFor('www.com'), before + 1, 'www.com was asked upstream');
  });
});
