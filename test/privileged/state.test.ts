// State and safety: concurrent connects, restarts, namespaces that vanish, a daemon killed in the
// middle of a connect, a client with no daemon to talk to, and teardowns that keep going past a
// failed step and report it.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { execa } from 'execa';
import { MAIN } from '../helpers/daemon.js';
import { Lab, needsRoot, sh } from '../helpers/netns.js';

describe('state and safety', { skip: needsRoot }, () => {
  const lab = new Lab();
  after(() => lab.cleanup());

  it('50 concurrent connects get 50 different addresses and names, and all resolve', async () => {
    await lab.start();
    await lab.ok('network', 'create', 'busy', '--subnet', '10.230.0.0/24');
    const spaces = await Promise.all(Array.from({ length: 50 }, (_, i) => lab.namespace(`c${i}`)));
    const started = Date.now();
    const results = await Promise.all(spaces.map((ns) => lab.ok('network', 'connect', 'busy', ns, '--json').then((o) => JSON.parse(o) as { ipv4: string[]; name: string })));
    process.stdout.write(`# 50 parallel connects took ${Date.now() - started} ms\n`);
    assert.equal(new Set(results.map((r) => r.ipv4[0])).size, 50);
    assert.equal(new Set(results.map((r) => r.name)).size, 50);
    const inspect = JSON.parse(await lab.ok('network', 'inspect', 'busy'))[0];
    assert.equal(Object.keys(inspect.Containers).length, 50);
    assert.deepEqual(await lab.dig(spaces[0], spaces[49]), [results[49].ipv4[0]]);
    assert.deepEqual(await lab.dig(spaces[49], spaces[0]), [results[0].ipv4[0]]);
  });

  it('a restarted daemon serves every namespace again and drops endpoints whose namespace is gone', async () => {
    const gone = lab.namespaces[10];
    assert.ok(existsSync(`/etc/netns/${gone}/resolv.conf`));
    await lab.daemon!.stop();
    assert.equal(await lab.digStatus(lab.namespaces[0], lab.namespaces[1]), 'NO ANSWER', 'nobody serves while the daemon is down');
    await sh('ip', 'netns', 'del', gone);
    const daemon = await lab.start();
    assert.ok(daemon.logs.some((l) => String(l.msg).includes(`endpoint "${gone}"`) && String(l.msg).includes('is gone')), 'the vanished namespace is reported');
    assert.ok(!existsSync(`/etc/netns/${gone}`), 'its /etc/netns/NAME/resolv.conf is removed at start, as the running daemon does');
    assert.ok(existsSync(`/etc/netns/${lab.namespaces[11]}/resolv.conf`), 'the others stay');
    for (const ns of [lab.namespaces[0], lab.namespaces[25], lab.namespaces[49]]) {
      assert.equal((await lab.dig(ns, lab.namespaces[1])).length, 1, `served again in ${ns}`);
    }
    assert.deepEqual(await lab.dig(lab.namespaces[0], gone), []);
    const inspect = JSON.parse(await lab.ok('network', 'inspect', 'busy'))[0];
    assert.equal(Object.keys(inspect.Containers).length, 49);
  });

  it('a daemon killed with SIGKILL during a connect comes back without orphaned links or allocations', async () => {
    await lab.ok('network', 'create', 'crash', '--subnet', '10.62.0.0/24');
    const victims = await Promise.all([0, 1, 2, 3].map((i) => lab.namespace(`k${i}`)));
    const pending = victims.map((ns) => lab.nsdns('network', 'connect', 'crash', ns));
    // Kill as soon as a connect is under way (its write-ahead note is on disk).
    const dir = `${lab.state}/pending`;
    for (let i = 0; i < 500 && !(existsSync(dir) && readdirSync(dir).length > 0); i++) await new Promise((r) => setTimeout(r, 2));
    lab.daemon!.signal('SIGKILL');
    await Promise.all(pending);
    await lab.daemon!.waitForExit();
    await lab.start();
    assert.deepEqual(readdirSync(dir), [], 'no connect left half done');
    const links = (await lab.links()).filter((l) => l.startsWith(`${lab.linkPrefix}v`));
    const allHostIfs = readdirSync(`${lab.state}/networks`).flatMap((f) => (JSON.parse(readFileSync(`${lab.state}/networks/${f}`, 'utf8')).endpoints as Array<{ hostIf: string }>).map((e) => e.hostIf));
    assert.deepEqual([...links].sort(), [...allHostIfs].sort(), 'every veth belongs to a saved endpoint, and every saved endpoint has its veth');
    for (const ns of victims) {
      const connected = (await sh('ip', '-n', ns, '-o', 'link')).includes('eth0');
      if (!connected) await lab.ok('network', 'connect', 'crash', ns);
    }
    const final = JSON.parse(await lab.ok('network', 'inspect', 'crash'))[0];
    const addrs = Object.values(final.Containers as Record<string, { IPv4Address: string }>).map((c) => c.IPv4Address);
    assert.equal(addrs.length, 4);
    assert.equal(new Set(addrs).size, 4);
  });

  it('notices a namespace deleted while it runs: its endpoint, link and name go, and the namespace is freed', async () => {
    await lab.ok('network', 'create', 'reap', '--subnet', '10.63.0.0/24');
    const [doomed, witness] = await Promise.all([lab.namespace('doomed'), lab.namespace('witness')]);
    await lab.ok('network', 'connect', 'reap', doomed);
    await lab.ok('network', 'connect', 'reap', witness);
    const hostIf = JSON.parse(readFileSync(`${lab.state}/networks/reap.json`, 'utf8')).endpoints[0].hostIf as string;
    assert.deepEqual(await lab.dig(witness, doomed), ['10.63.0.2']);
    await sh('ip', 'netns', 'del', doomed);
    await lab.daemon!.waitForLog((l) => String(l.msg).includes(`endpoint "${doomed}" of network "reap" removed`));
    assert.deepEqual(await lab.dig(witness, doomed), []);
    await lab.daemon!.waitForLog((l) => String(l.msg).includes('its resolver sockets are closed') && l.netns === `/run/netns/${doomed}`);
    assert.ok(!(await lab.links()).includes(hostIf), 'its veth is gone');
    assert.ok(!existsSync(`/etc/netns/${doomed}`));
    const containers = JSON.parse(await lab.ok('network', 'inspect', 'reap'))[0].Containers as Record<string, { Name: string }>;
    assert.deepEqual(Object.values(containers).map((c) => c.Name), [witness]);
  });

  it('client commands fail at once with advice when the daemon is not running', async () => {
    // At once: a client that waited for a daemon would be killed by the timeout instead.
    const r = await execa(process.execPath, [MAIN, 'network', 'ls', '--socket', '/tmp/nsdns-no-daemon.sock'], { reject: false, timeout: 20_000 });
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr, /the nsdns daemon is not running .*start it with `nsdns serve`/);
  });
});

