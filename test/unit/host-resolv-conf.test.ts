// The host's resolv.conf has one reader (src/plumbing/host-resolv-conf.ts): the daemon takes its
// nameservers as the last upstreams, a namespace's file takes its search domains and options.
import assert from 'node:assert/strict';
import { renameSync, writeFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import { parseResolvConf, readResolvConf, RESOLV_CONF_MAX_BYTES } from '../../src/plumbing/host-resolv-conf.js';
import { readHostResolverSettings } from '../../src/plumbing/netns-resolv.js';
import { HostResolvers } from '../../src/daemon/resolv-conf.js';
import { tempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const dir = tempDir('nsdns-resolv-');
after(() => dir.cleanup());

const HOSTILE = [
  '# comment',
  'nameserver bogus', // not an address: takes none of the three places, as in glibc
  'nameserver 010.0.0.1', // inet_aton would read 8.0.0.1; refused rather than guessed
  'nameserver 192.0.2.1:5353', // resolv.conf has no port syntax
  'nameserver \u001b[31m192.0.2.9',
  '  nameserver   192.0.2.1  ',
  'nameserver FE80::1%eth0',
  'nameserver fe80::2%an-interface-name-too-long',
  'nameserver 192.0.2.3',
  'nameserver 192.0.2.4', // a fourth: glibc asks no more than three
  'search a.test B.Test. bad..name .',
  'domain first.test',
  'search corp.test a.test',
  'options timeout:1 attempts:2 rotate timeout:300 ndots:5',
].join('\n');

describe('the host resolv.conf', () => {
  it('keeps three well-formed nameservers, a link-local one with its zone', () => {
    assert.deepEqual(parseResolvConf(HOSTILE), {
      nameservers: ['192.0.2.1', 'fe80::1%eth0', '192.0.2.3'],
      search: ['corp.test', 'a.test'],
      options: ['timeout:1', 'attempts:2'],
    });
    assert.deepEqual(parseResolvConf(''), { nameservers: [], search: [], options: [] });
    assert.deepEqual(parseResolvConf('search a b c d e f g h\n').search, ['a', 'b', 'c', 'd', 'e', 'f']);
  });

  it('reads at most its size limit of a file', () => {
    const big = dir.write('big.conf', `nameserver 192.0.2.1\n${'#'.repeat(RESOLV_CONF_MAX_BYTES)}\nnameserver 192.0.2.2\n`);
    assert.deepEqual(readResolvConf(big).nameservers, ['192.0.2.1']);
    assert.throws(() => readResolvConf(`${dir.dir}/missing.conf`), { code: 'ENOENT' });
  });

  it('the daemon and a namespace file read the same parse', async () => {
    const file = dir.write('resolv.conf', HOSTILE);
    const host = new HostResolvers(file, pino({ level: 'silent' }));
    try {
      assert.deepEqual(host.current, ['192.0.2.1', 'fe80::1%eth0', '192.0.2.3']);
    } finally {
      await host.close();
    }
    assert.deepEqual(readHostResolverSettings(file), { search: ['corp.test', 'a.test'], options: ['timeout:1', 'attempts:2'] });
    assert.deepEqual(readHostResolverSettings(`${dir.dir}/missing.conf`), { search: [], options: [] });
    assert.deepEqual(readHostResolverSettings(false), { search: [], options: [] });
  });

  it('follows every rewrite, in place or renamed over (as resolvconf does), in any order', async () => {
    const file = dir.write('watched.conf', 'nameserver 192.0.2.1\n');
    const host = new HostResolvers(file, pino({ level: 'silent' }));
    try {
      for (let i = 2; i <= 7; i++) {
        const text = `nameserver 192.0.2.${i}\n`;
        if (i % 2 === 0) {
          writeFileSync(`${file}.new`, text);
          renameSync(`${file}.new`, file);
        } else {
          writeFileSync(file, text);
        }
        await waitFor(() => host.current[0] === `192.0.2.${i}`, { what: `rewrite ${i} (${i % 2 === 0 ? 'renamed over' : 'in place'}) is used` });
      }
    } finally {
      await host.close();
    }
  });
});
