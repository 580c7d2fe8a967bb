// An overlay network's local presence and forwarding entries, decided in process on fakes (the
// kernel's side is test/privileged/overlay.test.ts): the first connect on a host makes its bridge
// and VXLAN device, the last disconnect takes them away, the cluster's address claims are taken
// and given back, and other hosts' endpoints (their announced MAC and host) become the entries.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { silentLogger } from '../../src/log.js';
import type { AddressClaims } from '../../src/plumbing/address-claims.js';
import { NoPortHolder } from '../../src/plumbing/host-ports.js';
import { NetworkManager } from '../../src/plumbing/network-manager.js';
import type { PeerEntry } from '../../src/plumbing/overlay-kernel.js';
import { OverlayPeers } from '../../src/plumbing/overlay-peers.js';
import type { VxlanSpec } from '../../src/plumbing/overlay-kernel.js';
import { IntentStore, StateStore } from '../../src/plumbing/state.js';
import { remoteEndpoint, remoteEndpointValue, remoteNetwork } from '../../src/registry/document.js';
import { Registry, STATE_SOURCE } from '../../src/registry/registry.js';
import { FakeFirewall, FakeHost, FakeLinks, type Journal } from '../helpers/fake-plumbing.js';
import { waitFor } from '../helpers/wait.js';

const ETCD = 'etcd:test';
const clusterValue = { name: 'app', subnets: [{ subnet: '10.128.0.0/16' }], internal: false, overlay: { vni: 4096 } };
const cluster = remoteNetwork(clusterValue, 'k');
const other = (name: string, ip: string, mac: string, host = '10.128.250.2') =>
  remoteEndpoint({ name, ipv4: [ip], overlay: { mac, host } }, cluster, `k/${name}`);

class Claims implements AddressClaims {
  readonly held = new Map<string, string>();
  next = 100;
  async claim(network: string, _subnet: string, options: { ip?: string }): Promise<string> {
    const ip = options.ip ?? `10.128.0.${this.next++}`;
    this.held.set(ip, network);
    return ip;
  }
  async release(_network: string, ip: string): Promise<void> {
    this.held.delete(ip);
  }
}

let dir: string;
let journal: Journal;
let links: FakeLinks;
let host: FakeHost;
let registry: Registry;
let vxlans: VxlanSpec[];
let claims: Claims;
let manager: NetworkManager;

function build(advertiseAddress: string | null = '10.128.250.1', withClaims = false): void {
  dir = mkdtempSync(path.join(tmpdir(), 'nsdns-overlay-'));
  journal = [];
  links = new FakeLinks(journal);
  host = new FakeHost(links);
  registry = new Registry();
  vxlans = [];
  claims = new Claims();
  registry.setNetwork({ network: cluster, endpoints: [] }, ETCD);
  manager = new NetworkManager({
    registry, state: new StateStore(path.join(dir, 'state')), intents: new IntentStore(path.join(dir, 'state')), firewall: new FakeFirewall(journal),
    links, host, ports: new NoPortHolder(), namespaceReady: async () => {}, log: silentLogger,
    vxlans: { create: async (spec) => { journal.push(`createVxlan ${spec.name} ${spec.vni} ${spec.local}`); links.links.add(spec.name); vxlans.push(spec); } },
    ...(withClaims && { addressClaims: claims }),
  }, { linkPrefix: 'tf', pools: [], resolvConfDir: path.join(dir, 'netns'), hostResolvConf: false, ...(advertiseAddress !== null && { advertiseAddress }) });
}
const stateFile = () => path.join(dir, 'state', 'networks', 'app.json');

