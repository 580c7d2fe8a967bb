// Readiness is about what the daemon owns: a registry file naming a namespace that does not exist
// is a warning (in `nsdns status`, and one log line), while a namespace nsdns connected itself
// and no longer serves takes /readyz to 503.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { Lab, needsRoot } from '../helpers/netns.js';
import { tempDir } from '../helpers/tmp.js';

async function readyz(metrics: string): Promise<{ status: number; body: string }> {
  const r = await fetch(`http://${metrics}/readyz`);
  return { status: r.status, body: await r.text() };
}

describe('readiness', { skip: needsRoot }, () => {
  const lab = new Lab();
  const files = tempDir();
  const dir = files.dir;
  let missing: string;

  before(() => {
    missing = `/run/netns/ns${lab.tag}-missing`;
    files.write('filed.yaml', `name: filed\nsubnets: [{subnet: 10.164.0.0/24}]\nendpoints:\n  - {name: ghost, ipv4: 10.164.0.5, netns: ${missing}}\n`);
  });
  after(async () => {
    await lab.cleanup();
    files.cleanup();
  });

  const start = () => lab.start(['--registry', dir, '--metrics', '127.0.0.1:0']);
  const metricsOf = () => String(lab.daemon!.logs.find((l) => l.msg === 'ready')!.metrics);

  it('a registry file naming a namespace that does not exist: ready, a warning in status, one log line', async () => {
    await start();
    await lab.daemon!.waitForLog((l) => l.msg === 'cannot serve DNS in namespace');
    // Registry changes: each one tries the namespace again.
    await lab.ok('network', 'create', 'rdy', '--subnet', '10.165.0.0/24');
    await lab.ok('network', 'rm', 'rdy');
    assert.deepEqual(await readyz(metricsOf()), { status: 200, body: 'ready\n' });
    const status = await lab.nsdns('status');
    assert.equal(status.exitCode, 0, status.stdout);
    assert.match(status.stdout, /^nsdns: ready/);
    assert.ok(status.stdout.includes(`warning: 1 namespaces named by registry files not served at 127.0.0.11 (missing?): ${missing}`), status.stdout);
    const json = JSON.parse((await lab.nsdns('status', '--json')).stdout);
    assert.equal(json.ready, true);
    assert.equal(json.warnings.length, 1);
    const lines = lab.daemon!.logs.filter((l) => l.msg === 'cannot serve DNS in namespace' && l.netns === missing);
    assert.equal(lines.length, 1, JSON.stringify(lines));
  });

  it('a provisioned namespace that is not served: not ready, and status names it', async () => {
    const ns = await lab.namespace('held');
    await lab.ok('network', 'create', 'owned', '--subnet', '10.165.1.0/24');
    await lab.ok('network', 'connect', 'owned', ns, '--name', 'held');
    await lab.daemon!.stop();
    // Something else takes 127.0.0.11:53 in the namespace while the daemon is down.
    const squatter = execa('ip', ['netns', 'exec', ns, process.execPath, '-e', "require('dgram').createSocket('udp4').bind(53, '127.0.0.11', () => console.log('bound'))"]);
    try {
      await new Promise<void>((resolve, reject) => {
        squatter.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('bound')) resolve(); });
        squatter.catch(reject);
      });
      await start();
      await lab.daemon!.waitForLog((l) => l.msg === 'cannot serve DNS in namespace' && l.netns === `/run/netns/${ns}`);
      const r = await readyz(metricsOf());
      assert.equal(r.status, 503);
      assert.match(r.body, new RegExp(`1 of 2 namespaces not served at 127\\.0\\.0\\.11: /run/netns/${ns}\\n`));
      const status = await lab.nsdns('status');
      assert.equal(status.exitCode, 1);
      assert.match(status.stdout, /^nsdns: NOT READY/);
    } finally {
      squatter.kill();
      await squatter.catch(() => undefined);
    }
  });
});
