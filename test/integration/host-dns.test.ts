// `--host-dns` without root: gateway listeners built in-process on a real Registry and Resolver (as
// the daemon builds them), on loopback "gateways" (127.91.x.1) and kernel-picked ports, asked with
// dig and kdig. The systemd-resolved registration runs the stand-in fixtures/host-dns/bin/resolvectl,
// which records its arguments; `nsdns host-dns` output is checked from inspect answers. The same
// things against a running daemon, bridges and namespaces: test/privileged/host-dns.test.ts.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import dnsPacket from 'dns-packet';
import { Registry } from '../../src/registry/registry.js';
import { Resolver } from '../../src/resolver/resolver.js';
import { Forwarder } from '../../src/resolver/forwarder.js';
import { AnswerCache } from '../../src/resolver/cache.js';
import { exchange } from '../../src/resolver/upstream.js';
import { TcpBudget } from '../../src/server/tcp-budget.js';
import { bindHostSockets, portOf } from '../../src/listeners/host-sockets.js';
import { ListenerStats } from '../../src/server/listener-stats.js';
import { validate } from '../../src/daemon/config.js';
import { STATE_SOURCE } from '../../src/plumbing/state.js';
import { GatewaySpec, type GatewayOptions, type GatewayWant } from '../../src/listeners/gateway-spec.js';
import { ListenerSet } from '../../src/listeners/listener-set.js';
import { ResolvedLinks } from '../../src/listeners/resolved-links.js';
import { dnsmasqLines, hostDnsPlan, hostDnsText } from '../../src/cli/host-dns-command.js';
import { silentLogger } from '../../src/log.js';
import type { Endpoint, NetworkRecord } from '../../src/registry/types.js';
import { ROOT } from '../helpers/daemon.js';
import { dig, kdig } from '../helpers/dig.js';
import { FakeUpstream } from '../helpers/fake-upstream.js';
import { waitFor } from '../helpers/wait.js';

const RESOLVECTL = path.join(ROOT, 'fixtures/host-dns/bin/resolvectl');

function endpoint(network: string, name: string, ipv4: string): Endpoint {
  return { id: `${network}-${name}`, network, name, aliases: [], ipv4: [ipv4], ipv6: [], upstreams: [] };
}

const alpha: NetworkRecord = {
  // A second subnet without a gateway: its clients are the network's too (not loopback, so the filter shows).
  network: { name: 'alpha', id: 'a1', internal: false, upstreams: [], bridge: 'tgwbr-a', subnets: [{ subnet: '127.91.1.0/24', gateway: '127.91.1.1' }, { subnet: '10.91.1.0/24' }] },
  endpoints: [endpoint('alpha', 'web', '127.91.1.10')],
};
const beta: NetworkRecord = {
  network: { name: 'beta', id: 'b1', internal: true, domain: 'beta.test', upstreams: [], bridge: 'tgwbr-b', subnets: [{ subnet: '127.91.2.0/24', gateway: '127.91.2.1' }] },
  endpoints: [endpoint('beta', 'db', '127.91.2.10')],
};
/** A registry file's network naming a bridge and a gateway: not provisioned by nsdns, so no listener. */
const fromFile: NetworkRecord = {
  network: { name: 'filed', id: 'c1', internal: false, upstreams: [], bridge: 'tgwbr-c', subnets: [{ subnet: '127.91.3.0/24', gateway: '127.91.3.1' }] },
  endpoints: [endpoint('filed', 'app', '127.91.3.10')],
};

/** Registry, resolver (forwarding to `upstream`, if any) and TCP budget, as the daemon builds them. */
function build(upstream?: FakeUpstream) {
  const config = validate({}, 'test');
  const registry = new Registry();
  const forwarder = new Forwarder({ ...config.forward, maxUdpSize: config.maxUdpSize }, new AnswerCache({ size: 0, maxTtl: 60, maxNegativeTtl: 60, maxBytes: 1 << 20, tenantShare: 1 }), exchange, silentLogger);
  const resolver = new Resolver({ ttl: 5, maxUdpSize: config.maxUdpSize, upstreams: upstream ? [upstream.spec] : [], hostUpstreams: () => [], ownAddresses: new Set() }, forwarder, silentLogger);
  return { registry, resolver, budget: new TcpBudget(config.tcp), maxUdpSize: config.maxUdpSize };
}

type Gateways = ListenerSet<GatewayWant> & { spec: GatewaySpec };

/** Gateway listeners as the daemon builds them: a listener set over the gateway spec, open. */
function gatewaySet(parts: ReturnType<typeof build>, options: GatewayOptions): Gateways {
  const shared = { resolver: parts.resolver, budget: parts.budget, stats: new ListenerStats(), maxUdpSize: parts.maxUdpSize };
  const set = new ListenerSet(new GatewaySpec(parts.registry, shared, silentLogger, options), silentLogger) as Gateways;
  void set.open();
  return set;
}

