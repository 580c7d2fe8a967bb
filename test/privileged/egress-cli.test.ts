// `nsdns endpoint egress` (issue 22), in real namespaces with a fake upstream on loopback: a
// provisioned endpoint's policy changes at runtime (what dig @127.0.0.11 answers follows at once,
// the state file keeps it), `--clear` removes it, a registry file's endpoint and bad rules are
// refused and change nothing, and `network inspect` shows the live figures of an enforced policy.
// New connections follow a change: an outside namespace with a TCP server stands in for the world.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { execa, type ResultPromise } from 'execa';
import { FakeUpstream } from '../helpers/fake-upstream.js';
import { Lab, needsRoot } from '../helpers/netns.js';
import { tempDir } from '../helpers/tmp.js';

// A TCP server on every address of its namespace, port 17101: each connection is told "hello".
const SERVER = `require('net').createServer((s) => s.end('hello\\n')).listen(17101, '0.0.0.0', () => console.log('up'));`;
// One connect: "hello", an error code, or "timeout".
const CLIENT = `const s = require('net').connect(17101, process.argv[1]); const done = (t) => { console.log(t); process.exit(0); };
setTimeout(() => done('timeout'), 1500); s.on('data', (d) => done(String(d).trim())); s.on('error', (e) => done(e.code));`;

interface Shown { Name: string; Egress?: string[]; EgressEnforced?: { Learned4: number; Learned6: number; Dropped: number } }

describe('endpoint egress: a policy changed at runtime', { skip: needsRoot }, () => {
  const lab = new Lab();
  const dir = tempDir('nsdns-egress-cli-');
  const files = tempDir('nsdns-egress-cli-policy-');
  const net = `ec${lab.tag}`;
  const filedNet = `ef${lab.tag}`;
  let upstream: FakeUpstream;
  let sandbox: string, free: string, filed: string, outside: string;
  let server: ResultPromise | undefined;

  before(async () => {
    outside = await lab.outsideHost('out', '10.140.9.1', '10.140.9.2');
    await execa('ip', ['-n', outside, 'route', 'add', 'default', 'via', '10.140.9.1']);
    for (const a of ['10.140.10.3/32', '10.140.10.4/32']) await execa('ip', ['-n', outside, 'addr', 'add', a, 'dev', 'lo']);
    await execa('ip', ['route', 'add', '10.140.10.0/24', 'via', '10.140.9.2']);
    server = execa('ip', ['netns', 'exec', outside, process.execPath, '-e', SERVER]);
    server.catch(() => {});
    await new Promise<void>((resolve, reject) => { server!.stdout!.once('data', () => resolve()); server!.once('exit', () => reject(new Error('the outside server did not start'))); });

    upstream = await FakeUpstream.start({ ttl: 30, zone: { 'pypi.test': ['10.140.200.10'], 'other.test': ['10.140.200.20'], 'reach.test': ['10.140.10.3'] } });
    [sandbox, free, filed] = [await lab.namespace('sandbox'), await lab.namespace('free'), await lab.namespace('filed')];
    dir.write('filed.yaml', [`name: ${filedNet}`, 'subnets: [{subnet: 10.140.2.0/24}]', 'endpoints:',
      `  - {name: f1, ipv4: 10.140.2.5, netns: /run/netns/${filed}, egress: [pypi.test]}`, ''].join('\n'));
    await lab.start(['--upstream', upstream.spec, '--no-resolv-conf', '--registry', dir.dir]);
    await lab.ok('network', 'create', net, '--subnet', '10.140.1.0/24');
    await lab.ok('network', 'connect', net, sandbox, '--name', 'job', '--egress-allow', 'pypi.test');
    await lab.ok('network', 'connect', net, free, '--name', 'free');
  });
  after(async () => {
    server?.kill();
    await lab.cleanup();
    await execa('ip', ['route', 'del', '10.140.10.0/24'], { reject: false });
    await upstream?.stop();
    dir.cleanup();
    files.cleanup();
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

  it('new connections follow the new policy when the command returns', async () => {
    const connect = async (host: string) => (await execa('ip', ['netns', 'exec', sandbox, process.execPath, '-e', CLIENT, host], { timeout: 10_000 })).stdout.trim();
    await lab.ok('endpoint', 'egress', net, 'job', '--allow', 'pypi.test', '--allow', '10.140.10.3/32:17101/tcp');
    assert.equal(await connect('10.140.10.3'), 'hello', 'the listed range');
    assert.equal(await connect('10.140.10.4'), 'timeout', 'outside the policy');
    await lab.ok('endpoint', 'egress', net, 'job', '--allow', 'pypi.test', '--allow', '10.140.10.4/32:17101/tcp');
    assert.equal(await connect('10.140.10.4'), 'hello', 'now listed');
    assert.equal(await connect('10.140.10.3'), 'timeout', 'no longer listed');
    await lab.ok('endpoint', 'egress', net, 'job', '--allow', 'pypi.test');
  });

  it('a name taken out of the policy closes what it answered at once, not when the answer expires', async () => {
    const connect = async (host: string) => (await execa('ip', ['netns', 'exec', sandbox, process.execPath, '-e', CLIENT, host], { timeout: 10_000 })).stdout.trim();
    await lab.ok('endpoint', 'egress', net, 'job', '--allow', 'pypi.test', '--allow', 'reach.test');
    assert.deepEqual(await lab.dig(sandbox, 'reach.test'), ['10.140.10.3']);
    assert.equal(await connect('10.140.10.3'), 'hello', 'learned from the answer (TTL 30 s + 30 s grace)');
    await lab.ok('endpoint', 'egress', net, 'job', '--allow', 'pypi.test');
    assert.equal(await connect('10.140.10.3'), 'timeout', 'closed with its name');
    await lab.ok('endpoint', 'egress', net, 'job', '--allow', 'pypi.test', '--allow', 'reach.test');
    assert.equal(await connect('10.140.10.3'), 'timeout', 'a name allowed again opens only with a new answer');
    assert.deepEqual(await lab.dig(sandbox, 'reach.test'), ['10.140.10.3']);
    assert.equal(await connect('10.140.10.3'), 'hello');
    await lab.ok('endpoint', 'egress', net, 'job', '--allow', 'pypi.test');
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

  it("--clear on a network with a default policy: the network's applies again", async () => {
    const policyNet = `ed${lab.tag}`;
    const policy = files.write('policy.json', JSON.stringify(['other.test']));
    const ns = await lab.namespace('dflt');
    await lab.ok('network', 'create', policyNet, '--subnet', '10.140.3.0/24', '--egress-policy', policy);
    await lab.ok('network', 'connect', policyNet, ns, '--name', 'd1', '--egress-allow', 'pypi.test');
    assert.equal(await lab.digStatus(ns, 'other.test'), 'NXDOMAIN');
    assert.equal((await lab.ok('endpoint', 'egress', policyNet, 'd1', '--clear')).trim(), `d1 on ${policyNet}: egress (the network's default): other.test`);
    assert.equal(await lab.digStatus(ns, 'other.test'), 'NOERROR');
    assert.equal(await lab.digStatus(ns, 'pypi.test'), 'NXDOMAIN');
    assert.deepEqual((await shown('d1', policyNet)).Egress, ['other.test']);
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
