// The aardvark-dns drop-in's upstreams, through bin/aardvark-dns started as netavark starts it:
// the first server's answer is the client's whatever its rcode, as aardvark relays the first reply
// it gets (REFUSED, SERVFAIL), and a dead first server costs no client its timeout, from the
// server's start on. Upstreams are local fakes on port 53 of their own loopback address
// (aardvark's files have no port syntax); containers ask from loopback addresses too.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { validate } from '../../src/daemon/config.js';
import { askAll } from '../helpers/burst-client.js';
import { ROOT } from '../helpers/daemon.js';
import { dig } from '../helpers/dig.js';
import { FakeUpstream } from '../helpers/fake-upstream.js';
import { freePort } from '../helpers/free-port.js';
import { tempDir } from '../helpers/tmp.js';

const BIN = path.join(ROOT, 'bin/aardvark-dns');
const GATEWAY = '127.0.121.1';
const REFUSING = '127.0.121.54';
const FAILING = '127.0.121.55';
const BLACK_HOLE = '127.0.121.56';
const LIVE = '127.0.121.57';
/** The drop-in's forward timeout: it takes no options, so the daemon's default. */
const TIMEOUT_MS = validate({}, 'test').forward.timeoutMs;
const ID = (n: number) => `${n}031bf33eecba75d0d84952337b1ceef6a239eb8e94b48aee0993d0791345325`;

function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

describe('aardvark-dns drop-in: upstreams as aardvark uses them', { skip: process.getuid?.() !== 0 && 'needs root (fake upstreams on port 53)' }, () => {
  const tmp = tempDir('nsdns-podup-');
  const config = path.join(tmp.dir, 'aardvark-dns');
  const upstreams: FakeUpstream[] = [];
  let live: FakeUpstream;
  let blackHole: FakeUpstream;
  let pid = 0;
  let port: number;
  let at: string;

  before(async () => {
    mkdirSync(config);
    const zone = Object.fromEntries(['example.com', ...Array.from({ length: 300 }, (_, i) => `n${i}.hedge.test`)].map((n) => [n, ['192.0.2.57']]));
    live = await FakeUpstream.start({ address: LIVE, port: 53, zone });
    blackHole = await FakeUpstream.start({ address: BLACK_HOLE, port: 53, behaviour: 'silent' });
    upstreams.push(live, blackHole,
      await FakeUpstream.start({ address: REFUSING, port: 53, behaviour: 'refused' }),
      await FakeUpstream.start({ address: FAILING, port: 53, behaviour: 'servfail' }));
    port = await freePort(GATEWAY, 15400);
    at = `${GATEWAY}:${port}`;
    // Each container asks from its own address and has its own DNS servers, the first one bad.
    writeFileSync(path.join(config, 'upstreams'), [
      GATEWAY,
      `${ID(1)} 127.0.121.10  refused ${REFUSING},${LIVE}`,
      `${ID(2)} 127.0.121.11  servfail ${FAILING},${LIVE}`,
      `${ID(3)} 127.0.121.12  deadfirst ${BLACK_HOLE},${LIVE}`,
      '',
    ].join('\n'));
    const r = await execa(BIN, ['--config', config, '-p', String(port), 'run'], {
      reject: false,
      env: { NSDNS_AARDVARK_RESOLV_CONF: '', NSDNS_AARDVARK_LOG: path.join(tmp.dir, 'server.log') },
    });
    assert.equal(r.exitCode, 0, r.stderr);
    pid = Number(readFileSync(path.join(config, 'aardvark.pid'), 'utf8'));
  });
  after(async () => {
    if (pid > 0 && alive(pid)) process.kill(pid, 'SIGKILL');
    for (const u of upstreams) await u.stop();
    tmp.cleanup();
  });

  it('a dead first server costs no query its timeout, from the start: each answered, none lost or refused', async () => {
    // One query every 5 ms from one container: waiting out the timeout on each, its share of 64
    // exchanges in flight would be full after 320 ms, and the rest refused or dropped.
    const names = Array.from({ length: 300 }, (_, i) => `n${i}.hedge.test`);
    const result = await askAll(GATEWAY, port, names, { everyMs: 5, waitMs: 3 * TIMEOUT_MS, source: '127.0.121.12' });
    assert.deepEqual(result.unanswered, [], 'every query was answered');
    assert.deepEqual(result.replies.filter((r) => r.rcode !== 'NOERROR' || r.addresses.join() !== '192.0.2.57'), [], 'each by the live server');
    assert.deepEqual(result.replies.filter((r) => r.ms >= TIMEOUT_MS), [], 'none waited for the dead server to time out');
    assert.ok(blackHole.countFor('n0.hedge.test') === 1, 'the dead server was asked first');
  });

  it('the first server\'s REFUSED or SERVFAIL is the client\'s answer; the next server is not asked', async () => {
    const before = live.countFor('example.com');
    const refused = await dig(at, '-b', '127.0.121.10', 'example.com');
    assert.equal(refused.status, 'REFUSED', refused.raw);
    const failed = await dig(at, '-b', '127.0.121.11', 'example.com');
    assert.equal(failed.status, 'SERVFAIL', failed.raw);
    assert.equal(live.countFor('example.com'), before, 'the second server was not asked');
  });
});
