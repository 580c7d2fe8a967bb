// Where health probes from registry files may go, as a host service sees it: a file that aims a
// probe at the host's loopback (without subnets, or with a loopback subnet) gets no probe there,
// and the daemon says so once, naming the file; a range the operator allows in the daemon's
// configuration is probed.
import assert from 'node:assert/strict';
import http from 'node:http';
import { afterEach, describe, it } from 'node:test';
import { startDaemon } from '../helpers/daemon.js';
import { tempDir } from '../helpers/tmp.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** An HTTP service on the host that counts the requests it gets, and their paths. */
async function countingServer(address: string): Promise<{ port: number; paths: string[] }> {
  const paths: string[] = [];
  const server = http.createServer((req, res) => { paths.push(req.url ?? ''); res.end('ok'); });
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  cleanups.push(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }));
  return { port: (server.address() as { port: number }).port, paths };
}

async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('health probes from registry files', () => {
  it('never probe loopback or an address outside the subnets; the operator may allow a range', async () => {
    const hostService = await countingServer('127.0.0.1');
    const allowed = await countingServer('127.0.0.2');
    const check = (port: number) => `{type: http, port: ${port}, path: "/admin/reset?confirm=yes", intervalMs: 100, timeoutMs: 300, retries: 1}`;
    const files = tempDir();
    cleanups.push(files.cleanup);
    files.write('nosubnet.yaml', `name: nosubnet\nendpoints:\n  - {name: evil, ipv4: 127.0.0.1, healthCheck: ${check(hostService.port)}}\n`);
    files.write('loopnet.yaml', `name: loopnet\nsubnets: [{subnet: 127.0.0.0/8}]\nendpoints:\n  - {name: evil, ipv4: 127.0.0.1, healthCheck: ${check(hostService.port)}}\n`);
    files.write('allowed.yaml', `name: allowed\nendpoints:\n  - {name: lab, ipv4: 127.0.0.2, healthCheck: ${check(allowed.port)}}\n`);
    const config = tempDir();
    cleanups.push(config.cleanup);
    const daemon = await startDaemon(['--registry', files.dir, '--listen', '127.0.0.1:0', '--no-resolv-conf', '--config', config.write('c.yaml', 'registryFiles:\n  probeAllow: [127.0.0.2/32]\n')]);
    cleanups.push(() => daemon.stop());

    await until(() => allowed.paths.length >= 5, 'the allowed endpoint to be probed 5 times');
    assert.equal(allowed.paths[0], '/admin/reset?confirm=yes');
    assert.deepEqual(hostService.paths, [], 'the host service on 127.0.0.1 was never probed');
    const refused = daemon.logs.filter((l) => /no health probes|is not probed/.test(l.msg));
    assert.equal(refused.filter((l) => l.network === 'nosubnet').length, 1, 'one line for the network without subnets');
    assert.match(refused.find((l) => l.network === 'nosubnet')!.msg, /network "nosubnet" \(.*nosubnet\.yaml\): no health probes: its network has no subnets/);
    assert.equal(refused.filter((l) => l.network === 'loopnet').length, 1);
    assert.match(refused.find((l) => l.network === 'loopnet')!.msg, /endpoint "evil" on network "loopnet" \(.*loopnet\.yaml\) is not probed: 127\.0\.0\.1 is a loopback address/);
  });
});
