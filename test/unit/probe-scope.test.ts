// Where a health probe may go (src/health/probe-scope.ts), case by case.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { probeTarget } from '../../src/health/probe-scope.js';
import type { Endpoint, Network } from '../../src/registry/types.js';

const network = (subnets: string[]): Network => ({ id: 'n', name: 'n', subnets: subnets.map((subnet) => ({ subnet })), internal: false, upstreams: [] } as unknown as Network);
const endpoint = (ipv4: string[], ipv6: string[] = []): Endpoint => ({ id: 'e', network: 'n', name: 'e', aliases: [], ipv4, ipv6, upstreams: [] });
const host = new Set(['10.172.0.1', '192.168.1.5']);

describe('probe scope', () => {
  const cases: Array<[string, Endpoint, string[], string[], string]> = [
    ['inside its subnet', endpoint(['10.172.0.5']), ['10.172.0.0/24'], [], 'address 10.172.0.5'],
    ['no subnets', endpoint(['10.172.0.5']), [], [], 'refused: its network has no subnets'],
    ['loopback, even inside a loopback subnet', endpoint(['127.0.0.1']), ['127.0.0.0/8'], [], 'refused: 127.0.0.1 is a loopback address'],
    ['link-local', endpoint(['169.254.169.254']), ['169.254.0.0/16'], [], 'refused: 169.254.169.254 is a linkLocal address'],
    ['the host\'s own address', endpoint(['10.172.0.1']), ['10.172.0.0/24'], [], 'refused: 10.172.0.1 is an address of the host'],
    ['outside the subnets', endpoint(['10.173.0.5']), ['10.172.0.0/24'], [], 'refused: 10.173.0.5 is outside the network\'s subnets'],
    ['IPv6 loopback', endpoint([], ['::1']), ['::/0'], [], 'refused: ::1 is a loopback address'],
    ['allowed by the operator', endpoint(['127.0.0.1']), [], ['127.0.0.0/8'], 'address 127.0.0.1'],
  ];
  for (const [what, e, subnets, allow, expected] of cases) {
    it(what, () => {
      const t = probeTarget(e, network(subnets), allow, host);
      const got = 'address' in t ? `address ${t.address}` : `refused: ${t.refused}`;
      assert.ok(got.startsWith(expected), `${got} does not start with ${expected}`);
    });
  }
});
