// A network from a registry file is packed into typed arrays by the registry worker
// (registry/packed.ts). Whatever the network, the packed form must answer every name, alias, id,
// service and address exactly as the same network built from objects.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { compileNetwork, compilePacked, packNetwork } from '../../src/registry/compiled.js';
import { MAX_RUN, tableBuffers } from '../../src/registry/packed.js';
import { derivedId, toRecord } from '../../src/registry/document.js';
import { HealthStates } from '../../src/registry/health-state.js';
import { View } from '../../src/registry/view.js';
import { Registry } from '../../src/registry/registry.js';
import type { NetworkRecord } from '../../src/registry/types.js';

/** What a client would get: the answer's kind and its records in a comparable form. */
function answer(view: View, name: string): unknown {
  const r = view.lookup(name);
  if (r.kind !== 'found') return r;
  const sorted = (list: readonly Buffer[]) => list.map((b) => b.toString('hex')).sort();
  return { a: sorted(r.a), aaaa: sorted(r.aaaa), txt: [...r.txt].sort(), srv: r.srv.map((s) => `${s.port} ${s.target}`).sort(), failOpen: r.failOpen };
}

const LONG_A = '0123456789ab'.repeat(5).padEnd(64, 'c');
/** Shares LONG_A's short id. */
const LONG_B = `${LONG_A.slice(0, 12)}${'d'.repeat(52)}`;
const label = fc.constantFrom('web', 'db', 'api', 'pool', 'cache', 'x1', 'x2', 'x3');
const endpoint = fc.record({
  name: label,
  aliases: fc.uniqueArray(label, { maxLength: 3 }),
  ipv4: fc.uniqueArray(fc.integer({ min: 1, max: 6 }).map((n) => `10.5.0.${n}`), { maxLength: 2 }),
  ipv6: fc.uniqueArray(fc.integer({ min: 1, max: 4 }).map((n) => `fd00::${n}`), { maxLength: 1 }),
  // Short, long (Docker's 64 hex digits: found by their short id, ids.ts) and none (a derived long id).
  id: fc.option(fc.constantFrom('0123456789abcdef0123', 'ABCDEF0123456789ab', 'fedcba9876543210', LONG_A, LONG_A.toUpperCase(), LONG_B), { nil: undefined }),
  services: fc.option(fc.constant([{ name: 'http', port: 8080 }]), { nil: undefined }),
  labels: fc.option(fc.constant({ tier: 'front' }), { nil: undefined }),
  health: fc.option(fc.constantFrom('healthy', 'unhealthy'), { nil: undefined }),
  healthHideOwn: fc.option(fc.constant(true), { nil: undefined }),
});

/** A network document as a file holds it, or undefined when the registry refuses it (clashing names). */
function record(endpoints: Array<Record<string, unknown>>): NetworkRecord | undefined {
  const unique = new Map(endpoints.map((e) => [e.name, e]));
  try {
    return toRecord({ name: 'lab', domain: 'example.test', endpoints: [...unique.values()].map((e) => Object.fromEntries(Object.entries(e).filter(([, v]) => v !== undefined))) }, 'gen.json');
  } catch {
    return undefined;
  }
}

const asked = [LONG_A, LONG_B, LONG_A.replace(/c$/, 'e'), derivedId('endpoint', 'lab', 'web'), derivedId('endpoint', 'lab', 'db').slice(0, 12), 'web', 'db', 'api', 'pool', 'cache', 'x1', 'x2', 'x3', 'nope', 'web.lab', 'pool.example.test', '_http._tcp.pool',
  '_http._tcp.web.lab', 'lab', '0123456789ab', '0123456789abcdef0123', 'abcdef012345', 'fedcba987654', 'fedcba9876543211'];

