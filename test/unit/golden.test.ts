// Golden files for output that is pure: test/golden/<kind>/<case>. A diff there shows exactly what
// a change did to the firewall, to an answer or to a compiled network.
//
// After an intended change, regenerate them all with ONE command, then read the diff before
// committing it (docs/TESTING.md):
//
//   npm run build && UPDATE_GOLDEN=1 node --test dist/test/unit/golden.test.js
//
// The files are read from and written to the source tree (ROOT/test/golden), never dist/.
//   nft/<shape>.json              the nftables table (libnftables JSON) for one network shape
//   answers/<case>.txt            the reply to each case of the README's answer table, dig-like
//   registry/<file>.yaml          registry files (inputs; also the world of the answer table)
//   registry/<file>.compiled.json what the registry compiles each into, as stable JSON
//   aardvark/<dir>.json           what each aardvark config file of fixtures/aardvark/<dir> parses into
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { buildRuleset, type NftJson } from '../../src/plumbing/nft-rules.js';
import { addressKeys, compileNetwork, compilePacked, packNetwork, type CompiledNetwork } from '../../src/registry/compiled.js';
import { parseDocumentText, toRecord } from '../../src/registry/document.js';
import { parseAardvarkFile } from '../../src/podman/aardvark-config.js';
import type { NetworkRecord } from '../../src/registry/types.js';
import { ROOT } from '../helpers/daemon.js';
import { ask, buildTable, replyText, TABLE_CASES, TABLE_REGISTRY_DIR, tableDocuments } from '../helpers/answer-table.js';

const GOLDEN = path.join(ROOT, 'test/golden');
const UPDATE = process.env.UPDATE_GOLDEN === '1';

/** Compare `actual` with the golden file `kind/name`, or write it under UPDATE_GOLDEN=1. */
function golden(kind: string, name: string, actual: string): void {
  const file = path.join(GOLDEN, kind, name);
  if (UPDATE) {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, actual);
  }
  let expected: string;
  try {
    expected = readFileSync(file, 'utf8');
  } catch {
    assert.fail(`no golden file ${path.relative(ROOT, file)}: run UPDATE_GOLDEN=1 node --test dist/test/unit/golden.test.js`);
  }
  assert.equal(actual, expected, `${path.relative(ROOT, file)} differs (UPDATE_GOLDEN=1 rewrites it after an intended change)`);
}

/** Golden files of a kind that no case writes any more: stale, and would hide a missing case. */
function orphans(kind: string, names: string[], keep: (f: string) => boolean = () => false): string[] {
  return readdirSync(path.join(GOLDEN, kind)).filter((f) => !names.includes(f) && !keep(f));
}

/** One command per line: a golden diff shows the rule that changed. */
const pretty = (j: NftJson) => `{"nftables": [\n${j.nftables.map((c) => `  ${JSON.stringify(c)}`).join(',\n')}\n]}\n`;

const net = (data: Record<string, unknown>) => toRecord(data, String(data.name));

/** Network shapes, by name: what a provisioned network can look like to the firewall. */
const NFT_SHAPES: Record<string, NetworkRecord[]> = {
  'no-networks': [],
  'file-network-only': [net({ name: 'lab', subnets: [{ subnet: '10.190.0.0/24' }] })],
  'one-network': [net({ name: 'app', bridge: 'nsbr-app', subnets: [{ subnet: '10.190.0.0/24', gateway: '10.190.0.1' }] })],
  'dual-stack': [net({ name: 'app', bridge: 'nsbr-app', subnets: [{ subnet: '10.190.0.0/24' }, { subnet: 'fd19:190::/64' }] })],
  'two-networks-isolated': [
    net({ name: 'front', bridge: 'nsbr-front', subnets: [{ subnet: '10.190.0.0/24' }] }),
    net({ name: 'back', bridge: 'nsbr-back', subnets: [{ subnet: '10.191.0.0/24' }] }),
  ],
  'internal-only': [net({ name: 'vault', bridge: 'nsbr-vault', internal: true, subnets: [{ subnet: '10.192.0.0/24' }] })],
  'internal-beside-external': [
    net({ name: 'app', bridge: 'nsbr-app', subnets: [{ subnet: '10.190.0.0/24' }] }),
    net({ name: 'vault', bridge: 'nsbr-vault', internal: true, subnets: [{ subnet: '10.192.0.0/24' }] }),
  ],
  'published-ports': [net({ name: 'web', bridge: 'nsbr-web', subnets: [{ subnet: '10.190.0.0/24' }, { subnet: 'fd19:190::/64' }], endpoints: [
    { name: 'app', ipv4: '10.190.0.2', ports: [{ hostPort: 26080, containerPort: 80 }, { hostIp: '127.0.0.1', hostPort: 26053, containerPort: 53, protocol: 'udp' }] },
    { name: 'v6only', ipv6: 'fd19:190::3', ports: [{ hostPort: 26081, containerPort: 81 }] },
  ] })],
};