describe('overlay presence', () => {
  beforeEach(() => build());
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('the first connect makes the bridge (gateway address and MAC) and the VXLAN device; the last disconnect removes both, the network stays the cluster\'s', async () => {
    const c1 = host.addNamespace('c1');
    const c2 = host.addNamespace('c2');
    const e1 = await manager.connect({ network: 'app', target: 'c1', ip: '10.128.0.10' });
    await manager.connect({ network: 'app', target: 'c2' });
    assert.equal(vxlans.length, 1, 'one VXLAN device for both endpoints');
    const [vx] = vxlans;
    assert.deepEqual([vx.vni, vx.local, vx.mtu, vx.bridge], [4096, '10.128.250.1', 1450, vx.bridge]);
    assert.match(journal.find((l) => l.startsWith('createBridge'))!, /^createBridge tfbr-\w{8} 10\.128\.0\.1\/16$/);
    assert.equal(links.endpoints.get(e1.hostIf!)!.mtu, 1450);
    assert.equal(links.endpoints.get(e1.hostIf!)!.gateway4, '10.128.0.1');
    const saved = JSON.parse(readFileSync(stateFile(), 'utf8'));
    assert.deepEqual(saved.overlay, { vni: 4096, vxlan: vx.name });
    assert.equal(registry.sourceOf('app'), STATE_SOURCE);
    assert.ok(registry.isProvisioned('app'));
    await manager.disconnect('app', c1);
    assert.ok(links.links.has(vx.name), 'still there while c2 is connected');
    await manager.disconnect('app', c2);
    assert.deepEqual([links.links.has(vx.name), links.links.has(vx.bridge), existsSync(stateFile())], [false, false, false]);
    assert.equal(registry.sourceOf('app'), ETCD, 'back to the cluster\'s definition');
    await assert.rejects(manager.disconnect('app', 'c1'), /overlay network "app" has no endpoints on this host/);
  });

  it('a connect that fails leaves no presence behind', async () => {
    host.addNamespace('c1');
    links.failOn(/^createEndpointLink/);
    await assert.rejects(manager.connect({ network: 'app', target: 'c1' }), /injected failure/);
    assert.deepEqual([...links.links], [], 'bridge and VXLAN device gone');
    assert.equal(existsSync(stateFile()), false);
    assert.equal(registry.sourceOf('app'), ETCD);
  });

  it('a connect refused while planning (an --ip outside the subnet) leaves no presence behind either', async () => {
    host.addNamespace('c1');
    await assert.rejects(manager.connect({ network: 'app', target: 'c1', ip: '10.99.0.1' }), /outside the subnet/);
    assert.deepEqual([...links.links], []);
    assert.equal(registry.sourceOf('app'), ETCD);
  });

  it('without --advertise-address a connect is refused, and nothing is made', async () => {
    rmSync(dir, { recursive: true, force: true });
    build(null);
    host.addNamespace('c1');
    await assert.rejects(manager.connect({ network: 'app', target: 'c1' }), /need a daemon started with --advertise-address/);
    assert.deepEqual([...links.links], []);
  });

  it('another host\'s known address is not given to a new endpoint here', async () => {
    registry.setNetwork({ network: cluster, endpoints: [other('far', '10.128.0.2', '02:42:0a:80:00:02')] }, ETCD);
    host.addNamespace('c1');
    assert.deepEqual((await manager.connect({ network: 'app', target: 'c1' })).ipv4, ['10.128.0.3']);
    await assert.rejects(manager.connect({ network: 'app', target: 'c1', ip: '10.128.0.2' }), /already/);
  });
});

describe('overlay addresses from the cluster\'s claims', () => {
  beforeEach(() => build('10.128.250.1', true));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('the claimed address is the endpoint\'s (and its MAC\'s); disconnect gives it back', async () => {
    host.addNamespace('c1');
    const e = await manager.connect({ network: 'app', target: 'c1' });
    assert.deepEqual(e.ipv4, ['10.128.0.100']);
    assert.equal(e.mac, '02:42:0a:80:00:64');
    assert.match(journal.find((l) => l.startsWith('createEndpointLink'))!, /10\.128\.0\.100\/16/);
    assert.deepEqual([...claims.held.keys()], ['10.128.0.100']);
    await manager.disconnect('app', 'c1');
    assert.deepEqual([...claims.held.keys()], []);
  });

  it('--ip is claimed as given; a failed connect gives its claim back', async () => {
    host.addNamespace('c1');
    links.failOn(/^createEndpointLink/);
    await assert.rejects(manager.connect({ network: 'app', target: 'c1', ip: '10.128.0.77' }));
    assert.deepEqual([...claims.held.keys()], []);
  });
});