describe('packed registry networks', () => {
  it('answer every name, alias, id, service and address as the same network built from objects', () => {
    fc.assert(fc.property(fc.array(endpoint, { maxLength: 8 }), (generated) => {
      const rec = record(generated);
      fc.pre(rec !== undefined);
      // Health as the registry sets it from a file: an unhealthy holder of a shared name is left out.
      const health = new HealthStates();
      for (const e of rec!.endpoints) if (e.health !== undefined) health.set(rec!.network.name, e.id, e.health);
      const objects = new View([compileNetwork(structuredClone(rec!))], health);
      const { tables, notable } = packNetwork(structuredClone(rec!));
      const packed = new View([compilePacked(rec!.network, tables, structuredClone(notable))], health);
      for (const name of asked) assert.deepEqual(answer(packed, name), answer(objects, name), name);
      for (let n = 1; n <= 6; n++) assert.deepEqual(packed.reverse(`10.5.0.${n}`).sort(), objects.reverse(`10.5.0.${n}`).sort());
      assert.deepEqual(packed.endpointsAt('10.5.0.1').map((e) => e.id).sort(), objects.endpointsAt('10.5.0.1').map((e) => e.id).sort());
      assert.deepEqual(packed.reverse('fd00:0:0::1'), objects.reverse('fd00:0:0::1'));
    }), { numRuns: 300 });
  });

  it('keep every endpoint, and only the ones the daemon acts on as objects', () => {
    const rec = toRecord({
      name: 'big', subnets: [{ subnet: '10.96.0.0/16' }],
      endpoints: [
        ...Array.from({ length: 2000 }, (_, i) => ({ name: `n${i}`, ipv4: `10.96.${i >> 8}.${i & 255}` })),
        { name: 'probed', ipv4: '10.96.200.1', healthCheck: { type: 'tcp', port: 80 } },
        { name: 'own-dns', ipv4: '10.96.200.2', upstreams: ['192.0.2.53'] },
      ],
    }, 'big.json');
    const { tables, notable } = packNetwork(rec);
    const compiled = compilePacked(rec.network, tables, notable);
    assert.equal(compiled.endpointCount, 2002);
    assert.deepEqual(compiled.notable.map((e) => e.name), ['probed', 'own-dns']);
    assert.equal(compiled.ownUpstreams, true);
    assert.deepEqual(compiled.endpoints.map((e) => e.name), rec.endpoints.map((e) => e.name));
    assert.deepEqual(compiled.endpoints[1999], { ...rec.endpoints[1999] });
    const view = new View([compiled]);
    assert.deepEqual(answer(view, 'n1999.big'), { a: ['0a6007cf'], aaaa: [], txt: [], srv: [], failOpen: false });
    assert.deepEqual(view.reverse('10.96.7.207'), ['n1999.big']);
    assert.equal(view.lookup('n2000').kind, 'unknown');
  });

  it('hash names with a seed of their own, so no file can choose names that collide', () => {
    const rec = toRecord({ name: 'big', endpoints: Array.from({ length: 20_000 }, (_, i) => ({ name: `n${i}` })) }, 'big.json');
    const a = packNetwork(structuredClone(rec)).tables.names;
    const b = packNetwork(structuredClone(rec)).tables.names;
    assert.notEqual(a.seed[0], b.seed[0]);
    assert.notDeepEqual(a.slots, b.slots);
    for (const t of [a, b]) {
      let run = 0;
      let longest = 0;
      for (const s of t.slots) longest = Math.max(longest, (run = s === 0 ? 0 : run + 1));
      assert.ok(longest <= MAX_RUN, `a run of ${longest} slots`);
    }
  });

  it('give the memory of a replaced version back at once, and never answer from it', async () => {
    const registry = new Registry();
    const packed = (prefix: string) => {
      const rec = toRecord({ name: 'big', endpoints: Array.from({ length: 50_000 }, (_, i) => ({ name: `${prefix}${i}`, ipv4: `10.${96 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}` })) }, 'big.json');
      return { network: rec.network, ...packNetwork(rec) };
    };
    const a = packed('a');
    registry.setPackedNetwork(a.network, a.tables, a.notable, 'file:big.json');
    const first = registry.current().networks.get('big')!;
    const b = packed('b');
    const sizeOfA = tableBuffers(a.tables).reduce((sum, buffer) => sum + buffer.byteLength, 0);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const before = process.memoryUsage().arrayBuffers;
    registry.setPackedNetwork(b.network, b.tables, b.notable, 'file:big.json');
    await new Promise((resolve) => setTimeout(resolve, 50));
    const after = process.memoryUsage().arrayBuffers;
    // No collection is asked for (a collection could only lower `after` further): the first
    // version's buffers are gone at once.
    assert.ok(before - after >= sizeOfA * 0.9, `array buffers went from ${(before / 1048576).toFixed(1)} to ${(after / 1048576).toFixed(1)} MB; the replaced tables were ${(sizeOfA / 1048576).toFixed(1)} MB`);
    assert.equal(a.tables.names.slots.length, 0, 'its arrays are emptied');
    assert.equal(first.names.get('a7'), undefined, 'the replaced version answers nothing');
    assert.throws(() => first.endpoints, /was replaced while it was being read/);
    assert.equal(new View([registry.current().networks.get('big')!]).lookup('b7').kind, 'found');
  });
});