describe('golden: nftables table per network shape', () => {
  for (const [shape, records] of Object.entries(NFT_SHAPES)) {
    it(shape, () => golden('nft', `${shape}.json`, pretty(buildRuleset('nsdns', records))));
  }
  it('no stale nft goldens', () => assert.deepEqual(orphans('nft', Object.keys(NFT_SHAPES).map((s) => `${s}.json`)), []));
});

describe('golden: replies of the answer table', () => {
  const table = buildTable();
  for (const c of TABLE_CASES) {
    it(c.id, async () => golden('answers', `${c.id}.txt`, replyText(await ask(table, c.listener, c.query))));
  }
  it('no stale answer goldens', () => assert.deepEqual(orphans('answers', TABLE_CASES.map((c) => `${c.id}.txt`)), []));
});

const names = (list: readonly { name: string }[]) => list.map((e) => e.name).sort();
const sortedObject = <T>(entries: Iterable<[string, T]>) => Object.fromEntries([...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

/** JSON.stringify replacer: object keys in order, so key order (packed or not) never shows. */
function sortedKeys(_key: string, value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  return sortedObject(Object.entries(value as Record<string, unknown>));
}

/** A compiled network as stable JSON: what each name and address finds, sorted. */
function compiledJson(c: CompiledNetwork): string {
  const nameKeys = new Set<string>();
  const addresses = new Set<string>();
  for (const e of c.endpoints) {
    for (const key of [e.name, ...e.aliases, e.id, e.id.slice(0, 12)]) nameKeys.add(key.toLowerCase());
    addressKeys(e, (a) => addresses.add(a));
  }
  const shown = {
    network: c.network,
    zones: c.zones,
    canonicalZone: c.canonicalZone,
    ownUpstreams: c.ownUpstreams,
    endpointCount: c.endpointCount,
    endpoints: [...c.endpoints].sort((a, b) => (a.name < b.name ? -1 : 1)),
    notable: names(c.notable),
    inNamespaces: c.inNamespaces.map((e) => `${e.name} ${e.netns}`).sort(),
    names: sortedObject([...nameKeys].filter((k) => c.names.has(k)).map((k) => {
      const entry = c.names.get(k)!;
      return [k, { own: entry.own?.name ?? null, endpoints: names(entry.endpoints) }];
    })),
    byAddress: sortedObject([...addresses].map((a) => [a, names(c.byAddress.get(a) ?? [])])),
    records: sortedObject(c.records.entries()),
    recordAddresses: sortedObject(c.recordAddresses.entries()),
  };
  return `${JSON.stringify(shown, sortedKeys, 2)}\n`;
}

describe('golden: registry files and their compiled form', () => {
  const documents = tableDocuments();
  for (const [file, text] of Object.entries(documents)) {
    it(file, () => {
      const record = parseDocumentText(text, file);
      const compiled = compiledJson(compileNetwork(record));
      golden('registry', file.replace(/\.yaml$/, '.compiled.json'), compiled);
      // A file network is held packed: it must compile to the same thing.
      const { tables, notable } = packNetwork(record);
      assert.equal(compiledJson(compilePacked(record.network, tables, notable)), compiled, 'packed and object form agree');
    });
  }
  it('no stale compiled goldens', () => {
    const expected = Object.keys(documents).map((f) => f.replace(/\.yaml$/, '.compiled.json'));
    assert.deepEqual(orphans('registry', expected, (f) => f.endsWith('.yaml')), []);
    assert.equal(TABLE_REGISTRY_DIR, path.join(GOLDEN, 'registry'));
  });
});

describe('golden: aardvark config files and their parsed form', () => {
  const fixtures = path.join(ROOT, 'fixtures/aardvark');
  const dirs = readdirSync(fixtures).filter((d) => !d.endsWith('.md')).sort();
  for (const dir of dirs) {
    it(dir, () => {
      const parsed = Object.fromEntries(readdirSync(path.join(fixtures, dir)).sort()
        .map((file) => [file, parseAardvarkFile(file, readFileSync(path.join(fixtures, dir, file)))]));
      golden('aardvark', `${dir}.json`, `${JSON.stringify(parsed, null, 2)}\n`);
    });
  }
  it('no stale aardvark goldens', () => assert.deepEqual(orphans('aardvark', dirs.map((d) => `${d}.json`)), []));
});
