// One failure, one line: a refused bind in a busy namespace and a daemon that cannot start are
// each reported once, as a person reads them (the log, the CLI's stderr), not twice.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { Lab, needsRoot } from '../helpers/netns.js';

describe('one failure, one line', { skip: needsRoot }, () => {
  const lab = new Lab();
  before(async () => { await lab.start(); });
  after(() => lab.cleanup());

  it('a connect into a namespace whose 127.0.0.11:53 is taken logs the refused bind once', async () => {
    await lab.ok('network', 'create', 'taken', '--subnet', '10.174.97.0/24');
    const ns = await lab.namespace('taken');
    // Something of the namespace's own already listens where nsdns would answer.
    await execa('ip', ['-n', ns, 'addr', 'add', '127.0.0.11/8', 'dev', 'lo']).catch(() => undefined);
    const squatter = execa('ip', ['netns', 'exec', ns, process.execPath, '-e',
      "const s = require('dgram').createSocket('udp4'); s.bind(53, '127.0.0.11', () => console.log('bound')); process.stdin.on('end', () => process.exit(0)); process.stdin.resume();"], { stdin: 'pipe', reject: false });
    try {
      await new Promise<void>((resolve, reject) => {
        squatter.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('bound')) resolve(); });
        setTimeout(() => reject(new Error('the squatter did not bind')), 10_000);
      });
      const before = lab.daemon!.logs.length;
      const r = await lab.nsdns('network', 'connect', 'taken', ns);
      assert.equal(r.exitCode, 1);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      // A warning: the same line serves a registry file's namespace that may not exist yet.
      await lab.daemon!.waitForLog((l) => l.level >= 40 && /127\.0\.0\.11|namespace/.test(l.msg));
      // Give a second line (if any) the time the first one took to be read.
      await lab.ok('network', 'ls');
      const errors = lab.daemon!.logs.slice(before).filter((l) => l.level >= 40);
      assert.equal(errors.length, 1, `error lines for one refused bind:\n${errors.map((l) => JSON.stringify(l)).join('\n')}`);
    } finally {
      squatter.stdin!.end();
      await squatter;
    }
  });
});
