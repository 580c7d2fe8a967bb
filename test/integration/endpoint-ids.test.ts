// Endpoint ids are unique only inside a network: a registry file that reuses another network's
// endpoint id (ids in files are the file's choice, or a predictable hash) reaches its own endpoint
// only. Seen from outside: the victim's name keeps answering while the copycat's goes NODATA.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { dig, digShort } from '../helpers/dig.js';
import { tempDir } from '../helpers/tmp.js';

const ID = 'c0ffee'.repeat(10) + 'c0ff';

describe('an endpoint id reused by another network', () => {
  const dir = tempDir();
  let daemon: RunningDaemon;

  before(async () => {
    dir.write('victim.yaml', `name: victim\nendpoints: [{id: "${ID}", name: web, healthHideOwn: true, ipv4: 10.166.0.2}]\n`);
    daemon = await startDaemon(['--registry', dir.dir, '--listen', '127.0.0.1:0']);
  });
  after(async () => {
    await daemon?.stop();
    dir.cleanup();
  });

  it('does not let a copycat file mark the victim unhealthy', async () => {
    assert.deepEqual(await digShort(daemon.server, 'web.victim'), ['10.166.0.2']);
    dir.write('copycat.yaml', `name: copycat\nendpoints: [{id: "${ID}", name: fake, healthHideOwn: true, health: unhealthy, ipv4: 10.167.0.2}]\n`);
    await daemon.waitForLog((l) => l.msg === 'registry file loaded' && l.network === 'copycat');
    const copycat = await dig(daemon.server, 'fake.copycat');
    assert.equal(copycat.status, 'NOERROR');
    assert.deepEqual(copycat.answers, [], 'the copycat\'s own endpoint is unhealthy: NODATA');
    assert.deepEqual(await digShort(daemon.server, 'web.victim'), ['10.166.0.2'], 'the victim still answers');
  });
});
