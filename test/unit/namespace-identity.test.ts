// A namespace deleted and added again under the same name is another namespace: its identity
// (device and inode of its nsfs file) is kept with the endpoint and in the state file, and the
// reaper, a connect and a restart's recovery treat the old one as gone. In process, on fakes for
// the kernel (test/helpers/fake-plumbing.ts); test/privileged/namespace-replaced.test.ts does the
// same with real namespaces.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { namespaceIdentity } from '../../src/namespace-identity.js';
import { parseDocumentText } from '../../src/registry/document.js';
import { fakePlumbing, type FakePlumbing } from '../helpers/fake-plumbing.js';

let f: FakePlumbing;
beforeEach(() => { f = fakePlumbing(); });
afterEach(() => f.cleanup());

const stateFile = (network: string) => path.join(f.state.dir, 'networks', `${network}.json`);
const attached = (network: string) => f.registry.current().find(network)!.endpoints.map((e) => `${e.name} ${e.netnsIdentity}`);

describe('namespace identity', () => {
  it('is DEV:INO of the nsfs file, and nothing for a path without a namespace', () => {
    assert.match(namespaceIdentity('/proc/self/ns/net')!, /^\d+:\d+$/);
    assert.equal(namespaceIdentity('/run/netns/nsdns-no-such-namespace'), undefined);
  });

  it('is recorded at connect, saved in the state file and read back', async () => {
    await f.manager.createNetwork({ name: 'n', subnets: ['10.166.0.0/24'] });
    const x = f.host.addNamespace('x');
    const e = await f.manager.connect({ network: 'n', target: 'x' });
    assert.equal(e.netnsIdentity, f.host.namespaceIdentity(x));
    const [record] = await f.state.load();
    assert.equal(record.endpoints[0].netnsIdentity, e.netnsIdentity);
  });

  it('lets the reaper remove the endpoints of a namespace replaced under the same name, saying why', async () => {
    await f.manager.createNetwork({ name: 'n', subnets: ['10.166.0.0/24'] });
    f.host.addNamespace('x');
    f.host.addNamespace('y');
    await f.manager.connect({ network: 'n', target: 'x' });
    await f.manager.connect({ network: 'n', target: 'y' });
    assert.deepEqual(await f.manager.reapVanished(), []);
    f.host.addNamespace('x');
    assert.deepEqual(await f.manager.reapVanished(), ['endpoint "x" of network "n" removed: its namespace /run/netns/x was replaced by a new namespace of the same name']);
    assert.deepEqual(f.registry.current().find('n')!.endpoints.map((e) => e.name), ['y']);
    assert.deepEqual(JSON.parse(readFileSync(stateFile('n'), 'utf8')).endpoints.map((e: { name: string }) => e.name), ['y']);
  });

  it('lets a connect into the name replace the old endpoint instead of saying "already connected"', async () => {
    await f.manager.createNetwork({ name: 'n', subnets: ['10.166.0.0/24'] });
    f.host.addNamespace('x');
    await f.manager.connect({ network: 'n', target: 'x' });
    const fresh = f.host.addNamespace('x');
    await f.manager.connect({ network: 'n', target: 'x' });
    assert.deepEqual(attached('n'), [`x ${f.host.namespaceIdentity(fresh)}`]);
  });

  it('lets recovery at start drop an endpoint whose namespace was replaced while the daemon was down', async () => {
    await f.manager.createNetwork({ name: 'n', subnets: ['10.166.0.0/24'] });
    f.host.addNamespace('x');
    await f.manager.connect({ network: 'n', target: 'x' });
    f.host.addNamespace('x');
    const lines = await f.manager.recover();
    assert.ok(lines.includes('endpoint "x" of network "n" removed: its namespace /run/netns/x was replaced by a new namespace of the same name'), lines.join('\n'));
    assert.deepEqual(attached('n'), []);
  });

  it('is taken from state files only: a registry file may not set it, a state file must give it as DEV:INO', async () => {
    assert.throws(() => parseDocumentText('name: f\nendpoints: [{name: a, ipv4: 10.167.0.2, netns: /run/netns/x, netnsIdentity: "4:1"}]\n', 'f.yaml'), /netnsIdentity/);
    await f.manager.createNetwork({ name: 'n', subnets: ['10.166.0.0/24'] });
    f.host.addNamespace('x');
    await f.manager.connect({ network: 'n', target: 'x' });
    const doc = JSON.parse(readFileSync(stateFile('n'), 'utf8'));
    doc.endpoints[0].netnsIdentity = '4:1; rm -rf /';
    writeFileSync(stateFile('n'), JSON.stringify(doc));
    await assert.rejects(f.state.load(), /netnsIdentity is not DEV:INO/);
  });
});
