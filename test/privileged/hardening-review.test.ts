// Attacks on issue 16's walls that the item tests did not try: the same namespace under two
// spellings (a /proc/PID/ns/net path, a second name made by `ip netns attach`). A namespace
// belongs to one source whatever path names it; seen from the CLI, the log and dig inside.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { execa, type ResultPromise } from 'execa';
import { Lab, needsRoot, sh } from '../helpers/netns.js';
import { tempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

/** A process living in namespace `ns`, and its PID. */
async function sleeperIn(ns: string): Promise<{ pid: string; process: ResultPromise }> {
  const process = execa('ip', ['netns', 'exec', ns, 'sleep', '600'], { reject: false });
  const pid = await waitFor(async () => (await execa('ip', ['netns', 'pids', ns])).stdout.trim().split('\n')[0], { what: `a process in ${ns}` });
  return { pid, process };
}

describe('a namespace belongs to one source, whatever path names it', { skip: needsRoot }, () => {
  const lab = new Lab();
  const dir = tempDir('nsdns-review-');
  const sleepers: ResultPromise[] = [];
  let own: string, filed: string;

  before(async () => {
    [own, filed] = [await lab.namespace('own'), await lab.namespace('filed')];
    dir.write('filed.yaml', `name: filed\nsubnets: [{subnet: 10.181.1.0/24}]\nendpoints:\n  - {name: f1, ipv4: 10.181.1.5, netns: /run/netns/${filed}}\n`);
    await lab.start(['--registry', dir.dir]);
    await lab.ok('network', 'create', 'inside', '--internal', '--subnet', '10.181.0.0/24');
    await waitFor(async () => (await lab.dig(filed, 'f1')).length > 0, { what: 'the file\'s namespace is served' });
  });
  after(async () => {
    for (const s of sleepers) s.kill();
    await lab.cleanup();
    dir.cleanup();
  });

  it('refuses a connect by PID into a namespace a file serves by name, before anything is created', async () => {
    const sleeper = await sleeperIn(filed);
    sleepers.push(sleeper.process);
    const links = await lab.links();
    const r = await lab.nsdns('network', 'connect', 'inside', sleeper.pid, '--name', 'bypid');
    assert.equal(r.exitCode, 1, r.stdout);
    assert.match(r.stderr, new RegExp(`^nsdns: the namespace of PID ${sleeper.pid} is served by network "filed" from registry file .*filed\\.yaml; a namespace belongs to one source`));
    assert.deepEqual(await lab.links(), links);
    assert.deepEqual(await lab.dig(filed, 'f1'), ['10.181.1.5']);
    assert.notEqual(await lab.digStatus(filed, 'bypid.inside'), 'NOERROR');
  });

  it('refuses a file naming, by a second name, a namespace nsdns connected', async () => {
    await lab.ok('network', 'connect', 'inside', own, '--name', 'a');
    const sleeper = await sleeperIn(own);
    sleepers.push(sleeper.process);
    const alias = `ns${lab.tag}-alias`;
    await sh('ip', 'netns', 'attach', alias, sleeper.pid);
    lab.namespaces.push(alias);
    dir.write('hijack.yaml', `name: hijack\nsubnets: [{subnet: 10.181.2.0/24}]\nendpoints:\n  - {name: evil, ipv4: 10.181.2.66, netns: /run/netns/${alias}}\n`);
    const line = await lab.daemon!.waitForLog((l) => l.msg === 'registry file refused' && String(l.file).endsWith('hijack.yaml'));
    assert.match(String((line.err as { message?: string }).message), new RegExp(`namespace /run/netns/${alias} is served by network "inside" from nsdns's own connects`));
    assert.deepEqual(await lab.dig(own, 'a.inside'), ['10.181.0.2']);
    assert.notEqual(await lab.digStatus(own, 'evil.hijack'), 'NOERROR');
  });
});
