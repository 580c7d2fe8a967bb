// A network, several sources: the primary's definition with endpoints other sources contribute.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { packNetwork } from '../../src/registry/compiled.js';
import { parseDocumentText, remoteEndpoint, remoteNetwork } from '../../src/registry/document.js';
import { Registry, STATE_SOURCE } from '../../src/registry/registry.js';
import type { Endpoint, NetworkRecord } from '../../src/registry/types.js';
import { Planner } from '../../src/plumbing/planner.js';
import { DEFAULT_POOLS } from '../../src/plumbing/ipam.js';

const ETCD = 'etcd:etcd://127.0.0.1:15800/nsdns';
const OTHER_ETCD = 'etcd:etcd://127.0.0.1:15801/nsdns';

const lab = (endpoints = '[{name: web, ipv4: 10.124.0.10}]'): NetworkRecord =>
  parseDocumentText(`name: lab\nsubnets: [{subnet: 10.124.0.0/24}]\nendpoints: ${endpoints}\n`, 'lab.yaml');
const remote = (name: string, ipv4: string, id?: string): Endpoint =>
  remoteEndpoint({ name, ipv4, ...(id && { id }) }, lab().network, `/nsdns/endpoints/lab/node-b/${name}`);
const addresses = (r: Registry, name: string): string[] => {
  const found = r.current().view().lookup(name);
  return found.kind === 'found' ? found.a.map((b) => [...b].join('.')).sort() : [found.kind];
};

