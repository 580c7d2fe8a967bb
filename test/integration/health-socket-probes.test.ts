// The health probes' fallback on Node's socket (used where Node has no bare TCP handle): the same
// results as the fast path, against real listeners on loopback.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { socketHttpProbe, socketTcpProbe } from '../../src/health/probes.js';
import type { HealthCheck } from '../../src/registry/types.js';
import type { ProbeResult } from '../../src/health/state-machine.js';

const check = (port: number): HealthCheck => ({ type: 'tcp', port, intervalMs: 1000, timeoutMs: 1000, retries: 1, startPeriodMs: 0 });

function run(start: (done: (r: ProbeResult) => void) => () => void): Promise<ProbeResult> {
  return new Promise((resolve) => { start(resolve); });
}

/** A listener that answers every connection with `reply` (nothing when undefined). */
async function listener(reply: string | undefined): Promise<net.Server> {
  const server = net.createServer((s) => {
    s.on('error', () => undefined);
    if (reply !== undefined) s.end(reply);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return server;
}
const portOf = (s: net.Server) => (s.address() as net.AddressInfo).port;
const GET = 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';

describe('health probes on Node\'s socket', () => {
  let ok: net.Server, failing: net.Server, junk: net.Server, silent: net.Server, closedPort: number;

  before(async () => {
    ok = await listener('HTTP/1.1 204 No Content\r\n\r\n');
    failing = await listener('HTTP/1.1 500 Oops\r\n\r\n');
    junk = await listener('SSH-2.0-OpenSSH\r\n');
    silent = await listener(undefined);
    const gone = await listener(undefined);
    closedPort = portOf(gone);
    await new Promise((r) => gone.close(r));
  });
  after(() => { for (const s of [ok, failing, junk, silent]) s?.close(); });

  it('tcp: a listening port is healthy, a closed one is not', async () => {
    assert.deepEqual(pick(await run((d) => socketTcpProbe('127.0.0.1', check(portOf(ok)), d))), { ok: true, detail: 'connected' });
    const refused = await run((d) => socketTcpProbe('127.0.0.1', check(closedPort), d));
    assert.equal(refused.ok, false);
    assert.match(refused.detail, /refused/i);
  });

  it('http: 2xx is healthy; 500, a reply that is not HTTP and a hang-up are not; stop ends it once', async () => {
    assert.deepEqual(pick(await run((d) => socketHttpProbe('127.0.0.1', check(portOf(ok)), GET, d))), { ok: true, detail: 'HTTP 204' });
    assert.deepEqual(pick(await run((d) => socketHttpProbe('127.0.0.1', check(portOf(failing)), GET, d))), { ok: false, detail: 'HTTP 500' });
    assert.deepEqual(pick(await run((d) => socketHttpProbe('127.0.0.1', check(portOf(junk)), GET, d))), { ok: false, detail: 'not an HTTP reply' });
    const results: ProbeResult[] = [];
    const stop = socketHttpProbe('127.0.0.1', check(portOf(silent)), GET, (r) => results.push(r));
    await new Promise((r) => setTimeout(r, 100));
    stop();
    stop();
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(results.map(pick), [{ ok: false, detail: 'stopped' }]);
  });
});

function pick(r: ProbeResult): { ok: boolean; detail: string } {
  return { ok: r.ok, detail: r.detail };
}
