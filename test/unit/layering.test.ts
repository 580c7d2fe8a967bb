// The dependency rule of the layout (README, "Architecture"): wire ← registry ← resolver ←
// server ← listeners ← daemon ← cli, with health and plumbing beside them and native (paths of the C
// helpers) below everything. The modules at the top of src/ (errors, log, ...) are shared by every
// layer and import none; main.ts is the entry and may import the CLI. A new import against the
// arrows fails here, static or dynamic (`await import(...)` is how the CLI defers its heavy parts,
// so it must obey the same rule), and so does a new folder nobody placed in the table.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from '../helpers/daemon.js';

const allowed: Record<string, string[]> = {
  native: [],
  wire: [],
  registry: ['wire'],
  health: ['wire', 'registry', 'native'],
  resolver: ['wire', 'registry', 'egress'],
  egress: ['wire', 'registry', 'plumbing'],
  server: ['wire', 'registry', 'resolver', 'native'],
  listeners: ['wire', 'registry', 'resolver', 'server', 'native', 'egress'],
  plumbing: ['wire', 'registry', 'health', 'native'],
  etcd: ['wire', 'registry'],
  daemon: ['wire', 'registry', 'health', 'resolver', 'server', 'listeners', 'plumbing', 'etcd', 'egress', 'native'],
  podman: ['wire', 'registry', 'resolver', 'server', 'listeners', 'daemon', 'native'],
  cli: ['wire', 'registry', 'health', 'resolver', 'server', 'listeners', 'plumbing', 'daemon', 'etcd', 'egress', 'native'],
};

/** Files directly in src/: shared by all layers, importing no layer; main.ts only the CLI. */
const TOP = '(top)';
const ENTRY = 'main.ts';
const entryMayImport = ['cli'];

const SRC = path.join(ROOT, 'src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const full = path.join(dir, f);
    return statSync(full).isDirectory() ? files(full) : /\.(ts|mjs)$/.test(full) ? [full] : [];
  });
}

/** The layer of a path inside src/: its first folder, or TOP for a file directly in src/. */
function layerOf(file: string): string {
  const parts = path.relative(SRC, file).split(path.sep);
  return parts.length === 1 ? TOP : parts[0];
}

/** Every relative module specifier: `from '…'`, `import '…'` and `import('…')`. */
function specifiers(text: string): string[] {
  return [...text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|\bimport\s+)['"](\.\.?\/[^'"]+)['"]/g)].map((m) => m[1]);
}

function violations(file: string, text: string): string[] {
  const layer = layerOf(file);
  const out: string[] = [];
  for (const spec of specifiers(text)) {
    const target = layerOf(path.resolve(path.dirname(file), spec));
    if (target === layer || target === TOP) continue;
    const ok = layer === TOP
      ? path.basename(file) === ENTRY && entryMayImport.includes(target)
      : (allowed[layer] ?? []).includes(target);
    if (!ok) out.push(`${path.relative(ROOT, file)} imports ${spec}`);
  }
  return out;
}

it('every folder of src/ has a place in the layering', () => {
  const folders = readdirSync(SRC).filter((f) => statSync(path.join(SRC, f)).isDirectory());
  assert.deepEqual(folders.filter((f) => !(f in allowed)), []);
});

it('imports follow the layering, static and dynamic', () => {
  const found = files(SRC).flatMap((file) => violations(file, readFileSync(file, 'utf8')));
  assert.deepEqual(found, []);
});

it('the check sees dynamic imports and files at the top of src/', () => {
  // The rule itself, on made-up files: a wire module reaching up, lazily, is caught.
  assert.deepEqual(violations(path.join(SRC, 'wire/x.ts'), "const m = await import('../daemon/daemon.js');"), ['src/wire/x.ts imports ../daemon/daemon.js']);
  assert.deepEqual(violations(path.join(SRC, 'log.ts'), "import { x } from './registry/view.js';"), ['src/log.ts imports ./registry/view.js']);
  assert.deepEqual(violations(path.join(SRC, 'main.ts'), "import { run } from './cli/cli.js';"), []);
  assert.deepEqual(specifiers("export { a } from './a.js';\nimport './side.js';\nimport type { B } from '../b.js';"), ['./a.js', './side.js', '../b.js']);
});