const query = (name: string) => dnsPacket.encode({ type: 'query', id: 7, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: 'A', class: 'IN' }] });
const rcode = (reply: Buffer | null | Promise<Buffer | null>) => Promise.resolve(reply).then((r) => (r ? (dnsPacket.decode(r) as dnsPacket.Packet & { rcode?: string }).rcode : 'DROPPED'));

describe('gateway listeners (--host-dns)', () => {
  let upstream: FakeUpstream;
  let registry: Registry;
  let gateways: Gateways;
  const at = (network: string) => {
    const l = gateways.listeners.find((g) => g.want.network === network);
    assert.ok(l, `a gateway listener for ${network}`);
    return `${l.address}:${l.port}`;
  };

  before(async () => {
    upstream = await FakeUpstream.start({ zone: { 'example.com': ['192.0.2.1'] } });
    const parts = build(upstream);
    registry = parts.registry;
    gateways = gatewaySet(parts, { port: 0 });
    registry.on('change', () => void gateways.reconcile());
    registry.setNetwork(alpha, STATE_SOURCE);
    registry.setNetwork(beta, STATE_SOURCE);
    registry.setNetwork(fromFile, 'file:/etc/nsdns/filed.yaml');
    await gateways.reconcile();
  });
  after(async () => {
    await gateways?.close();
    await upstream?.stop();
  });

  it('listens on the gateway of every network nsdns provisioned, not on a registry file\'s', () => {
    assert.deepEqual(gateways.listeners.map((l) => `${l.want.network} ${l.address}`).sort(), ['alpha 127.91.1.1', 'beta 127.91.2.1']);
  });

  it('answers the network\'s names there, over UDP and TCP, under every zone', async () => {
    assert.deepEqual((await dig(at('alpha'), 'web.alpha')).answers.map((a) => a.data), ['127.91.1.10']);
    assert.deepEqual((await dig(at('alpha'), '+tcp', 'web.alpha')).answers.map((a) => a.data), ['127.91.1.10']);
    assert.deepEqual((await kdig(at('beta'), 'db.beta.test')).answers.map((a) => a.data), ['127.91.2.10']);
    assert.equal((await dig(at('beta'), 'nope.beta')).status, 'NXDOMAIN');
  });

  it('a gateway shows only its own network', async () => {
    const other = await dig(at('alpha'), 'db.beta');
    assert.deepEqual(other.answers, [], 'beta\'s names are not at alpha\'s gateway');
    assert.equal(other.status, 'NXDOMAIN', 'not a local name there: asked upstream, which does not know it');
    assert.deepEqual((await dig(at('beta'), 'web.alpha')).answers, []);
  });

  it('forwards other names at a network\'s gateway, nothing at an internal network\'s', async () => {
    assert.deepEqual((await dig(at('alpha'), 'example.com')).answers.map((a) => a.data), ['192.0.2.1']);
    const before = upstream.received.length;
    const internal = await dig(at('beta'), 'example.com');
    assert.equal(internal.status, 'REFUSED');
    assert.equal(upstream.received.length, before, 'nothing asked upstream from an internal network\'s gateway');
  });

  it('answers the host and the network\'s subnets; other clients get REFUSED', async () => {
    const server = gateways.listeners.find((l) => l.want.network === 'alpha')!.server;
    assert.equal(await rcode(server.answer(query('web.alpha'), { address: '10.91.1.20', transport: 'udp' })), 'NOERROR', 'a client on alpha\'s other subnet');
    assert.equal(await rcode(server.answer(query('web.alpha'), { address: '127.0.0.1', transport: 'tcp' })), 'NOERROR', 'the host');
    assert.equal(await rcode(server.answer(query('web.alpha'), { address: '10.91.2.20', transport: 'udp' })), 'REFUSED', 'a client of another network');
    assert.equal(await rcode(server.answer(query('web.alpha'), { address: '::ffff:10.91.2.20', transport: 'tcp' })), 'REFUSED');
    assert.equal(await rcode(server.answer(Buffer.from([1, 2, 0x80]), { address: '10.91.2.20', transport: 'udp' })), 'DROPPED', 'garbage is dropped, not answered');
  });

  it('follows networks: a new one gets a listener, a removed one loses it', async () => {
    const gamma: NetworkRecord = {
      network: { name: 'gamma', id: 'g1', internal: false, upstreams: [], bridge: 'tgwbr-g', subnets: [{ subnet: '127.91.4.0/24', gateway: '127.91.4.1' }] },
      endpoints: [endpoint('gamma', 'api', '127.91.4.10')],
    };
    registry.setNetwork(gamma, STATE_SOURCE);
    await gateways.reconcile();
    assert.deepEqual((await dig(at('gamma'), 'api.gamma')).answers.map((a) => a.data), ['127.91.4.10']);
    const gone = at('gamma');
    registry.removeNetwork('gamma', STATE_SOURCE);
    await gateways.reconcile();
    assert.equal(gateways.listeners.some((l) => l.want.network === 'gamma'), false);
    assert.equal((await dig(gone, '+time=1', 'api.gamma')).status, 'NONE', 'nothing listens there any more');
  });

  it('off (hostDns false): no gateway listener; on again: back', async () => {
    gateways.spec.enabled = false;
    await gateways.reconcile();
    assert.deepEqual(gateways.listeners, []);
    gateways.spec.enabled = true;
    await gateways.reconcile();
    assert.equal(gateways.listeners.length, 2);
  });
});

