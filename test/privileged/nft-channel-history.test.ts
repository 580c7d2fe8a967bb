// The nft channel and interactive nft's history (libedit). `nft -i` reads $HOME/.nft.history at
// start and writes every line it was given back at exit, so the daemon would record each learned
// address in root's home (a file every root `nft -i` on the host shares) and pay, per line, for
// the history it loaded; and it keeps every line in memory, each one costing more to add than the
// last: the channel keeps no file and replaces its process every LINES_PER_PROCESS lines.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { LINES_PER_PROCESS, NftChannel } from '../../src/egress/nft-channel.js';
import { needsRoot } from '../helpers/netns.js';

describe('nft channel and nft\'s history', { skip: needsRoot }, () => {
  let home = '';
  const savedHome = process.env.HOME;
  before(() => {
    home = mkdtempSync(path.join(tmpdir(), 'nsdns-nft-home-'));
    process.env.HOME = home;
  });
  after(() => {
    process.env.HOME = savedHome;
    rmSync(home, { recursive: true, force: true });
  });

  it('neither creates nor changes $HOME/.nft.history', async () => {
    const channel = new NftChannel();
    await channel.submit('list tables');
    await channel.close();
    assert.equal(existsSync(path.join(home, '.nft.history')), false, 'no history file written');

    writeFileSync(path.join(home, '.nft.history'), 'list ruleset\n');
    const again = new NftChannel();
    await again.submit('list tables');
    await again.close();
    assert.equal(readFileSync(path.join(home, '.nft.history'), 'utf8'), 'list ruleset\n', 'an existing history file is left as it was');
  });

  it('replaces its nft -i after LINES_PER_PROCESS lines, and every update still reaches the kernel', async () => {
    const table = `nsdns_hist_${process.pid}`;
    const channel = new NftChannel();
    try {
      await channel.submit(`add table inet ${table}; add set inet ${table} s { type ipv4_addr; flags timeout; }`);
      const updates = LINES_PER_PROCESS + 2;
      for (let i = 0; i < updates; i++) await channel.submit(`add element inet ${table} s { 10.137.${200 + (i >> 8)}.${i & 255} timeout 60s }`);
      assert.equal(channel.processesStarted, 2, 'a second nft -i took over');
      const listed = JSON.parse((await execa('nft', ['-j', 'list', 'set', 'inet', table, 's'])).stdout) as { nftables: Array<{ set?: { elem?: unknown[] } }> };
      assert.equal(listed.nftables.find((i) => i.set)?.set?.elem?.length, updates);
    } finally {
      await channel.close();
      await execa('nft', ['delete', 'table', 'inet', table], { reject: false });
    }
  });
});
