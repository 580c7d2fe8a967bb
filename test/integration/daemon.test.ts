// The daemon as a process: configuration errors, signals, and the `nsdns query` client.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { describe, it } from 'node:test';
import path from 'node:path';
import { execa } from 'execa';
import { MAIN, ROOT, startDaemon } from '../helpers/daemon.js';
import { FakeUpstream } from '../helpers/fake-upstream.js';
import { dig, digShort } from '../helpers/dig.js';
import { tempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const nsdns = (...args: string[]) => execa(process.execPath, [MAIN, ...args], { reject: false, cwd: ROOT });

describe('configuration', () => {
  it('rejects a bad config file with a message naming the key, and exits non-zero', async () => {
    const dir = tempDir();
    try {
      const config = dir.write('bad.yaml', 'ttl: -3\nlisten: ["not-an-address"]\nsurprise: true\n');
      const r = await nsdns('serve', '--config', config);
      assert.notEqual(r.exitCode, 0);
      assert.match(r.stderr, /invalid configuration in .*bad\.yaml/);
      assert.match(r.stderr, /ttl: /);
      assert.match(r.stderr, /listen\.0: --listen "not-an-address"/);
      assert.match(r.stderr, /Unrecognized key.*surprise/);
      const missing = await nsdns('serve', '--config', path.join(dir.dir, 'nope.yaml'));
      assert.match(missing.stderr, /cannot read config file/);
      const usage = await nsdns('serve', '--ttl', 'soon');
      assert.equal(usage.exitCode, 2);
    } finally {
      dir.cleanup();
    }
  });

  it('reports a port it cannot bind', async () => {
    const first = await startDaemon(['--listen', '127.0.0.1:0']);
    // Its own state directory: a second daemon on the first one's is refused before it listens.
    const own = tempDir();
    try {
      const r = await nsdns('serve', '--state-dir', own.dir, '--socket', path.join(own.dir, 'nsdns.sock'), '--listen', first.server, '--no-resolv-conf');
      assert.equal(r.exitCode, 1);
      assert.match(r.stderr, /cannot listen on udp 127\.0\.0\.1:\d+: .*EADDRINUSE/);
      // One failure, one line: no second report (a JSON line with the stack) of the same failure.
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.doesNotMatch(r.stdout, /cannot start|"stack"/);
    } finally {
      await first.stop();
      own.cleanup();
    }
  });
});

describe('signals', () => {
  it('SIGTERM: answers the query in flight, then exits 0', async () => {
    const slow = await FakeUpstream.start({ zone: { 'slow.test': ['192.0.2.50'] }, delayMs: 600 });
    const daemon = await startDaemon(['--listen', '127.0.0.1:0', '--upstream', slow.spec]);
    try {
      const pending = digShort(daemon.server, 'slow.test');
      await waitFor(() => slow.received.length > 0, { what: 'the query is in flight upstream' });
      daemon.signal('SIGTERM');
      assert.deepEqual(await pending, ['192.0.2.50']);
      assert.equal(await daemon.waitForExit(), 0);
    } finally {
      await daemon.stop();
      await slow.stop();
    }
  });

  it('SIGHUP: reloads the config file, and keeps running on a bad one', async () => {
    const dir = tempDir();
    const a = await FakeUpstream.start({ zone: { 'x.test': ['192.0.2.1'] } });
    const b = await FakeUpstream.start({ zone: { 'x.test': ['192.0.2.2'] } });
    const config = dir.write('c.yaml', `upstreams: ["${a.spec}"]\nttl: 5\nregistries: [${path.join(ROOT, 'fixtures/lab')}]\nresolvConf: false\ncache: {size: 0}\n`);
    const daemon = await startDaemon(['--config', config, '--listen', '127.0.0.1:0']);
    try {
      assert.deepEqual(await digShort(daemon.server, 'x.test'), ['192.0.2.1']);
      dir.write('c.yaml', `upstreams: ["${b.spec}"]\nttl: 42\nregistries: [${path.join(ROOT, 'fixtures/lab')}]\nresolvConf: false\ncache: {size: 0}\n`);
      daemon.signal('SIGHUP');
      await daemon.waitForLog((l) => l.msg === 'configuration reloaded');
      assert.deepEqual(await digShort(daemon.server, 'x.test'), ['192.0.2.2']);
      assert.equal((await dig(daemon.server, 'web')).answers[0].ttl, 42);
      dir.write('c.yaml', 'ttl: "soon"\n');
      daemon.signal('SIGHUP');
      await daemon.waitForLog((l) => String(l.msg).startsWith('reload refused'));
      assert.equal((await dig(daemon.server, 'web')).answers[0].ttl, 42);
    } finally {
      await daemon.stop();
      await a.stop();
      await b.stop();
      dir.cleanup();
    }
  });

  it('SIGHUP into a listener that cannot be had: said in the log, the daemon keeps running and serving', async () => {
    const dir = tempDir();
    const holder = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => holder.bind(0, '127.0.0.1', resolve));
    const taken = holder.address().port;
    const config = dir.write('c.yaml', `listen: ["127.0.0.1:0"]\nregistries: [${path.join(ROOT, 'fixtures/lab')}]\nresolvConf: false\n`);
    const daemon = await startDaemon(['--config', config]);
    try {
      assert.deepEqual(await digShort(daemon.server, 'www.lab'), ['10.77.0.10']);
      dir.write('c.yaml', `listen: ["127.0.0.1:0", "127.0.0.1:${taken}"]\nregistries: [${path.join(ROOT, 'fixtures/lab')}]\nresolvConf: false\n`);
      daemon.signal('SIGHUP');
      const said = await daemon.waitForLog((l) => String(l.msg).startsWith('reload: host listener not started'));
      assert.match(String(said.msg), new RegExp(`127\\.0\\.0\\.1:${taken}`));
      await daemon.waitForLog((l) => l.msg === 'configuration reloaded');
      assert.equal(daemon.proc.exitCode, null, 'still running');
      assert.deepEqual(await digShort(daemon.server, 'www.lab'), ['10.77.0.10'], 'the listener it had still answers');
    } finally {
      await daemon.stop();
      holder.close();
      dir.cleanup();
    }
  });
});

describe('nsdns query', () => {
  it('asks over UDP or TCP and prints text or JSON', async () => {
    const daemon = await startDaemon(['--registry', path.join(ROOT, 'fixtures/lab'), '--listen', '127.0.0.1:0']);
    try {
      const text = await nsdns('query', 'www.lab', '--server', daemon.server);
      assert.equal(text.exitCode, 0);
      assert.match(text.stdout, /www\.lab\.\s+5\s+IN\s+A\s+10\.77\.0\.10/);
      const json = await nsdns('query', 'db', 'AAAA', '--server', daemon.server, '--tcp', '--json');
      const parsed = JSON.parse(json.stdout);
      assert.equal(parsed.transport, 'tcp');
      assert.equal(parsed.aa, true);
      assert.deepEqual(parsed.answers.map((a: { data: string }) => a.data), ['fd77::11']);
      const nx = JSON.parse((await nsdns('query', 'nope.lab', '--server', daemon.server, '--json')).stdout);
      assert.equal(nx.rcode, 'NXDOMAIN');
      assert.equal(nx.authorities[0].type, 'SOA');
      const dead = await nsdns('query', 'x', '--server', '127.0.0.1:9', '--timeout', '300');
      assert.equal(dead.exitCode, 1);
      assert.match(dead.stderr, /no answer from 127\.0\.0\.1:9/);
    } finally {
      await daemon.stop();
    }
  });
});
