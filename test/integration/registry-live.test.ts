// The registry while the daemon runs: files edited, broken, added and removed; the state
// directory loaded at start.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { dig, digShort } from '../helpers/dig.js';
import { tempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

describe('live registry files', () => {
  const dir = tempDir();
  let daemon: RunningDaemon;

  before(async () => {
    dir.write('alpha.yaml', 'name: alpha\nendpoints: [{name: one, ipv4: 10.81.0.1}]\n');
    dir.write('beta.yaml', 'name: beta\nendpoints: [{name: two, ipv4: 10.82.0.2}]\n');
    writeFileSync(path.join(dir.dir, 'notes.txt'), 'not a registry file');
    daemon = await startDaemon(['--registry', dir.dir, '--listen', '127.0.0.1:0']);
  });
  after(async () => {
    await daemon?.stop();
    dir.cleanup();
  });

  it('applies an edit to a file while running', async () => {
    dir.write('alpha.yaml', 'name: alpha\nendpoints: [{name: one, ipv4: 10.81.0.9}, {name: three, ipv4: 10.81.0.3}]\n');
    await waitFor(async () => (await digShort(daemon.server, 'one'))[0] === '10.81.0.9', { what: 'the edited address answered' });
    assert.deepEqual(await digShort(daemon.server, 'three'), ['10.81.0.3']);
  });

  it('keeps serving the last good content of a file that no longer parses, and says so', async () => {
    dir.write('alpha.yaml', 'name: alpha\nendpoints: [{name: one, ipv4: not-an-address}]\n');
    const line = await daemon.waitForLog((l) => l.level >= 50 && String(l.msg).includes('keeps its last good content'));
    assert.match(String((line.err as { message?: string })?.message), /endpoints\.0\.ipv4: not an IPv4 address/);
    assert.deepEqual(await digShort(daemon.server, 'one'), ['10.81.0.9']);
    assert.deepEqual(await digShort(daemon.server, 'two'), ['10.82.0.2'], 'other networks are unaffected');
  });

  it('adds a network from a new file and withdraws it when the file goes', async () => {
    dir.write('gamma.json', JSON.stringify({ name: 'gamma', endpoints: [{ name: 'four', ipv4: '10.83.0.4' }] }));
    await waitFor(async () => (await digShort(daemon.server, 'four'))[0] === '10.83.0.4', { what: 'the new file\'s network answered' });
    rmSync(path.join(dir.dir, 'gamma.json'));
    await waitFor(async () => (await dig(daemon.server, 'four.gamma')).status === 'REFUSED', { what: 'the removed file\'s network withdrawn' });
    assert.deepEqual(await digShort(daemon.server, 'two'), ['10.82.0.2']);
  });

  it('refuses a second file that defines a network already defined, keeping the first', async () => {
    dir.write('beta-copy.yaml', 'name: beta\nendpoints: [{name: two, ipv4: 10.82.0.99}]\n');
    await daemon.waitForLog((l) => String((l.err as { message?: string })?.message ?? '').includes('already defined by'));
    assert.deepEqual(await digShort(daemon.server, 'two'), ['10.82.0.2']);
  });
});

describe('state directory', () => {
  it('serves the networks saved in it at start, and refuses to start on a corrupt file', async () => {
    const state = tempDir();
    try {
      state.write('x', '');
      rmSync(path.join(state.dir, 'x'));
      const networks = path.join(state.dir, 'networks');
      const { mkdirSync } = await import('node:fs');
      mkdirSync(networks);
      writeFileSync(path.join(networks, 'saved.json'), JSON.stringify({ name: 'saved', endpoints: [{ name: 'kept', ipv4: ['10.84.0.4'] }] }));
      const daemon = await startDaemon(['--state-dir', state.dir, '--listen', '127.0.0.1:0']);
      try {
        assert.deepEqual(await digShort(daemon.server, 'kept.saved'), ['10.84.0.4']);
      } finally {
        await daemon.stop();
      }
      writeFileSync(path.join(networks, 'broken.json'), '{"name": ');
      await assert.rejects(startDaemon(['--state-dir', state.dir, '--listen', '127.0.0.1:0']), /state file .*broken\.json is unreadable/);
    } finally {
      state.cleanup();
    }
  });
});
