// The nftables table as libnftables JSON: a golden file nft itself accepts (`nft -j -c`), and
// hostile names and addresses that can never become ruleset syntax.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { withFile } from '../../src/plumbing/firewall.js';
import { buildRuleset, deleteTable, type NftJson } from '../../src/plumbing/nft-rules.js';
import { toRecord } from '../../src/registry/document.js';
import type { NetworkRecord } from '../../src/registry/types.js';
import { ROOT } from '../helpers/daemon.js';

const isRoot = process.getuid?.() === 0;

/** One command per line: a golden diff shows the rule that changed. */
const pretty = (j: NftJson) => `{"nftables": [\n${j.nftables.map((c) => `  ${JSON.stringify(c)}`).join(',\n')}\n]}\n`;

const nftCheck = (j: NftJson) => withFile(JSON.stringify(j), (file) => execa('nft', ['-j', '-c', '-f', file], { reject: false }));

const records = (): NetworkRecord[] => [
  toRecord({ name: 'web', bridge: 'nsbr-web', subnets: [{ subnet: '172.18.0.0/16', gateway: '172.18.0.1' }, { subnet: 'fd18::/64' }],
    endpoints: [{ name: 'app', ipv4: '172.18.0.2', ports: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }, { hostIp: '127.0.0.1', hostPort: 5353, containerPort: 53, protocol: 'udp' }] }] }, 'web'),
  toRecord({ name: 'db', bridge: 'nsbr-db', subnets: [{ subnet: '172.19.0.0/16' }], endpoints: [{ name: 'pg', ipv4: '172.19.0.2' }] }, 'db'),
  toRecord({ name: 'vault', bridge: 'nsbr-vault', internal: true, subnets: [{ subnet: '172.20.0.0/16' }] }, 'vault'),
  toRecord({ name: 'lab', subnets: [{ subnet: '10.77.0.0/24' }] }, 'lab'),
];

describe('nftables ruleset (JSON)', () => {
  // Golden file: UPDATE_GOLDEN=1 rewrites it after an intended change.
  it('matches the golden file for isolation, masquerade, internal networks and published ports', () => {
    const golden = path.join(ROOT, 'fixtures/nft/three-networks.json');
    const actual = pretty(buildRuleset('nsdns', records()));
    if (process.env.UPDATE_GOLDEN) writeFileSync(golden, actual);
    assert.equal(actual, readFileSync(golden, 'utf8'));
  });

  it('is accepted by nft itself (nft -j -c), and reads back as the expected rules', { skip: isRoot ? false : 'nft -c needs root' }, async () => {
    const golden = JSON.parse(readFileSync(path.join(ROOT, 'fixtures/nft/three-networks.json'), 'utf8')) as NftJson;
    const r = await nftCheck(golden);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal((await nftCheck(deleteTable('nsdns_check'))).exitCode, 0);
  });

  it('carries names and addresses as JSON values: a hostile one is refused, never turned into a command', () => {
    const hostile = ['x"; flush ruleset; "', 'br\ndelete table inet filter', 'br0 } drop', '@set', 'a'.repeat(16), '..', 'nul\0x'];
    for (const bridge of hostile) {
      const record: NetworkRecord = { network: { name: 'n', id: 'i', subnets: [], internal: false, upstreams: [], bridge }, endpoints: [] };
      assert.throws(() => buildRuleset('nsdns', [record]), /bridge is not a valid interface name/, JSON.stringify(bridge));
    }
    for (const hostIp of ['127.0.0.1\ndelete table inet filter', '127.0.0.1 tcp dport 1 accept', '0x7f.1']) {
      const record = records()[0];
      record.endpoints[0].ports = [{ hostIp, hostPort: 1, containerPort: 1, protocol: 'tcp' }];
      assert.throws(() => buildRuleset('nsdns', [record]), /invalid published port/, JSON.stringify(hostIp));
    }
    assert.throws(() => buildRuleset('nsdns; flush ruleset', []), /table name/);
    // Even if a string got past validation, nft reads it as one value: the output is JSON strings only.
    const text = JSON.stringify(buildRuleset('nsdns', records()));
    assert.ok(!text.includes('\n'));
  });
});
