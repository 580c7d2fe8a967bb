// A namespace is its network's tenant wherever it asks: at a host listener (`--listen`) it sees
// what its own 127.0.0.11 shows and no more, whether the bridges came before the daemon's start
// or after it, and after a reload. Three networks: A, B and an internal one; a host listener on
// every host address, port 25301, reached by each namespace at its own gateway.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { FakeUpstream } from '../helpers/fake-upstream.js';
import { Lab, needsRoot } from '../helpers/netns.js';

const PORT = 25301;
const A = { name: 'tna', subnet: '10.161.0.0/24', gateway: '10.161.0.1' };
const B = { name: 'tnb', subnet: '10.162.0.0/24', gateway: '10.162.0.1' };
const I = { name: 'tni', subnet: '10.163.0.0/24', gateway: '10.163.0.1' };

const HOST = '';

interface Answer { status: string; answers: string[] }

/** dig from inside `ns` (the host: HOST) at `server`:PORT; the answer section as "name type data" lines. */
async function digFrom(ns: string, server: string, ...args: string[]): Promise<Answer> {
  const dig = ['dig', `@${server}`, '-p', String(PORT), '+tries=1', '+time=3', ...args];
  const r = ns === HOST ? await execa(dig[0], dig.slice(1), { reject: false }) : await execa('ip', ['netns', 'exec', ns, ...dig], { reject: false });
  const status = /status: (\w+)/.exec(r.stdout)?.[1] ?? 'NO ANSWER';
  const section = /;; ANSWER SECTION:\n([\s\S]*?)(?:\n\n|$)/.exec(r.stdout)?.[1] ?? '';
  const answers = section.split('\n').filter(Boolean).map((l) => { const [name, , , type, ...data] = l.split(/\s+/); return `${name} ${type} ${data.join(' ')}`; });
  return { status, answers };
}

/** The address in `connect`'s line ("NAME on NET: ADDRESS via eth0"). */
function addressOf(line: string): string {
  const m = /: (\S+) via /.exec(line);
  assert.ok(m, line);
  return m[1];
}

describe('host listeners and tenants', { skip: needsRoot }, () => {
  const lab = new Lab();
  let upstream: FakeUpstream;
  let nsA: string, nsB: string, nsI: string;
  let addrA: string, addrB: string;

  before(async () => {
    upstream = await FakeUpstream.start({ zone: { 'outside.test': ['192.0.2.7'] } });
    [nsA, nsB, nsI] = await Promise.all(['a', 'b', 'i'].map((n) => lab.namespace(n)));
  });
  after(async () => {
    await lab.cleanup();
    await upstream?.stop();
  });

  const start = () => lab.start(['--listen', `0.0.0.0:${PORT}`, '--upstream', upstream.spec]);

  /** What each tenant and the host see at the host listener. */
  async function assertScoped(): Promise<void> {
    // A tenant of B: its own name, nothing of A's (names, PTR).
    assert.deepEqual((await digFrom(nsB, B.gateway, 'beta')).answers, [`beta. A ${addrB}`]);
    assert.deepEqual((await digFrom(nsB, B.gateway, `beta.${B.name}`)).answers, [`beta.${B.name}. A ${addrB}`]);
    for (const name of ['alpha', `alpha.${A.name}`]) {
      const seen = await digFrom(nsB, B.gateway, name);
      assert.deepEqual(seen.answers, [], `B's tenant got ${name}: ${JSON.stringify(seen)}`);
      assert.notEqual(seen.status, 'NO ANSWER');
    }
    const ptr = await digFrom(nsB, B.gateway, '-x', addrA);
    assert.deepEqual(ptr.answers, [], `B's tenant got A's PTR: ${JSON.stringify(ptr)}`);
    // As its own 127.0.0.11 shows it.
    assert.deepEqual((await lab.dig(nsB, `alpha.${A.name}`)), []);
    // A tenant of A sees A.
    assert.deepEqual((await digFrom(nsA, A.gateway, 'alpha')).answers, [`alpha. A ${addrA}`]);
    // The internal network's tenant: its own names, and nothing forwarded (as at its 127.0.0.11).
    assert.equal((await digFrom(nsI, I.gateway, 'inner')).answers.length, 1);
    const before = upstream.received.length;
    const outside = await digFrom(nsI, I.gateway, 'outside.test');
    assert.equal(outside.status, 'REFUSED');
    assert.equal(upstream.received.length, before, 'the internal tenant\'s name was forwarded');
    // The host is no tenant: it sees every network, and forwards.
    const host = await digFrom(HOST, '127.0.0.1', `alpha.${A.name}`);
    assert.deepEqual(host.answers, [`alpha.${A.name}. A ${addrA}`]);
    assert.deepEqual((await digFrom(HOST, '127.0.0.1', '-x', addrB)).answers.map((a) => a.split(' ')[1]), ['PTR']);
    assert.deepEqual((await digFrom(HOST, '127.0.0.1', 'outside.test')).answers, ['outside.test. A 192.0.2.7']);
  }

  it('bridges created after the daemon started: each tenant sees its own networks', async () => {
    await start();
    await lab.ok('network', 'create', A.name, '--subnet', A.subnet);
    await lab.ok('network', 'create', B.name, '--subnet', B.subnet);
    await lab.ok('network', 'create', I.name, '--subnet', I.subnet, '--internal');
    addrA = addressOf(await lab.ok('network', 'connect', A.name, nsA, '--name', 'alpha'));
    addrB = addressOf(await lab.ok('network', 'connect', B.name, nsB, '--name', 'beta'));
    await lab.ok('network', 'connect', I.name, nsI, '--name', 'inner');
    await assertScoped();
  });

  it('after a reload (SIGHUP)', async () => {
    const reloaded = lab.daemon!.logs.length;
    lab.daemon!.signal('SIGHUP');
    await lab.daemon!.waitForLog((l) => l.msg === 'configuration reloaded' && lab.daemon!.logs.indexOf(l) >= reloaded);
    await assertScoped();
  });

  it('bridges created before the daemon started', async () => {
    await lab.daemon!.stop();
    await start();
    await assertScoped();
  });
});
