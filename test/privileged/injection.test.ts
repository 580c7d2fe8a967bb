// A registry file is not trusted with root's firewall or namespaces: an nft injection attempt
// in hostIp/bridge and a netns path outside /run/netns are refused with a clear log line that does
// not repeat them, a valid file's bridge and ports never reach the nft table, and DNS goes on.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { Lab, needsRoot, sh } from '../helpers/netns.js';
import { tempDir } from '../helpers/tmp.js';

/** The table as nft reads it back, without handles (a rewrite renumbers them). */
async function table(name: string): Promise<string> {
  const out = JSON.parse(await sh('nft', '-j', 'list', 'table', 'inet', name)) as { nftables: Array<Record<string, Record<string, unknown>>> };
  return JSON.stringify(out.nftables.filter((o) => !o.metainfo).map((o) => Object.fromEntries(Object.entries(o).map(([k, v]) => {
    const { handle: _h, ...rest } = v;
    return [k, rest];
  }))));
}

describe('registry files cannot reach the firewall or arbitrary namespaces', { skip: needsRoot }, () => {
  const lab = new Lab();
  const dir = tempDir('nsdns-inject-');
  const canary = `nsdns_canary_${lab.tag}`;
  let a: string, b: string, c: string;

  before(async () => {
    a = await lab.namespace('a');
    b = await lab.namespace('b');
    c = await lab.namespace('c');
    // What the injection would delete if it ever became nft syntax.
    await sh('nft', 'add', 'table', 'inet', canary);
    dir.write('good.yaml', `name: good\nsubnets: [{subnet: 10.69.0.0/24}]\nendpoints:\n  - {name: peer, ipv4: 10.69.0.5, netns: /run/netns/${b}}\n`);
    await lab.start(['--registry', dir.dir]);
    await lab.ok('network', 'create', 'own', '--subnet', '10.68.0.0/24');
    await lab.ok('network', 'connect', 'own', a, '--publish', '18990:80');
  });
  after(async () => {
    await lab.cleanup();
    await execa('nft', ['delete', 'table', 'inet', canary], { reject: false });
    dir.cleanup();
  });

  it('refuses the hostile file with a log line that does not repeat it; nft table and DNS unchanged', async () => {
    assert.deepEqual(await lab.dig(b, 'peer'), ['10.69.0.5']);
    const tableBefore = await table(lab.nftTable);
    const injection = `127.0.0.1 tcp dport 1 accept\n}\n}\ndelete table inet ${canary}\ntable inet x {\nchain y {\nip daddr 127.0.0.1`;
    dir.write('evil.yaml', [
      'name: evil',
      `bridge: ${JSON.stringify(`x"; delete table inet ${canary}; "`)}`,
      'subnets: [{subnet: 10.71.0.0/24}]',
      'endpoints:',
      `  - {name: e, ipv4: 10.71.0.2, netns: /etc/nsdns-evil-${lab.tag}, ports: [{hostIp: ${JSON.stringify(injection)}, hostPort: 18993, containerPort: 80}]}`,
      '',
    ].join('\n'));
    const line = await lab.daemon!.waitForLog((l) => /^registry file (rejected|refused)/.test(String(l.msg)) && String(l.file).endsWith('evil.yaml'));
    const text = JSON.stringify(line);
    assert.match(text, /bridge: not a valid interface name/);
    assert.match(text, /endpoints\.0\.netns: not an allowed namespace path/);
    assert.match(text, /endpoints\.0\.ports\.0\.hostIp: not an IPv4 address/);
    const everything = lab.daemon!.logs.map((l) => JSON.stringify(l)).join('\n');
    assert.doesNotMatch(everything, /delete table|nsdns-evil/, 'the raw strings are never logged');
    assert.equal(await table(lab.nftTable), tableBefore);
    assert.equal((await execa('nft', ['list', 'table', 'inet', canary], { reject: false })).exitCode, 0, 'the canary table is still there');
    assert.deepEqual(await lab.dig(b, 'peer'), ['10.69.0.5'], 'other networks keep answering');
    assert.deepEqual(await lab.dig(a, a), ['10.68.0.2']);
    assert.equal(lab.daemon!.exitCode, null);
  });

  it('a valid registry file with a bridge and published ports never reaches the nft table', async () => {
    dir.write('sneaky.yaml', `name: sneaky\nbridge: ${lab.linkPrefix}snk\nsubnets: [{subnet: 10.70.0.0/24}]\nendpoints:\n  - {name: s, ipv4: 10.70.0.2, ports: [{hostPort: 18991, containerPort: 80}]}\n`);
    await lab.daemon!.waitForLog((l) => l.msg === 'registry file loaded' && l.network === 'sneaky');
    // A connect with a published port rewrites the table from the networks nsdns owns (not into
    // b: the file "good" serves it, and a namespace belongs to one source).
    await lab.ok('network', 'connect', 'own', c, '--publish', '18992:80');
    const rules = await sh('nft', 'list', 'table', 'inet', lab.nftTable);
    assert.match(rules, /dport 18992 dnat ip to 10\.68\.0\.3:80/);
    assert.match(rules, /dport 18990 dnat ip to 10\.68\.0\.2:80/);
    assert.doesNotMatch(rules, /18991|snk|sneaky|10\.70\./);
    assert.deepEqual(await lab.dig(b, 'peer'), ['10.69.0.5']);
  });
});
