// The daemon's life on one host: one daemon per state directory and per control socket (a second
// one fails at once, before it restores anything), a stale lock left by a killed daemon is taken
// over, and a SIGHUP that changes a start-only setting says the setting waits for a restart.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { execa } from 'execa';
import { MAIN, ROOT, startDaemon } from '../helpers/daemon.js';
import { digShort } from '../helpers/dig.js';
import { tempDir } from '../helpers/tmp.js';

const nsdns = (...args: string[]) => execa(process.execPath, [MAIN, ...args], { reject: false, cwd: ROOT, timeout: 20_000 });

describe('one daemon per state directory and socket', () => {
  it('a second serve on the same state directory fails at once, naming the running one', async () => {
    const dir = tempDir();
    const first = await startDaemon(['--listen', '127.0.0.1:0', '--registry', path.join(ROOT, 'fixtures/lab')]);
    try {
      // At once: a serve that waited for the lock would be killed by nsdns()'s timeout instead.
      const r = await nsdns('serve', '--state-dir', first.stateDir, '--socket', path.join(dir.dir, 'other.sock'), '--listen', '127.0.0.1:0', '--no-resolv-conf', '--log-level', 'error');
      assert.equal(r.exitCode, 1);
      assert.match(r.stderr, new RegExp(`the state directory ${first.stateDir} is in use by another nsdns daemon \\(pid ${first.proc.pid}\\)`));
      assert.doesNotMatch(r.stdout + r.stderr, /"msg":"ready"/);
      // The first one is untouched and still answers; its pid file names it.
      assert.deepEqual(await digShort(first.server, 'web.lab'), ['10.77.0.10']);
      assert.equal(readFileSync(path.join(first.stateDir, 'nsdns.pid'), 'utf8').trim(), String(first.proc.pid));
    } finally {
      await first.stop();
      dir.cleanup();
    }
  });

  it('a second serve on the same socket fails before it restores state, with no EADDRINUSE', async () => {
    const dir = tempDir();
    const first = await startDaemon(['--listen', '127.0.0.1:0']);
    try {
      const socket = path.join(first.stateDir, 'nsdns.sock');
      const r = await nsdns('serve', '--state-dir', dir.dir, '--socket', socket, '--listen', '127.0.0.1:0', '--no-resolv-conf');
      assert.equal(r.exitCode, 1);
      assert.match(r.stderr, new RegExp(`another nsdns daemon is already listening on ${socket}`));
      assert.doesNotMatch(r.stdout + r.stderr, /EADDRINUSE|registry directory loaded|"msg":"ready"/);
      // It gave its own state directory's lock back on the way out.
      assert.equal(existsSync(path.join(dir.dir, 'nsdns.pid')), false);
      // The first daemon's socket still works.
      const ping = await nsdns('network', 'ls', '--socket', socket);
      assert.equal(ping.exitCode, 0, ping.stderr);
    } finally {
      await first.stop();
      dir.cleanup();
    }
  });

  it('a lock left by a daemon that died is taken over, and removed at a clean stop', async () => {
    const dir = tempDir();
    // A pid that surely ran and ended: a child that has exited.
    const gone = spawn('true');
    await new Promise((resolve) => gone.on('exit', resolve));
    writeFileSync(path.join(dir.dir, 'nsdns.pid'), `${gone.pid}\n`);
    const daemon = await startDaemon(['--state-dir', dir.dir, '--listen', '127.0.0.1:0']);
    try {
      assert.equal(readFileSync(path.join(dir.dir, 'nsdns.pid'), 'utf8').trim(), String(daemon.proc.pid));
    } finally {
      await daemon.stop();
    }
    assert.equal(existsSync(path.join(dir.dir, 'nsdns.pid')), false);
    dir.cleanup();
  });
});

describe('SIGHUP', () => {
  it('names the changed settings that apply only at start', async () => {
    const dir = tempDir();
    const config = dir.write('nsdns.yaml', 'ttl: 5\nplumbing:\n  reapIntervalMs: 5000\n');
    const daemon = await startDaemon(['--config', config, '--listen', '127.0.0.1:0', '--no-resolv-conf']);
    try {
      dir.write('nsdns.yaml', 'ttl: 7\nplumbing:\n  reapIntervalMs: 9000\nmetrics:\n  listen: 127.0.0.1:0\n');
      daemon.signal('SIGHUP');
      const warning = await daemon.waitForLog((l) => /apply only at start/.test(l.msg));
      assert.deepEqual(warning.settings, ['plumbing.reapIntervalMs', 'metrics.listen']);
      assert.match(warning.msg, /restart nsdns to apply them\): plumbing\.reapIntervalMs, metrics\.listen/);
      const reloaded = await daemon.waitForLog((l) => l.msg === 'configuration reloaded');
      assert.deepEqual(reloaded.restartNeeded, ['plumbing.reapIntervalMs', 'metrics.listen']);
      // A change that does apply (the TTL) gives no such line.
      dir.write('nsdns.yaml', 'ttl: 9\nplumbing:\n  reapIntervalMs: 9000\nmetrics:\n  listen: 127.0.0.1:0\n');
      const before = daemon.logs.length;
      daemon.signal('SIGHUP');
      await daemon.waitForLog((l) => l.msg === 'configuration reloaded' && daemon.logs.indexOf(l) >= before);
      assert.equal(daemon.logs.slice(before).some((l) => /apply only at start/.test(l.msg)), false);
    } finally {
      await daemon.stop();
      dir.cleanup();
    }
  });
});
