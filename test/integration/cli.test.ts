// The command line as a newcomer meets it: help once, a version, usage errors once with a hint,
// the documented exit statuses, and `query` that takes what the other commands take.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { MAIN, ROOT, startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { digShort } from '../helpers/dig.js';
import { tempDir } from '../helpers/tmp.js';

const nsdns = (...args: string[]) => execa(process.execPath, [MAIN, ...args], { reject: false, cwd: ROOT });

describe('help, version and usage errors', () => {
  it('--help and a bare `nsdns network` print the help once, on stdout, with status 0', async () => {
    for (const args of [['--help'], ['network'], ['network', '--help'], []]) {
      const r = await nsdns(...args);
      assert.equal(r.exitCode, 0, args.join(' '));
      assert.equal(r.stdout.match(/^Usage: nsdns/gm)?.length, 1, args.join(' '));
      assert.equal(r.stderr, '', `nothing on stderr for ${args.join(' ')} (no "(outputHelp)")`);
    }
  });

  it('--version prints the version of package.json', async () => {
    const { version } = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    for (const flag of ['--version', '-v']) {
      const r = await nsdns(flag);
      assert.equal(r.exitCode, 0);
      assert.equal(r.stdout.trim(), version);
    }
  });

  it('an unknown command or option: the error once and a one-line hint, status 2', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['bogus'], /^nsdns: unknown command 'bogus'\nSee 'nsdns --help'\.$/],
      [['network', 'ls', '--bogus'], /^nsdns: unknown option '--bogus'\nSee 'nsdns network ls --help'\.$/],
      [['network', 'create'], /^nsdns: missing required argument 'name'\nSee 'nsdns network create --help'\.$/],
      [['query', 'foo', 'BOGUS'], /^nsdns: unknown record type 'BOGUS' .*\nSee 'nsdns query --help'\.$/],
      [['serve', '--ttl', 'soon'], /^nsdns: option '--ttl <seconds>' argument 'soon' is invalid\. expected a whole number\nSee 'nsdns serve --help'\.$/],
      [['debug', 'x', 'AAAA'], /a record type is for --resolve NAME/],
    ];
    for (const [args, message] of cases) {
      const r = await nsdns(...args);
      assert.equal(r.exitCode, 2, args.join(' '));
      assert.match(r.stderr.trim(), message, args.join(' '));
      assert.doesNotMatch(r.stdout + r.stderr, /Usage:/, 'not the whole help');
    }
  });

  it('a failure that is not a usage error exits 1', async () => {
    const r = await nsdns('network', 'ls', '--socket', '/nonexistent/nsdns.sock');
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr, /^nsdns: the nsdns daemon is not running/);
  });
});

describe('query, like the other commands', () => {
  let daemon: RunningDaemon;
  const dir = tempDir();
  before(async () => {
    dir.write('compose.yaml', 'name: proj_default\nsubnets: [{subnet: 10.9.0.0/24}, {subnet: "fd09::/64"}]\nendpoints:\n  - {name: proj_web_1, ipv4: 10.9.0.2, ipv6: "fd09::2", aliases: [my_db]}\n');
    daemon = await startDaemon(['--listen', '127.0.0.1:0', '--registry', dir.dir]);
  });
  after(async () => { await daemon.stop(); dir.cleanup(); });

  it('takes --socket (ignored), so one alias serves every command; the type is checked, any case', async () => {
    const r = await nsdns('query', 'proj_web_1', 'aaaa', '--server', daemon.server, '--socket', '/run/whatever.sock', '--json');
    assert.equal(r.exitCode, 0, r.stderr);
    const reply = JSON.parse(r.stdout);
    assert.equal(reply.question.type, 'AAAA');
    assert.deepEqual(reply.answers.map((a: { data: string }) => a.data), ['fd09::2']);
  });

  it('endpoint health: a state the daemon does not know is its refusal, exit 1, naming the states; any case is taken', async () => {
    const socket = path.join(daemon.stateDir, 'nsdns.sock');
    const bad = await nsdns('endpoint', 'health', 'proj_default', 'proj_web_1', 'sick', '--socket', socket);
    assert.equal(bad.exitCode, 1, bad.stderr);
    assert.equal(bad.stderr.trim(), 'nsdns: endpoint.health: state: Invalid option: expected one of "healthy"|"unhealthy"|"starting"');
    const ok = await nsdns('endpoint', 'health', 'proj_default', 'proj_web_1', 'Healthy', '--socket', socket);
    assert.equal(ok.exitCode, 0, ok.stderr);
    assert.equal(ok.stdout, 'proj_web_1 on proj_default: healthy');
  });

  it("names with '_' from a registry file are answered by a host listener (dig)", async () => {
    assert.deepEqual(await digShort(daemon.server, 'proj_web_1'), ['10.9.0.2']);
    assert.deepEqual(await digShort(daemon.server, 'my_db.proj_default'), ['10.9.0.2']);
  });
});