describe('a gateway that cannot be bound yet', () => {
  it('is retried until it can (the port is taken at first)', async () => {
    const parts = build();
    const { registry } = parts;
    const holder = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => holder.bind(0, '127.91.5.1', resolve));
    const port = holder.address().port;
    const gateways = gatewaySet(parts, { port });
    try {
      registry.setNetwork({ network: { ...alpha.network, name: 'delta', id: 'd1', subnets: [{ subnet: '127.91.5.0/24', gateway: '127.91.5.1' }] }, endpoints: [endpoint('delta', 'web', '127.91.5.10')] }, STATE_SOURCE);
      await gateways.reconcile();
      assert.deepEqual(gateways.listeners, [], 'the port is taken');
      holder.close();
      await waitFor(() => gateways.listeners.length > 0, { what: 'the gateway listener bound once the port is free' });
      assert.deepEqual((await dig(`127.91.5.1:${port}`, 'web.delta')).answers.map((a) => a.data), ['127.91.5.10']);
    } finally {
      await gateways.close();
    }
  });
});

describe('gateway listeners handed over', () => {
  it('serve the sockets a predecessor bound (adopt), and close handed sockets no network wants', async () => {
    const parts = build();
    const { registry } = parts;
    // What a predecessor process would pass on: sockets already bound on the gateways.
    const forAlpha = await bindHostSockets('127.91.1.1', 0);
    const forGone = await bindHostSockets('127.91.6.1', 0);
    const gateways = gatewaySet(parts, { port: 0 });
    try {
      gateways.adopt(new Map([['alpha|127.91.1.1', forAlpha], ['gone|127.91.6.1', forGone]]));
      registry.setNetwork(alpha, STATE_SOURCE);
      await gateways.reconcile();
      assert.deepEqual(gateways.listeners.map((l) => [l.want.key, l.port]), [['alpha|127.91.1.1', portOf(forAlpha)]], 'the handed socket, not a new one');
      assert.deepEqual((await dig(`127.91.1.1:${portOf(forAlpha)}`, 'web.alpha')).answers.map((a) => a.data), ['127.91.1.10']);
      assert.throws(() => forGone.udps[0].address(), /Not running/, 'the socket of a network that is gone was closed');
      assert.deepEqual((await gateways.freeze()).map((h) => [h.key, h.udps[0] === forAlpha.udps[0], h.udps.length]), [['alpha|127.91.1.1', true, forAlpha.udps.length]], 'handed on whole, to the next successor');
    } finally {
      await gateways.close();
    }
  });
});

