// The dependency rule of the layout (README, "Architecture"): wire ← registry ← resolver ←
// server ← daemon, with plumbing beside them. A new import against the arrows fails here.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from '../helpers/daemon.js';

const allowed: Record<string, string[]> = {
  wire: [],
  registry: ['wire'],
  resolver: ['wire', 'registry'],
  server: ['wire', 'registry', 'resolver'],
  netns: ['wire', 'registry', 'resolver', 'server'],
  plumbing: ['wire', 'registry'],
  daemon: ['wire', 'registry', 'resolver', 'server', 'netns', 'plumbing'],
  cli: ['wire', 'registry', 'resolver', 'server', 'netns', 'plumbing', 'daemon'],
};

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const full = path.join(dir, f);
    return statSync(full).isDirectory() ? files(full) : full.endsWith('.ts') ? [full] : [];
  });
}

it('imports follow the layering', () => {
  const src = path.join(ROOT, 'src');
  const violations: string[] = [];
  for (const file of files(src)) {
    const layer = path.relative(src, file).split(path.sep)[0];
    if (!(layer in allowed)) continue;
    for (const m of readFileSync(file, 'utf8').matchAll(/from '(\.\.?\/[^']+)'/g)) {
      const target = path.relative(src, path.resolve(path.dirname(file), m[1])).split(path.sep)[0];
      if (target === layer || !(target in allowed)) continue;
      if (!allowed[layer].includes(target)) violations.push(`${path.relative(ROOT, file)} imports ${m[1]}`);
    }
  }
  assert.deepEqual(violations, []);
});
