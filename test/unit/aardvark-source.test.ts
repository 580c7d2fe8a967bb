// The aardvark config directory as a registry source: what load() installs, refuses and withdraws,
// each refusal one log line naming the file (real files in a temp directory, a real Registry).
import assert from 'node:assert/strict';
import { symlinkSync, rmSync } from 'node:fs';
import { Writable } from 'node:stream';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { AardvarkSource } from '../../src/podman/aardvark-source.js';
import { Registry } from '../../src/registry/registry.js';
import type { NetworkRecord } from '../../src/registry/types.js';
import { tempDir } from '../helpers/tmp.js';

const ID1 = '1a'.repeat(32);
const ID2 = '2b'.repeat(32);

function captured() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({ write: (chunk, _e, done) => { lines.push(JSON.parse(String(chunk))); done(); } });
  return { log: pino({ level: 'info' }, stream), lines };
}

const fileNetwork: NetworkRecord = {
  network: { name: 'taken', id: 'f'.repeat(64), subnets: [], internal: false, upstreams: [] },
  endpoints: [],
};

describe('aardvark config directory as a registry source', () => {
  const tmp = tempDir('nsdns-aardvark-src-');
  after(() => tmp.cleanup());

  it('installs every network under its own source name, with the listen addresses each wants', async () => {
    const registry = new Registry();
    const { log } = captured();
    tmp.write('podman', `10.173.0.1,fd10:173::1\n${ID1} 10.173.0.2 fd10:173::2 web\n`);
    tmp.write('back%int', `10.174.0.1\n${ID2} 10.174.0.2  db\n`);
    tmp.write('aardvark.pid', '123');
    const source = new AardvarkSource(registry, tmp.dir, log);
    const wanted = await source.load();
    assert.deepEqual(Object.fromEntries(wanted), { back: ['10.174.0.1'], podman: ['10.173.0.1', 'fd10:173::1'] });
    assert.equal(registry.sourceOf('podman'), `aardvark:${tmp.dir}`);
    assert.equal(registry.current().networks.get('back')?.network.internal, true);
  });

  it('refuses a network another source provides, a duplicate net/net%int and a symlink, one line each; the rest load', async () => {
    const registry = new Registry();
    registry.setNetwork(fileNetwork, 'file:/etc/nsdns/taken.yaml');
    const { log, lines } = captured();
    tmp.write('taken', `10.175.0.1\n${ID1} 10.175.0.2  other\n`);
    tmp.write('podman%int', `10.176.0.1\n`);
    symlinkSync('/etc/passwd', path.join(tmp.dir, 'link'));
    const wanted = await new AardvarkSource(registry, tmp.dir, log).load();
    assert.deepEqual([...wanted.keys()].sort(), ['back', 'podman']);
    assert.equal(registry.sourceOf('taken'), 'file:/etc/nsdns/taken.yaml', 'the other source keeps its network');
    const refused = lines.filter((l) => l.msg === 'aardvark config file refused').map((l) => [String(l.file), (l.err as { message: string }).message]);
    assert.equal(refused.length, 3, JSON.stringify(refused));
    assert.match(refused.find(([f]) => f === 'taken')![1], /network "taken" is already defined by file:\/etc\/nsdns\/taken\.yaml/);
    assert.match(refused.find(([f]) => f === 'podman%int')![1], /network "podman" is already read from podman$/);
    assert.match(refused.find(([f]) => f === 'link')![1], /a symbolic link/);
    rmSync(path.join(tmp.dir, 'taken'));
    rmSync(path.join(tmp.dir, 'podman%int'));
    rmSync(path.join(tmp.dir, 'link'));
  });

  it('keeps a network\'s last good content when its file turns bad, and withdraws it when the file goes', async () => {
    const registry = new Registry();
    const { log, lines } = captured();
    const source = new AardvarkSource(registry, tmp.dir, log);
    await source.load();
    tmp.write('podman', 'garbage\n');
    const wanted = await source.load();
    assert.deepEqual(wanted.get('podman'), ['10.173.0.1', 'fd10:173::1']);
    assert.equal(registry.current().networks.get('podman')?.network.name, 'podman');
    assert.match(String(lines.at(-1)?.msg), /network "podman" keeps its last good content/);
    rmSync(path.join(tmp.dir, 'podman'));
    const after = await source.load();
    assert.deepEqual([...after.keys()], ['back']);
    assert.equal(registry.current().networks.has('podman'), false);
  });

  it('installs again only the files that changed since the last load (netavark rewrites those it touches)', async () => {
    const dir = tempDir('nsdns-aardvark-same-');
    try {
      const registry = new Registry();
      const { log } = captured();
      dir.write('one', `10.120.0.1\n${ID1} 10.120.0.2  web\n`);
      dir.write('two', `10.120.1.1\n${ID2} 10.120.1.2  db\n`);
      const source = new AardvarkSource(registry, dir.dir, log);
      await source.load();
      const [one, two] = ['one', 'two'].map((n) => registry.current().networks.get(n));
      dir.write('two', `10.120.1.1\n${ID2} 10.120.1.2  db,cache\n`);
      assert.deepEqual([...(await source.load()).keys()], ['one', 'two']);
      assert.equal(registry.current().networks.get('one'), one, 'the unchanged network is the same compiled one');
      assert.notEqual(registry.current().networks.get('two'), two);
      assert.equal(registry.current().view().lookup('cache').kind, 'found');
      assert.equal(source.loaded, 3);
    } finally {
      dir.cleanup();
    }
  });
});
