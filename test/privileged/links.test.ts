// Link work read back from the kernel, on both paths inside namespaces: the native nsdns-links
// helper and nsenter + ip (NSDNS_NATIVE=0). The host side is netlink from the test's own process.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { Lab, needsRoot, sh } from '../helpers/netns.js';
import { addDefaultRoutes, createBridge, createEndpointLink, defaultRoutes, deleteLink, namespaceLinksKind } from '../../src/plumbing/links.js';

const nativeBuilt = existsSync(fileURLToPath(new URL('../../src/native/nsdns-links', import.meta.url)));

interface IpLink { ifname: string; flags: string[]; mtu: number; address: string; master?: string; linkinfo?: { info_kind: string } }
interface IpAddr { addr_info: Array<{ family: string; local: string; prefixlen: number; scope: string; broadcast?: string; nodad?: boolean }> }
interface IpRoute { dst: string; gateway?: string; dev: string }

const ipJson = async <T>(...args: string[]): Promise<T> => JSON.parse(await sh('ip', '-j', ...args)) as T;
const link = async (dev: string, ns?: string) => (await ipJson<IpLink[]>(...(ns ? ['-n', ns] : []), '-d', 'link', 'show', 'dev', dev))[0];
async function globalAddresses(dev: string, ns?: string): Promise<string[]> {
  const [a] = await ipJson<IpAddr[]>(...(ns ? ['-n', ns] : []), 'addr', 'show', 'dev', dev);
  return a.addr_info.filter((x) => x.scope === 'global').map((x) => `${x.local}/${x.prefixlen}${x.broadcast ? ` brd ${x.broadcast}` : ''}${x.nodad ? ' nodad' : ''}`).sort();
}
const defaults = async (ns: string, family: '-4' | '-6') =>
  (await ipJson<IpRoute[]>('-n', ns, family, 'route', 'show', 'default')).map((r) => `via ${r.gateway} dev ${r.dev}`);