describe('systemd-resolved registration (stand-in resolvectl)', () => {
  let dir: string;
  let log: string;
  const calls = () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : []);

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'nsdns-resolvectl-'));
    log = path.join(dir, 'calls');
    process.env.NSDNS_RESOLVECTL_LOG = log;
  });
  after(() => {
    delete process.env.NSDNS_RESOLVECTL_LOG;
    rmSync(dir, { recursive: true, force: true });
  });

  it('registers each bridge once its gateway is served, reverts it when the network goes and at stop', async () => {
    const parts = build();
    const { registry } = parts;
    const gateways = gatewaySet(parts, { port: 0, resolved: new ResolvedLinks(silentLogger, { command: RESOLVECTL }) });
    try {
      registry.setNetwork(alpha, STATE_SOURCE);
      registry.setNetwork(beta, STATE_SOURCE);
      registry.setNetwork(fromFile, 'file:/etc/nsdns/filed.yaml');
      await gateways.reconcile();
      assert.deepEqual(calls(), [
        'status',
        'dns tgwbr-a 127.91.1.1', 'domain tgwbr-a ~alpha', 'default-route tgwbr-a false',
        'dns tgwbr-b 127.91.2.1', 'domain tgwbr-b ~beta ~beta.test', 'default-route tgwbr-b false',
      ]);
      await gateways.reconcile();
      assert.equal(calls().length, 7, 'nothing changed: nothing run again');
      registry.removeNetwork('beta', STATE_SOURCE);
      await gateways.reconcile();
      assert.equal(calls().at(-1), 'revert tgwbr-b');
      await gateways.close();
      assert.equal(calls().at(-1), 'revert tgwbr-a', 'the daemon stopping leaves no link pointing at a gateway nobody answers');
    } finally {
      await gateways.close();
    }
  });

  it('registers nothing while systemd-resolved does not run (resolvectl status fails)', async () => {
    writeFileSync(`${log}.down`, '');
    rmSync(log, { force: true });
    const parts = build();
    const { registry } = parts;
    const gateways = gatewaySet(parts, { port: 0, resolved: new ResolvedLinks(silentLogger, { command: RESOLVECTL, recheckMs: 0 }) });
    try {
      registry.setNetwork(alpha, STATE_SOURCE);
      await gateways.reconcile();
      assert.deepEqual(calls(), ['status']);
      assert.equal(gateways.listeners.length, 1, 'the gateway is served all the same');
      rmSync(`${log}.down`);
      registry.setNetwork({ ...alpha, endpoints: [] }, STATE_SOURCE);
      await gateways.reconcile();
      assert.deepEqual(calls(), ['status', 'status', 'dns tgwbr-a 127.91.1.1', 'domain tgwbr-a ~alpha', 'default-route tgwbr-a false'], 'registered once it runs');
    } finally {
      await gateways.close();
      rmSync(`${log}.down`, { force: true });
    }
  });

  it('refuses arguments that are no names or addresses before running anything', async () => {
    rmSync(log, { force: true });
    const resolved = new ResolvedLinks(silentLogger, { command: RESOLVECTL });
    for (const bad of [
      { bridge: '--help', servers: ['10.0.0.1'], zones: ['lab'] },
      { bridge: 'br0', servers: ['10.0.0.1; reboot'], zones: ['lab'] },
      { bridge: 'br0', servers: ['10.0.0.1'], zones: ['-lab'] },
      { bridge: 'br0', servers: ['10.0.0.1'], zones: ['la b'] },
      { bridge: 'br0', servers: [], zones: ['lab'] },
    ]) await assert.rejects(resolved.register(bad), { code: 'ERR_BAD_REQUEST' });
    await assert.rejects(resolved.revert('br0 x'), { code: 'ERR_BAD_REQUEST' });
    assert.deepEqual(calls(), []);
  });
});

describe('nsdns host-dns output', () => {
  const inspect = (over: Record<string, unknown>) => ({
    Name: 'lab', Source: 'nsdns', Internal: false, Options: { 'com.docker.network.bridge.name': 'nsbr-lab' },
    IPAM: { Config: [{ Subnet: '10.77.0.0/24', Gateway: '10.77.0.1' }, { Subnet: 'fd00:77::/64', Gateway: 'fd00:77::1' }] }, DNS: { Upstreams: [] }, ...over,
  });

  it('dnsmasq lines for each zone and octet-aligned reverse zone of nsdns\'s own networks', () => {
    const plan = hostDnsPlan([
      inspect({ DNS: { Domain: 'Lab.Example' } }),
      inspect({ Name: 'quiet', Internal: true, IPAM: { Config: [{ Subnet: '10.78.0.0/20', Gateway: '10.78.0.1' }] } }),
      inspect({ Name: 'filed', Source: 'file:/x.yaml' }),
      inspect({ Name: 'static', Options: {} }),
    ]);
    assert.deepEqual(dnsmasqLines(plan), [
      'server=/lab/10.77.0.1', 'server=/lab.example/10.77.0.1', 'server=/0.77.10.in-addr.arpa/10.77.0.1', 'rebind-domain-ok=/lab/lab.example/',
      'server=/quiet/10.78.0.1', 'rebind-domain-ok=/quiet/',
    ]);
    const text = hostDnsText(plan);
    assert.match(text, /systemd-resolved/);
    assert.match(text, /Internal networks \(quiet\)/);
  });

  it('leaves out hostile names, bridges and addresses, saying so without echoing control characters', () => {
    const plan = hostDnsPlan([
      inspect({ Name: 'evil/\n#x' }),
      inspect({ Name: 'ok', DNS: { Domain: 'a..b' } }),
      inspect({ Name: 'br', Options: { 'com.docker.network.bridge.name': 'a b;c' } }),
      inspect({ Name: 'nogw', IPAM: { Config: [{ Subnet: '10.1.0.0/24', Gateway: '10.1.0.1\nserver=/x/1.2.3.4' }] } }),
      'junk', null, 42,
    ]);
    assert.deepEqual(plan.networks, []);
    assert.equal(plan.skipped.length, 4);
    const text = hostDnsText(plan);
    assert.equal(text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length, 0, 'every line is a comment');
    assert.doesNotMatch(text, /server=\/x/);
  });
});
