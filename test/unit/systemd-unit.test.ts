// The systemd unit against what the documentation promises: the capabilities it keeps are the ones
// docs/operations.md lists, and the paths a fresh host may not have yet do not stop it from starting.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from '../helpers/daemon.js';

/** The unit's settings: key → values (space-separated, every line of the key). */
function unitSettings(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) out.set(m[1], [...(out.get(m[1]) ?? []), ...m[2].split(/\s+/).filter(Boolean)]);
  }
  return out;
}

const unit = unitSettings(readFileSync(path.join(ROOT, 'systemd/nsdns.service'), 'utf8'));
const operations = readFileSync(path.join(ROOT, 'docs/operations.md'), 'utf8');

describe('systemd/nsdns.service', () => {
  it('keeps exactly the capabilities "Running as a service" (docs/operations.md) lists', () => {
    const section = /## Running as a service\n([\s\S]*?)\n## /.exec(operations)?.[1];
    assert.ok(section, 'docs/operations.md has a "Running as a service" section');
    const listed = new Set(section.match(/CAP_[A-Z_]+/g) ?? []);
    const bounding = new Set(unit.get('CapabilityBoundingSet'));
    assert.deepEqual([...listed].sort(), [...bounding].sort());
    for (const cap of unit.get('AmbientCapabilities') ?? []) assert.ok(bounding.has(cap), `${cap} is ambient but not in the bounding set`);
  });

  it('starts on a host without /run/netns or /etc/netns: they are made first, and optional', () => {
    const paths = unit.get('ReadWritePaths') ?? [];
    for (const dir of ['/run/netns', '/etc/netns']) {
      assert.ok(paths.includes(`-${dir}`), `ReadWritePaths has -${dir} (got ${paths.join(' ')})`);
      assert.ok((unit.get('ExecStartPre') ?? []).includes(dir), `ExecStartPre makes ${dir}`);
    }
    // Made by systemd itself (StateDirectory=, RuntimeDirectory=), so they need no '-'.
    assert.deepEqual(unit.get('StateDirectory'), ['nsdns']);
    assert.deepEqual(unit.get('RuntimeDirectory'), ['nsdns']);
  });
});