describe('teardown keeps going past a failed step and reports every error', { skip: needsRoot }, () => {
  const lab = new Lab();
  const immutable: string[] = [];
  let survivor = '';
  /** chattr +i: even root cannot replace or unlink the file, so that one step fails for real. */
  const freeze = async (file: string) => { await sh('chattr', '+i', file); immutable.push(file); };
  after(async () => {
    for (const file of immutable) await execa('chattr', ['-i', file], { reject: false });
    await lab.cleanup();
  });

  it('disconnect: a state file that cannot be written fails its step; the link, name, rule and resolv.conf still go', async () => {
    await lab.start();
    await lab.ok('network', 'create', 'td', '--subnet', '10.64.0.0/24', '--bridge', `${lab.linkPrefix}td`);
    const [x, y] = await Promise.all([lab.namespace('x'), lab.namespace('y')]);
    survivor = y;
    await lab.ok('network', 'connect', 'td', x, '--publish', '18995:80');
    await lab.ok('network', 'connect', 'td', y);
    const stateFile = `${lab.state}/networks/td.json`;
    const hostIf = (JSON.parse(readFileSync(stateFile, 'utf8')).endpoints as Array<{ name: string; hostIf: string }>).find((e) => e.name === x)!.hostIf;
    assert.deepEqual(await lab.dig(y, x), ['10.64.0.2']);
    await freeze(stateFile);

    const r = await lab.nsdns('network', 'disconnect', 'td', x);
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr, new RegExp(`disconnect of "${x}" from "td" finished with 1 error\\(s\\): save network "td" failed: .*(EPERM|not permitted)`));
    assert.ok(!(await lab.links()).includes(hostIf), 'the veth is gone');
    assert.deepEqual(await lab.dig(y, x), [], 'the name is gone from DNS');
    assert.doesNotMatch(await sh('nft', 'list', 'table', 'inet', lab.nftTable), /18995/);
    assert.ok(!existsSync(`/etc/netns/${x}`), 'its resolv.conf is gone');
    assert.ok(lab.daemon!.logs.some((l) => l.level === 40 && l.step === 'save network "td"'), 'the failed step is logged');
  });

  it('rm --disconnect: a resolv.conf that cannot be removed is reported; bridge, links, rules and state still go', async () => {
    const y = survivor;
    await execa('chattr', ['-i', `${lab.state}/networks/td.json`]);
    await freeze(`/etc/netns/${y}/resolv.conf`);
    const r = await lab.nsdns('network', 'rm', '--disconnect', 'td');
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr, /network rm "td" finished with 1 error\(s\): update resolv\.conf files failed: .*\/etc\/netns\//);
    assert.deepEqual(await lab.links(), [], 'bridge and veths are gone');
    assert.equal(await lab.nftTableExists(), false, 'the table went with the last network');
    assert.ok(!existsSync(`${lab.state}/networks/td.json`));
    assert.match((await lab.nsdns('network', 'inspect', 'td')).stderr, /network "td" not found/);
  });
});
