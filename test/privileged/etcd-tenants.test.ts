// A shared registry cannot choose who is a tenant at this host's listeners. A client's address
// makes it a tenant of the networks this host serves there (registry/tenants.ts), which narrows
// what it sees; another host's network in etcd, whose subnets or endpoint addresses no one here
// vouches for, must not narrow (or refuse) a client of this host. A client outside every local
// network, on its own link to the host, asks a host listener that serves one local network.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { TestEtcd } from '../helpers/etcd.js';
import { FakeUpstream } from '../helpers/fake-upstream.js';
import { Lab, needsRoot } from '../helpers/netns.js';
import { waitFor } from '../helpers/wait.js';

const PORT = 16198;
const NET = { name: 'rtna', subnet: '10.127.60.0/24' };
const HOST_END = '10.127.61.1';
const CLIENT = '10.127.61.2';

/** dig from `ns` at the host listener; the status and the answers' data. */
async function ask(ns: string, name: string): Promise<{ status: string; data: string[] }> {
  const r = await execa('ip', ['netns', 'exec', ns, 'dig', `@${HOST_END}`, '-p', String(PORT), '+tries=1', '+time=3', '+noall', '+comments', '+answer', name], { reject: false });
  const status = /status: (\w+)/.exec(r.stdout)?.[1] ?? 'NO ANSWER';
  const data = r.stdout.split('\n').filter((l) => l && !l.startsWith(';')).map((l) => l.split(/\s+/).pop()!);
  return { status, data };
}

describe('a shared registry and the tenants of host listeners', { skip: needsRoot }, () => {
  const lab = new Lab();
  const prefix = `/nsrv${lab.tag}`;
  let etcd: TestEtcd;
  let upstream: FakeUpstream;
  let client: string;
  let alpha: string;

  before(async () => {
    // 16100-16179: etcd's; PORT is above them.
    etcd = await TestEtcd.start({ portBase: 16100, portCount: 80 });
    upstream = await FakeUpstream.start({ zone: {} });
    client = await lab.outsideHost('out', HOST_END, CLIENT);
    await lab.start(['--listen', `0.0.0.0:${PORT}=${NET.name}`, '--registry', `etcd://${etcd.hostPort}${prefix}`, '--upstream', upstream.spec]);
    await lab.ok('network', 'create', NET.name, '--subnet', NET.subnet);
    const ns = await lab.namespace('a');
    alpha = /: (\S+) via /.exec(await lab.ok('network', 'connect', NET.name, ns, '--name', 'alpha'))![1];
  });
  after(async () => {
    await lab.cleanup();
    await upstream?.stop();
    await etcd?.stop();
  });

  const served = (network: string, yes: boolean) => waitFor(async () => (await lab.ok('network', 'ls')).includes(network) === yes);

  it('a client outside every local network sees the listener\'s networks', async () => {
    assert.deepEqual(await ask(client, `alpha.${NET.name}`), { status: 'NOERROR', data: [alpha] });
  });

  it('still does when a network in etcd claims its subnet', async () => {
    await etcd.put(`${prefix}/networks/far`, JSON.stringify({ name: 'far', subnets: [{ subnet: '10.127.61.0/24' }] }));
    await served('far', true);
    assert.deepEqual(await ask(client, `alpha.${NET.name}`), { status: 'NOERROR', data: [alpha] });
    await etcd.del(`${prefix}/networks/far`);
    await served('far', false);
  });

  it('and when an endpoint in etcd claims its address', async () => {
    await etcd.put(`${prefix}/networks/bare`, JSON.stringify({ name: 'bare' }));
    await etcd.put(`${prefix}/endpoints/bare/node-b/claim`, JSON.stringify({ name: 'claim', ipv4: CLIENT }));
    await served('bare', true);
    assert.deepEqual(await ask(client, `alpha.${NET.name}`), { status: 'NOERROR', data: [alpha] });
  });
});
