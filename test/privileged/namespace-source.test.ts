// A namespace belongs to one source: a registry file may not add names to (or pick the upstreams
// of) a namespace nsdns connected itself or that another file serves, and `connect` may not enter
// a namespace a file serves. Both orders, and a file edited later; seen from inside the
// namespaces (dig @127.0.0.11), from the CLI and from the log.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FakeUpstream } from '../helpers/fake-upstream.js';
import { Lab, needsRoot } from '../helpers/netns.js';
import { tempDir } from '../helpers/tmp.js';

describe('a namespace belongs to one source', { skip: needsRoot }, () => {
  const lab = new Lab();
  const dir = tempDir('nsdns-source-');
  let upstream: FakeUpstream;
  let own: string, filed: string;

  before(async () => {
    upstream = await FakeUpstream.start({ zone: { 'outside.test': ['192.0.2.7'] } });
    [own, filed] = [await lab.namespace('own'), await lab.namespace('filed')];
    dir.write('filed.yaml', `name: filed\nsubnets: [{subnet: 10.169.1.0/24}]\nendpoints:\n  - {name: f1, ipv4: 10.169.1.5, netns: /run/netns/${filed}}\n`);
    await lab.start(['--registry', dir.dir]);
    await lab.ok('network', 'create', 'inside', '--internal', '--subnet', '10.168.0.0/24');
    await lab.ok('network', 'connect', 'inside', own, '--name', 'a');
  });
  after(async () => {
    await lab.cleanup();
    await upstream?.stop();
    dir.cleanup();
  });

  it('refuses a file endpoint in a namespace nsdns connected: no names added, no upstream chosen', async () => {
    assert.equal(await lab.digStatus(own, 'outside.test'), 'REFUSED', 'an internal-only namespace does not forward');
    const a = await lab.dig(own, 'a.inside');
    assert.equal(a.length, 1);
    dir.write('hijack.yaml', [
      `name: hijack\nupstreams: ["${upstream.spec}"]\nsubnets: [{subnet: 10.169.0.0/24}]\nendpoints:`,
      `  - {name: evil, ipv4: 10.169.0.66, netns: /run/netns/${own}}`, ''].join('\n'));
    const line = await lab.daemon!.waitForLog((l) => l.msg === 'registry file refused' && String(l.file).endsWith('hijack.yaml'));
    const message = String((line.err as { message?: string }).message);
    assert.match(message, new RegExp(`hijack\\.yaml: namespace /run/netns/${own} is served by network "inside" from nsdns's own connects`));
    assert.deepEqual(await lab.dig(own, 'a.inside'), a);
    assert.notEqual(await lab.digStatus(own, 'evil.hijack'), 'NOERROR');
    assert.equal(await lab.digStatus(own, 'outside.test'), 'REFUSED', 'still no forwarding, to the file\'s server or any');
    assert.equal(upstream.received.length, 0);
  });

  it('refuses a connect into a namespace a file serves, leaving no link and the file\'s names as they were', async () => {
    const links = await lab.links();
    const r = await lab.nsdns('network', 'connect', 'inside', filed, '--name', 'b');
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr, new RegExp(`^nsdns: namespace "${filed}" is served by network "filed" from registry file .*filed\\.yaml; a namespace belongs to one source`));
    assert.ok(lab.daemon!.logs.some((l) => l.msg === 'control request refused' && l.method === 'network.connect' && l.code === 'ERR_REGISTRY_CONFLICT'));
    assert.deepEqual(await lab.links(), links);
    assert.deepEqual(await lab.dig(filed, 'f1'), ['10.169.1.5']);
    assert.notEqual(await lab.digStatus(filed, 'a.inside'), 'NOERROR');
    const inspect = JSON.parse(await lab.ok('network', 'inspect', 'inside')) as Array<{ Containers?: Record<string, unknown> }>;
    assert.equal(Object.keys(inspect[0].Containers ?? {}).length, 1, 'only the first connect is attached');
  });

  it('refuses a file edited later to reach into another source\'s namespace, keeping its last good content', async () => {
    dir.write('filed.yaml', [
      `name: filed\nsubnets: [{subnet: 10.169.1.0/24}]\nendpoints:`,
      `  - {name: f1, ipv4: 10.169.1.5, netns: /run/netns/${filed}}`,
      `  - {name: f2, ipv4: 10.169.1.6, netns: /run/netns/${own}}`, ''].join('\n'));
    const line = await lab.daemon!.waitForLog((l) => String(l.msg).startsWith('registry file refused; network "filed" keeps its last good content'));
    assert.match(String((line.err as { message?: string }).message), new RegExp(`namespace /run/netns/${own} is served by network "inside"`));
    assert.deepEqual(await lab.dig(filed, 'f1'), ['10.169.1.5']);
    assert.notEqual(await lab.digStatus(own, 'f2.filed'), 'NOERROR');
  });

  it('refuses a second file serving a namespace the first one serves', async () => {
    dir.write('second.yaml', `name: second\nsubnets: [{subnet: 10.169.2.0/24}]\nendpoints:\n  - {name: s1, ipv4: 10.169.2.5, netns: /run/netns/${filed}}\n`);
    const line = await lab.daemon!.waitForLog((l) => l.msg === 'registry file refused' && String(l.file).endsWith('second.yaml'));
    assert.match(String((line.err as { message?: string }).message), /is served by network "filed" from registry file .*filed\.yaml/);
    assert.notEqual(await lab.digStatus(filed, 's1.second'), 'NOERROR');
  });
});