describe('registry: a network, several sources', () => {
  it('serves the primary with contributed endpoints, and a contribution changes only its own part', () => {
    const r = new Registry();
    r.setNetwork(lab(), 'file:/r/lab.yaml');
    r.setContribution('lab', ETCD, [remote('api', '10.124.0.20')]);
    assert.deepEqual(addresses(r, 'web.lab'), ['10.124.0.10']);
    assert.deepEqual(addresses(r, 'api.lab'), ['10.124.0.20']);
    assert.deepEqual(r.current().view().reverse('10.124.0.20'), ['api.lab']);
    assert.equal(r.current().networks.get('lab')!.endpointCount, 2);
    assert.equal(r.sourceOf('lab'), 'file:/r/lab.yaml');
    assert.deepEqual(r.contributors('lab'), [ETCD]);
    // What the owner edits and saves is its own endpoints only.
    assert.deepEqual(r.current().records[0].endpoints.map((e) => e.name), ['web']);

    // One source's change: that network is compiled again, no other.
    r.setNetwork(parseDocumentText('name: other\nendpoints: [{name: x}]\n', 'other.yaml'), 'file:/r/other.yaml');
    const other = r.current().networks.get('other');
    const changed: string[] = [];
    r.on('change', (_s, network) => changed.push(network));
    r.setContribution('lab', ETCD, [remote('db', '10.124.0.21')]);
    assert.deepEqual(changed, ['lab']);
    assert.equal(r.current().networks.get('other'), other);
    assert.deepEqual(addresses(r, 'api.lab'), ['nxdomain']);
    assert.deepEqual(addresses(r, 'db.lab'), ['10.124.0.21']);
    r.removeContribution('lab', ETCD);
    assert.deepEqual(addresses(r, 'db.lab'), ['nxdomain']);
    assert.equal(r.current().networks.get('lab')!.endpointCount, 1);
    assert.deepEqual(r.contributors('lab'), []);
  });

  it('counts an endpoint once, however many sources give it', () => {
    const r = new Registry();
    const own = lab();
    r.setNetwork(own, STATE_SOURCE);
    const web = own.endpoints[0];
    // This host's own endpoint coming back through the watch, and twice from two registries.
    r.setContribution('lab', ETCD, [{ ...web }, remote('api', '10.124.0.20', 'api-1')]);
    r.setContribution('lab', OTHER_ETCD, [remote('api', '10.124.0.20', 'api-1')]);
    assert.equal(r.current().networks.get('lab')!.endpointCount, 2);
    assert.deepEqual(addresses(r, 'web.lab'), ['10.124.0.10']);
    assert.deepEqual(addresses(r, 'api.lab'), ['10.124.0.20']);
  });

  it('takes a contributed endpoint\'s health, and forgets it with the endpoint', () => {
    const r = new Registry();
    r.setNetwork(lab(), STATE_SOURCE);
    const sick = remoteEndpoint({ name: 'api', ipv4: '10.124.0.20', health: 'unhealthy' }, lab().network, '/nsdns/endpoints/lab/node-b/api');
    r.setContribution('lab', ETCD, [sick]);
    assert.equal(r.health.get('lab', sick.id), 'unhealthy');
    r.removeContribution('lab', ETCD);
    assert.equal(r.health.get('lab', sick.id), 'healthy');
  });

  it('lets no other host reach a local endpoint\'s health, nor answer as it, by reusing its id', () => {
    // A container's id, as nsdns's own endpoints have.
    const W1 = 'a1b2c3d4e5f6'.repeat(5) + 'a1b2';
    const r = new Registry();
    r.setNetwork(lab(`[{name: web, id: ${W1}, ipv4: 10.124.0.10, aliases: [svc]}, {name: web2, id: w2, ipv4: 10.124.0.11, aliases: [svc]}]`), STATE_SOURCE);
    // A probe found web unhealthy: the alias answers web2 only.
    r.health.set('lab', W1, 'unhealthy');
    assert.deepEqual(addresses(r, 'svc.lab'), ['10.124.0.11']);
    // Another host's value names the same id under another name and says it is healthy.
    const claim = remoteEndpoint({ name: 'evil', id: W1, ipv4: '10.124.0.66', aliases: ['svc'], health: 'healthy' }, lab().network, `/nsdns/endpoints/lab/node-b/${W1}`);
    r.setContribution('lab', ETCD, [claim]);
    assert.equal(r.health.get('lab', W1), 'unhealthy');
    assert.deepEqual(addresses(r, 'svc.lab'), ['10.124.0.11']);
    assert.deepEqual(addresses(r, 'evil.lab'), ['nxdomain']);
    // Withdrawn, it does not take the local state with it.
    r.removeContribution('lab', ETCD);
    assert.equal(r.health.get('lab', W1), 'unhealthy');
    // The same through a shared definition standing by behind the local one.
    r.setNetwork({ network: lab().network, endpoints: [claim] }, ETCD);
    assert.equal(r.health.get('lab', W1), 'unhealthy');
    assert.deepEqual(addresses(r, 'svc.lab'), ['10.124.0.11']);
    assert.deepEqual(addresses(r, 'evil.lab'), ['nxdomain']);
  });

  it('does not hand a state another host set to a local endpoint that comes later with that id', () => {
    const W1 = 'f0e1d2c3b4a5'.repeat(5) + 'f0e1';
    const r = new Registry();
    r.setNetwork(lab('[{name: web2, id: w2, ipv4: 10.124.0.11, aliases: [svc]}]'), STATE_SOURCE);
    // While the local container is away (disconnected), another host's value takes its id.
    r.setContribution('lab', ETCD, [remoteEndpoint({ name: 'evil', id: W1, ipv4: '10.124.0.66', health: 'unhealthy' }, lab().network, `/nsdns/endpoints/lab/node-b/${W1}`)]);
    // It connects again: its state is its own (none yet: healthy), not the other host's.
    r.setNetwork(lab(`[{name: web, id: ${W1}, ipv4: 10.124.0.10, aliases: [svc]}, {name: web2, id: w2, ipv4: 10.124.0.11, aliases: [svc]}]`), STATE_SOURCE);
    assert.equal(r.health.get('lab', W1), 'healthy');
    assert.deepEqual(addresses(r, 'svc.lab'), ['10.124.0.10', '10.124.0.11']);
  });

  it('answers every address of a name two hosts give', () => {
    const r = new Registry();
    r.setNetwork(lab(), STATE_SOURCE);
    r.setContribution('lab', ETCD, [remote('web', '10.124.0.30', 'web-on-b')]);
    assert.deepEqual(addresses(r, 'web.lab'), ['10.124.0.10', '10.124.0.30']);
  });

  it('holds contributions until a source defines the network', () => {
    const r = new Registry();
    r.setContribution('lab', ETCD, [remote('api', '10.124.0.20')]);
    assert.equal(r.current().networks.has('lab'), false);
    r.setNetwork(lab(), 'file:/r/lab.yaml');
    assert.deepEqual(addresses(r, 'api.lab'), ['10.124.0.20']);
    r.removeNetwork('lab', 'file:/r/lab.yaml');
    assert.equal(r.current().networks.has('lab'), false);
    r.setNetwork(lab(), 'file:/r/lab.yaml');
    assert.deepEqual(addresses(r, 'api.lab'), ['10.124.0.20']);
  });

  it('serves a local definition before a shared one, and the shared one again when the local goes', () => {
    const r = new Registry();
    const shared: NetworkRecord = { network: remoteNetwork({ name: 'lab', subnets: [{ subnet: '10.124.0.0/24' }] }, '/nsdns/networks/lab'), endpoints: [remote('api', '10.124.0.20')] };
    r.setNetwork(shared, ETCD);
    assert.equal(r.sourceOf('lab'), ETCD);
    r.setNetwork(lab(), STATE_SOURCE);
    assert.equal(r.sourceOf('lab'), STATE_SOURCE);
    assert.deepEqual(addresses(r, 'web.lab'), ['10.124.0.10']);
    assert.deepEqual(addresses(r, 'api.lab'), ['10.124.0.20'], 'the shared definition stands by, its endpoints still served');
    assert.deepEqual(r.current().records[0].endpoints.map((e) => e.name), ['web']);
    // A shared definition arriving after the local one stands by too.
    r.setNetwork(shared, ETCD);
    assert.equal(r.sourceOf('lab'), STATE_SOURCE);
    r.removeNetwork('lab', STATE_SOURCE);
    assert.equal(r.sourceOf('lab'), ETCD);
    assert.deepEqual(addresses(r, 'web.lab'), ['nxdomain']);
    assert.deepEqual(addresses(r, 'api.lab'), ['10.124.0.20']);
    r.removeNetwork('lab', ETCD);
    assert.equal(r.current().networks.has('lab'), false);
  });

  it('keeps the ownership rules: two local sources still cannot share a network, and another host\'s endpoints are names only', () => {
    const r = new Registry();
    r.setNetwork(lab(), STATE_SOURCE);
    assert.throws(() => r.setNetwork(lab(), 'file:/r/lab.yaml'), /network "lab" is already defined by state/);
    const api = remote('api', '10.124.0.20');
    for (const more of [{ netns: '/run/netns/x' }, { healthCheck: { kind: 'tcp', port: 80 } }, { ports: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] }, { upstreams: ['10.124.0.53'] }]) {
      const bad = { ...api, ...more } as Endpoint;
      assert.throws(() => r.setContribution('lab', ETCD, [bad]), /names a namespace, health check, ports or upstreams; endpoints added to network "lab" carry names only/, JSON.stringify(more));
      assert.throws(() => r.setNetwork({ network: lab().network, endpoints: [bad] }, OTHER_ETCD), /a shared registry's endpoints carry names only/, JSON.stringify(more));
    }
    assert.throws(() => r.setNetwork({ network: { ...lab().network, upstreams: ['10.124.0.53'] }, endpoints: [] }, OTHER_ETCD), /names a bridge or upstreams/);
    assert.deepEqual(addresses(r, 'api.lab'), ['nxdomain']);
  });

  it('lays contributions over a packed network without unpacking it, and frees its tables only when it is replaced', () => {
    const r = new Registry();
    const record = lab('[{name: web, ipv4: 10.124.0.10}, {name: db, ipv4: 10.124.0.11}]');
    const { tables, notable } = packNetwork(record);
    r.setPackedNetwork(record.network, tables, notable, 'file:/r/lab.yaml');
    r.setContribution('lab', ETCD, [remote('api', '10.124.0.20'), remote('web', '10.124.0.30', 'web-on-b')]);
    assert.deepEqual(addresses(r, 'db.lab'), ['10.124.0.11']);
    assert.deepEqual(addresses(r, 'api.lab'), ['10.124.0.20']);
    assert.deepEqual(addresses(r, 'web.lab'), ['10.124.0.10', '10.124.0.30']);
    r.setContribution('lab', ETCD, []);
    // Still readable: a contribution's change did not release the packed tables.
    assert.deepEqual(addresses(r, 'db.lab'), ['10.124.0.11']);
    assert.equal(r.current().networks.get('lab')!.endpointCount, 2);
  });
});

