// Rootless Podman runs netavark, and so its DNS server, as the user inside a user and network
// namespace of its own: the drop-in must serve there from the config directory alone (no root, no
// nftables, no state directory). Root is needed only to become an unprivileged user (nobody).
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { execa } from 'execa';
import { ROOT } from '../helpers/daemon.js';
import { isRoot } from '../helpers/netns.js';
import { tempDir } from '../helpers/tmp.js';

const BIN = path.join(ROOT, 'bin/aardvark-dns');

describe('aardvark-dns drop-in, rootless', { skip: isRoot ? false : 'needs root (to become nobody)' }, () => {
  const tmp = tempDir('nsdns-rootless-');
  after(() => tmp.cleanup());

  it('starts, answers at the gateway and stops as an unprivileged user in its own user and network namespace', async () => {
    const config = path.join(tmp.dir, 'aardvark-dns');
    mkdirSync(config);
    writeFileSync(path.join(config, 'podman'), `10.179.0.1\n${'ab'.repeat(32)} 10.179.0.2  web,api\n`);
    for (const p of [tmp.dir, config, path.join(config, 'podman')]) chmodSync(p, 0o777);
    // Everything in one shell inside the namespaces: the server's namespace ends with it.
    const script = [
      'set -e',
      'ip link set lo up',
      'ip addr add 10.179.0.1/32 dev lo',
      `NSDNS_AARDVARK_RESOLV_CONF= ${BIN} --config ${config} -p 53 run`,
      `pid=$(cat ${config}/aardvark.pid)`,
      // The server's uid map: its uid 0 is which uid outside.
      'echo "uid=$(id -u) map=$(xargs < /proc/$pid/uid_map)"',
      'dig +short +tries=1 +time=5 @10.179.0.1 web',
      'dig +short +tries=1 +time=5 +tcp @10.179.0.1 api.dns.podman',
      'kill $pid',
    ].join('\n');
    const r = await execa('runuser', ['-u', 'nobody', '--', 'unshare', '-rn', 'sh', '-c', script], { reject: false, timeout: 60_000 });
    assert.equal(r.exitCode, 0, r.stdout + r.stderr);
    const [ids, a, tcp] = r.stdout.split('\n');
    // uid 0 inside the user namespace, nobody outside: the server has no privilege on the host.
    const nobody = (await execa('id', ['-u', 'nobody'])).stdout;
    assert.match(ids, new RegExp(`^uid=0 map=0 ${nobody} 1$`));
    assert.equal(a, '10.179.0.2');
    assert.equal(tcp, '10.179.0.2');
  });
});
