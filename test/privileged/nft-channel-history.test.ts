// The nft channel's long-lived `nft -i` keeps no history file: interactive nft reads
// $HOME/.nft.history at start and writes every line it was given back at exit, so the daemon
// would record each learned address in root's home (a file every root `nft -i` on the host
// shares, which grows without bound) and pay, per line, for the history it loaded.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NftChannel } from '../../src/egress/nft-channel.js';
import { needsRoot } from '../helpers/netns.js';

describe('nft channel and the history file', { skip: needsRoot }, () => {
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
});
