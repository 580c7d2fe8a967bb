// Links read back and repaired against a running daemon: a veth set
// down, taken off its bridge, or put on a bridge nsdns does not own comes back within the
// self-heal pass, and the neighbours ping each other again. Subnet 10.194.0.0/24, this Lab's links.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { Lab, needsRoot, sh } from '../helpers/netns.js';

async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function pings(from: string, to: string): Promise<boolean> {
  return (await execa('ip', ['netns', 'exec', from, 'ping', '-c', '1', '-W', '1', to], { reject: false })).exitCode === 0;
}

/** The host link as the kernel shows it: its bridge and whether it is up. */
async function hostLink(name: string): Promise<{ master: string | undefined; up: boolean }> {
  const [link] = JSON.parse(await sh('ip', '-j', 'link', 'show', 'dev', name)) as Array<{ master?: string; flags: string[] }>;
  return { master: link.master, up: link.flags.includes('UP') };
}

describe('a veth changed by hand is put right while the daemon runs', { skip: needsRoot }, () => {
  const lab = new Lab();
  const bridge = `${lab.linkPrefix}br94`;
  const stranger = `${lab.linkPrefix}xb94`;
  let a: string, b: string, hostIf: string;
  before(async () => {
    await lab.start();
    a = await lab.namespace('a');
    b = await lab.namespace('b');
    await lab.ok('network', 'create', 'fix', '--subnet', '10.194.0.0/24', '--bridge', bridge);
    await lab.ok('network', 'connect', 'fix', a);
    await lab.ok('network', 'connect', 'fix', b);
    const endpoints = JSON.parse(readFileSync(`${lab.state}/networks/fix.json`, 'utf8')).endpoints as Array<{ ipv4: string[]; hostIf: string }>;
    hostIf = endpoints.find((e) => e.ipv4[0] === '10.194.0.3')!.hostIf;
    await sh('ip', 'link', 'add', stranger, 'type', 'bridge');
  });
  after(async () => {
    await execa('ip', ['link', 'del', stranger], { reject: false });
    await lab.cleanup();
  });

  const repaired = async () => {
    const l = await hostLink(hostIf);
    return l.master === bridge && l.up;
  };

  it('a veth set down is set up again', async () => {
    assert.ok(await pings(a, '10.194.0.3'), 'a pings b before');
    await sh('ip', 'link', 'set', hostIf, 'down');
    await waitFor('the veth is up again', repaired);
    await waitFor('a pings b again', () => pings(a, '10.194.0.3'));
  });

  it('a veth taken off its bridge is attached again', async () => {
    await sh('ip', 'link', 'set', hostIf, 'nomaster');
    await waitFor('the veth is on its bridge again', repaired);
    await waitFor('a pings b again', () => pings(a, '10.194.0.3'));
  });

  it('a veth put on a bridge nsdns does not own is moved back to its own', async () => {
    await sh('ip', 'link', 'set', hostIf, 'master', stranger);
    await waitFor('the veth is on its bridge again', repaired);
    await waitFor('a pings b again', () => pings(a, '10.194.0.3'));
    assert.equal((await lab.nsdns('status')).exitCode, 0);
  });
});