for (const path of ['native', 'ip'] as const) {
  const skip = needsRoot || (path === 'native' && !nativeBuilt ? 'the native nsdns-links helper was not built (no C compiler)' : false);
  describe(`links in the kernel (${path} path inside namespaces)`, { skip }, () => {
    const lab = new Lab();
    const saved = process.env.NSDNS_NATIVE;
    const p = lab.linkPrefix;
    const bridge = `${p}${path[0]}br`;
    let ns = '';
    let nsPath = '';

    before(async () => {
      if (path === 'ip') process.env.NSDNS_NATIVE = '0';
      else delete process.env.NSDNS_NATIVE;
      // Not lab.namespace(): that sets lo up, which the link work must do itself.
      ns = `ns${lab.tag}-${path}`;
      await sh('ip', 'netns', 'add', ns);
      lab.namespaces.push(ns);
      nsPath = `/run/netns/${ns}`;
    });
    after(async () => {
      if (saved === undefined) delete process.env.NSDNS_NATIVE;
      else process.env.NSDNS_NATIVE = saved;
      await lab.cleanup();
    });

    it('takes the expected path', () => {
      assert.equal(namespaceLinksKind(), path);
    });

    it('creates a bridge: up, its MTU, its gateway addresses, route_localnet', async () => {
      await createBridge({ name: bridge, addresses: ['10.219.7.1/24', 'fd19:7::1/64'], mtu: 1400 });
      const l = await link(bridge);
      assert.equal(l.linkinfo?.info_kind, 'bridge');
      assert.equal(l.mtu, 1400);
      assert.ok(l.flags.includes('UP'), l.flags.join(','));
      assert.deepEqual(await globalAddresses(bridge), ['10.219.7.1/24 brd 10.219.7.255', 'fd19:7::1/64 nodad']);
      assert.equal(readFileSync(`/proc/sys/net/ipv4/conf/${bridge}/route_localnet`, 'utf8').trim(), '1');
    });

    it('refuses a bridge name that is taken, and leaves the existing link alone', async () => {
      await assert.rejects(createBridge({ name: bridge, addresses: ['10.219.8.1/24'] }), /^NsdnsError: creating bridge \S+: file already exists \(EEXIST\)$/);
      assert.deepEqual(await globalAddresses(bridge), ['10.219.7.1/24 brd 10.219.7.255', 'fd19:7::1/64 nodad']);
    });

    it('creates an endpoint: host end on the bridge and up, the peer in the namespace with its name, MAC, MTU, addresses and default routes, lo up', async () => {
      const hostIf = `${p}${path[0]}v1`;
      await createEndpointLink({
        hostIf, bridge, netns: nsPath, ifname: 'eth7', mac: '02:42:0a:db:07:02', mtu: 1400,
        addresses: ['10.219.7.2/24', 'fd19:7::2/64'], gateway4: '10.219.7.1', gateway6: 'fd19:7::1',
      });
      const host = await link(hostIf);
      assert.equal(host.linkinfo?.info_kind, 'veth');
      assert.equal(host.master, bridge);
      assert.equal(host.mtu, 1400);
      assert.ok(host.flags.includes('UP'), host.flags.join(','));

      const peer = await link('eth7', ns);
      assert.equal(peer.linkinfo?.info_kind, 'veth');
      assert.equal(peer.address, '02:42:0a:db:07:02');
      assert.equal(peer.mtu, 1400);
      assert.ok(peer.flags.includes('UP') && peer.flags.includes('LOWER_UP'), peer.flags.join(','));
      assert.ok((await link('lo', ns)).flags.includes('UP'), 'lo up (127.0.0.11 lives there)');
      assert.deepEqual(await globalAddresses('eth7', ns), ['10.219.7.2/24 brd 10.219.7.255', 'fd19:7::2/64 nodad']);
      assert.deepEqual(await defaults(ns, '-4'), ['via 10.219.7.1 dev eth7']);
      assert.deepEqual(await defaults(ns, '-6'), ['via fd19:7::1 dev eth7']);
      assert.deepEqual(await defaultRoutes(nsPath), { ipv4: true, ipv6: true });
      // And it carries traffic to the gateway.
      const ping = await execa('ip', ['netns', 'exec', ns, 'ping', '-c1', '-W2', '10.219.7.1'], { reject: false });
      assert.equal(ping.exitCode, 0, ping.stdout + ping.stderr);
    });

    it('adds default routes again after they were removed, and reads them back', async () => {
      await sh('ip', '-n', ns, 'route', 'del', 'default');
      await sh('ip', '-n', ns, '-6', 'route', 'del', 'default');
      assert.deepEqual(await defaultRoutes(nsPath), { ipv4: false, ipv6: false });
      await addDefaultRoutes(nsPath, [{ gateway: '10.219.7.1', ifname: 'eth7' }, { gateway: 'fd19:7::1', ifname: 'eth7' }]);
      assert.deepEqual(await defaults(ns, '-4'), ['via 10.219.7.1 dev eth7']);
      assert.deepEqual(await defaults(ns, '-6'), ['via fd19:7::1 dev eth7']);
      assert.deepEqual(await defaultRoutes(nsPath), { ipv4: true, ipv6: true });
    });

    it('says which end is taken, and leaves nothing behind', async () => {
      const spec = { hostIf: `${p}${path[0]}v2`, bridge, netns: nsPath, ifname: 'eth7', mac: '02:42:0a:db:07:03', addresses: ['10.219.7.3/24'] };
      await assert.rejects(createEndpointLink(spec), /creating the veth pair .*: eth7 exists already inside the namespace \(EEXIST\)/);
      assert.equal(await link(spec.hostIf).catch(() => undefined), undefined);
      await assert.rejects(createEndpointLink({ ...spec, ifname: 'eth8', hostIf: `${p}${path[0]}v1` }), /a link named \S+v1 exists already on the host/);
      await assert.rejects(createEndpointLink({ ...spec, ifname: 'eth8', bridge: `${p}nobr` }), /finding bridge \S+nobr: no such bridge/);
      await assert.rejects(createEndpointLink({ ...spec, ifname: 'eth8', netns: `/run/netns/ns${lab.tag}-gone` }), /opening the namespace: no such file or directory \(ENOENT\)$/);
      assert.equal(await link(spec.hostIf).catch(() => undefined), undefined);
    });

    it('rolls the host end back when a step inside the namespace fails, naming the step', async () => {
      const hostIf = `${p}${path[0]}v3`;
      const failing = createEndpointLink({
        hostIf, bridge, netns: nsPath, ifname: 'eth9', mac: '02:42:0a:db:07:04', addresses: ['10.219.7.4/24'], gateway4: '10.219.99.1',
      });
      await assert.rejects(failing, path === 'native'
        ? /^NsdnsError: inside the namespace, adding the default route via 10\.219\.99\.1 on eth9: Network is unreachable$/
        : /^NsdnsError: inside the namespace, ip failed: .*gateway/i);
      assert.equal(await link(hostIf).catch(() => undefined), undefined, 'host end removed');
      assert.equal(await link('eth9', ns).catch(() => undefined), undefined, 'peer gone with it');
    });

    it('deletes links, and a link already gone is no error', async () => {
      const hostIf = `${p}${path[0]}v1`;
      await deleteLink(hostIf);
      assert.equal(await link(hostIf).catch(() => undefined), undefined);
      assert.equal(await link('eth7', ns).catch(() => undefined), undefined, 'the peer goes with it');
      await deleteLink(hostIf);
      await deleteLink(bridge);
      assert.equal(await link(bridge).catch(() => undefined), undefined);
    });
  });
}
