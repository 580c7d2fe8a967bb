// `nsdns endpoint egress` (issue 22), in real namespaces with a fake upstream on loopback: a
// provisioned endpoint's policy changes at runtime (what dig @127.0.0.11 answers follows at once,
// the state file keeps it), `--clear` removes it, a registry file's endpoint and bad rules are
// refused and change nothing, and `network inspect` shows the live figures of an enforced policy.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { FakeUpstream } from '../helpers/fake-upstream.js';
import { Lab, needsRoot } from '../helpers/netns.js';
import { tempDir } from '../helpers/tmp.js';

interface Shown { Name: string; Egress?: string[]; EgressEnforced?: { Learned4: number; Learned6: number; Dropped: number } }

describe('endpoint egress: a policy changed at runtime', { skip: needsRoot }, () => {
  const lab = new Lab();
  const dir = tempDir('nsdns-egress-cli-');
  const net = `ec${lab.tag}`;
  const filedNet = `ef${lab.tag}`;
  let upstream: FakeUpstream;
  let sandbox: string, free: string, filed: string;

  before(async () => {
    upstream = await FakeUpstream.start({ ttl: 30, zone: { 'pypi.test': ['10.140.200.10'], 'other.test': ['10.140.200.20'] } });
    [sandbox, free, filed] = [await lab.namespace('sandbox'), await lab.namespace('free'), await lab.namespace('filed')];
    dir.write('filed.yaml', [`name: ${filedNet}`, 'subnets: [{subnet: 10.140.2.0/24}]', 'endpoints:',
      `  - {name: f1, ipv4: 10.140.2.5, netns: /run/netns/${filed}, egress: [pypi.test]}`, ''].join('\n'));
    await lab.start(['--upstream', upstream.spec, '--no-resolv-conf', '--registry', dir.dir]);
    await lab.ok('network', 'create', net, '--subnet', '10.140.1.0/24');
    await lab.ok('network', 'connect', net, sandbox, '--name', 'job', '--egress-allow', 'pypi.test');
    await lab.ok('network', 'connect', net, free, '--name', 'free');
  });
  after(async () => {
    await lab.cleanup();
    await upstream?.stop();
    dir.cleanup();
  });

  const containers = async (network = net) => Object.values(JSON.parse(await lab.ok('network', 'inspect', network))[0].Containers) as Shown[];
  const shown = async (name: string, network = net) => (await containers(network)).find((c) => c.Name === name)!;
  const saved = () => (JSON.parse(readFileSync(`${lab.state}/networks/${net}.json`, 'utf8')).endpoints as Array<{ name: string; egress?: unknown }>).find((e) => e.name === 'job')!.egress;

  it('replaces the policy: what the namespace resolves follows at once, and back', async () => {
    assert.equal(await lab.digStatus(sandbox, 'pypi.test'), 'NOERROR');
    assert.equal(await lab.digStatus(sandbox, 'other.test'), 'NXDOMAIN');

    assert.equal((await lab.ok('endpoint', 'egress', net, 'job', '--allow', 'other.test', '--allow', '10.140.9.0/24:443/tcp')).trim(),
      `job on ${net}: egress: other.test, 10.140.9.0/24:443/tcp`);
    assert.deepEqual(await lab.dig(sandbox, 'other.test'), ['10.140.200.20']);
    assert.equal(await lab.digStatus(sandbox, 'pypi.test'), 'NXDOMAIN');
    assert.deepEqual((await shown('job')).Egress, ['other.test', '10.140.9.0/24:443/tcp']);
    assert.deepEqual(saved(), [{ name: 'other.test' }, { cidr: '10.140.9.0/24', port: 443, protocol: 'tcp' }], 'kept in the state file');

    const back = JSON.parse(await lab.ok('endpoint', 'egress', net, 'job', '--allow', 'pypi.test', '--json'));
    assert.deepEqual(back, { network: net, name: 'job', id: back.id, own: true, egress: ['pypi.test'] });
    assert.equal(await lab.digStatus(sandbox, 'pypi.test'), 'NOERROR');
    assert.equal(await lab.digStatus(sandbox, 'other.test'), 'NXDOMAIN');
  });

  it('network inspect shows the live set sizes of an enforced policy, and only there', async () => {
    assert.deepEqual(await lab.dig(sandbox, 'pypi.test'), ['10.140.200.10']);
    const live = (await shown('job')).EgressEnforced!;
    assert.ok(live.Learned4 >= 1, `learned4 ${live.Learned4}`);
    assert.equal(live.Learned6, 0);
    assert.equal(typeof live.Dropped, 'number');
    assert.equal((await shown('free')).EgressEnforced, undefined, 'no policy: no figures');
  });

  it('--clear removes the policy: every name answers again', async () => {
    assert.equal((await lab.ok('endpoint', 'egress', net, 'job', '--clear')).trim(), `job on ${net}: no egress policy`);
    assert.deepEqual(await lab.dig(sandbox, 'other.test'), ['10.140.200.20']);
    const job = await shown('job');
    assert.equal(job.Egress, undefined);
    assert.equal(job.EgressEnforced, undefined);
    assert.equal(saved(), undefined);
    await lab.ok('endpoint', 'egress', net, 'job', '--allow', 'pypi.test');
  });

  it('refuses a registry file\'s endpoint, bad rules and a wrong call, and changes nothing', async () => {
    const before = [await containers(), await containers(filedNet), saved()];
    const cases: Array<[string[], RegExp]> = [
      [['endpoint', 'egress', filedNet, 'f1', '--allow', 'other.test'], /edit its file/],
      [['endpoint', 'egress', net, 'job', '--allow', 'not a name!'], /not a name/],
      [['endpoint', 'egress', net, 'job', '--allow', '10.140.0.0/33'], /10\.140\.0\.0\/33/],
      [['endpoint', 'egress', net, 'job'], /--allow ENTRY \(repeatable\) or --clear/],
      [['endpoint', 'egress', net, 'job', '--allow', 'other.test', '--clear'], /not both/],
      [['endpoint', 'egress', net, 'nobody', '--allow', 'other.test'], /no endpoint "nobody"/],
    ];
    for (const [args, message] of cases) {
      const r = await lab.nsdns(...args);
      assert.notEqual(r.exitCode, 0, args.join(' '));
      assert.match(r.stderr, message, args.join(' '));
    }
    assert.deepEqual([await containers(), await containers(filedNet), saved()], before);
    assert.equal(await lab.digStatus(sandbox, 'other.test'), 'NXDOMAIN');
    assert.equal(await lab.digStatus(filed, 'other.test'), 'NXDOMAIN');
  });
});