describe('planner: a network another host defined in a shared registry', () => {
  const host = { linkNames: async () => new Set<string>(), linkStates: async () => new Map(), prefixes: async () => [], namespaceExists: () => false };
  const shared = (): NetworkRecord => ({ network: remoteNetwork({ name: 'lab', id: 'ab'.repeat(32), subnets: [{ subnet: '10.124.0.0/24' }] }, '/nsdns/networks/lab'), endpoints: [] });

  it('may be created here: its subnets and id by default, or the same subnets given', async () => {
    const r = new Registry();
    r.setNetwork(shared(), ETCD);
    const planner = new Planner(r, { linkPrefix: 'nt', pools: DEFAULT_POOLS }, new Map(), host);
    const made = await planner.network({ name: 'lab' });
    assert.deepEqual(made.subnets.map((s) => s.subnet), ['10.124.0.0/24']);
    assert.equal(made.id, 'ab'.repeat(32));
    const given = await planner.network({ name: 'lab', subnets: ['10.124.0.0/24'] });
    assert.deepEqual(given.subnets.map((s) => s.subnet), ['10.124.0.0/24']);
  });

  it('is still refused when a local source has it', async () => {
    const r = new Registry();
    r.setNetwork(lab(), 'file:/r/lab.yaml');
    const planner = new Planner(r, { linkPrefix: 'nt', pools: DEFAULT_POOLS }, new Map(), host);
    await assert.rejects(planner.network({ name: 'lab' }), /network "lab" already exists/);
  });
});
