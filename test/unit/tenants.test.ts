// Who is a tenant of which network, by source address, and what a host listener shows each client.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import ipaddr from 'ipaddr.js';
import { parseDocumentText, remoteEndpoint } from '../../src/registry/document.js';
import { Registry } from '../../src/registry/registry.js';
import { clientViews, Tenants } from '../../src/registry/tenants.js';

function registry(): Registry {
  const r = new Registry();
  r.setNetwork(parseDocumentText('name: a\nsubnets: [{subnet: 10.161.0.0/24, gateway: 10.161.0.1}]\nendpoints:\n  - {name: alpha, ipv4: 10.161.0.2}\n', 'a.yaml'), 'test');
  r.setNetwork(parseDocumentText('name: b\nsubnets: [{subnet: 10.162.0.0/24, gateway: 10.162.0.1}, {subnet: "fd62::/64"}]\nendpoints:\n  - {name: beta, ipv4: 10.162.0.2}\n', 'b.yaml'), 'test');
  r.setNetwork(parseDocumentText('name: bare\nendpoints:\n  - {name: loose, ipv4: 192.0.2.9}\n', 'bare.yaml'), 'test');
  return r;
}

describe('tenants', () => {
  const tenants = new Tenants(registry().current().networks);

  it('a subnet makes a tenant, an endpoint address too; strangers are none', () => {
    assert.deepEqual(tenants.of('10.161.0.77'), ['a']);
    assert.deepEqual(tenants.of('::ffff:10.162.0.5'), ['b']);
    assert.deepEqual(tenants.of('fd62::5'), ['b']);
    assert.deepEqual(tenants.of('192.0.2.9'), ['bare']);
    assert.equal(tenants.of('127.0.0.1'), null);
    assert.equal(tenants.of('not an address'), null);
  });

  it('addresses of the host itself are no tenant, even inside a served subnet', () => {
    const withHost = new Tenants(registry().current().networks, ['10.161.0.200', '::ffff:10.162.0.9']);
    assert.equal(withHost.of('10.161.0.200'), null);
    assert.equal(withHost.of('10.162.0.9'), null);
    assert.deepEqual(withHost.of('10.161.0.201'), ['a']);
    // An endpoint a file puts at a host address does not make the host its tenant.
    assert.equal(new Tenants(registry().current().networks, ['192.0.2.9']).of('192.0.2.9'), null);
  });

  it('inside a served subnet the subnet decides: an endpoint of a network without subnets there does not take the address', () => {
    const r = registry();
    r.setNetwork(parseDocumentText('name: claim\nendpoints:\n  - {name: spy, ipv4: 10.161.0.2}\n', 'claim.yaml'), 'test');
    assert.deepEqual(new Tenants(r.current().networks).of('10.161.0.2'), ['a']);
  });

  it('an endpoint another host adds to a network without subnets does not take its address', () => {
    const r = registry();
    const bare = r.current().networks.get('bare')!.network;
    r.setContribution('bare', 'etcd:etcd://127.0.0.1:16100/nsdns', [remoteEndpoint({ name: 'far', ipv4: '198.51.100.7' }, bare, '/nsdns/endpoints/bare/node-b/far')]);
    assert.deepEqual(r.current().view().lookup('far.bare').kind, 'found');
    const t = new Tenants(r.current().networks);
    assert.equal(t.of('198.51.100.7'), null);
    assert.deepEqual(t.of('192.0.2.9'), ['bare']);
  });

  it('matches subnets of any prefix length as ipaddr.js does, IPv4 and IPv6', () => {
    const r = new Registry();
    const subnets = ['10.170.16.0/20', '10.170.0.0/16', '10.171.5.128/25', '0.0.0.0/0', 'fd70:1:2:8::/61', 'fd70::/16', 'fd71::1/128'];
    subnets.forEach((subnet, i) => r.setNetwork(parseDocumentText(`name: s${i}\nsubnets: [{subnet: "${subnet}"}]\n`, `s${i}.yaml`), 'test'));
    const t = new Tenants(r.current().networks);
    const ranges = subnets.map((c) => ipaddr.parseCIDR(c));
    const samples = ['10.170.31.255', '10.170.32.0', '10.170.15.1', '10.171.5.127', '10.171.5.200', '192.0.2.1',
      'fd70:1:2:f::1', 'fd70:1:2:10::', 'fd70:1:2:7:ffff::', 'fd71::1', 'fd71::2', 'fe80::1', '::ffff:10.170.20.1'];
    for (const a of samples) {
      const addr = ipaddr.process(a);
      const expected = subnets.map((_, i) => `s${i}`).filter((_, i) => ranges[i][0].kind() === addr.kind() && addr.match(ranges[i])).sort();
      assert.deepEqual(t.of(a) ?? [], expected, a);
    }
  });

  it('a gateway is the host\'s only when the host has it: a file cannot declare a tenant\'s address its gateway', () => {
    assert.deepEqual(tenants.of('10.161.0.1'), ['a'], 'declared, not the host\'s: a tenant like any other');
    assert.equal(new Tenants(registry().current().networks, ['10.161.0.1']).of('10.161.0.1'), null);
  });

  it('a listener shows a tenant its own networks among its own, refuses one with none, and shows others all', () => {
    const snapshot = registry().current();
    const all = clientViews(snapshot, new Tenants(snapshot.networks), undefined);
    assert.deepEqual(all('10.162.0.5')?.networkNames, ['b']);
    assert.deepEqual(all('127.0.0.1')?.networkNames, ['a', 'b', 'bare']);
    const onlyA = clientViews(snapshot, new Tenants(snapshot.networks), ['a']);
    assert.equal(onlyA('10.162.0.5'), null);
    assert.deepEqual(onlyA('10.161.0.5')?.networkNames, ['a']);
    assert.deepEqual(onlyA('198.51.100.1')?.networkNames, ['a']);
  });
});
