// Podman end to end, as a user runs it: with this checkout's bin/ first in containers.conf's
// helper_binaries_dir, or with a link in /usr/local/libexec/podman (the README's two ways), `podman
// run` of a network's first container makes netavark start nsdns's aardvark-dns, and a second
// container finds the first by name with busybox's nslookup. The image is Debian's static busybox
// imported from a tarball (no registry), and Podman runs in a sandbox of its own
// (test/helpers/podman-sandbox.ts) that leaves nothing behind on the host.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT } from '../helpers/daemon.js';
import { isRoot } from '../helpers/netns.js';
import { PodmanSandbox } from '../helpers/podman-sandbox.js';
import { waitFor } from '../helpers/wait.js';

const BIN = path.join(ROOT, 'bin/aardvark-dns');
const needed = ['/usr/bin/podman', '/usr/sbin/runc', '/bin/busybox', '/usr/lib/podman/netavark'];
const missing = needed.filter((f) => !existsSync(f));
const skip = !isRoot ? 'needs root (Podman, namespaces)' : missing.length > 0
  ? `needs ${missing.join(', ')} (apt-get install podman runc busybox-static netavark)` : false;

const IMAGE = 'localhost/nsdns-e2e-busybox:latest';
const NETWORK = 'nsdnse2e';
/** Where root Podman 4.3 keeps netavark's config directory, and so the server's pid file. */
const PID_FILE = '/run/containers/networks/aardvark-dns/aardvark.pid';

const ways = [
  { way: 'helper_binaries_dir', subnet: '10.187.0', helperDirs: [path.join(ROOT, 'bin')], link: false },
  { way: 'a link in /usr/local/libexec/podman', subnet: '10.187.1', helperDirs: [], link: true },
];

for (const { way, subnet, helperDirs, link } of ways) {
  describe(`Podman 4.3 with nsdns as its DNS server, through ${way}`, { skip }, () => {
    let pod: PodmanSandbox;
    let serverPid: number | undefined;
    const run = (...args: string[]) => pod.podman('run', '--rm', '--pull', 'never', '--network', NETWORK, IMAGE, ...args);
    const log = () => readFileSync(path.join(pod.dir, 'server.log'), 'utf8');

    before(async () => {
      pod = await PodmanSandbox.create({
        helperDirs,
        // Podman copies the host's nameservers into containers after the gateway: the sandbox's
        // resolv.conf names an address of this test's range that nothing serves.
        hostNameserver: '10.188.0.53',
        // The server's log, set through Podman's environment as docs/podman.md says.
        env: (dir) => ({ NSDNS_AARDVARK_LOG: path.join(dir, 'server.log') }),
      });
      if (link) await pod.linkHelper('aardvark-dns', BIN);
      await pod.importBusybox(IMAGE, ['sh', 'sleep', 'nslookup']);
      await pod.ok('network', 'create', '--subnet', `${subnet}.0/24`, NETWORK);
    });
    after(async () => {
      await pod?.cleanup();
    });

    it('nslookup web from a second container: nsdns answers with web\'s address', async () => {
      await pod.ok('run', '-d', '--pull', 'never', '--network', NETWORK, '--name', 'web', IMAGE, 'sleep', '600');
      const address = (await pod.ok('inspect', '--format', `{{(index .NetworkSettings.Networks "${NETWORK}").IPAddress}}`, 'web')).trim();
      assert.match(address, new RegExp(`^${subnet.replaceAll('.', '\\.')}\\.\\d+$`));

      const r = await run('nslookup', 'web');
      assert.equal(r.exitCode, 0, r.stdout + r.stderr);
      assert.match(r.stdout, new RegExp(`Server:\\s+${subnet.replaceAll('.', '\\.')}\\.1\\b`));
      assert.match(r.stdout, new RegExp(`Name:\\s+web(\\.dns\\.podman)?\\s+Address:\\s+${address.replaceAll('.', '\\.')}\\b`));

      // The server netavark started is this checkout's drop-in, not Debian's aardvark-dns.
      serverPid = Number(readFileSync(pod.inside(PID_FILE), 'utf8'));
      const argv = readFileSync(`/proc/${serverPid}/cmdline`, 'utf8').split('\0');
      const expected = link ? '/usr/local/libexec/podman/aardvark-dns' : BIN;
      assert.equal(argv[1], expected, `the server running is: ${argv.join(' ')}`);
      assert.match(log(), new RegExp(`"address":"${subnet.replaceAll('.', '\\.')}\\.1:53","msg":"listening"`));
    });

    it('web removed: its name is gone, and the server exits with the network\'s last container', async () => {
      await pod.ok('rm', '--force', '--time', '0', 'web');
      const r = await run('nslookup', 'web.dns.podman');
      assert.notEqual(r.exitCode, 0, r.stdout);
      assert.match(r.stdout + r.stderr, /NXDOMAIN/);
      // The client above was the network's last container: netavark's teardown emptied the
      // directory and the server left with it.
      await waitFor(() => !existsSync(`/proc/${serverPid}`) || /^State:\s+Z/m.test(readFileSync(`/proc/${serverPid}/status`, 'utf8')), { what: 'the server exits' });
      assert.equal(existsSync(pod.inside(PID_FILE)), false);
    });
  });
}
