// An overlay network's value in etcd: its VXLAN id is read strictly, and written back as read.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { remoteNetwork, remoteNetworkValue } from '../../src/registry/document.js';
import { overlayDefinition, requestedVni } from '../../src/etcd/cluster-networks.js';
import { definitionDifference } from '../../src/etcd/network-definition.js';

const value = { name: 'app', subnets: [{ subnet: '10.128.0.0/16' }], internal: false, overlay: { vni: 4096 } };

describe('overlay network values', () => {
  it('round-trips the VXLAN id', () => {
    const network = remoteNetwork(value, '/p/networks/app');
    assert.deepEqual(network.overlay, { vni: 4096 });
    assert.deepEqual(remoteNetwork(remoteNetworkValue(network), 'again'), network);
    const withMtu = remoteNetwork({ ...value, overlay: { vni: 4096, mtu: 1400 } }, 'k');
    assert.deepEqual(remoteNetwork(remoteNetworkValue(withMtu), 'again').overlay, { vni: 4096, mtu: 1400 });
    assert.deepEqual(overlayDefinition({ name: 'app', subnets: ['10.128.0.0/16'], mtu: 1400 }, 9).overlay, { vni: 9, mtu: 1400 });
  });

  it('refuses a VXLAN id that is not 1-16777215, and anything else under overlay', () => {
    for (const overlay of [{ vni: 0 }, { vni: 0x1000000 }, { vni: '4096' }, { vni: 1.5 }, { vni: 7, dev: 'eth0' }, { vni: 7, vxlan: 'x' }, { vni: 7, mtu: 67 }, {}, 'x']) {
      assert.throws(() => remoteNetwork({ ...value, overlay }, '/p/networks/app'), /\/p\/networks\/app/, JSON.stringify(overlay));
    }
  });

  it('an overlay and a bridge network of one name are two networks', () => {
    const overlay = remoteNetwork(value, 'etcd');
    const { overlay: _, ...bridge } = value;
    assert.match(definitionDifference(overlay, remoteNetwork(bridge, 'here'))!, /overlay \(VXLAN id 4096\) in etcd, not overlay here/);
    assert.match(definitionDifference(overlay, remoteNetwork({ ...value, overlay: { vni: 5000 } }, 'here'))!, /overlay \(VXLAN id 4096\) in etcd, overlay \(VXLAN id 5000\) here/);
  });

  it('checks a create request before etcd is asked', () => {
    assert.equal(requestedVni(undefined), undefined);
    assert.equal(requestedVni({ vni: '5000' }), 5000);
    for (const bad of ['0', '16777216', '-1', '1e3', ' 7', '']) assert.throws(() => requestedVni({ vni: bad }), /a VXLAN id is 1-16777215/, bad);
    assert.throws(() => requestedVni({ vni: '7', parent: 'eth0' }), /overlay networks take -o vni=N only/);
    assert.equal(overlayDefinition({ name: 'app', subnets: ['10.128.7.9/16'] }, 9).subnets[0].subnet, '10.128.0.0/16');
    assert.throws(() => overlayDefinition({ name: 'app' }, 9), /needs one --subnet/);
    assert.throws(() => overlayDefinition({ name: 'app', subnets: ['fd28::/64'] }, 9), /not an IPv4 CIDR/);
    assert.throws(() => overlayDefinition({ name: 'app', subnets: ['10.128.0.0/16'], gateway: '10.128.0.1' }, 9), /do not take --gateway yet/);
  });
});
