// Addresses a request may name: probe scope (an address the host gains after a network's probes
// were set up is no longer probed, though no registry change comes to check that network again),
// and --dns / --dns-upstream name one DNS server (no multicast or broadcast).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { silentLogger } from '../../src/log.js';
import { parseDocumentText } from '../../src/registry/document.js';
import { Registry } from '../../src/registry/registry.js';
import { HealthProber } from '../../src/health/prober.js';
import type { Probe } from '../../src/health/probes.js';
import { checkNamespaceUpstream } from '../../src/plumbing/requests.js';
import { until } from '../helpers/wait.js';

describe('probe scope follows the host\'s addresses', () => {
  it('stops probing an endpoint whose address became the host\'s (DHCP, a new interface), and probes it again once it is not', async () => {
    const registry = new Registry();
    registry.setNetwork(parseDocumentText('name: lan\nsubnets: [{subnet: 10.195.0.0/24}]\nendpoints:\n  - {name: web, ipv4: 10.195.0.5, healthCheck: {type: tcp, port: 80, intervalMs: 100, timeoutMs: 100, retries: 1}}\n', 'lan.yaml'), 'file:lan.yaml');
    const host = new Set(['127.0.0.1', '10.195.0.1']);
    const probed: string[] = [];
    const probe: Probe = (address, _c, done) => { probed.push(address); done({ ok: true, detail: 'connected', start: Date.now(), end: Date.now() }); return () => undefined; };
    const prober = new HealthProber(registry, silentLogger, {
      probe: () => probe, spread: () => 0, native: false,
      scope: { allow: () => [], hostAddresses: () => new Set(host), recheckMs: 20 },
    }).start();
    try {
      await until('the endpoint is probed', () => probed.length, (n) => n > 0);
      assert.equal(prober.size, 1);
      host.add('10.195.0.5');
      await until('its probe is dropped', () => prober.size, (n) => n === 0);
      const after = probed.length;
      host.delete('10.195.0.5');
      await until('it is probed again', () => probed.length, (n) => n > after);
      assert.equal(prober.size, 1);
    } finally {
      await prober.stop();
    }
  });
});

describe('--dns and --dns-upstream name a DNS server', () => {
  it('refuse a multicast or broadcast address (no server answers there; a broadcast send even fails), as they refuse loopback', () => {
    for (const value of ['224.0.0.251', '[ff02::fb]:5353', '255.255.255.255:53']) {
      assert.throws(() => checkNamespaceUpstream('--dns', value), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ERR_BAD_REQUEST');
        assert.match(err.message, /^--dns \S+: a (multicast|broadcast) address is not one DNS server; give the address of a DNS server the host can reach/);
        return true;
      }, value);
    }
    for (const value of ['10.195.0.53', '[fd00:195::53]:53', '192.0.2.53:5353']) checkNamespaceUpstream('--dns', value);
  });
});
