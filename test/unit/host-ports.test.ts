// Held published ports (src/plumbing/host-ports.ts) with real sockets on 127.0.0.1: a port in use
// is refused by name, a publication is held whole or not at all, and a port taken while nsdns was
// down is reported once and held as soon as it is free. Ports 25630-25639.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { HostPorts } from '../../src/plumbing/host-ports.js';
import type { Endpoint, PortMapping } from '../../src/registry/types.js';

const tcp = (hostPort: number): PortMapping => ({ hostIp: '127.0.0.1', hostPort, containerPort: 80, protocol: 'tcp' });
const udp = (hostPort: number): PortMapping => ({ hostIp: '127.0.0.1', hostPort, containerPort: 53, protocol: 'udp' });

function listen(port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen({ host: '127.0.0.1', port }, () => resolve(s));
  });
}
const close = (s: net.Server) => new Promise<void>((resolve) => s.close(() => resolve()));

/** Fails (and gives the port back) when this process can listen on it: it is not held. */
async function assertHeld(port: number): Promise<void> {
  const probe = await listen(port).catch((err: NodeJS.ErrnoException) => err.code);
  if (probe instanceof net.Server) await close(probe);
  assert.equal(probe, 'EADDRINUSE', `port ${port} is held`);
}

function bindUdp(port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', (err) => { s.close(); reject(err); });
    s.bind({ address: '127.0.0.1', port }, () => resolve(s));
  });
}

function endpoint(id: string, ports: PortMapping[]): Endpoint {
  return { id, network: 'n', name: id, aliases: [], ipv4: [], ipv6: [], upstreams: [], ports };
}

describe('held host ports', () => {
  const ports = new HostPorts();
  afterEach(() => ports.close());

  it('holds TCP and UDP ports until released: no one else may bind them meanwhile', async () => {
    await ports.hold('a', [tcp(25630), udp(25631)]);
    await assertHeld(25630);
    await assert.rejects(bindUdp(25631), { code: 'EADDRINUSE' });
    await ports.release('a');
    await close(await listen(25630));
    (await bindUdp(25631)).close();
  });

  it('refuses a port in use with a message naming it, and holds none of the others', async () => {
    const other = await listen(25633);
    try {
      await assert.rejects(ports.hold('b', [tcp(25632), tcp(25633)]), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ERR_CONFLICT');
        assert.match(err.message, /^host port 25633\/tcp is already in use on 127\.0\.0\.1;/);
        return true;
      });
      await close(await listen(25632));
    } finally {
      await close(other);
    }
  });

  it('refuses a host IP that is not the host\'s with a message saying so, not that the port is in use', async () => {
    // 192.0.2.7 (TEST-NET-1) is on no interface here: the bind fails with EADDRNOTAVAIL; nothing is sent.
    await assert.rejects(ports.hold('e', [{ hostIp: '192.0.2.7', hostPort: 26160, containerPort: 80, protocol: 'tcp' }]), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ERR_BAD_REQUEST');
      assert.equal(err.message, '--publish 192.0.2.7:26160: 192.0.2.7 is not an address of this host; give one of its addresses, or no address to publish on all of them');
      return true;
    });
  });

  it('retake leaves alone the ports of an endpoint it was not given (a connect holds them before it is saved)', async () => {
    await ports.hold('d', [tcp(25635)]);
    assert.deepEqual(await ports.retake([]), []);
    await assertHeld(25635);
  });

  it('retake reports a taken port once, lists it as a problem, and holds it when free', async () => {
    const squatter = await listen(25634);
    const e = endpoint('c', [tcp(25634)]);
    const first = await ports.retake([e]);
    assert.equal(first.length, 1);
    assert.match(first[0], /endpoint "c" of network "n" publishes a host port nsdns cannot hold: host port 25634\/tcp is already in use/);
    assert.deepEqual(await ports.retake([e]), [], 'said once');
    assert.equal(ports.problems().length, 1);
    await close(squatter);
    assert.deepEqual(await ports.retake([e]), ['endpoint "c" of network "n": its published host ports are held again']);
    assert.deepEqual(ports.problems(), []);
    await assertHeld(25634);
  });
});
