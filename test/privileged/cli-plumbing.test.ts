// The `nsdns network` commands as a docker user types them, against a real daemon: names as
// typed, ids, names with '_', refusals that say what to do, several networks per command.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Lab, needsRoot } from '../helpers/netns.js';
import { waitFor } from '../helpers/wait.js';

describe('network commands, as a docker user types them', { skip: needsRoot }, () => {
  const lab = new Lab();
  before(async () => { await lab.start(); });
  after(() => lab.cleanup());

  it('a network is found by its name as typed, in any case, and shown as given', async () => {
    await lab.ok('network', 'create', 'MixedNet', '--subnet', '10.240.0.0/24');
    const [net] = JSON.parse(await lab.ok('network', 'inspect', 'MixedNet'));
    assert.equal(net.Name, 'MixedNet');
    assert.equal(JSON.parse(await lab.ok('network', 'inspect', 'mixednet'))[0].Id, net.Id);
    assert.ok((await lab.ok('network', 'ls', '-q')).split('\n').includes('MixedNet'));
    const again = await lab.nsdns('network', 'create', 'MIXEDNET');
    assert.equal(again.exitCode, 1);
    assert.match(again.stderr, /network "MixedNet" already exists/);
    const ns = await lab.namespace('mixed');
    assert.match(await lab.ok('network', 'connect', 'MixedNet', ns), / on MixedNet: 10\.240\.0\.2 via eth0$/);
    assert.deepEqual(await lab.dig(ns, `${ns}.mixednet`), ['10.240.0.2'], 'the network name is a DNS zone in any case');
    assert.deepEqual(await lab.dig(ns, `${ns}.MixedNet`), ['10.240.0.2']);
    assert.match(await lab.ok('network', 'disconnect', 'MIXEDNET', ns), /disconnected from MixedNet/);
    assert.equal((await lab.ok('network', 'rm', 'MixedNet')).trim(), 'MixedNet');
  });

  it('a network is found by its full id, the 12 characters ls shows, and a unique id prefix', async () => {
    const id = (await lab.ok('network', 'create', 'byid', '--subnet', '10.241.0.0/24')).trim();
    for (const ref of [id, id.slice(0, 12), id.slice(0, 5)]) {
      assert.equal(JSON.parse(await lab.ok('network', 'inspect', ref))[0].Name, 'byid', ref);
    }
    const ns = await lab.namespace('byid');
    await lab.ok('network', 'connect', id.slice(0, 12), ns);
    assert.deepEqual(await lab.dig(ns, ns), ['10.241.0.2']);
    await lab.ok('network', 'disconnect', id.slice(0, 7), ns);
    assert.equal((await lab.ok('network', 'rm', id)).trim(), 'byid');
    const gone = await lab.nsdns('network', 'inspect', id.slice(0, 12));
    assert.equal(gone.exitCode, 1);
    assert.match(gone.stderr, /not found/);
  });

  it("names with '_' (Compose's proj_default, proj_web_1, my_db) are accepted and answered", async () => {
    await lab.ok('network', 'create', 'proj_default', '--subnet', '10.232.0.0/24');
    const ns = await lab.namespace('compose');
    assert.match(await lab.ok('network', 'connect', 'proj_default', ns, '--name', 'proj_web_1', '--alias', 'my_db', '--alias', 'db.proj_x'), /^proj_web_1 /);
    for (const name of ['proj_web_1', 'my_db', 'db.proj_x', 'proj_web_1.proj_default']) assert.deepEqual(await lab.dig(ns, name), ['10.232.0.2'], name);
    const bad = await lab.nsdns('network', 'connect', 'proj_default', await lab.namespace('lead'), '--name', '_web');
    assert.equal(bad.exitCode, 1);
    assert.match(bad.stderr, /endpoint name "_web" is not a valid name/);
  });

  it('connect --dns 127.0.0.11 (nsdns itself) is refused with a reason, and nothing is connected', async () => {
    await lab.ok('network', 'create', 'selfdns', '--subnet', '10.233.0.0/24');
    const ns = await lab.namespace('selfdns');
    for (const dns of ['127.0.0.11', '127.0.0.11:53']) {
      const r = await lab.nsdns('network', 'connect', 'selfdns', ns, '--dns', dns);
      assert.equal(r.exitCode, 1);
      assert.match(r.stderr, /--dns 127\.0\.0\.11:53: is where nsdns answers inside every namespace, so it cannot be an upstream/);
    }
    assert.deepEqual(JSON.parse(await lab.ok('network', 'inspect', 'selfdns'))[0].Containers, {});
    const create = await lab.nsdns('network', 'create', 'selfup', '--dns-upstream', '127.0.0.11');
    assert.equal(create.exitCode, 1);
    assert.match(create.stderr, /--dns-upstream 127\.0\.0\.11:53: is where nsdns answers/);
    await lab.ok('network', 'connect', 'selfdns', ns, '--dns', '10.233.0.53');
  });

  it('connect --dns and network create --dns-upstream refuse loopback and unspecified addresses (they would be the host\'s own)', async () => {
    await lab.ok('network', 'create', 'loopdns', '--subnet', '10.173.97.0/24');
    const ns = await lab.namespace('loopdns');
    for (const dns of ['127.0.0.1', '127.0.0.53:5353', '::1', '0.0.0.0']) {
      const r = await lab.nsdns('network', 'connect', 'loopdns', ns, '--dns', dns);
      assert.equal(r.exitCode, 1, dns);
      assert.match(r.stderr, /--dns \S+: an? (loopback|unspecified) address would be the host's own, not the namespace's/, dns);
    }
    assert.deepEqual(JSON.parse(await lab.ok('network', 'inspect', 'loopdns'))[0].Containers, {});
    const create = await lab.nsdns('network', 'create', 'loopup', '--dns-upstream', '127.0.0.1:5353');
    assert.equal(create.exitCode, 1);
    assert.match(create.stderr, /--dns-upstream 127\.0\.0\.1:5353: a loopback address would be the host's own/);
    assert.equal((await lab.nsdns('network', 'inspect', 'loopup')).exitCode, 1, 'nothing was created');
  });

  it('rm A B C removes each one it can and reports each failure (exit 1); -f ignores unknown names; --disconnect detaches', async () => {
    await lab.ok('network', 'create', 'rm1', '--subnet', '10.234.1.0/24');
    await lab.ok('network', 'create', 'rm2', '--subnet', '10.234.2.0/24');
    await lab.ok('network', 'create', 'busy', '--subnet', '10.234.3.0/24');
    const ns = await lab.namespace('busy');
    await lab.ok('network', 'connect', 'busy', ns);
    const r = await lab.nsdns('network', 'rm', 'rm1', 'nosuch', 'busy', 'rm2');
    assert.equal(r.exitCode, 1);
    assert.deepEqual(r.stdout.split('\n'), ['rm1', 'rm2']);
    assert.match(r.stderr, /^nsdns: network "nosuch" not found/m);
    assert.match(r.stderr, /^nsdns: network "busy" has 1 endpoint\(s\) attached \(ns\w+-busy\); disconnect them first, or use --disconnect to detach them$/m);
    const ls = (await lab.ok('network', 'ls', '-q')).split('\n');
    assert.ok(!ls.includes('rm1') && !ls.includes('rm2') && ls.includes('busy'));
    const forced = await lab.nsdns('network', 'rm', '-f', 'nosuch', 'neither');
    assert.equal(forced.exitCode, 0, forced.stderr);
    assert.equal(forced.stderr, '');
    const stillBusy = await lab.nsdns('network', 'rm', '--force', 'busy');
    assert.equal(stillBusy.exitCode, 1, '-f does not detach endpoints (docker\'s meaning)');
    assert.equal((await lab.ok('network', 'rm', '--disconnect', 'busy')).trim(), 'busy');
    assert.equal(await lab.dig(ns, ns).then((a) => a.length), 0);
  });

  it('prune -f is accepted and removes networks without endpoints', async () => {
    await lab.ok('network', 'create', 'unused1', '--subnet', '10.234.4.0/24');
    const r = await lab.nsdns('network', 'prune', '-f');
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, /^Deleted Networks:\n(.*\n)*unused1$/m);
  });

  it('debug --resolve NAME TYPE takes the type as query does (and --type still works)', async () => {
    await lab.ok('network', 'create', 'dbg', '--subnet', '10.235.0.0/24', '--subnet', 'fd35::/64');
    const ns = await lab.namespace('dbg');
    await lab.ok('network', 'connect', 'dbg', ns, '--name', 'web_1');
    for (const args of [['web_1', 'aaaa'], ['web_1', '--type', 'AAAA']]) {
      const report = JSON.parse(await lab.ok('debug', ns, '--resolve', ...args, '--json'));
      assert.equal(report.daemon.resolution.type, 'AAAA', args.join(' '));
      assert.deepEqual(report.daemon.resolution.answers.map((a: { data: string }) => a.data), ['fd35::2']);
    }
    const bogus = await lab.nsdns('debug', ns, '--resolve', 'web_1', 'BOGUS');
    assert.equal(bogus.exitCode, 2);
    assert.match(bogus.stderr, /unknown record type 'BOGUS'/);
  });

  it('debug --resolve NAME SRV prints the records as dig does ("priority weight port target."), never [object Object]', async () => {
    await lab.ok('network', 'create', 'dbgsrv', '--subnet', '10.235.1.0/24');
    const ns = await lab.namespace('dbgsrv');
    await lab.ok('network', 'connect', 'dbgsrv', ns, '--name', 'api', '--service', 'http:8080');
    const report = JSON.parse(await lab.ok('debug', ns, '--resolve', '_http._tcp.api', 'SRV', '--json'));
    assert.equal(report.daemon.resolution.rcode, 'NOERROR');
    assert.deepEqual(report.daemon.resolution.answers.map((a: { type: string; data: string }) => `${a.type} ${a.data}`), ['SRV 0 0 8080 api.dbgsrv.']);
    const human = await lab.ok('debug', ns, '--resolve', '_http._tcp.api', 'SRV');
    assert.match(human, /^  SRV 0 0 8080 api\.dbgsrv\. ttl \d+$/m);
    assert.doesNotMatch(human, /\[object Object\]/);
  });

  it('ls --filter, ls --format json with docker keys, inspect --format with a template', async () => {
    const id = (await lab.ok('network', 'create', 'fmt_front', '--subnet', '10.236.0.0/24')).trim();
    await lab.ok('network', 'create', 'fmt_back', '--subnet', '10.236.1.0/24', '--subnet', 'fd36::/64', '--internal');
    const names = async (...filters: string[]) => (await lab.ok('network', 'ls', '-q', ...filters.flatMap((f) => ['--filter', f]))).split('\n').filter(Boolean).sort();
    assert.deepEqual(await names('name=fmt_'), ['fmt_back', 'fmt_front']);
    assert.deepEqual(await names('name=FRONT'), ['fmt_front']);
    assert.deepEqual(await names('name=front', 'name=back'), ['fmt_back', 'fmt_front'], 'one key: either value');
    assert.deepEqual(await names('name=fmt_', `id=${id.slice(0, 6)}`), ['fmt_front'], 'two keys: both');
    assert.deepEqual(await names('name=fmt_', 'driver=static'), []);
    assert.deepEqual(await names('name=fmt_', 'label=team'), [], 'no network has labels');
    const badFilter = await lab.nsdns('network', 'ls', '--filter', 'colour=red');
    assert.equal(badFilter.exitCode, 2);
    assert.match(badFilter.stderr, /--filter "colour=red": expected KEY=VALUE/);

    const lines = (await lab.ok('network', 'ls', '--format', 'json', '--filter', 'name=fmt_')).split('\n').map((l) => JSON.parse(l));
    const back = lines.find((l) => l.Name === 'fmt_back');
    assert.deepEqual(Object.keys(back).sort(), ['CreatedAt', 'Driver', 'ID', 'IPv6', 'Internal', 'Labels', 'Name', 'Scope']);
    assert.equal(back.Internal, 'true');
    assert.equal(back.IPv6, 'true');
    assert.equal(back.Driver, 'bridge');
    assert.match(back.CreatedAt, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \+0000 UTC$/);
    assert.deepEqual(JSON.parse(await lab.ok('network', 'ls', '--json', '--filter', 'name=fmt_front')), [lines.find((l) => l.Name === 'fmt_front')], '--json: the same objects in one array');
    assert.equal((await lab.ok('network', 'ls', '--format', '{{.Name}} {{.ID}}', '--filter', 'name=fmt_front')).trim(), `fmt_front ${id.slice(0, 12)}`);

    assert.equal((await lab.ok('network', 'inspect', '-f', '{{.Name}} {{.Id}}', 'fmt_front')).trim(), `fmt_front ${id}`);
    assert.equal((await lab.ok('network', 'inspect', '--format', '{{range .IPAM.Config}}{{.Subnet}} {{end}}', 'fmt_back')).trim(), '10.236.1.0/24 fd36::/64');
    assert.deepEqual(JSON.parse(await lab.ok('network', 'inspect', '-f', '{{json .IPAM.Config}}', 'fmt_front')), [{ Subnet: '10.236.0.0/24', Gateway: '10.236.0.1' }]);
    assert.equal((await lab.ok('network', 'inspect', '-f', '{{.IPAM.Config}}', 'fmt_front')).trim(), '[map[Gateway:10.236.0.1 Subnet:10.236.0.0/24]]');
    assert.equal((await lab.ok('network', 'inspect', '-f', '{{.Internal}}', 'fmt_front', 'fmt_back')), 'false\ntrue');
    const noField = await lab.nsdns('network', 'inspect', '-f', '{{.Nope}}', 'fmt_front');
    assert.equal(noField.exitCode, 2);
    assert.match(noField.stderr, /--format: no field \.Nope/);
  });

  it("messages speak the user's words: the namespace as typed, the gateway named, --name suggested", async () => {
    await lab.ok('network', 'create', 'words', '--subnet', '10.237.0.0/24');
    const ns = await lab.namespace('words');
    await lab.ok('network', 'connect', 'words', ns);
    const again = await lab.nsdns('network', 'connect', 'words', ns);
    assert.equal(again.stderr.trim(), `nsdns: namespace "${ns}" is already connected to network "words"`);
    const missing = await lab.nsdns('network', 'connect', 'words', `${ns}-gone`);
    assert.equal(missing.stderr.split('\n')[0], `nsdns: namespace "${ns}-gone" not found; create one with \`ip netns add NAME\`, or give a PID or a namespace path`);
    const other = await lab.namespace('words2');
    const gw = await lab.nsdns('network', 'connect', 'words', other, '--ip', '10.237.0.1');
    assert.match(gw.stderr, /--ip 10\.237\.0\.1 is the gateway of network "words"; give another address/);
    const dotted = `${lab.namespaces[0].slice(0, 8)}.dotted`;
    const { execa } = await import('execa');
    await execa('ip', ['netns', 'add', dotted]);
    lab.namespaces.push(dotted);
    const badName = await lab.nsdns('network', 'connect', 'words', dotted);
    assert.match(badName.stderr, new RegExp(`the namespace name "${dotted.replace('.', '\\.')}" cannot be an endpoint name .*; give one with --name`));
    await lab.ok('network', 'connect', 'words', dotted, '--name', 'dotted');
    for (const r of [again, missing, gw, badName]) assert.doesNotMatch(r.stderr, /\/run\/netns/);
  });

  it('disconnecting the network that carries the default route moves it to another non-internal network (read from the kernel)', async () => {
    const { execa } = await import('execa');
    const defaults = async (ns: string) => JSON.parse((await execa('ip', ['-n', ns, '-j', 'route', 'show', 'default'])).stdout || '[]') as Array<{ gateway: string; dev: string }>;
    await lab.ok('network', 'create', 'route_a', '--subnet', '10.242.0.0/24');
    await lab.ok('network', 'create', 'route_sealed', '--subnet', '10.242.1.0/24', '--internal');
    await lab.ok('network', 'create', 'route_b', '--subnet', '10.242.2.0/24');
    const ns = await lab.namespace('route');
    await lab.ok('network', 'connect', 'route_a', ns);
    await lab.ok('network', 'connect', 'route_sealed', ns);
    await lab.ok('network', 'connect', 'route_b', ns);
    assert.deepEqual((await defaults(ns)).map((r) => [r.gateway, r.dev]), [['10.242.0.1', 'eth0']]);
    await lab.ok('network', 'disconnect', 'route_a', ns);
    assert.deepEqual((await defaults(ns)).map((r) => [r.gateway, r.dev]), [['10.242.2.1', 'eth2']], 'via route_b, not the internal network');
    await lab.ok('network', 'disconnect', 'route_b', ns);
    assert.deepEqual(await defaults(ns), [], 'only an internal network left: no route out');
  });

  it('a PID target: connect says it gets no resolv.conf, and --resolv-conf FILE writes one there (validated, atomic)', async () => {
    const { execa } = await import('execa');
    const { mkdtempSync, readFileSync, readdirSync, rmSync } = await import('node:fs');
    const ns = await lab.namespace('pid');
    const sleeper = execa('ip', ['netns', 'exec', ns, 'sleep', '60'], { reject: false });
    const rootfs = mkdtempSync('/tmp/nsdns-rootfs-');
    try {
      const pid = await waitFor(async () => (await execa('ip', ['netns', 'pids', ns])).stdout.trim().split('\n')[0], { what: 'the sleeper runs in the namespace' });
      await lab.ok('network', 'create', 'pidnet', '--subnet', '10.243.0.0/24', '--domain', 'pid.test');
      const plain = await lab.ok('network', 'connect', 'pidnet', pid, '--name', 'bypid');
      assert.match(plain, /^note: a namespace given by PID or path gets no resolv\.conf.*--resolv-conf FILE\.$/m);
      await lab.ok('network', 'disconnect', 'pidnet', 'bypid');

      for (const [bad, why] of [['etc/resolv.conf', /give an absolute path/], ['/proc/self/root/x', /not inside \/proc or \/sys/], [rootfs, /is a directory/], [`${rootfs}/nodir/resolv.conf`, /does not exist/]] as const) {
        const r = await lab.nsdns('network', 'connect', 'pidnet', pid, '--name', 'bypid', '--resolv-conf', bad);
        assert.equal(r.exitCode, 2, bad);
        assert.match(r.stderr, why);
      }
      assert.deepEqual(JSON.parse(await lab.ok('network', 'inspect', 'pidnet'))[0].Containers, {}, 'a refused path connects nothing');

      const file = `${rootfs}/resolv.conf`;
      const out = await lab.ok('network', 'connect', 'pidnet', pid, '--name', 'bypid', '--resolv-conf', file);
      assert.match(out, new RegExp(`resolv\\.conf written to ${file}`));
      assert.doesNotMatch(out, /note:/);
      const text = readFileSync(file, 'utf8');
      assert.match(text, /^nameserver 127\.0\.0\.11$/m);
      assert.match(text, /^search pid\.test$/m);
      assert.deepEqual(readdirSync(rootfs), ['resolv.conf'], 'no temp file left');
      // The file works: glibc in the namespace, reading it as its resolv.conf, finds the endpoint.
      const r = await execa('unshare', ['-m', 'sh', '-c', `mount --bind ${file} /etc/resolv.conf && nsenter --net=/proc/${pid}/ns/net getent hosts bypid`], { reject: false });
      assert.match(r.stdout, /^10\.243\.0\.2\s+bypid/);
    } finally {
      sleeper.kill();
      rmSync(rootfs, { recursive: true, force: true });
    }
  });
});