describe('overlay forwarding entries (OverlayPeers)', () => {
  beforeEach(() => build());
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('other hosts\' endpoints of present networks, added and removed as they come and go', async () => {
    const applied: Array<{ vxlan: string; peers: readonly PeerEntry[] }> = [];
    const peers = new OverlayPeers(registry, '10.128.250.1', silentLogger, async (vxlan, list) => { applied.push({ vxlan, peers: list }); return { added: 0, removed: 0 }; });
    peers.start();
    const far = other('far', '10.128.0.20', '02:42:0a:80:00:14');
    const mine = other('mine', '10.128.0.30', '02:42:0a:80:00:1e', '10.128.250.1');
    registry.setNetwork({ network: cluster, endpoints: [far, mine] }, ETCD);
    await new Promise((r) => setImmediate(r));
    assert.equal(applied.length, 0, 'no presence here: nothing to program');
    host.addNamespace('c1');
    await manager.connect({ network: 'app', target: 'c1' });
    await waitFor(() => applied.length > 0, { what: 'entries applied' });
    const last = () => applied[applied.length - 1];
    assert.deepEqual(last().peers, [{ mac: '02:42:0a:80:00:14', host: '10.128.250.2', ips: ['10.128.0.20'] }], 'an entry pointing at this host would loop');
    const squatter = other('squat', '10.128.0.2', '02:42:0a:80:00:99');
    const gateway = other('gw', '10.128.0.1', '02:42:0a:80:00:98');
    const gatewayMac = other('gwmac', '10.128.0.40', '02:6f:76:00:10:00');
    const v6 = other('v6', '10.128.0.41', '02:42:0a:80:00:29', 'fd00::2');
    registry.setNetwork({ network: cluster, endpoints: [mine, squatter, gateway, gatewayMac, v6] }, ETCD);
    await waitFor(() => last().peers.length === 2, { what: 'two peers' });
    assert.deepEqual(last().peers, [
      { mac: '02:42:0a:80:00:99', host: '10.128.250.2', ips: [] },
      { mac: '02:42:0a:80:00:98', host: '10.128.250.2', ips: [] },
    ], 'not this host\'s endpoint\'s address (10.128.0.2), its gateway (address or MAC), or an IPv6 underlay address');
    registry.setNetwork({ network: cluster, endpoints: [mine] }, ETCD);
    await waitFor(() => last().peers.length === 0, { what: 'no peers' });
    await peers.stop();
  });
});

describe('overlay endpoint values', () => {
  it('carry the MAC and host of an overlay endpoint, read strictly, and only on overlay networks', () => {
    const e = other('far', '10.128.0.20', '02:42:0A:80:00:14');
    assert.deepEqual(e.overlay, { mac: '02:42:0a:80:00:14', host: '10.128.250.2' });
    assert.deepEqual(remoteEndpoint(remoteEndpointValue(e), cluster, 'again').overlay, e.overlay);
    for (const overlay of [{ mac: 'zz', host: '10.0.0.1' }, { mac: '03:00:00:00:00:01', host: '10.0.0.1' }, { mac: '02:00:00:00:00:01', host: 'host-b' }, { mac: '02:00:00:00:00:01', host: '10.0.0.1', netns: '/run/netns/x' }, {}]) {
      assert.throws(() => remoteEndpoint({ name: 'x', ipv4: ['10.128.0.9'], overlay }, cluster, 'k/x'), /k\/x: overlay/, JSON.stringify(overlay));
    }
    const bridge = remoteNetwork({ name: 'br', subnets: [{ subnet: '10.129.0.0/16' }] }, 'k');
    assert.throws(() => remoteEndpoint({ name: 'x', ipv4: ['10.129.0.9'], overlay: { mac: '02:00:00:00:00:01', host: '10.0.0.1' } }, bridge, 'k/x'), /only endpoints of an overlay network carry it/);
    assert.throws(() => remoteEndpoint({ name: 'x', mac: '02:00:00:00:00:01' }, cluster, 'k/x'), /mac: not accepted from a shared registry/);
  });
});
